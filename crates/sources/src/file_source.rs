//! The static pod file source (upstream config/file.go and file_linux.go): a manifest directory
//! (one pod per file) or a single manifest file, read again at once on inotify events and in full
//! every check period. The local pods directory is read the same way under its own source name.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::manifest::{self, ManifestError};
use crate::mux::SourceSender;
use crate::static_pod::Origin;
use crate::{AdoptedUids, FILE_SOURCE};

/// A write in progress (a file created or modified, not yet closed) may still be partial: wait
/// this long for the writer to close it before reading anyway. A closed write, a rename or a
/// removal is read at once, since that is when a pod starts fastest.
const SETTLE_DELAY: Duration = Duration::from_millis(50);

/// One relevant inotify event.
#[derive(Debug, Clone, Copy)]
struct Change {
    /// The event concerns the watched directory itself (removed, moved): it needs a new watch.
    on_target: bool,
    /// The change is complete (a closed write, a rename, a removal): nothing more to wait for.
    complete: bool,
}

/// Why one manifest file gave no pod.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: could not read: {source}")]
    Read { path: String, source: io::Error },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// Watches and re-reads `path` forever, sending each snapshot to `sender`; the pods are static
/// pods of the sender's source.
pub async fn run(
    path: PathBuf,
    node_name: String,
    period: Duration,
    adopted: AdoptedUids,
    sender: SourceSender,
) {
    let (events_tx, mut events) = mpsc::unbounded_channel::<Change>();
    let mut watch: Option<ActiveWatch> = None;
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut target_changed = false;
        tokio::select! {
            _ = ticker.tick() => {}
            Some(change) = events.recv() => {
                target_changed = change.on_target;
                let mut complete = change.complete;
                let settle = tokio::time::sleep(SETTLE_DELAY);
                tokio::pin!(settle);
                while !complete {
                    tokio::select! {
                        _ = &mut settle => break,
                        Some(change) = events.recv() => {
                            target_changed |= change.on_target;
                            complete = change.complete;
                        }
                    }
                }
                while let Ok(change) = events.try_recv() {
                    target_changed |= change.on_target;
                }
            }
        }
        let target = watch_target(&path);
        // A watched directory that was removed (even if made again since) has lost its watch.
        if target_changed || watch.as_ref().map(|w| &w.target) != target.as_ref() {
            watch = target.and_then(|target| ActiveWatch::start(&path, target, events_tx.clone()));
        }
        let (read_path, node, source) = (path.clone(), node_name.clone(), sender.name());
        let adopted = adopted.clone();
        match tokio::task::spawn_blocking(move || {
            read_manifests(&read_path, source, &node, &adopted)
        })
        .await
        {
            Ok(Some(pods)) => sender.send_snapshot(pods),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "reading static pod manifests failed")
            }
        }
    }
}

/// The directory to watch: the manifest directory itself, or else the directory that holds (or
/// will hold) the manifest path, so that a single file's save-by-rename and the creation of a
/// missing directory are both seen at once.
fn watch_target(path: &Path) -> Option<PathBuf> {
    if path.is_dir() {
        return Some(path.to_path_buf());
    }
    path.parent()
        .filter(|parent| parent.is_dir())
        .map(Path::to_path_buf)
}

struct ActiveWatch {
    target: PathBuf,
    _watcher: RecommendedWatcher,
}

impl ActiveWatch {
    /// Starts an inotify watch on `target`, sending each relevant event.
    fn start(path: &Path, target: PathBuf, events: mpsc::UnboundedSender<Change>) -> Option<Self> {
        let manifest_path = path.to_path_buf();
        let watched = target.clone();
        let handler = move |result: notify::Result<Event>| match result {
            Ok(event) if is_relevant(&event, &manifest_path, &watched) => {
                let _ = events.send(Change {
                    on_target: event.paths.contains(&watched),
                    complete: is_complete(&event.kind),
                });
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "static pod manifest watch error"),
        };
        let started = notify::recommended_watcher(handler).and_then(|mut watcher| {
            watcher
                .watch(&target, RecursiveMode::NonRecursive)
                .map(|()| watcher)
        });
        match started {
            Ok(watcher) => Some(ActiveWatch {
                target,
                _watcher: watcher,
            }),
            Err(e) => {
                tracing::warn!(path = %target.display(), error = %e, "cannot watch static pod manifests, relying on the periodic check");
                None
            }
        }
    }
}

/// Events about the manifest path, the watched directory itself, or (when the manifest path is
/// the watched directory) its visible entries.
fn is_relevant(event: &Event, manifest_path: &Path, watched: &Path) -> bool {
    // Our own reads open and close the files: only a finished write counts among accesses.
    if let EventKind::Access(kind) = event.kind
        && kind != AccessKind::Close(AccessMode::Write)
    {
        return false;
    }
    event.paths.iter().any(|p| {
        p == manifest_path
            || p == watched
            || (watched == manifest_path && p.parent() == Some(watched) && !is_hidden(p))
    })
}

