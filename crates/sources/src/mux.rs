//! The config mux (upstream config/config.go PodConfig and podStorage, incremental mode): every
//! source sends full snapshots of its pods; the mux keeps each source's pods by UID and turns the
//! difference between two snapshots into [`PodUpdate`]s.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::mpsc;

use crate::static_pod::{
    CONFIG_MIRROR_ANNOTATION, CONFIG_SEEN_ANNOTATION, CONFIG_SOURCE_ANNOTATION,
};
use crate::{PodOperation, PodUpdate};

/// The kubelet's own annotations: they say nothing about what the source wants.
const LOCAL_ANNOTATIONS: [&str; 3] = [
    CONFIG_SOURCE_ANNOTATION,
    CONFIG_MIRROR_ANNOTATION,
    CONFIG_SEEN_ANNOTATION,
];

/// Merges the snapshots of all sources into one stream of updates.
#[derive(Clone)]
pub struct Mux {
    shared: Arc<Shared>,
}

/// Sends one source's snapshots into the mux.
#[derive(Clone)]
pub struct SourceSender {
    name: &'static str,
    shared: Arc<Shared>,
}

/// Tells whether every source registered so far has delivered its first snapshot. The kubelet
/// waits for this before it removes pods it does not know of, so a slow source does not get its
/// pods killed at start-up.
///
/// As upstream: a missing manifest path, an unreadable manifest directory and an empty answer
/// from the manifest URL all count as an (empty) snapshot, so the kubelet proceeds; an invalid
/// single manifest file, a URL that fails or answers a bad body, send nothing and keep the source
/// unseen until they are fixed.
#[derive(Clone)]
pub struct SourcesReady {
    shared: Arc<Shared>,
}

struct Shared {
    updates: mpsc::UnboundedSender<PodUpdate>,
    sources: Mutex<HashMap<&'static str, SourceState>>,
}

#[derive(Default)]
struct SourceState {
    seen: bool,
    pods: BTreeMap<String, Pod>,
}

