//! One worker per pod (upstream pod_workers.go): the worker owns the pod's lifecycle, syncing,
//! terminating, terminated, and updates that arrive while it is busy coalesce into its next pass.

use crate::pod_sync::{PodRef, PodSyncer};
use k8s_openapi::api::core::v1::Pod;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    Syncing,
    Terminating,
    Terminated,
}

#[derive(Debug)]
enum Msg {
    Update(Box<Pod>),
    Terminate {
        grace: Option<Duration>,
        remove: bool,
    },
    /// The pod's deletion was requested in the API (this version has the deletionTimestamp).
    Delete {
        pod: Box<Pod>,
        grace: Option<Duration>,
    },
    Wake,
}

struct Worker {
    tx: mpsc::UnboundedSender<Msg>,
    state: Arc<Mutex<WorkerState>>,
}

type Registry = Arc<Mutex<HashMap<String, Worker>>>;

#[derive(Clone)]
pub struct PodWorkers {
    workers: Registry,
    syncer: Arc<PodSyncer>,
}

/// Cleanup of a removed pod is retried this often until it succeeds.
const CLEANUP_RETRY: Duration = Duration::from_secs(2);
/// Far enough to mean "until something happens".
const IDLE: Duration = Duration::from_secs(365 * 24 * 3600);

impl PodWorkers {
    pub fn new(syncer: Arc<PodSyncer>) -> Self {
        Self {
            workers: Arc::default(),
            syncer,
        }
    }

    pub fn syncer(&self) -> &Arc<PodSyncer> {
        &self.syncer
    }

    /// The pod should run with this spec: starts its worker or hands it the new spec.
    pub fn update(&self, pod: Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut workers = self.workers.lock().unwrap();
        if let Some(w) = workers.get(&uid)
            && w.tx.send(Msg::Update(Box::new(pod.clone()))).is_ok()
        {
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(Mutex::new(WorkerState::Syncing));
        let span = tracing::info_span!(
            "pod",
            pod_uid = %uid,
            namespace = pod.metadata.namespace.as_deref().unwrap_or(""),
            name = pod.metadata.name.as_deref().unwrap_or("")
        );
        let run = run_worker(
            pod,
            rx,
            state.clone(),
            self.syncer.clone(),
            self.workers.clone(),
        );
        tokio::spawn(run.instrument(span));
        workers.insert(uid, Worker { tx, state });
    }

    /// Stops the pod; with `remove`, also removes all of it and ends its worker.
    pub fn terminate(&self, uid: &str, grace: Option<Duration>, remove: bool) {
        if let Some(w) = self.workers.lock().unwrap().get(uid) {
            let _ = w.tx.send(Msg::Terminate { grace, remove });
        }
    }

    /// The pod's deletion was requested in the API: stops it with the grace period, then removes
    /// all of it from the node and marks its status finished, for the status manager to delete it
    /// from the API.
    pub fn delete(&self, pod: Pod, grace: Option<Duration>) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if let Some(w) = self.workers.lock().unwrap().get(&uid) {
            let _ = w.tx.send(Msg::Delete {
                pod: Box::new(pod),
                grace,
            });
        }
    }

    /// Something changed in the runtime for this pod: sync it now.
    pub fn wake(&self, uid: &str) {
        if let Some(w) = self.workers.lock().unwrap().get(uid) {
            let _ = w.tx.send(Msg::Wake);
        }
    }

    pub fn state(&self, uid: &str) -> Option<WorkerState> {
        self.workers
            .lock()
            .unwrap()
            .get(uid)
            .map(|w| *w.state.lock().unwrap())
    }

    /// UIDs of every pod that has a worker.
    pub fn uids(&self) -> Vec<String> {
        self.workers.lock().unwrap().keys().cloned().collect()
    }
}