/// A closed write, a rename or a removal: the file is as its writer meant it.
fn is_complete(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(_))
            | EventKind::Remove(_)
    )
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with('.'))
}

/// Reads the manifests under `path` as pods of `source`. `None` means "send nothing, keep the previous pods": the
/// single manifest file is unusable, or the path cannot be examined. A missing path or an
/// unreadable directory counts as empty, like upstream, so the source is seen and the kubelet can
/// proceed.
pub fn read_manifests(
    path: &Path,
    source: &'static str,
    node_name: &str,
    adopted: &AdoptedUids,
) -> Option<Vec<Pod>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // The local pods directory is only made when a first pod is submitted.
            if source == FILE_SOURCE {
                tracing::error!(path = %path.display(), "static pod path does not exist, treating it as empty");
            } else {
                tracing::debug!(path = %path.display(), source, "pods directory does not exist yet, treating it as empty");
            }
            Some(Vec::new())
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot examine static pod path");
            None
        }
        Ok(meta) if meta.is_dir() => Some(read_dir(path, source, node_name, adopted)),
        Ok(meta) if meta.is_file() => match read_file(path, source, node_name, adopted) {
            Ok(pod) => Some(vec![pod]),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "invalid static pod manifest, skipping it");
                None
            }
        },
        Ok(_) => {
            tracing::error!(path = %path.display(), "static pod path is neither a directory nor a regular file");
            None
        }
    }
}

/// One pod per file, in file name order; the first file to define a namespace/name wins.
fn read_dir(dir: &Path, source: &'static str, node_name: &str, adopted: &AdoptedUids) -> Vec<Pod> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::error!(path = %dir.display(), error = %e, "cannot list static pod directory, treating it as empty");
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| !is_hidden(p))
        .collect();
    files.sort();

    let mut pods = Vec::new();
    let mut defined_by: HashMap<String, PathBuf> = HashMap::new();
    for file in files {
        match std::fs::metadata(&file) {
            Ok(meta) if meta.is_dir() => {
                tracing::debug!(path = %file.display(), "not recursing into a subdirectory of the static pod directory");
                continue;
            }
            Ok(meta) if meta.is_file() => {}
            Ok(_) => {
                tracing::warn!(path = %file.display(), "not a regular file, ignoring");
                continue;
            }
            Err(e) => {
                tracing::error!(path = %file.display(), error = %e, "cannot examine static pod manifest, skipping it");
                continue;
            }
        }
        let pod = match read_file(&file, source, node_name, adopted) {
            Ok(pod) => pod,
            Err(e) => {
                tracing::error!(path = %file.display(), error = %e, "invalid static pod manifest, skipping it");
                continue;
            }
        };
        let full_name = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or(""),
            pod.metadata.name.as_deref().unwrap_or("")
        );
        if let Some(first) = defined_by.get(&full_name) {
            tracing::error!(
                path = %file.display(),
                first = %first.display(),
                pod = %full_name,
                "static pod defined twice, keeping the one from the first file"
            );
            continue;
        }
        defined_by.insert(full_name, file);
        pods.push(pod);
    }
    pods
}

