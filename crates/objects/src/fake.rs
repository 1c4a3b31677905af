use crate::ObjectSource;
use crate::error::{Kind, ObjectError};
use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestStatus};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Objects served from memory, for tests: put objects in, change them, take them out.
#[derive(Clone, Default)]
pub struct FakeObjects {
    inner: Arc<Mutex<Objects>>,
}

#[derive(Default)]
struct Objects {
    config_maps: BTreeMap<(String, String), ConfigMap>,
    secrets: BTreeMap<(String, String), Secret>,
    services: BTreeMap<(String, String), Service>,
    runtime_classes: BTreeMap<String, String>,
    tokens_issued: u64,
}

fn key(namespace: &Option<String>, name: &Option<String>) -> (String, String) {
    (
        namespace.clone().unwrap_or_else(|| "default".into()),
        name.clone().unwrap_or_default(),
    )
}

impl FakeObjects {
    pub fn put_config_map(&self, cm: ConfigMap) {
        let k = key(&cm.metadata.namespace, &cm.metadata.name);
        self.inner.lock().unwrap().config_maps.insert(k, cm);
    }

    pub fn put_secret(&self, secret: Secret) {
        let k = key(&secret.metadata.namespace, &secret.metadata.name);
        self.inner.lock().unwrap().secrets.insert(k, secret);
    }

    pub fn put_service(&self, svc: Service) {
        let k = key(&svc.metadata.namespace, &svc.metadata.name);
        self.inner.lock().unwrap().services.insert(k, svc);
    }

    /// A RuntimeClass `name` whose handler is `handler`.
    pub fn put_runtime_class(&self, name: &str, handler: &str) {
        let mut objects = self.inner.lock().unwrap();
        objects.runtime_classes.insert(name.into(), handler.into());
    }

    pub fn remove_config_map(&self, namespace: &str, name: &str) {
        let k = (namespace.to_owned(), name.to_owned());
        self.inner.lock().unwrap().config_maps.remove(&k);
    }

    pub fn remove_secret(&self, namespace: &str, name: &str) {
        let k = (namespace.to_owned(), name.to_owned());
        self.inner.lock().unwrap().secrets.remove(&k);
    }

    /// How many service account tokens were handed out.
    pub fn tokens_issued(&self) -> u64 {
        self.inner.lock().unwrap().tokens_issued
    }
}

#[async_trait]
impl ObjectSource for FakeObjects {
    async fn config_map(&self, namespace: &str, name: &str) -> Result<ConfigMap, ObjectError> {
        let k = (namespace.to_owned(), name.to_owned());
        let found = self.inner.lock().unwrap().config_maps.get(&k).cloned();
        found.ok_or_else(|| ObjectError::not_found(Kind::ConfigMap, namespace, name))
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Secret, ObjectError> {
        let k = (namespace.to_owned(), name.to_owned());
        let found = self.inner.lock().unwrap().secrets.get(&k).cloned();
        found.ok_or_else(|| ObjectError::not_found(Kind::Secret, namespace, name))
    }

    async fn services(&self, namespace: &str) -> Result<Vec<Service>, ObjectError> {
        let objects = self.inner.lock().unwrap();
        Ok(objects
            .services
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|(_, svc)| svc.clone())
            .collect())
    }

    /// Issues "token-N-NAMESPACE-SA" valid for the requested seconds (default one hour),
    /// counted from the real clock.
    async fn service_account_token(
        &self,
        namespace: &str,
        service_account: &str,
        mut request: TokenRequest,
    ) -> Result<TokenRequest, ObjectError> {
        let mut objects = self.inner.lock().unwrap();
        objects.tokens_issued += 1;
        let seconds = request.spec.expiration_seconds.unwrap_or(3600);
        let expiry = k8s_openapi::jiff::Timestamp::now()
            + k8s_openapi::jiff::SignedDuration::from_secs(seconds);
        request.status = Some(TokenRequestStatus {
            token: format!(
                "token-{}-{namespace}-{service_account}",
                objects.tokens_issued
            ),
            expiration_timestamp: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(expiry),
        });
        Ok(request)
    }

    async fn runtime_handler(&self, runtime_class: &str) -> Result<String, ObjectError> {
        let found = self
            .inner
            .lock()
            .unwrap()
            .runtime_classes
            .get(runtime_class)
            .cloned();
        found.ok_or_else(|| ObjectError::not_found(Kind::RuntimeClass, "", runtime_class))
    }
}
