//! Layer snapshots: each layer unpacked once into `snapshots/HEX` (HEX of its chain id, so the
//! same layer on top of the same parents is shared between images). A layer is unpacked into
//! `tmp/` and renamed into place only once its diff id checked out and its files are on disk,
//! so a crash or a bad layer never leaves a half-written snapshot.

use crate::content::digest_of;
use crate::error::{ImageError, rio};
use crate::records::LayerRecord;
use crate::unpack::unpack;
use sha2::{Digest as _, Sha256};
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Debug)]
pub(crate) struct Snapshots {
    dir: PathBuf,
    tmp: PathBuf,
}

impl Snapshots {
    /// Opens the snapshot dirs and clears `tmp/` (interrupted unpacks and removals); only called
    /// with the store's exclusive lock held, so nothing else is using it.
    pub fn open(root: &Path) -> Result<Snapshots, ImageError> {
        let snapshots = Snapshots {
            dir: root.join("snapshots"),
            tmp: root.join("tmp"),
        };
        for dir in [&snapshots.dir, &snapshots.tmp] {
            fs::create_dir_all(dir).map_err(|e| ImageError::io("create", dir, e))?;
        }
        if let Ok(read) = fs::read_dir(&snapshots.tmp) {
            for entry in read.flatten() {
                remove_tree(&entry.path());
            }
        }
        Ok(snapshots)
    }

    pub fn path(&self, chain_id: &str) -> PathBuf {
        self.dir.join(chain_id.trim_start_matches("sha256:"))
    }

    pub fn exists(&self, chain_id: &str) -> bool {
        fs::symlink_metadata(self.path(chain_id)).is_ok_and(|m| m.is_dir())
    }

    /// The chain ids of every snapshot on disk.
    pub fn list(&self) -> Result<Vec<String>, ImageError> {
        let read = fs::read_dir(&self.dir).map_err(|e| ImageError::io("list", &self.dir, e))?;
        Ok(read
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .map(|hex| format!("sha256:{hex}"))
            .collect())
    }

    /// Unpacks the layer blob at `blob` into the snapshot of `layer.chain_id`, unless it exists.
    pub fn unpack_layer(&self, blob: &Path, layer: &LayerRecord) -> Result<(), ImageError> {
        if self.exists(&layer.chain_id) {
            return Ok(());
        }
        let tmp = self.temp_path("unpack");
        fs::create_dir(&tmp).map_err(|e| ImageError::io("create", &tmp, e))?;
        let result = self.unpack_into(blob, layer, &tmp);
        if result.is_err() {
            remove_tree(&tmp);
            return result;
        }
        let dest = self.path(&layer.chain_id);
        match fs::rename(&tmp, &dest) {
            Ok(()) => sync_dir(&self.dir),
            // Another pull of an image sharing the layer got there first: same content.
            Err(e) if dest.is_dir() => {
                tracing::debug!(
                    layer = %layer.digest,
                    error = %e,
                    "snapshot unpacked concurrently"
                );
                remove_tree(&tmp);
                Ok(())
            }
            Err(e) => {
                remove_tree(&tmp);
                Err(ImageError::io("rename the unpacked layer to", dest, e))
            }
        }
    }

    fn unpack_into(&self, blob: &Path, layer: &LayerRecord, tmp: &Path) -> Result<(), ImageError> {
        let file = File::open(blob).map_err(|e| ImageError::io("open", blob, e))?;
        let layer_err = |cause: String| ImageError::Layer {
            digest: layer.digest.clone(),
            cause,
        };
        let decompressed: Box<dyn Read> = match compression(&layer.media_type) {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file))),
            Compression::Zstd => {
                Box::new(zstd::Decoder::new(file).map_err(|e| layer_err(format!("zstd: {e}")))?)
            }
            Compression::None => Box::new(BufReader::new(file)),
        };
        let mut hashing = HashingReader {
            inner: decompressed,
            hasher: Sha256::new(),
        };
        let unpacked = unpack(&mut hashing, tmp);
        // The diff id covers the whole uncompressed stream, tar padding after the end marker too;
        // a mismatch explains a broken tar better than the tar error does, so it is checked first.
        io::copy(&mut hashing, &mut io::sink())
            .map_err(|e| layer_err(format!("decompress: {e}")))?;
        let actual = format!("sha256:{}", hex::encode(hashing.hasher.finalize()));
        if actual != layer.diff_id {
            return Err(ImageError::DiffIdMismatch {
                digest: layer.digest.clone(),
                expected: layer.diff_id.clone(),
                actual,
            });
        }
        unpacked?;
        // The rename must not become durable before the files it publishes.
        let dir = File::open(tmp).map_err(|e| ImageError::io("open", tmp, e))?;
        rustix::fs::syncfs(&dir).map_err(|e| rio("sync the file system of", tmp, e))
    }

    /// Moves the snapshot out of `snapshots/` (quick, so callers may hold a lock); the returned
    /// path is deleted later with [`remove_tree`].
    pub fn take(&self, chain_id: &str) -> Option<PathBuf> {
        let dest = self.temp_path("remove");
        fs::rename(self.path(chain_id), &dest).ok().map(|()| dest)
    }

    fn temp_path(&self, what: &str) -> PathBuf {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.tmp.join(format!("{what}-{}-{n}", std::process::id()))
    }
}

/// Removes a directory tree, logging (not failing) when it cannot: a leftover is cleared at the
/// next start, and the caller's operation already succeeded.
pub(crate) fn remove_tree(path: &Path) {
    if let Err(e) = fs::remove_dir_all(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove");
    }
}

fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ImageError::io("sync", dir, e))
}

enum Compression {
    Gzip,
    Zstd,
    None,
}

fn compression(media_type: &str) -> Compression {
    if media_type.ends_with("gzip") {
        Compression::Gzip
    } else if media_type.ends_with("zstd") {
        Compression::Zstd
    } else {
        Compression::None
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Chain ids as the OCI image spec defines them: the first layer's is its diff id, each next
/// one is the digest of `PARENT_CHAIN_ID DIFF_ID`.
pub(crate) fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => diff_id.clone(),
            Some(parent) => digest_of(format!("{parent} {diff_id}").as_bytes()),
        };
        chain.push(next);
    }
    chain
}