fn read_file(
    path: &Path,
    source: &'static str,
    node_name: &str,
    adopted: &AdoptedUids,
) -> Result<Pod, FileError> {
    let data = std::fs::read(path).map_err(|source| FileError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Ok(manifest::decode_pod_adopting(
        &data,
        &Origin::file_in(source, path),
        node_name,
        adopted,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PodOperation;
    use crate::mux::Mux;

    fn manifest(name: &str, image: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: c\n    image: {image}\n"
        )
    }

    fn names(pods: &[Pod]) -> Vec<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect()
    }

    #[test]
    fn directory_yaml_json_dotfiles_subdirs_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), manifest("a", "x:1")).unwrap();
        std::fs::write(
            dir.path().join("b.json"),
            r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"},
                "spec": {"containers": [{"name": "c", "image": "x:1"}]}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join(".hidden.yaml"), manifest("hidden", "x:1")).unwrap();
        std::fs::write(
            dir.path().join("c.yaml"),
            "kind: Pod\napiVersion: v1\nspec: {}\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/d.yaml"), manifest("d", "x:1")).unwrap();
        let pods =
            read_manifests(dir.path(), FILE_SOURCE, "node1", &AdoptedUids::default()).unwrap();
        assert_eq!(names(&pods), ["a-node1", "b-node1"]);
    }

    #[test]
    fn the_first_file_by_name_wins_a_duplicate_pod() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("2-web.yaml"), manifest("web", "second:1")).unwrap();
        std::fs::write(dir.path().join("1-web.yaml"), manifest("web", "first:1")).unwrap();
        let pods =
            read_manifests(dir.path(), FILE_SOURCE, "node1", &AdoptedUids::default()).unwrap();
        assert_eq!(pods.len(), 1);
        let image = pods[0].spec.as_ref().unwrap().containers[0]
            .image
            .as_deref();
        assert_eq!(image, Some("first:1"));
    }

    #[test]
    fn missing_directory_is_empty_and_bad_single_file_sends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            read_manifests(
                &dir.path().join("absent"),
                FILE_SOURCE,
                "n",
                &AdoptedUids::default()
            ),
            Some(Vec::new())
        );
        let file = dir.path().join("web.yaml");
        std::fs::write(&file, manifest("web", "x:1")).unwrap();
        assert_eq!(
            names(&read_manifests(&file, FILE_SOURCE, "n", &AdoptedUids::default()).unwrap()),
            ["web-n"]
        );
        std::fs::write(&file, "not: [a pod").unwrap();
        assert_eq!(
            read_manifests(&file, FILE_SOURCE, "n", &AdoptedUids::default()),
            None
        );
    }

    #[tokio::test]
    async fn notices_at_once_a_directory_created_after_start() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("manifests");
        let (mux, mut rx) = Mux::new();
        let task = tokio::spawn(run(
            dir.clone(),
            "node1".to_owned(),
            Duration::from_secs(3600),
            AdoptedUids::default(),
            mux.source(FILE_SOURCE),
        ));
        wait_ready(&mux.ready()).await;
        std::fs::create_dir(&dir).unwrap();
        // Let the source move its watch from the parent to the new directory.
        tokio::time::sleep(Duration::from_millis(300)).await;
        std::fs::write(dir.join("web.yaml"), manifest("web", "x:1")).unwrap();
        let added = next_update(&mut rx).await;
        assert_eq!(
            (added.op, names(&added.pods)),
            (PodOperation::Add, vec!["web-node1".to_owned()])
        );
        task.abort();
    }

    #[tokio::test]
    async fn a_single_manifest_file_is_watched_through_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("web.yaml");
        std::fs::write(&file, manifest("web", "x:1")).unwrap();
        let (mux, mut rx) = Mux::new();
        let task = tokio::spawn(run(
            file.clone(),
            "node1".to_owned(),
            Duration::from_secs(3600),
            AdoptedUids::default(),
            mux.source(FILE_SOURCE),
        ));
        assert_eq!(next_update(&mut rx).await.op, PodOperation::Add);
        // An editor's save: write aside, then rename over the manifest.
        let aside = dir.path().join(".web.yaml.swp");
        std::fs::write(&aside, manifest("web", "x:2")).unwrap();
        std::fs::rename(&aside, &file).unwrap();
        assert_eq!(next_update(&mut rx).await.op, PodOperation::Remove);
        let added = next_update(&mut rx).await;
        let image = added.pods[0].spec.as_ref().unwrap().containers[0]
            .image
            .as_deref();
        assert_eq!(image, Some("x:2"));
        task.abort();
    }

    async fn wait_ready(ready: &crate::SourcesReady) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while !ready.all_ready() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the first snapshot within 5 s");
    }

    #[test]
    fn file_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone.yaml");
        let text = read_file(&path, FILE_SOURCE, "n", &AdoptedUids::default())
            .unwrap_err()
            .to_string();
        assert!(
            text.starts_with(&format!("{}: could not read:", path.display())),
            "{text}"
        );
    }

    async fn next_update(rx: &mut mpsc::UnboundedReceiver<crate::PodUpdate>) -> crate::PodUpdate {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an update within 5 s")
            .expect("the mux is alive")
    }

    #[tokio::test]
    async fn reacts_to_new_changed_and_removed_files_through_inotify() {
        let dir = tempfile::tempdir().unwrap();
        let (mux, mut rx) = Mux::new();
        let ready = mux.ready();
        // A period far longer than the test: only inotify can explain a quick update.
        let task = tokio::spawn(run(
            dir.path().to_path_buf(),
            "node1".to_owned(),
            Duration::from_secs(3600),
            AdoptedUids::default(),
            mux.source(FILE_SOURCE),
        ));
        wait_ready(&ready).await;

        let file = dir.path().join("web.yaml");
        std::fs::write(&file, manifest("web", "x:1")).unwrap();
        let added = next_update(&mut rx).await;
        assert_eq!(
            (added.op, names(&added.pods)),
            (PodOperation::Add, vec!["web-node1".to_owned()])
        );

        std::fs::write(&file, manifest("web", "x:2")).unwrap();
        // The UID follows the content: a changed manifest is a new pod.
        let removed = next_update(&mut rx).await;
        assert_eq!(
            (removed.op, names(&removed.pods)),
            (PodOperation::Remove, vec!["web-node1".to_owned()])
        );
        let added = next_update(&mut rx).await;
        assert_eq!(added.op, PodOperation::Add);
        let image = added.pods[0].spec.as_ref().unwrap().containers[0]
            .image
            .as_deref();
        assert_eq!(image, Some("x:2"));

        std::fs::remove_file(&file).unwrap();
        let removed = next_update(&mut rx).await;
        assert_eq!(removed.op, PodOperation::Remove);
        task.abort();
    }
}
