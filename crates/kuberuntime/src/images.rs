//! Ensures a container's image is present per its pull policy, with pull back-off
//! (upstream pkg/kubelet/images).

use crate::backoff::Backoff;
use crate::credentials::{self, Credential};
use crate::events::{EventRecorder, EventType, reason};
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kubelet_cri::Runtime;
use kubelet_cri::api::{AuthConfig, ImageSpec, PodSandboxConfig};
use std::sync::{Arc, Mutex};
use thiserror::Error;
use tokio::time::Instant;

/// Waiting reasons for a container whose image is not there (upstream images/types.go).
pub const ERR_IMAGE_PULL: &str = "ErrImagePull";
pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
pub const ERR_IMAGE_NEVER_PULL: &str = "ErrImageNeverPull";
pub const ERR_IMAGE_INSPECT: &str = "ImageInspectError";
pub const INVALID_IMAGE_NAME: &str = "InvalidImageName";

/// Why an image is not ready, with the upstream waiting reason.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{message}")]
pub struct ImageError {
    pub reason: &'static str,
    pub message: String,
}

pub struct ImageManager {
    runtime: Arc<dyn Runtime>,
    backoff: Mutex<Backoff>,
    /// Held during a pull when pulls are serialized (serializeImagePulls).
    serial: Option<tokio::sync::Mutex<()>>,
    events: Arc<dyn EventRecorder>,
}

/// The image name with ":latest" added when it has neither tag nor digest, as upstream does.
/// Names the reference grammar refuses (empty, blanks, upper case in the repository path) are
/// InvalidImageName.
pub fn with_default_tag(image: &str) -> Result<String, ImageError> {
    let invalid = || ImageError {
        reason: INVALID_IMAGE_NAME,
        message: format!(
            "Failed to apply default image tag \"{image}\": couldn't parse image name"
        ),
    };
    let name = image.split('@').next().unwrap_or_default();
    let (domain, path) = match name.split_once('/') {
        Some((d, p)) if d.contains(['.', ':']) || d == "localhost" => (d, p),
        _ => ("", name),
    };
    let repo = path.rsplit_once(':').map_or(path, |(r, _)| r);
    if image.is_empty()
        || image.chars().any(char::is_whitespace)
        || repo.is_empty()
        || repo.chars().any(|c| c.is_ascii_uppercase())
        || domain.ends_with('/')
    {
        return Err(invalid());
    }
    if image.contains('@') || path.contains(':') {
        Ok(image.to_string())
    } else {
        Ok(format!("{image}:latest"))
    }
}

impl ImageManager {
    pub fn new(
        runtime: Arc<dyn Runtime>,
        serialize_pulls: bool,
        events: Arc<dyn EventRecorder>,
    ) -> Self {
        Self {
            runtime,
            backoff: Mutex::new(Backoff::container()),
            serial: serialize_pulls.then(|| tokio::sync::Mutex::new(())),
            events,
        }
    }

