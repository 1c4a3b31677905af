//! Name reservation: one sandbox per `name_namespace_uid_attempt` and one container per
//! `name_sandboxname_sandboxnamespace_sandboxuid_attempt`, as containerd names them, so that a
//! retried CRI call cannot create a second object for the same pod or container attempt.

use crate::ServiceError;
use k8s_cri::v1::{ContainerMetadata, PodSandboxMetadata};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub(crate) struct Names {
    held: Mutex<HashMap<String, String>>,
}

impl Names {
    /// Reserves `name` for `id`; reserving it again for the same id is fine.
    pub(crate) fn reserve(&self, name: &str, id: &str) -> Result<(), ServiceError> {
        let mut held = self.held.lock().expect("names lock");
        match held.get(name) {
            Some(holder) if holder != id => Err(ServiceError::NameReserved {
                name: name.to_string(),
                holder: holder.clone(),
            }),
            _ => {
                held.insert(name.to_string(), id.to_string());
                Ok(())
            }
        }
    }

    /// Frees `name` if `id` holds it (a stale release never frees another object's name).
    pub(crate) fn release(&self, name: &str, id: &str) {
        let mut held = self.held.lock().expect("names lock");
        if held.get(name).is_some_and(|holder| holder == id) {
            held.remove(name);
        }
    }
}

pub(crate) fn sandbox_name(meta: &PodSandboxMetadata) -> String {
    format!(
        "{}_{}_{}_{}",
        meta.name, meta.namespace, meta.uid, meta.attempt
    )
}

pub(crate) fn container_name(
    container: &ContainerMetadata,
    sandbox: &PodSandboxMetadata,
) -> String {
    format!(
        "{}_{}_{}_{}_{}",
        container.name, sandbox.name, sandbox.namespace, sandbox.uid, container.attempt
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(attempt: u32) -> PodSandboxMetadata {
        PodSandboxMetadata {
            name: "web".into(),
            uid: "u1".into(),
            namespace: "default".into(),
            attempt,
        }
    }

    #[test]
    fn names_follow_containerd() {
        assert_eq!(sandbox_name(&pod(2)), "web_default_u1_2");
        let c = ContainerMetadata {
            name: "app".into(),
            attempt: 1,
        };
        assert_eq!(container_name(&c, &pod(0)), "app_web_default_u1_1");
    }

    #[test]
    fn a_name_is_held_by_one_id_until_its_holder_releases_it() {
        let names = Names::default();
        names.reserve("web_default_u1_0", "a").unwrap();
        names.reserve("web_default_u1_0", "a").unwrap();
        let err = names.reserve("web_default_u1_0", "b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "name \"web_default_u1_0\" is reserved for \"a\""
        );
        assert_eq!(err.code(), tonic::Code::AlreadyExists);
        names.release("web_default_u1_0", "b");
        assert!(names.reserve("web_default_u1_0", "b").is_err());
        names.release("web_default_u1_0", "a");
        names.reserve("web_default_u1_0", "b").unwrap();
        names.reserve("web_default_u1_1", "c").unwrap();
    }
}
