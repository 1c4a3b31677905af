//! The built-in runtime's state on disk: records written so that a crash at any instant leaves
//! either the old or the new version, and read back so that one bad record stops nothing.
//!
//! Every record (a sandbox, a container, an image) is one JSON file in a [`RecordDir`]. Writes go
//! to a temporary file in the same directory, are fsynced, renamed over the record and the
//! directory is fsynced, so the rename is durable too. A record that fails to parse on load is
//! moved to the directory's `quarantine/` folder and reported, never a reason to stop.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use thiserror::Error;

/// An error reading or writing a record, naming the file.
#[derive(Debug, Error)]
pub enum StateError {
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot encode the record for {path}: {source}")]
    Encode {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("invalid record id {id:?}: ids are non-empty and hold only [A-Za-z0-9_.-]")]
    InvalidId { id: String },
}

/// Suffix of the temporary files a write goes through; they are never records.
const TEMP_SUFFIX: &str = ".tmp";
const QUARANTINE: &str = "quarantine";

/// Writes `bytes` to `path` atomically and durably: temp file, fsync, rename, fsync of the dir.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let err = |source| StateError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = temp_path(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(err)
}

/// A temp name unique within this process, so concurrent writers of one path never collide.
fn temp_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{n}{TEMP_SUFFIX}", std::process::id()));
    path.with_file_name(name)
}

/// Removes the temporary files that writes interrupted by a crash left in `dir`. Only for a
/// directory no other process writes to; best effort (a missing dir has none).
pub fn remove_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().ends_with(TEMP_SUFFIX) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// A directory of JSON records, one file `ID.json` per record.
#[derive(Clone, Debug)]
pub struct RecordDir {
    dir: PathBuf,
}

impl RecordDir {
    /// Opens (creating) the directory and removes temporary files left by an interrupted write.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StateError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| StateError::Write {
            path: dir.clone(),
            source,
        })?;
        remove_temp_files(&dir);
        Ok(RecordDir { dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn record_path(&self, id: &str) -> Result<PathBuf, StateError> {
        let valid = !id.is_empty()
            && id != "."
            && id != ".."
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid {
            return Err(StateError::InvalidId { id: id.to_string() });
        }
        Ok(self.dir.join(format!("{id}.json")))
    }

    /// Writes the record `id` atomically, replacing any older version.
    pub fn save<T: Serialize>(&self, id: &str, record: &T) -> Result<(), StateError> {
        let path = self.record_path(id)?;
        let bytes = serde_json::to_vec(record).map_err(|source| StateError::Encode {
            path: path.clone(),
            source,
        })?;
        write_atomic(&path, &bytes)
    }

    /// Removes the record `id`; a record that is already gone is not an error.
    pub fn remove(&self, id: &str) -> Result<(), StateError> {
        let path = self.record_path(id)?;
        match fs::remove_file(&path) {
            Ok(()) => File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|source| StateError::Write { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Write { path, source }),
        }
    }

    /// Every record that parses, sorted by id. A record that does not parse is moved to
    /// `quarantine/` and logged with its path and the cause.
    pub fn load_all<T: DeserializeOwned>(&self) -> Result<Vec<(String, T)>, StateError> {
        let mut records = Vec::new();
        for path in self.entries()? {
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .map(str::to_string)
            else {
                continue;
            };
            let parsed = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| serde_json::from_slice::<T>(&bytes).map_err(|e| e.to_string()));
            match parsed {
                Ok(record) => records.push((id, record)),
                Err(cause) => self.quarantine(&path, &cause),
            }
        }
        records.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(records)
    }

    fn quarantine(&self, path: &Path, cause: &str) {
        let dest_dir = self.dir.join(QUARANTINE);
        let dest = dest_dir.join(path.file_name().unwrap_or_default());
        let moved = fs::create_dir_all(&dest_dir).and_then(|()| fs::rename(path, &dest));
        match moved {
            Ok(()) => tracing::error!(
                record = %path.display(),
                moved_to = %dest.display(),
                %cause,
                "corrupt state record quarantined"
            ),
            Err(e) => tracing::error!(
                record = %path.display(),
                %cause,
                error = %e,
                "corrupt state record could not be quarantined; ignoring it"
            ),
        }
    }

    fn entries(&self) -> Result<Vec<PathBuf>, StateError> {
        let read = fs::read_dir(&self.dir).map_err(|source| StateError::Read {
            path: self.dir.clone(),
            source,
        })?;
        let mut paths = Vec::new();
        for entry in read {
            let entry = entry.map_err(|source| StateError::Read {
                path: self.dir.clone(),
                source,
            })?;
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                paths.push(entry.path());
            }
        }
        Ok(paths)
    }
}

#[cfg(test)]
mod tests;
