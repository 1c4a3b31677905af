//! The image store: image records in memory (loaded from disk at open), name and id lookup,
//! removal with garbage collection of blobs and snapshots, and leases that keep a container's
//! snapshots alive after its image is removed.

use crate::content::ContentStore;
use crate::cri::Image;
use crate::error::{ImageError, rio};
use crate::records::{ImageRecord, LeaseRecord, NameRecord, Records};
use crate::reference::{ImageRef, is_hex64};
use crate::snapshots::{Snapshots, remove_tree};
use futures::future::{BoxFuture, Shared};
use oci_spec::image::ImageConfiguration;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) type PullFuture = Shared<BoxFuture<'static, Result<Image, ImageError>>>;

/// Images on this node. Cheap to clone; every clone is the same store.
#[derive(Clone)]
pub struct ImageStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub root: PathBuf,
    pub registry_config: Option<PathBuf>,
    pub content: ContentStore,
    pub snapshots: Snapshots,
    records: Records,
    state: Mutex<State>,
    /// In-flight pulls by normalized reference: a second caller awaits the first one's pull.
    pub pulls: Mutex<HashMap<String, PullFuture>>,
    /// Held (flock) while the store is open: a second process on the same dir would clear the
    /// ingest and tmp dirs under this one.
    _lock: OwnedFd,
}

struct Entry {
    record: ImageRecord,
    config: ImageConfiguration,
}

#[derive(Default)]
struct State {
    images: HashMap<String, Entry>,
    /// Repo tag -> image id.
    names: BTreeMap<String, String>,
    leases: HashMap<String, LeaseRecord>,
    /// Blob digests and chain ids that an unfinished pull or import is adding (with a count of
    /// the operations that hold each): garbage collection leaves them alone.
    busy: HashMap<String, usize>,
}

/// Keeps blobs and snapshots out of garbage collection until dropped.
pub(crate) struct Busy {
    inner: Arc<Inner>,
    keys: Vec<String>,
}