async fn run_worker(
    mut pod: Pod,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    state: Arc<Mutex<WorkerState>>,
    syncer: Arc<PodSyncer>,
    registry: Registry,
) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let set = |s| *state.lock().unwrap() = s;
    let mut terminate: Option<(Option<Duration>, bool)> = None;
    // Set once a pod deleted in the API is cleaned up and its status finished.
    let mut finished = false;
    // A pod re-added under the same UID while it was being removed starts again afterwards.
    let mut restart: Option<Pod> = None;
    let mut next = Instant::now();
    // kubelet_pod_worker_duration_seconds' operation_type: create, update or sync.
    let mut operation = "create";
    loop {
        let mut updated = false;
        let mut apply =
            |m: Msg, terminate: &mut Option<(Option<Duration>, bool)>, pod: &mut Pod| match m {
                Msg::Update(p) if terminate.is_some_and(|(_, remove)| remove) => restart = Some(*p),
                Msg::Update(p) => {
                    *pod = *p;
                    updated = true;
                }
                Msg::Terminate { grace, remove } => {
                    let was_remove = terminate.is_some_and(|(_, r)| r);
                    *terminate = Some((grace, remove || was_remove));
                }
                Msg::Delete { pod: p, grace } => {
                    *pod = *p;
                    let was_remove = terminate.is_some_and(|(_, r)| r);
                    *terminate = Some((grace, was_remove));
                }
                Msg::Wake => {}
            };
        tokio::select! {
            m = rx.recv() => match m {
                Some(m) => apply(m, &mut terminate, &mut pod),
                None => return,
            },
            _ = tokio::time::sleep_until(next) => {}
        }
        while let Ok(m) = rx.try_recv() {
            apply(m, &mut terminate, &mut pod);
        }
        if updated && operation != "create" {
            operation = "update";
        }

        let current = *state.lock().unwrap();
        // Every step below is boxed: a worker idles between syncs for most of its life, and its
        // task would otherwise keep the largest step's state allocated all that time.
        if let Some((grace, remove)) = terminate {
            if current != WorkerState::Terminated {
                set(WorkerState::Terminating);
                Box::pin(syncer.terminate(&pod, grace)).await;
                set(WorkerState::Terminated);
            }
            if !remove {
                if pod.metadata.deletion_timestamp.is_some() && !finished {
                    if let Err(e) = Box::pin(syncer.finish_deleted(&pod)).await {
                        tracing::error!("cannot clean up the deleted pod, retrying: {e}");
                        next = Instant::now() + CLEANUP_RETRY;
                        continue;
                    }
                    finished = true;
                }
                next = Instant::now() + IDLE;
                continue;
            }
            if let Err(e) = Box::pin(syncer.cleanup(PodRef::of(&pod), grace)).await {
                tracing::error!("cannot clean up the pod, retrying: {e}");
                next = Instant::now() + CLEANUP_RETRY;
                continue;
            }
            match restart.take() {
                Some(p) => {
                    // The same UID again once removed: upstream's kubelet_restarted_pods_total.
                    syncer
                        .metrics
                        .inc_restarted_pods(crate::pod_manager::is_static_pod(&p));
                    pod = p;
                    terminate = None;
                    set(WorkerState::Syncing);
                    next = Instant::now();
                    continue;
                }
                None => {
                    let mut workers = registry.lock().unwrap();
                    // Messages that raced with the end of cleanup are honoured by a new worker.
                    if let Ok(Msg::Update(p)) = rx.try_recv() {
                        drop(workers);
                        pod = *p;
                        terminate = None;
                        set(WorkerState::Syncing);
                        next = Instant::now();
                        continue;
                    }
                    workers.remove(&uid);
                    return;
                }
            }
        }
        if current == WorkerState::Terminated {
            next = Instant::now() + IDLE;
            continue;
        }
        let started = Instant::now();
        let outcome = Box::pin(syncer.sync(&pod)).await;
        syncer
            .metrics
            .observe_pod_worker(operation, started.elapsed());
        operation = "sync";
        if outcome.terminal {
            set(WorkerState::Terminating);
            Box::pin(syncer.terminate(&pod, None)).await;
            set(WorkerState::Terminated);
            next = Instant::now() + IDLE;
        } else {
            next = Instant::now() + outcome.next_sync;
        }
    }
}
