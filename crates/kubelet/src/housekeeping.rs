//! Housekeeping (upstream HandlePodCleanups): removes what belongs to no known pod, sandboxes and
//! containers, pod dirs, pod cgroups, dangling log links. It runs only once every source has been
//! read, so a slow source never gets its pods killed at start.

use crate::pod_sync::PodRef;
use crate::pod_workers::PodWorkers;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

pub struct Housekeeping {
    workers: PodWorkers,
    /// Orphans being removed in the background, so a slow stop is not started twice.
    cleaning: Arc<Mutex<HashSet<String>>>,
}

impl Housekeeping {
    pub fn new(workers: PodWorkers) -> Self {
        Self {
            workers,
            cleaning: Arc::default(),
        }
    }

    pub async fn run(&self, known: &HashSet<String>) {
        let syncer = self.workers.syncer().clone();
        let active: HashSet<String> = self.workers.uids().into_iter().collect();
        let is_orphan = |uid: &str| !known.contains(uid) && !active.contains(uid);

        // uid -> (name, namespace), from the runtime first, then from what is left on disk.
        let mut orphans = BTreeMap::new();
        match syncer.runtime.runtime_pods().await {
            Ok(pods) => {
                for p in pods.into_iter().filter(|p| is_orphan(&p.uid)) {
                    orphans.insert(p.uid, (p.name, p.namespace));
                }
            }
            Err(e) => {
                tracing::error!("housekeeping cannot list the runtime's pods: {e}");
                return;
            }
        }
        match syncer.volumes.pods_on_disk() {
            Ok(uids) => {
                for uid in uids.into_iter().filter(|u| is_orphan(u)) {
                    orphans.entry(uid).or_insert_with(Default::default);
                }
            }
            Err(e) => tracing::warn!("housekeeping cannot list pod dirs: {e}"),
        }
        for (uid, _) in syncer.cgroups.pod_dirs() {
            if is_orphan(&uid) {
                orphans.entry(uid).or_insert_with(Default::default);
            }
        }

        for (uid, (name, namespace)) in orphans {
            if !self.cleaning.lock().unwrap().insert(uid.clone()) {
                continue;
            }
            let syncer = syncer.clone();
            let cleaning = self.cleaning.clone();
            tokio::spawn(async move {
                tracing::info!(pod_uid = %uid, pod = %format!("{namespace}/{name}"), "removing orphaned pod");
                let pod = PodRef {
                    uid: &uid,
                    name: &name,
                    namespace: &namespace,
                };
                if let Err(e) = syncer.cleanup(pod, None).await {
                    tracing::warn!(pod_uid = %uid, "cannot remove orphaned pod yet: {e}");
                }
                cleaning.lock().unwrap().remove(&uid);
            });
        }

        syncer.runtime.gc_backoff();
        let links = &syncer.runtime.config().container_logs_symlink_dir;
        if let Err(e) =
            kubelet_logs::remove_dangling_symlinks(syncer.runtime.runtime().as_ref(), links).await
        {
            tracing::warn!("cannot remove dangling container log links: {e}");
        }
    }
}