    /// Returns the image reference to create the container from. A pull uses the credentials
    /// of `pull_secrets` that match the image's registry.
    pub async fn ensure_image(
        &self,
        pod: &Pod,
        container: &Container,
        sandbox_config: &PodSandboxConfig,
        pull_secrets: &[Secret],
    ) -> Result<String, ImageError> {
        let image = with_default_tag(container.image.as_deref().unwrap_or_default())?;
        let spec = ImageSpec {
            image: image.clone(),
            ..Default::default()
        };
        let present = self
            .runtime
            .image_status(&spec)
            .await
            .map_err(|e| ImageError {
                reason: ERR_IMAGE_INSPECT,
                message: format!("Failed to inspect image \"{image}\": {e}"),
            })?;
        let policy = container
            .image_pull_policy
            .as_deref()
            .unwrap_or("IfNotPresent");
        let pull = match (policy, &present) {
            ("Always", _) => true,
            ("Never", None) => {
                let message =
                    format!("Container image \"{image}\" is not present with pull policy of Never");
                self.events.event(
                    pod,
                    EventType::Warning,
                    reason::ERR_IMAGE_NEVER_PULL,
                    &message,
                );
                return Err(ImageError {
                    reason: ERR_IMAGE_NEVER_PULL,
                    message,
                });
            }
            (_, None) => true,
            (_, Some(_)) => false,
        };
        if !pull {
            let id = present.map(|i| i.id).unwrap_or_default();
            self.events.event(
                pod,
                EventType::Normal,
                reason::PULLED,
                &format!("Container image \"{image}\" already present on machine"),
            );
            return Ok(id);
        }

        let key = format!(
            "{}_{image}",
            pod.metadata.uid.as_deref().unwrap_or_default()
        );
        let waiting = self
            .backoff
            .lock()
            .unwrap()
            .remaining_since_update(&key, Instant::now());
        if waiting.is_some() {
            let message = format!("Back-off pulling image \"{image}\"");
            self.events
                .event(pod, EventType::Normal, reason::BACK_OFF, &message);
            return Err(ImageError {
                reason: IMAGE_PULL_BACK_OFF,
                message,
            });
        }

        self.events.event(
            pod,
            EventType::Normal,
            reason::PULLING,
            &format!("Pulling image \"{image}\""),
        );
        let started = Instant::now();
        let result = {
            let _turn = match &self.serial {
                Some(m) => Some(m.lock().await),
                None => None,
            };
            self.pull(&spec, pull_secrets, sandbox_config).await
        };
        match result {
            Ok(image_ref) => {
                self.backoff.lock().unwrap().forget(&key);
                self.events.event(
                    pod,
                    EventType::Normal,
                    reason::PULLED,
                    &format!(
                        "Successfully pulled image \"{image}\" in {:?}",
                        started.elapsed()
                    ),
                );
                Ok(image_ref)
            }
            Err(e) => {
                self.backoff.lock().unwrap().next(&key, Instant::now());
                let message = format!("Failed to pull image \"{image}\": {e}");
                self.events
                    .event(pod, EventType::Warning, reason::FAILED, &message);
                Err(ImageError {
                    reason: ERR_IMAGE_PULL,
                    message,
                })
            }
        }
    }

