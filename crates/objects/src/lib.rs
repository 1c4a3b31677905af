//! The API objects a pod refers to and the kubelet reads on its behalf: ConfigMaps and Secrets
//! (volumes, env, envFrom, imagePullSecrets), the Services of its namespace (service link env
//! vars), service account tokens (projected volumes, through the TokenRequest API) and the
//! RuntimeClass that names its runtime handler.
//!
//! [`ObjectSource`] is the seam: [`ApiObjects`] reads the API server, [`NoApi`] is the
//! standalone kubelet's answer (upstream's "no kubeClient defined"), [`FakeObjects`] serves
//! tests from memory.

mod api;
mod error;
mod fake;

pub use api::ApiObjects;
pub use error::{Kind, ObjectError};
pub use fake::FakeObjects;

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};

#[async_trait]
pub trait ObjectSource: Send + Sync + 'static {
    async fn config_map(&self, namespace: &str, name: &str) -> Result<ConfigMap, ObjectError>;
    async fn secret(&self, namespace: &str, name: &str) -> Result<Secret, ObjectError>;
    /// Every Service of `namespace`.
    async fn services(&self, namespace: &str) -> Result<Vec<Service>, ObjectError>;
    /// The TokenRequest API: POST serviceaccounts/NAME/token; the answer carries the token and
    /// its expiry in its status.
    async fn service_account_token(
        &self,
        namespace: &str,
        service_account: &str,
        request: TokenRequest,
    ) -> Result<TokenRequest, ObjectError>;
    /// The CRI runtime handler of the RuntimeClass `runtime_class` (upstream's runtimeclass
    /// manager LookupRuntimeHandler).
    async fn runtime_handler(&self, runtime_class: &str) -> Result<String, ObjectError>;
}

/// The standalone kubelet: there is no API server to read objects from.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoApi;

#[async_trait]
impl ObjectSource for NoApi {
    async fn config_map(&self, namespace: &str, name: &str) -> Result<ConfigMap, ObjectError> {
        Err(ObjectError::no_client(Kind::ConfigMap, namespace, name))
    }
    async fn secret(&self, namespace: &str, name: &str) -> Result<Secret, ObjectError> {
        Err(ObjectError::no_client(Kind::Secret, namespace, name))
    }
    async fn services(&self, _namespace: &str) -> Result<Vec<Service>, ObjectError> {
        // Upstream's getServiceEnvVarMap answers nothing (no error) without a client.
        Ok(Vec::new())
    }
    async fn service_account_token(
        &self,
        namespace: &str,
        service_account: &str,
        _request: TokenRequest,
    ) -> Result<TokenRequest, ObjectError> {
        Err(ObjectError::no_client(
            Kind::ServiceAccountToken,
            namespace,
            service_account,
        ))
    }
    /// Without a RuntimeClass API the class name is taken as the handler's name, so a
    /// standalone node can still pick its OCI runtime per pod.
    async fn runtime_handler(&self, runtime_class: &str) -> Result<String, ObjectError> {
        Ok(runtime_class.to_owned())
    }
}
