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

    /// Replaces the source's pods with `pods` (upstream's SET) and emits what changed: REMOVE,
    /// ADD, UPDATE, DELETE, then RECONCILE, each only when not empty. Marks the source seen.
    pub fn send_snapshot(&self, pods: Vec<Pod>) {
        let mut sources = self.shared.lock();
        let state = sources.entry(self.name).or_default();
        let mut diff = Diff::default();
        let mut previous = std::mem::take(&mut state.pods);
        let mut names = HashSet::new();
        for pod in pods {
            let Some(uid) = accepted_uid(&pod, self.name) else {
                continue;
            };
            if state.pods.contains_key(&uid) || !names.insert(full_name(&pod)) {
                tracing::warn!(source = self.name, pod = %full_name(&pod), %uid, "duplicate pod name or UID in one source, ignoring");
                continue;
            }
            let stored = diff.merge(self.name, previous.remove(&uid), pod);
            state.pods.insert(uid, stored);
        }
        diff.removes = previous.into_values().collect();
        state.seen = true;
        self.emit(diff);
    }

    /// Adds or changes one pod of the source, leaving the others as they are (upstream's ADD
    /// and UPDATE ops): a watch event, where a full snapshot per event would cost O(pods).
    /// Does not mark the source seen: only a complete snapshot does.
    pub fn send_apply(&self, pod: Pod) {
        let mut sources = self.shared.lock();
        let state = sources.entry(self.name).or_default();
        let Some(uid) = accepted_uid(&pod, self.name) else {
            return;
        };
        let (namespace, name) = (&pod.metadata.namespace, &pod.metadata.name);
        let taken = state.pods.iter().any(|(other, existing)| {
            *other != uid
                && existing.metadata.name == *name
                && existing.metadata.namespace == *namespace
        });
        if taken {
            tracing::warn!(source = self.name, pod = %full_name(&pod), %uid, "another pod of this source has the same name, ignoring");
            return;
        }
        let mut diff = Diff::default();
        let previous = state.pods.remove(&uid);
        let stored = diff.merge(self.name, previous, pod);
        state.pods.insert(uid, stored);
        self.emit(diff);
    }

    /// Forgets one pod of the source (upstream's REMOVE op); an unknown UID is a no-op.
    pub fn send_remove(&self, uid: &str) {
        let mut sources = self.shared.lock();
        let state = sources.entry(self.name).or_default();
        let mut diff = Diff::default();
        diff.removes.extend(state.pods.remove(uid));
        self.emit(diff);
    }

    /// Sends the non-empty parts of `diff`. Called under the lock so that updates of one source
    /// never overtake each other.
    fn emit(&self, diff: Diff) {
        for (op, pods) in diff.into_updates() {
            if pods.is_empty() {
                continue;
            }
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

fn full_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// The pod's UID, or `None` (logged) for a pod without one.
fn accepted_uid(pod: &Pod, source: &'static str) -> Option<String> {
    match pod.metadata.uid.as_deref() {
        Some(uid) if !uid.is_empty() => Some(uid.to_owned()),
        _ => {
            tracing::error!(source, pod = %full_name(pod), "pod has no UID, ignoring");
            None
        }
    }
}

/// The updates one change of a source makes (upstream podStorage.merge).
#[derive(Default)]
struct Diff {
    removes: Vec<Pod>,
    adds: Vec<Pod>,
    updates: Vec<Pod>,
    deletes: Vec<Pod>,
    reconciles: Vec<Pod>,
}

impl Diff {
    /// Merges `pod` into what the source had for its UID (upstream checkAndUpdatePod) and
    /// returns what to store.
    fn merge(&mut self, source: &'static str, previous: Option<Pod>, mut pod: Pod) -> Pod {
        // Annotated before any comparison, as upstream does.
        set_annotation(&mut pod, CONFIG_SOURCE_ANNOTATION, source.to_owned());
        match previous {
            None => {
                set_annotation(
                    &mut pod,
                    CONFIG_SEEN_ANNOTATION,
                    jiff::Timestamp::now().to_string(),
                );
                self.adds.push(pod.clone());
                pod
            }
            Some(mut existing) if !differ_semantically(&existing, &pod) => {
                // Status alone changed: the kubelet owns status, so only reconcile.
                if existing.status != pod.status {
                    existing.status = pod.status;
                    self.reconciles.push(existing.clone());
                }
                existing
            }
            Some(existing) => {
                // The kubelet's own annotations stay as they were (first-seen time, mirror).
                for key in LOCAL_ANNOTATIONS {
                    if let Some(value) = annotation(&existing, key) {
                        set_annotation(&mut pod, key, value.to_owned());
                    }
                }
                // Any meaningful change of a pod being deleted is a (further) graceful delete.
                if pod.metadata.deletion_timestamp.is_some() {
                    self.deletes.push(pod.clone());
                } else {
                    self.updates.push(pod.clone());
                }
                pod
            }
        }
    }

    fn into_updates(self) -> [(PodOperation, Vec<Pod>); 5] {
        [
            (PodOperation::Remove, self.removes),
            (PodOperation::Add, self.adds),
            (PodOperation::Update, self.updates),
            (PodOperation::Delete, self.deletes),
            (PodOperation::Reconcile, self.reconciles),
        ]
    }
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
    fn single_pod_changes_merge_like_snapshots() {
        let (mux, mut rx) = Mux::new();
        let ready = mux.ready();
        let api = mux.source(API_SOURCE);
        api.send_snapshot(vec![pod("a", "1", "x")]);
        drain(&mut rx);

        api.send_apply(pod("b", "2", "x"));
        assert!(ready.all_ready());
        assert_eq!(drain(&mut rx), [(PodOperation::Add, uids(&["2"]))]);
        api.send_apply(pod("b", "2", "x"));
        assert_eq!(drain(&mut rx), []);
        api.send_apply(pod("b", "2", "y"));
        assert_eq!(drain(&mut rx), [(PodOperation::Update, uids(&["2"]))]);
        // Another UID under a name the source already has is refused.
        api.send_apply(pod("b", "3", "x"));
        assert_eq!(drain(&mut rx), []);

        api.send_remove("2");
        assert_eq!(drain(&mut rx), [(PodOperation::Remove, uids(&["2"]))]);
        api.send_remove("2");
        assert_eq!(drain(&mut rx), []);
        api.send_apply(pod("b", "3", "x"));
        assert_eq!(drain(&mut rx), [(PodOperation::Add, uids(&["3"]))]);

        // A snapshot after single changes still sees only real differences.
        api.send_snapshot(vec![pod("a", "1", "x"), pod("b", "3", "x")]);
        assert_eq!(drain(&mut rx), []);
    }

    #[test]
    fn single_changes_do_not_make_a_source_ready() {
        let (mux, _rx) = Mux::new();
        let api = mux.source(API_SOURCE);
        api.send_apply(pod("a", "1", "x"));
        assert!(!mux.ready().all_ready());
    }

    #[test]
    fn an_update_keeps_the_kubelet_annotations_of_the_stored_pod() {
        let (mux, mut rx) = Mux::new();
        let api = mux.source(API_SOURCE);
        let mut mirrored = pod("a", "1", "x");
        set_annotation(&mut mirrored, CONFIG_MIRROR_ANNOTATION, "hash".to_owned());
        api.send_snapshot(vec![mirrored]);
        let seen = annotation(&rx.try_recv().unwrap().pods[0], CONFIG_SEEN_ANNOTATION)
            .unwrap()
            .to_owned();
        let mut changed = pod("a", "1", "y");
        set_annotation(&mut changed, CONFIG_SEEN_ANNOTATION, "forged".to_owned());
        api.send_apply(changed);
        let updated = rx.try_recv().unwrap();
        assert_eq!(updated.op, PodOperation::Update);
        assert_eq!(
            annotation(&updated.pods[0], CONFIG_SEEN_ANNOTATION),
            Some(seen.as_str())
        );
        assert_eq!(
            annotation(&updated.pods[0], CONFIG_MIRROR_ANNOTATION),
            Some("hash")
        );
        assert_eq!(
            annotation(&updated.pods[0], CONFIG_SOURCE_ANNOTATION),
            Some("api")
        );
    }

    #[test]
    fn later_changes_of_a_deleting_pod_are_deletes_again() {
        let (mux, mut rx) = Mux::new();
        let api = mux.source(API_SOURCE);
        api.send_snapshot(vec![pod("a", "1", "x")]);
        drain(&mut rx);
        let mut deleting = pod("a", "1", "x");
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        deleting.metadata.deletion_grace_period_seconds = Some(30);
        api.send_apply(deleting.clone());
        assert_eq!(drain(&mut rx), [(PodOperation::Delete, uids(&["1"]))]);
        deleting.metadata.deletion_grace_period_seconds = Some(0);
        api.send_apply(deleting);
        assert_eq!(drain(&mut rx), [(PodOperation::Delete, uids(&["1"]))]);
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
