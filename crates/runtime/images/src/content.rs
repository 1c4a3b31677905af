//! The content store: blobs at `blobs/sha256/HEX`, each written through a temp file in `ingest/`
//! and renamed into place only once its digest and size are verified, so a reader never sees a
//! half-written or corrupt blob, whatever went wrong (a dropped connection, a full disk).

use crate::error::ImageError;
use crate::reference::is_digest;
use sha2::{Digest as _, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Debug)]
pub(crate) struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

impl ContentStore {
    pub fn open(root: &Path) -> Result<ContentStore, ImageError> {
        let store = ContentStore {
            blobs: root.join("blobs/sha256"),
            ingest: root.join("ingest"),
        };
        for dir in [&store.blobs, &store.ingest] {
            fs::create_dir_all(dir).map_err(|e| ImageError::io("create", dir, e))?;
        }
        Ok(store)
    }

    /// `blobs/sha256/HEX` for `sha256:HEX` (the digest must be valid).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.blobs.join(digest.trim_start_matches("sha256:"))
    }

    /// True when the blob is stored, with `size` bytes when a size is given.
    pub fn has(&self, digest: &str, size: Option<u64>) -> bool {
        is_digest(digest)
            && fs::symlink_metadata(self.blob_path(digest))
                .is_ok_and(|m| m.is_file() && size.is_none_or(|s| s == m.len()))
    }

    /// Reads a small blob (a manifest, an index, a config) whole.
    pub fn read(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        if !is_digest(digest) {
            return Err(ImageError::Invalid {
                what: "digest",
                digest: digest.to_string(),
                cause: "not sha256:<64 hex digits>".into(),
            });
        }
        let path = self.blob_path(digest);
        fs::read(&path).map_err(|e| ImageError::io("read blob", path, e))
    }

    /// Stores `bytes`, checked against `expected` when given; returns the digest.
    pub fn write(&self, bytes: &[u8], expected: Option<&str>) -> Result<String, ImageError> {
        let mut ingest = self.ingest()?;
        ingest.write(bytes)?;
        ingest.commit(expected, Some(bytes.len() as u64))
    }

    /// A new temp file in `ingest/` to stream a blob into.
    pub fn ingest(&self) -> Result<Ingest, ImageError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = self.ingest.join(format!("{}-{n}", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| ImageError::io("create", &path, e))?;
        Ok(Ingest {
            file,
            path,
            store: self.clone(),
            hasher: Sha256::new(),
            size: 0,
            done: false,
        })
    }

    /// Every stored blob's digest.
    pub fn list(&self) -> Result<Vec<String>, ImageError> {
        let read = fs::read_dir(&self.blobs).map_err(|e| ImageError::io("list", &self.blobs, e))?;
        Ok(read
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .map(|hex| format!("sha256:{hex}"))
            .filter(|d| is_digest(d))
            .collect())
    }

    pub fn remove(&self, digest: &str) -> Result<(), ImageError> {
        let path = self.blob_path(digest);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(ImageError::io("remove blob", path, e))
            }
            _ => Ok(()),
        }
    }

    /// Removes temp files that interrupted ingests left; only called with the store's exclusive
    /// lock held, so no ingest is running in any process.
    pub fn clear_ingest(&self) {
        if let Ok(read) = fs::read_dir(&self.ingest) {
            for entry in read.flatten() {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// A blob being written. Dropped without [`Ingest::commit`], its temp file is removed.
pub(crate) struct Ingest {
    file: File,
    path: PathBuf,
    store: ContentStore,
    hasher: Sha256,
    size: u64,
    done: bool,
}

impl Ingest {
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), ImageError> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        self.file
            .write_all(bytes)
            .map_err(|e| ImageError::io("write", &self.path, e))
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Verifies the content against `expected` digest and size (when given), makes it durable
    /// and renames it into `blobs/`. Returns the digest.
    pub fn commit(
        mut self,
        expected: Option<&str>,
        expected_size: Option<u64>,
    ) -> Result<String, ImageError> {
        let actual = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
        let name = expected.unwrap_or(&actual).to_string();
        if let Some(size) = expected_size
            && size != self.size
        {
            return Err(ImageError::SizeMismatch {
                digest: name,
                expected: size,
                actual: self.size,
            });
        }
        if expected.is_some_and(|e| e != actual) {
            return Err(ImageError::DigestMismatch {
                digest: name,
                actual,
            });
        }
        self.file
            .sync_all()
            .map_err(|e| ImageError::io("sync", &self.path, e))?;
        let dest = self.store.blob_path(&actual);
        fs::rename(&self.path, &dest).map_err(|e| ImageError::io("commit blob", &dest, e))?;
        self.done = true;
        if let Some(dir) = dest.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| ImageError::io("sync", dir, e))?;
        }
        Ok(actual)
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The sha256 digest of `bytes`, as `sha256:HEX`.
pub(crate) fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_is_visible_only_once_verified() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ContentStore::open(tmp.path()).unwrap();
        let good = digest_of(b"hello");
        assert_eq!(store.write(b"hello", Some(&good)).unwrap(), good);
        assert!(store.has(&good, Some(5)));
        assert!(!store.has(&good, Some(6)));

        let wrong = digest_of(b"other");
        let err = store.write(b"hello!", Some(&wrong)).unwrap_err();
        assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
        let mut short = store.ingest().unwrap();
        short.write(b"hell").unwrap();
        let err = short.commit(Some(&good), Some(5)).unwrap_err();
        assert!(matches!(err, ImageError::SizeMismatch { .. }), "{err}");
        let mut ingest = store.ingest().unwrap();
        ingest.write(b"hellp").unwrap();
        let err = ingest.commit(Some(&wrong), Some(5)).unwrap_err();
        assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
        assert!(!store.has(&wrong, None));
        assert_eq!(store.list().unwrap(), vec![good]);
        assert_eq!(fs::read_dir(tmp.path().join("ingest")).unwrap().count(), 0);
    }
}