impl Busy {
    pub fn add(&mut self, keys: impl IntoIterator<Item = String>) {
        let mut state = self.inner.state();
        for key in keys {
            *state.busy.entry(key.clone()).or_default() += 1;
            self.keys.push(key);
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.inner.state();
        for key in &self.keys {
            if let Some(n) = state.busy.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    state.busy.remove(key);
                }
            }
        }
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent maps (each update is one
        // insert or remove), so the poison is not a reason to stop serving images.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ImageStore {
    /// Opens (creating) the store at `root`; `registry_config` is a containerd certs.d dir.
    pub fn open(root: &Path, registry_config: Option<PathBuf>) -> Result<ImageStore, ImageError> {
        fs::create_dir_all(root).map_err(|e| ImageError::io("create", root, e))?;
        let lock_path = root.join("lock");
        let lock = rustix::fs::open(
            &lock_path,
            rustix::fs::OFlags::CREATE | rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .map_err(|e| rio("open", &lock_path, e))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
            |_| ImageError::Locked {
                path: root.to_path_buf(),
            },
        )?;
        let content = ContentStore::open(&root.join("content"))?;
        content.clear_ingest();
        let snapshots = Snapshots::open(root)?;
        let records = Records::open(&root.join("records"))?;
        let loaded = records.load()?;
        let mut state = State::default();
        for record in loaded.images {
            match load_config(&content, &record) {
                Ok(config) => {
                    state
                        .images
                        .insert(record.id.clone(), Entry { record, config });
                }
                Err(e) => {
                    tracing::error!(
                        image = %record.id,
                        error = %e,
                        "image dropped: its config is unreadable"
                    );
                    records.remove_image(&record.id)?;
                }
            }
        }
        for name in loaded.names {
            if state.images.contains_key(&name.image_id) {
                state.names.insert(name.name, name.image_id);
            } else {
                records.remove_name(&name.name)?;
            }
        }
        for lease in loaded.leases {
            state.leases.insert(lease.holder.clone(), lease);
        }
        let store = ImageStore {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                registry_config,
                content,
                snapshots,
                records,
                state: Mutex::new(state),
                pulls: Mutex::new(HashMap::new()),
                _lock: lock,
            }),
        };
        // Blobs and snapshots of an interrupted pull or removal.
        store.collect_garbage()?;
        Ok(store)
    }

    /// By reference (normalized: `busybox` is `docker.io/library/busybox:latest`), repo digest
    /// (`name@sha256:...`), image id (`sha256:HEX`), bare HEX id, or unique id prefix.
    pub fn get(&self, reference: &str) -> Option<Image> {
        let state = self.inner.state();
        let id = resolve(&state, reference)?;
        Some(image_of(&state, &id))
    }

    pub fn list(&self) -> Vec<Image> {
        let state = self.inner.state();
        let mut ids: Vec<&String> = state.images.keys().collect();
        ids.sort();
        ids.into_iter().map(|id| image_of(&state, id)).collect()
    }

    /// Removes a tag (the image goes with its last tag), or by id or repo digest the image with
    /// all its tags. A missing image is not an error. Snapshots a container holds (see
    /// [`ImageStore::lease`]) stay until released.
    pub fn remove(&self, reference: &str) -> Result<(), ImageError> {
        {
            let mut state = self.inner.state();
            let tag = ImageRef::parse(reference)
                .ok()
                .filter(|r| r.digest.is_none())
                .and_then(|r| r.repo_tag())
                .filter(|t| state.names.contains_key(t));
            let (id, names) = match tag {
                Some(tag) => {
                    let id = state.names[&tag].clone();
                    let last = state.names.values().filter(|v| **v == id).count() == 1;
                    let remove_image = last.then_some(id.clone());
                    self.inner.records.remove_name(&tag)?;
                    state.names.remove(&tag);
                    (remove_image, Vec::new())
                }
                None => match resolve(&state, reference) {
                    Some(id) => {
                        let names = tags_of(&state, &id);
                        (Some(id), names)
                    }
                    None => return Ok(()),
                },
            };
            for name in names {
                self.inner.records.remove_name(&name)?;
                state.names.remove(&name);
            }
            if let Some(id) = id {
                self.inner.records.remove_image(&id)?;
                state.images.remove(&id);
                tracing::info!(image = %id, reference, "image removed");
            }
        }
        self.collect_garbage()
    }

    /// Marks an image as pinned (the sandbox image: the kubelet's image GC leaves it alone).
    pub fn set_pinned(&self, reference: &str, pinned: bool) -> Result<(), ImageError> {
        let mut state = self.inner.state();
        let id = resolve(&state, reference).ok_or_else(|| ImageError::UnknownImage {
            reference: reference.to_string(),
        })?;
        let entry = state.images.get_mut(&id).expect("resolved ids exist");
        let mut record = entry.record.clone();
        record.pinned = pinned;
        self.inner.records.save_image(&record)?;
        entry.record = record;
        Ok(())
    }

    /// Pins the image's snapshots for `holder` (a container id), durably; returns the snapshot
    /// dirs uppermost first, the order of overlay lower dirs.
    pub fn lease(&self, holder: &str, image_id: &str) -> Result<Vec<PathBuf>, ImageError> {
        let mut state = self.inner.state();
        let id = resolve(&state, image_id).ok_or_else(|| ImageError::UnknownImage {
            reference: image_id.to_string(),
        })?;
        let chain_ids: Vec<String> = state.images[&id]
            .record
            .layers
            .iter()
            .map(|l| l.chain_id.clone())
            .collect();
        let lease = LeaseRecord {
            holder: holder.to_string(),
            image_id: id,
            chain_ids,
        };
        let dirs = lease
            .chain_ids
            .iter()
            .rev()
            .map(|c| self.inner.snapshots.path(c))
            .collect();
        // In memory first, which is what garbage collection reads, so the lock need not be held
        // across the durable write: concurrent creates would queue behind each other's fsync.
        state.leases.insert(holder.to_string(), lease.clone());
        drop(state);
        if let Err(err) = self.inner.records.save_lease(&lease) {
            self.inner.state().leases.remove(holder);
            // The image may have been removed meanwhile, kept only by this lease.
            self.collect_garbage()?;
            return Err(err);
        }
        Ok(dirs)
    }

    /// Drops `holder`'s lease (none is fine) and whatever only it kept.
    pub fn release(&self, holder: &str) -> Result<(), ImageError> {
        {
            let mut state = self.inner.state();
            if !state.leases.contains_key(holder) {
                return Ok(());
            }
            self.inner.records.remove_lease(holder)?;
            state.leases.remove(holder);
        }
        self.collect_garbage()
    }

    /// Bytes and inodes used by the store's directory.
    pub fn fs_info(&self) -> Result<k8s_cri::v1::FilesystemUsage, ImageError> {
        let mut seen = HashSet::new();
        let (bytes, inodes) = usage(&self.inner.root, &mut seen)?;
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        Ok(k8s_cri::v1::FilesystemUsage {
            timestamp,
            fs_id: Some(k8s_cri::v1::FilesystemIdentifier {
                mountpoint: self.inner.root.display().to_string(),
            }),
            used_bytes: Some(k8s_cri::v1::UInt64Value { value: bytes }),
            inodes_used: Some(k8s_cri::v1::UInt64Value { value: inodes }),
        })
    }

    /// Keeps `keys` (blob digests, chain ids) out of garbage collection while the guard lives.
    pub(crate) fn busy(&self, keys: impl IntoIterator<Item = String>) -> Busy {
        let mut busy = Busy {
            inner: self.inner.clone(),
            keys: Vec::new(),
        };
        busy.add(keys);
        busy
    }

    /// Records a complete image (blobs stored, snapshots unpacked) and points `tags` at it.
    pub(crate) fn add_image(
        &self,
        mut record: ImageRecord,
        config: ImageConfiguration,
        tags: &[String],
    ) -> Result<Image, ImageError> {
        let mut state = self.inner.state();
        if let Some(old) = state.images.get(&record.id) {
            for digest in &old.record.repo_digests {
                if !record.repo_digests.contains(digest) {
                    record.repo_digests.push(digest.clone());
                }
            }
            for manifest in &old.record.manifests {
                if !record.manifests.contains(manifest) {
                    record.manifests.push(manifest.clone());
                }
            }
            record.pinned = old.record.pinned;
        }
        self.inner.records.save_image(&record)?;
        let id = record.id.clone();
        state.images.insert(id.clone(), Entry { record, config });
        for tag in tags {
            self.inner.records.save_name(&NameRecord {
                name: tag.clone(),
                image_id: id.clone(),
            })?;
            state.names.insert(tag.clone(), id.clone());
        }
        Ok(image_of(&state, &id))
    }

    /// Deletes blobs and snapshots that no image, lease or unfinished operation uses.
    pub(crate) fn collect_garbage(&self) -> Result<(), ImageError> {
        let doomed = {
            let state = self.inner.state();
            let mut live: HashSet<&str> = state.busy.keys().map(String::as_str).collect();
            for entry in state.images.values() {
                let r = &entry.record;
                live.extend(r.manifests.iter().map(String::as_str));
                live.insert(&r.config_digest);
                for layer in &r.layers {
                    live.insert(&layer.digest);
                    live.insert(&layer.chain_id);
                }
            }
            for lease in state.leases.values() {
                live.extend(lease.chain_ids.iter().map(String::as_str));
            }
            for blob in self.inner.content.list()? {
                if !live.contains(blob.as_str()) {
                    tracing::debug!(blob, "removing unused blob");
                    self.inner.content.remove(&blob)?;
                }
            }
            let mut doomed = Vec::new();
            for chain_id in self.inner.snapshots.list()? {
                if !live.contains(chain_id.as_str()) {
                    tracing::debug!(snapshot = chain_id, "removing unused snapshot");
                    doomed.extend(self.inner.snapshots.take(&chain_id));
                }
            }
            doomed
        };
        // Outside the lock: a big snapshot takes a while to delete.
        for dir in doomed {
            remove_tree(&dir);
        }
        Ok(())
    }
}

