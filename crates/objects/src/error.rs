use thiserror::Error;

/// The kind of object asked for, named as upstream's messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ConfigMap,
    Secret,
    Service,
    ServiceAccountToken,
    RuntimeClass,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
            Kind::Service => "service",
            Kind::ServiceAccountToken => "serviceaccount token",
            Kind::RuntimeClass => "runtimeclass.node.k8s.io",
        })
    }
}

#[derive(Debug, Error)]
pub enum ObjectError {
    #[error("{kind} \"{name}\" not found{}", in_namespace(.namespace))]
    NotFound {
        kind: Kind,
        namespace: String,
        name: String,
    },
    #[error("couldn't get {kind} {namespace}/{name}, no kubeClient defined")]
    NoClient {
        kind: Kind,
        namespace: String,
        name: String,
    },
    #[error("couldn't get {kind} {}: {source}", path(.namespace, .name))]
    Api {
        kind: Kind,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
}

/// Cluster-scoped objects (RuntimeClasses) have no namespace to name.
fn path(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}/{name}")
    }
}

fn in_namespace(namespace: &str) -> String {
    if namespace.is_empty() {
        String::new()
    } else {
        format!(" in namespace {namespace}")
    }
}

impl ObjectError {
    pub fn no_client(kind: Kind, namespace: &str, name: &str) -> Self {
        ObjectError::NoClient {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    pub fn not_found(kind: Kind, namespace: &str, name: &str) -> Self {
        ObjectError::NotFound {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// Whether the object does not exist (as opposed to not being reachable): an `optional`
    /// reference is then satisfied by nothing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ObjectError::NotFound { .. })
    }
}