impl Mux {
    pub fn new() -> (Mux, mpsc::UnboundedReceiver<PodUpdate>) {
        let (updates, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            updates,
            sources: Mutex::new(HashMap::new()),
        });
        (Mux { shared }, receiver)
    }

    /// Registers a source (again: same state) and returns its sender. A registered source that
    /// has sent nothing yet keeps [`SourcesReady::all_ready`] false.
    pub fn source(&self, name: &'static str) -> SourceSender {
        self.shared.lock().entry(name).or_default();
        SourceSender {
            name,
            shared: Arc::clone(&self.shared),
        }
    }

    pub fn ready(&self) -> SourcesReady {
        SourcesReady {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl SourcesReady {
    pub fn all_ready(&self) -> bool {
        self.shared.lock().values().all(|state| state.seen)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<&'static str, SourceState>> {
        // A panic elsewhere cannot leave the map half-updated in a way worse than a lost update.
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SourceSender {
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Replaces the source's pods with `pods` and emits what changed: REMOVE, ADD, UPDATE,
    /// DELETE, then RECONCILE, each only when not empty.
    pub fn send_snapshot(&self, pods: Vec<Pod>) {
        let mut sources = self.shared.lock();
        let state = sources.entry(self.name).or_default();
        let diff = merge(state, self.name, pods);
        state.seen = true;
        // Sent under the lock so that updates of one source never overtake each other.
        for (op, pods) in diff {
            if !pods.is_empty() {
                let update = PodUpdate {
                    op,
                    source: self.name,
                    pods,
                };
                if self.shared.updates.send(update).is_err() {
                    tracing::debug!(source = self.name, "pod updates dropped: nobody listens");
                }
            }
        }
    }
}

fn merge(
    state: &mut SourceState,
    source: &'static str,
    pods: Vec<Pod>,
) -> [(PodOperation, Vec<Pod>); 5] {
    let mut adds = Vec::new();
    let mut updates = Vec::new();
    let mut deletes = Vec::new();
    let mut reconciles = Vec::new();
    let mut previous = std::mem::take(&mut state.pods);
    let mut names = HashSet::new();
    for mut pod in pods {
        let full_name = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or(""),
            pod.metadata.name.as_deref().unwrap_or("")
        );
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if uid.is_empty() {
            tracing::error!(source, pod = %full_name, "pod has no UID, ignoring");
            continue;
        }
        if state.pods.contains_key(&uid) || !names.insert(full_name.clone()) {
            tracing::warn!(source, pod = %full_name, %uid, "duplicate pod name or UID in one source, ignoring");
            continue;
        }
        pod.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(CONFIG_SOURCE_ANNOTATION.to_owned(), source.to_owned());
        let stored = match previous.remove(&uid) {
            None => {
                set_annotation(
                    &mut pod,
                    CONFIG_SEEN_ANNOTATION,
                    jiff::Timestamp::now().to_string(),
                );
                adds.push(pod.clone());
                pod
            }
            Some(mut existing) if !differ_semantically(&existing, &pod) => {
                if existing.status != pod.status {
                    existing.status = pod.status;
                    reconciles.push(existing.clone());
                }
                existing
            }
            Some(existing) => {
                let seen = annotation(&existing, CONFIG_SEEN_ANNOTATION).map(str::to_owned);
                if let Some(seen) = seen {
                    set_annotation(&mut pod, CONFIG_SEEN_ANNOTATION, seen);
                }
                if pod.metadata.deletion_timestamp.is_some() {
                    deletes.push(pod.clone());
                } else {
                    updates.push(pod.clone());
                }
                pod
            }
        };
        state.pods.insert(uid, stored);
    }
    let removes = previous.into_values().collect();
    [
        (PodOperation::Remove, removes),
        (PodOperation::Add, adds),
        (PodOperation::Update, updates),
        (PodOperation::Delete, deletes),
        (PodOperation::Reconcile, reconciles),
    ]
}

/// Whether the source changed what it wants of the pod: spec, labels, deletion, or annotations
/// other than the kubelet's own.
fn differ_semantically(existing: &Pod, new: &Pod) -> bool {
    let (a, b) = (&existing.metadata, &new.metadata);
    existing.spec != new.spec
        || a.labels != b.labels
        || a.deletion_timestamp != b.deletion_timestamp
        || a.deletion_grace_period_seconds != b.deletion_grace_period_seconds
        || source_annotations(existing) != source_annotations(new)
}

fn source_annotations(pod: &Pod) -> BTreeMap<&str, &str> {
    pod.metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(key, _)| !LOCAL_ANNOTATIONS.contains(&key.as_str()))
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect()
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn set_annotation(pod: &mut Pod, key: &str, value: String) {
    pod.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(key.to_owned(), value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{API_SOURCE, FILE_SOURCE};
    use serde_json::json;

    fn pod(name: &str, uid: &str, image: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": uid},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }))
        .unwrap()
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<PodUpdate>) -> Vec<(PodOperation, Vec<String>)> {
        let mut out = Vec::new();
        while let Ok(update) = rx.try_recv() {
            let uids = update
                .pods
                .iter()
                .map(|p| p.metadata.uid.clone().unwrap())
                .collect();
            out.push((update.op, uids));
        }
        out
    }

    fn uids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn add_update_remove_and_no_op() {
        let (mux, mut rx) = Mux::new();
        let file = mux.source(FILE_SOURCE);
        file.send_snapshot(vec![pod("a", "1", "x"), pod("b", "2", "x")]);
        assert_eq!(drain(&mut rx), [(PodOperation::Add, uids(&["1", "2"]))]);

        file.send_snapshot(vec![pod("a", "1", "x"), pod("b", "2", "x")]);
        assert_eq!(drain(&mut rx), []);

        file.send_snapshot(vec![pod("a", "1", "y"), pod("c", "3", "x")]);
        assert_eq!(
            drain(&mut rx),
            [
                (PodOperation::Remove, uids(&["2"])),
                (PodOperation::Add, uids(&["3"])),
                (PodOperation::Update, uids(&["1"])),
            ]
        );

        file.send_snapshot(Vec::new());
        assert_eq!(drain(&mut rx), [(PodOperation::Remove, uids(&["1", "3"]))]);
    }

    #[test]
    fn updates_carry_source_and_first_seen_annotations() {
        let (mux, mut rx) = Mux::new();
        let file = mux.source(FILE_SOURCE);
        file.send_snapshot(vec![pod("a", "1", "x")]);
        let added = rx.try_recv().unwrap();
        assert_eq!(added.source, FILE_SOURCE);
        let seen = annotation(&added.pods[0], CONFIG_SEEN_ANNOTATION)
            .unwrap()
            .to_owned();
        assert!(seen.parse::<jiff::Timestamp>().is_ok(), "{seen}");
        assert_eq!(
            annotation(&added.pods[0], CONFIG_SOURCE_ANNOTATION),
            Some("file")
        );

        file.send_snapshot(vec![pod("a", "1", "y")]);
        let updated = rx.try_recv().unwrap();
        assert_eq!(updated.op, PodOperation::Update);
        assert_eq!(
            annotation(&updated.pods[0], CONFIG_SEEN_ANNOTATION),
            Some(seen.as_str())
        );
    }

    #[test]
    fn kubelet_annotations_are_not_changes_but_others_are() {
        let (mux, mut rx) = Mux::new();
        let file = mux.source(FILE_SOURCE);
        file.send_snapshot(vec![pod("a", "1", "x")]);
        drain(&mut rx);
        let mut same = pod("a", "1", "x");
        set_annotation(
            &mut same,
            CONFIG_SEEN_ANNOTATION,
            "2001-01-01T00:00:00Z".to_owned(),
        );
        set_annotation(&mut same, CONFIG_MIRROR_ANNOTATION, "abc".to_owned());
        file.send_snapshot(vec![same]);
        assert_eq!(drain(&mut rx), []);

        let mut annotated = pod("a", "1", "x");
        set_annotation(&mut annotated, "team", "web".to_owned());
        file.send_snapshot(vec![annotated]);
        assert_eq!(drain(&mut rx), [(PodOperation::Update, uids(&["1"]))]);

        let mut labelled = pod("a", "1", "x");
        labelled.metadata.labels = Some([("app".to_owned(), "web".to_owned())].into());
        file.send_snapshot(vec![labelled]);
        assert_eq!(drain(&mut rx), [(PodOperation::Update, uids(&["1"]))]);
    }

    #[test]
    fn deletion_timestamp_gives_delete_and_status_gives_reconcile() {
        let (mux, mut rx) = Mux::new();
        let api = mux.source(API_SOURCE);
        api.send_snapshot(vec![pod("a", "1", "x"), pod("b", "2", "x")]);
        drain(&mut rx);
        let mut deleting = pod("a", "1", "x");
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        deleting.metadata.deletion_grace_period_seconds = Some(30);
        let mut with_status = pod("b", "2", "x");
        with_status.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Running".to_owned()),
            ..Default::default()
        });
        api.send_snapshot(vec![deleting.clone(), with_status.clone()]);
        assert_eq!(
            drain(&mut rx),
            [
                (PodOperation::Delete, uids(&["1"])),
                (PodOperation::Reconcile, uids(&["2"])),
            ]
        );
        api.send_snapshot(vec![deleting, with_status]);
        assert_eq!(drain(&mut rx), []);
    }

    #[test]
    fn duplicate_names_in_one_snapshot_keep_the_first() {
        let (mux, mut rx) = Mux::new();
        let http = mux.source(crate::HTTP_SOURCE);
        http.send_snapshot(vec![
            pod("a", "1", "x"),
            pod("a", "2", "x"),
            pod("b", "1", "y"),
        ]);
        assert_eq!(drain(&mut rx), [(PodOperation::Add, uids(&["1"]))]);
    }

    #[test]
    fn sources_are_independent_and_ready_after_first_snapshot() {
        let (mux, mut rx) = Mux::new();
        let ready = mux.ready();
        assert!(ready.all_ready(), "no source registered");
        let file = mux.source(FILE_SOURCE);
        let http = mux.source(crate::HTTP_SOURCE);
        assert!(!ready.all_ready());
        file.send_snapshot(Vec::new());
        assert!(!ready.all_ready());
        assert_eq!(drain(&mut rx), []);
        http.send_snapshot(vec![pod("a", "1", "x")]);
        assert!(ready.all_ready());
        file.send_snapshot(vec![pod("a", "1", "x")]);
        let updates: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|u| (u.op, u.source))
            .collect();
        assert_eq!(
            updates,
            [
                (PodOperation::Add, crate::HTTP_SOURCE),
                (PodOperation::Add, FILE_SOURCE)
            ]
        );
        // Registering a source later makes readiness wait for it too.
        let _api = mux.source(API_SOURCE);
        assert!(!ready.all_ready());
    }
}