fn load_config(
    content: &ContentStore,
    record: &ImageRecord,
) -> Result<ImageConfiguration, ImageError> {
    let bytes = content.read(&record.config_digest)?;
    crate::manifest::parse_config(&bytes, &record.config_digest, record.layers.len())
}

/// The id of the image `reference` names, in containerd's lookup order.
fn resolve(state: &State, reference: &str) -> Option<String> {
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    if is_hex64(hex) {
        let id = format!("sha256:{hex}");
        return state.images.contains_key(&id).then_some(id);
    }
    if let Ok(r) = ImageRef::parse(reference) {
        let found = match &r.digest {
            Some(digest) => {
                let wanted = r.repo_digest(digest);
                state
                    .images
                    .values()
                    .find(|e| e.record.repo_digests.contains(&wanted))
                    .map(|e| e.record.id.clone())
            }
            None => r.repo_tag().and_then(|t| state.names.get(&t).cloned()),
        };
        if found.is_some() {
            return found;
        }
    }
    // A prefix of an id, as crictl passes them.
    if hex.is_empty() || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut matches = state
        .images
        .keys()
        .filter(|id| id["sha256:".len()..].starts_with(hex));
    match (matches.next(), matches.next()) {
        (Some(id), None) => Some(id.clone()),
        _ => None,
    }
}

fn tags_of(state: &State, id: &str) -> Vec<String> {
    state
        .names
        .iter()
        .filter(|(_, v)| *v == id)
        .map(|(k, _)| k.clone())
        .collect()
}

fn image_of(state: &State, id: &str) -> Image {
    let entry = &state.images[id];
    let r = &entry.record;
    let mut repo_digests = r.repo_digests.clone();
    repo_digests.sort();
    Image {
        id: r.id.clone(),
        repo_tags: tags_of(state, id),
        repo_digests,
        size: r.config_size + r.layers.iter().map(|l| l.size).sum::<u64>(),
        config: entry.config.clone(),
        pinned: r.pinned,
    }
}

/// Allocated bytes and inodes under `path`, each hard-linked inode counted once.
fn usage(path: &Path, seen: &mut HashSet<(u64, u64)>) -> Result<(u64, u64), ImageError> {
    let meta = fs::symlink_metadata(path).map_err(|e| ImageError::io("stat", path, e))?;
    let (mut bytes, mut inodes) = (0, 0);
    if seen.insert((meta.dev(), meta.ino())) {
        bytes += meta.blocks() * 512;
        inodes += 1;
    }
    if meta.is_dir() {
        let read = fs::read_dir(path).map_err(|e| ImageError::io("list", path, e))?;
        for entry in read {
            let entry = entry.map_err(|e| ImageError::io("list", path, e))?;
            // Entries removed while walking (a finished ingest, a collected snapshot) are fine.
            match usage(&entry.path(), seen) {
                Ok((b, i)) => {
                    bytes += b;
                    inodes += i;
                }
                Err(ImageError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok((bytes, inodes))
}
