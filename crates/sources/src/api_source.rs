//! The API server pod source (upstream config/apiserver.go): lists and watches the pods bound to
//! this node (fieldSelector spec.nodeName=NODE) in all namespaces.
//!
//! kube-runtime's watcher does the list and watch protocol: it resumes the watch from the last
//! resourceVersion (bookmarks included), and relists when the version expired (410 Gone). Every
//! complete list goes to the mux as one snapshot, so a relist that finds the same pods changes
//! nothing; watch events go as single-pod changes. Errors never empty the source: its pods keep
//! running on the last known state while the watcher retries with back-off.

use std::fmt;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use crate::mux::SourceSender;

/// How to reach the API server for the pod source.
#[derive(Clone)]
pub struct ApiSourceConfig {
    pub client: kube::Client,
    /// The API server's URL, named in the log when it cannot be reached.
    pub server: String,
}

impl fmt::Debug for ApiSourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiSourceConfig")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// Lists and watches this node's pods forever, feeding `sender`.
pub async fn run(config: ApiSourceConfig, node_name: String, sender: SourceSender) {
    let ApiSourceConfig { client, server } = config;
    let pods: Api<Pod> = Api::all(client);
    let selector = format!("spec.nodeName={node_name}");
    let watch = watcher::watcher(pods, watcher::Config::default().fields(&selector));
    let mut events = std::pin::pin!(watch.default_backoff());
    // The pods of a list in progress: sent whole when the list is complete.
    let mut listing: Vec<Pod> = Vec::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listing.clear(),
            Ok(Event::InitApply(pod)) => listing.push(pod),
            Ok(Event::InitDone) => {
                let pods = std::mem::take(&mut listing);
                tracing::info!(%server, node = %node_name, pods = pods.len(), "listed the pods bound to this node");
                sender.send_snapshot(pods);
            }
            Ok(Event::Apply(pod)) => sender.send_apply(pod),
            Ok(Event::Delete(pod)) => match pod.metadata.uid.as_deref() {
                Some(uid) => sender.send_remove(uid),
                None => {
                    tracing::error!(%server, pod = ?pod.metadata.name, "deleted pod has no UID, ignoring")
                }
            },
            Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                tracing::info!(%server, reason = %status.message, "pod watch expired, listing the pods again");
            }
            Err(e) => {
                tracing::error!(%server, error = %e, "cannot list or watch pods on the API server, retrying with back-off; running pods keep their last known state");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kubelet_test_apiserver::{DeleteOptions, Store, TestApiServer, UpdateScope, resources};
    use serde_json::{Value, json};
    use tokio::sync::mpsc;

    use super::*;
    use crate::mux::Mux;
    use crate::static_pod::{
        CONFIG_HASH_ANNOTATION, CONFIG_SEEN_ANNOTATION, CONFIG_SOURCE_ANNOTATION,
    };
    use crate::{API_SOURCE, PodOperation, PodUpdate, SourcesReady};

    const NODE: &str = "node-a";

    fn pods() -> &'static resources::Resource {
        resources::find("", "v1", "pods").expect("pods are served")
    }

    fn create(store: &Store, name: &str, node: &str) -> Value {
        store
            .create(
                pods(),
                "default",
                json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "labels": {"app": name}},
                    "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox:1"}]}
                }),
            )
            .expect("the pod is created")
    }

    fn patch(store: &Store, name: &str, scope: UpdateScope, change: impl FnOnce(&mut Value)) {
        store
            .patch(pods(), "default", name, scope, |current| {
                let mut next = current.clone();
                change(&mut next);
                Ok(next)
            })
            .expect("the pod is patched");
    }

    struct Harness {
        server: TestApiServer,
        updates: mpsc::UnboundedReceiver<PodUpdate>,
        ready: SourcesReady,
        task: tokio::task::JoinHandle<()>,
    }

    impl Harness {
        fn start(server: TestApiServer) -> Harness {
            let client = kube::Client::try_from(kube::Config::new(
                server.url().parse().expect("a valid URL"),
            ))
            .expect("a client for the test API server");
            let (mux, updates) = Mux::new();
            let config = ApiSourceConfig {
                client,
                server: server.url(),
            };
            let task = tokio::spawn(run(config, NODE.to_owned(), mux.source(API_SOURCE)));
            Harness {
                server,
                updates,
                ready: mux.ready(),
                task,
            }
        }

        /// Listens again; the stopped listener frees its port asynchronously, so retry a while.
        async fn restart_listener(&self) {
            for _ in 0..100 {
                match self.server.restart_listener() {
                    Ok(()) => return,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            self.server
                .restart_listener()
                .expect("the listener restarts");
        }

        fn store(&self) -> &Store {
            self.server.store()
        }

        async fn next(&mut self) -> PodUpdate {
            tokio::time::timeout(Duration::from_secs(10), self.updates.recv())
                .await
                .expect("an update within 10 s")
                .expect("the mux is alive")
        }

        async fn wait_ready(&self) {
            tokio::time::timeout(Duration::from_secs(10), async {
                while !self.ready.all_ready() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
            .expect("the first list within 10 s");
        }

        /// Asserts that nothing arrives for `wait`.
        async fn quiet(&mut self, wait: Duration) {
            if let Ok(update) = tokio::time::timeout(wait, self.updates.recv()).await {
                panic!(
                    "unexpected update: {:?}",
                    update.map(|u| (u.op, names(&u.pods)))
                );
            }
        }
    }

    impl Drop for Harness {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    fn names(pods: &[Pod]) -> Vec<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    fn op_and_names(update: &PodUpdate) -> (PodOperation, Vec<String>) {
        (update.op, names(&update.pods))
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn bound_pods_arrive_and_follow_the_api_server() {
        let server = TestApiServer::start();
        create(server.store(), "web", NODE);
        create(server.store(), "elsewhere", "node-b");
        let mut h = Harness::start(server);

        let added = h.next().await;
        assert_eq!(op_and_names(&added), (PodOperation::Add, strings(&["web"])));
        assert!(h.ready.all_ready());
        let annotations = added.pods[0].metadata.annotations.clone().unwrap();
        assert_eq!(annotations[CONFIG_SOURCE_ANNOTATION], API_SOURCE);
        assert!(annotations.contains_key(CONFIG_SEEN_ANNOTATION));
        // Pods from the API are neither defaulted nor hashed as static pods are.
        assert!(!annotations.contains_key(CONFIG_HASH_ANNOTATION));
        assert_eq!(added.pods[0].metadata.name.as_deref(), Some("web"));

        create(h.store(), "late", NODE);
        create(h.store(), "late-elsewhere", "node-b");
        assert_eq!(
            op_and_names(&h.next().await),
            (PodOperation::Add, strings(&["late"]))
        );

        patch(h.store(), "web", UpdateScope::Main, |pod| {
            pod["metadata"]["labels"]["tier"] = json!("front");
        });
        let updated = h.next().await;
        assert_eq!(
            op_and_names(&updated),
            (PodOperation::Update, strings(&["web"]))
        );
        let seen =
            |pod: &Pod| pod.metadata.annotations.as_ref().unwrap()[CONFIG_SEEN_ANNOTATION].clone();
        assert_eq!(seen(&updated.pods[0]), annotations[CONFIG_SEEN_ANNOTATION]);

        patch(h.store(), "web", UpdateScope::Status, |pod| {
            pod["status"]["phase"] = json!("Running");
        });
        let reconciled = h.next().await;
        assert_eq!(
            op_and_names(&reconciled),
            (PodOperation::Reconcile, strings(&["web"]))
        );

        h.store()
            .delete(
                pods(),
                "default",
                "web",
                &DeleteOptions {
                    grace_period_seconds: Some(30),
                    ..Default::default()
                },
            )
            .unwrap();
        let deleting = h.next().await;
        assert_eq!(
            op_and_names(&deleting),
            (PodOperation::Delete, strings(&["web"]))
        );
        assert!(deleting.pods[0].metadata.deletion_timestamp.is_some());
        assert_eq!(
            deleting.pods[0].metadata.deletion_grace_period_seconds,
            Some(30)
        );

        h.store()
            .delete(
                pods(),
                "default",
                "web",
                &DeleteOptions {
                    grace_period_seconds: Some(0),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(
            op_and_names(&h.next().await),
            (PodOperation::Remove, strings(&["web"]))
        );
        h.quiet(Duration::from_millis(300)).await;
    }

    #[tokio::test]
    async fn a_relist_after_410_gone_repeats_nothing() {
        let server = TestApiServer::start();
        create(server.store(), "web", NODE);
        create(server.store(), "db", NODE);
        let mut h = Harness::start(server);
        assert_eq!(h.next().await.op, PodOperation::Add);

        // Drop the watch, write while it is down, and forget the history: the watch resumed
        // from its last version gets 410 Gone, and only a relist can bring the new pod.
        h.server.stop_listener();
        create(h.store(), "new", NODE);
        create(h.store(), "other", "node-b");
        h.server.compact();
        h.restart_listener().await;

        assert_eq!(
            op_and_names(&h.next().await),
            (PodOperation::Add, strings(&["new"]))
        );
        h.quiet(Duration::from_secs(2)).await;
    }

    #[tokio::test]
    async fn an_outage_keeps_the_pods_and_catches_up_afterwards() {
        let server = TestApiServer::start();
        create(server.store(), "web", NODE);
        create(server.store(), "db", NODE);
        let mut h = Harness::start(server);
        assert_eq!(h.next().await.op, PodOperation::Add);

        h.server.stop_listener();
        // Long enough for failed reconnects and their back-off.
        tokio::time::sleep(Duration::from_secs(2)).await;
        patch(h.store(), "web", UpdateScope::Main, |pod| {
            pod["metadata"]["labels"]["tier"] = json!("front");
        });
        h.quiet(Duration::from_millis(500)).await;
        h.restart_listener().await;

        assert_eq!(
            op_and_names(&h.next().await),
            (PodOperation::Update, strings(&["web"]))
        );
        create(h.store(), "after", NODE);
        assert_eq!(
            op_and_names(&h.next().await),
            (PodOperation::Add, strings(&["after"]))
        );
        h.quiet(Duration::from_millis(500)).await;
    }

    #[tokio::test]
    async fn ready_only_after_the_first_list() {
        let server = TestApiServer::start();
        server.stop_listener();
        let mut h = Harness::start(server);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!h.ready.all_ready(), "nothing listed yet");
        h.restart_listener().await;
        h.wait_ready().await;
        // An empty node: ready without any update.
        h.quiet(Duration::from_millis(300)).await;
        create(h.store(), "web", NODE);
        assert_eq!(
            op_and_names(&h.next().await),
            (PodOperation::Add, strings(&["web"]))
        );
    }
}