    /// Pulls with each matching credential in turn until one works, or anonymously when none
    /// matches (upstream PullImage); the error joins every attempt's, as Go's aggregate does.
    async fn pull(
        &self,
        spec: &ImageSpec,
        pull_secrets: &[Secret],
        sandbox_config: &PodSandboxConfig,
    ) -> Result<String, String> {
        let keyring = credentials::keyring_from_secrets(pull_secrets).map_err(|e| e.to_string())?;
        let creds = keyring.lookup(&credentials::repository(&spec.image));
        if creds.is_empty() {
            tracing::debug!(image = %spec.image, "pulling image without credentials");
            return self
                .runtime
                .pull_image(spec, None, Some(sandbox_config.clone()))
                .await
                .map_err(|e| e.to_string());
        }
        let mut errors = Vec::new();
        for cred in creds {
            match self
                .runtime
                .pull_image(spec, Some(auth_config(cred)), Some(sandbox_config.clone()))
                .await
            {
                Ok(image_ref) => return Ok(image_ref),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(match errors.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        })
    }

    /// Forgets the back-off entries of a pod that is gone.
    pub fn gc(&self) {
        self.backoff.lock().unwrap().gc(Instant::now());
    }
}

fn auth_config(cred: Credential) -> AuthConfig {
    AuthConfig {
        username: cred.username,
        password: cred.password,
        identity_token: cred.identity_token,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::LogRecorder;
    use kubelet_cri::fake::FakeRuntime;
    use std::time::Duration;

    fn pod_with(image: &str, policy: &str) -> (Pod, Container) {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"containers": [{"name": "c", "image": image, "imagePullPolicy": policy}]}
        }))
        .unwrap();
        let c = pod.spec.as_ref().unwrap().containers[0].clone();
        (pod, c)
    }

    fn manager(fake: &FakeRuntime) -> ImageManager {
        ImageManager::new(Arc::new(fake.clone()), true, Arc::new(LogRecorder))
    }

    #[tokio::test(start_paused = true)]
    async fn pull_policies() {
        let fake = FakeRuntime::new();
        fake.add_image("localhost/busybox:1.35");
        let images = manager(&fake);
        let sb = PodSandboxConfig::default();

        let (pod, c) = pod_with("localhost/busybox:1.35", "IfNotPresent");
        assert!(images.ensure_image(&pod, &c, &sb, &[]).await.is_ok());
        let (pod, c) = pod_with("localhost/busybox:1.35", "Never");
        assert!(images.ensure_image(&pod, &c, &sb, &[]).await.is_ok());
        assert!(
            !fake.calls().iter().any(|c| c.starts_with("PullImage")),
            "present images are not pulled"
        );

        let (pod, c) = pod_with("localhost/missing:1", "Never");
        let e = images.ensure_image(&pod, &c, &sb, &[]).await.unwrap_err();
        assert_eq!(e.reason, ERR_IMAGE_NEVER_PULL);
        assert!(e.message.contains("localhost/missing:1"), "{}", e.message);

        fake.set_pull_result("localhost/busybox:1.35", Ok(()));
        let (pod, c) = pod_with("localhost/busybox:1.35", "Always");
        images.ensure_image(&pod, &c, &sb, &[]).await.unwrap();
        assert!(
            fake.calls()
                .iter()
                .any(|c| c == "PullImage localhost/busybox:1.35"),
            "{:?}",
            fake.calls()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pull_failures_back_off() {
        let fake = FakeRuntime::new();
        fake.set_pull_result("registry.test/app:1", Err("connection refused".into()));
        let images = manager(&fake);
        let sb = PodSandboxConfig::default();
        let (pod, c) = pod_with("registry.test/app:1", "IfNotPresent");
        let failure = async || {
            images
                .ensure_image(&pod, &c, &sb, &[])
                .await
                .unwrap_err()
                .reason
        };
        let pulls = || {
            fake.calls()
                .iter()
                .filter(|c| c.starts_with("PullImage"))
                .count()
        };

        let e = images.ensure_image(&pod, &c, &sb, &[]).await.unwrap_err();
        assert_eq!(e.reason, ERR_IMAGE_PULL);
        assert!(
            e.message.contains("registry.test/app:1") && e.message.contains("connection refused"),
            "{}",
            e.message
        );
        assert_eq!(pulls(), 1);

        // Within the 10 s back-off: no pull, ImagePullBackOff.
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(failure().await, IMAGE_PULL_BACK_OFF);
        assert_eq!(pulls(), 1);

        // After it: pulls again, fails again, and now waits 20 s.
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(failure().await, ERR_IMAGE_PULL);
        assert_eq!(pulls(), 2);
        tokio::time::advance(Duration::from_secs(15)).await;
        assert_eq!(failure().await, IMAGE_PULL_BACK_OFF);
        tokio::time::advance(Duration::from_secs(6)).await;
        fake.set_pull_result("registry.test/app:1", Ok(()));
        assert!(images.ensure_image(&pod, &c, &sb, &[]).await.is_ok());
        assert_eq!(pulls(), 3);
    }

    fn pull_secret(registry: &str, user: &str) -> Secret {
        let config = serde_json::json!({"auths": {registry: {"username": user, "password": format!("{user}-pw")}}});
        Secret {
            type_: Some(credentials::SECRET_TYPE_DOCKER_CONFIG_JSON.into()),
            data: Some(std::collections::BTreeMap::from([(
                credentials::DOCKER_CONFIG_JSON_KEY.to_string(),
                k8s_openapi::ByteString(config.to_string().into_bytes()),
            )])),
            ..Default::default()
        }
    }

    /// The user of each PullImage so far, `None` for an anonymous pull.
    fn pull_users(fake: &FakeRuntime) -> Vec<Option<String>> {
        fake.pull_auths()
            .into_iter()
            .map(|(_, auth)| auth.map(|a| a.username))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn pull_secret_credentials_reach_pull_image() {
        let fake = FakeRuntime::new();
        let images = manager(&fake);
        let sb = PodSandboxConfig::default();
        let secrets = [
            pull_secret("registry.test:5000", "alice"),
            pull_secret("https://index.docker.io/v1/", "hub"),
        ];
        for image in ["registry.test:5000/app:1", "busybox", "other.test/app:1"] {
            fake.set_pull_result(image, Ok(()));
        }

        let (pod, c) = pod_with("registry.test:5000/app:1", "Always");
        images.ensure_image(&pod, &c, &sb, &secrets).await.unwrap();
        let (image, auth) = fake.pull_auths().pop().unwrap();
        assert_eq!(image, "registry.test:5000/app:1");
        let auth = auth.expect("credentials sent");
        assert_eq!(
            (auth.username.as_str(), auth.password.as_str()),
            ("alice", "alice-pw")
        );

        // Docker Hub images take the index.docker.io credentials.
        let (pod, c) = pod_with("busybox", "Always");
        images.ensure_image(&pod, &c, &sb, &secrets).await.unwrap();
        // No credential for the registry: an anonymous pull.
        let (pod, c) = pod_with("other.test/app:1", "Always");
        images.ensure_image(&pod, &c, &sb, &secrets).await.unwrap();
        assert_eq!(
            pull_users(&fake),
            [Some("alice".to_string()), Some("hub".into()), None]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn matching_credentials_are_tried_in_turn() {
        let fake = FakeRuntime::new();
        let images = manager(&fake);
        let sb = PodSandboxConfig::default();
        let secrets = [
            pull_secret("registry.test", "stale"),
            pull_secret("registry.test/team", "team"),
            pull_secret("registry.test", "fresh"),
        ];
        fake.set_pull_result("registry.test/team/app:1", Ok(()));
        let (pod, c) = pod_with("registry.test/team/app:1", "Always");

        // The first (most specific) credential is refused, the next one works.
        fake.inject_error("PullImage", "unauthorized");
        images.ensure_image(&pod, &c, &sb, &secrets).await.unwrap();
        assert_eq!(
            pull_users(&fake),
            [Some("team".to_string()), Some("stale".into())]
        );

        // All refused: ErrImagePull with every attempt's error, and no anonymous try.
        for _ in 0..3 {
            fake.inject_error("PullImage", "unauthorized");
        }
        let (pod, c) = pod_with("registry.test/team/app:1", "Always");
        let mut pod = pod;
        pod.metadata.uid = Some("u2".into());
        let e = images
            .ensure_image(&pod, &c, &sb, &secrets)
            .await
            .unwrap_err();
        assert_eq!(e.reason, ERR_IMAGE_PULL);
        assert!(
            e.message
                .starts_with("Failed to pull image \"registry.test/team/app:1\": [")
                && e.message.matches("unauthorized").count() == 3,
            "{}",
            e.message
        );
        assert_eq!(pull_users(&fake).len(), 5);
        assert!(pull_users(&fake).iter().all(Option::is_some));
    }

    #[tokio::test(start_paused = true)]
    async fn a_broken_pull_secret_fails_the_pull() {
        let fake = FakeRuntime::new();
        let images = manager(&fake);
        let mut broken = pull_secret("registry.test", "x");
        broken.data.as_mut().unwrap().insert(
            credentials::DOCKER_CONFIG_JSON_KEY.into(),
            k8s_openapi::ByteString(b"{not json".to_vec()),
        );
        let (pod, c) = pod_with("registry.test/app:1", "Always");
        let e = images
            .ensure_image(&pod, &c, &PodSandboxConfig::default(), &[broken])
            .await
            .unwrap_err();
        assert_eq!(e.reason, ERR_IMAGE_PULL);
        assert!(e.message.contains("invalid docker config"), "{}", e.message);
        assert!(fake.pull_auths().is_empty());
    }

    #[test]
    fn default_tag() {
        let ok = |i: &str| with_default_tag(i).unwrap();
        assert_eq!(ok("busybox"), "busybox:latest");
        assert_eq!(ok("localhost/busybox:1.35"), "localhost/busybox:1.35");
        assert_eq!(
            ok("127.0.0.1:5000/busybox"),
            "127.0.0.1:5000/busybox:latest"
        );
        assert_eq!(
            ok("127.0.0.1:5000/busybox:1.35"),
            "127.0.0.1:5000/busybox:1.35"
        );
        assert_eq!(ok("busybox@sha256:abc"), "busybox@sha256:abc");
        for bad in ["", "Busybox", "a b", "docker.io/Library/x"] {
            assert_eq!(
                with_default_tag(bad).unwrap_err().reason,
                INVALID_IMAGE_NAME,
                "{bad}"
            );
        }
    }
}
