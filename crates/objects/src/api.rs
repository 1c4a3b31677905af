use crate::ObjectSource;
use crate::error::{Kind, ObjectError};
use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, ListParams, PostParams};

/// Reads objects from the API server on every call: the pod's sync asks again at each resync,
/// so an update reaches running pods within a sync period.
#[derive(Clone)]
pub struct ApiObjects {
    client: kube::Client,
}

impl ApiObjects {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

fn api_error(kind: Kind, namespace: &str, name: &str, e: kube::Error) -> ObjectError {
    match &e {
        kube::Error::Api(status) if status.code == 404 => {
            ObjectError::not_found(kind, namespace, name)
        }
        _ => ObjectError::Api {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source: Box::new(e),
        },
    }
}

#[async_trait]
impl ObjectSource for ApiObjects {
    async fn config_map(&self, namespace: &str, name: &str) -> Result<ConfigMap, ObjectError> {
        Api::<ConfigMap>::namespaced(self.client.clone(), namespace)
            .get(name)
            .await
            .map_err(|e| api_error(Kind::ConfigMap, namespace, name, e))
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Secret, ObjectError> {
        Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get(name)
            .await
            .map_err(|e| api_error(Kind::Secret, namespace, name, e))
    }

    async fn services(&self, namespace: &str) -> Result<Vec<Service>, ObjectError> {
        Api::<Service>::namespaced(self.client.clone(), namespace)
            .list(&ListParams::default())
            .await
            .map(|list| list.items)
            .map_err(|e| api_error(Kind::Service, namespace, "", e))
    }

    async fn service_account_token(
        &self,
        namespace: &str,
        service_account: &str,
        request: TokenRequest,
    ) -> Result<TokenRequest, ObjectError> {
        Api::<ServiceAccount>::namespaced(self.client.clone(), namespace)
            .create_token_request(service_account, &PostParams::default(), &request)
            .await
            .map_err(|e| api_error(Kind::ServiceAccountToken, namespace, service_account, e))
    }

    async fn runtime_handler(&self, runtime_class: &str) -> Result<String, ObjectError> {
        Api::<RuntimeClass>::all(self.client.clone())
            .get(runtime_class)
            .await
            .map(|rc| rc.handler)
            .map_err(|e| api_error(Kind::RuntimeClass, "", runtime_class, e))
    }
}
