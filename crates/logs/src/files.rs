//! The files of one container log on disk: the live file (e.g. `.../app/0.log`), its rotated
//! copies `0.log.<timestamp>`, their compressed forms `0.log.<timestamp>.gz`, and the `.tmp`
//! leftovers of an interrupted compression.

use crate::error::{FileError, LogError};
use flate2::Compression;
use flate2::write::GzEncoder;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Go's "20060102-150405", the suffix upstream gives rotated logs.
const TIMESTAMP_FORMAT: &str = "%Y%m%d-%H%M%S";
const COMPRESSED_SUFFIX: &str = ".gz";
const TMP_SUFFIX: &str = ".tmp";

/// The files in `log`'s folder whose names start with `log`'s name followed by `suffix_start`,
/// sorted by name. For rotated copies the name order is the age order, oldest first, because
/// the timestamp suffix sorts as it counts.
pub(crate) fn files_starting_with(
    log: &Path,
    suffix_start: &str,
) -> Result<Vec<PathBuf>, FileError> {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name()) else {
        return Ok(Vec::new());
    };
    let mut prefix = OsString::from(name);
    prefix.push(suffix_start);
    let prefix = prefix.as_encoded_bytes();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FileError::new("listing", dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| FileError::new("listing", dir, e))?;
        if entry.file_name().as_encoded_bytes().starts_with(prefix) {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// Where the live log goes when rotated at `now`: `<log>.<UTC timestamp>`.
pub(crate) fn rotated_path(log: &Path, now: SystemTime) -> Result<PathBuf, LogError> {
    let timestamp = jiff::Timestamp::try_from(now).map_err(|_| LogError::ClockOutOfRange(now))?;
    let mut path = log.as_os_str().to_owned();
    path.push(".");
    path.push(timestamp.strftime(TIMESTAMP_FORMAT).to_string());
    Ok(path.into())
}

/// Makes room for the copy the coming rotation adds: drops leftovers, keeps the newest
/// `max_files - 2` rotated copies (with the copy about to be made and the runtime's new live
/// file that makes `max_files`), and gzips those kept that are still plain.
pub(crate) fn prepare_rotation(log: &Path, max_files: u32) -> Result<(), FileError> {
    let rotated = files_starting_with(log, ".")?;
    let (in_use, unused): (Vec<_>, Vec<_>) = rotated
        .iter()
        .cloned()
        .partition(|file| is_in_use(file, &rotated));
    for file in &unused {
        remove(file, "removing unused log")?;
    }
    let keep = usize::try_from(max_files.saturating_sub(2)).unwrap_or(usize::MAX);
    let excess = in_use.len().saturating_sub(keep);
    // Oldest first, so a reader following the files (kubectl logs) loses as little as possible.
    for file in &in_use[..excess] {
        remove(file, "removing old log")?;
    }
    for file in &in_use[excess..] {
        if !has_suffix(file, COMPRESSED_SUFFIX) {
            compress(file)?;
        }
    }
    Ok(())
}

/// A temporary file is an interrupted compression; a plain copy whose `.gz` exists is one that
/// was compressed but not yet removed. Neither holds log lines that are not elsewhere.
fn is_in_use(file: &Path, all: &[PathBuf]) -> bool {
    if has_suffix(file, TMP_SUFFIX) {
        return false;
    }
    if has_suffix(file, COMPRESSED_SUFFIX) {
        return true;
    }
    let compressed = with_suffix(file, COMPRESSED_SUFFIX);
    !all.contains(&compressed)
}

/// Gzips `file` into `<file>.gz`, then removes `file`. It writes `<file>.tmp` first, so a
/// crash mid-way leaves only a leftover that the next rotation removes.
fn compress(file: &Path) -> Result<(), FileError> {
    let tmp = with_suffix(file, TMP_SUFFIX);
    let result = write_compressed(file, &tmp);
    if result.is_err() {
        // Best effort: a leftover is removed by the next rotation anyway.
        let _ = fs::remove_file(&tmp);
    }
    result?;
    let compressed = with_suffix(file, COMPRESSED_SUFFIX);
    fs::rename(&tmp, &compressed).map_err(|e| FileError::new("renaming", &tmp, e))?;
    remove(file, "removing compressed log")
}

fn write_compressed(file: &Path, tmp: &Path) -> Result<(), FileError> {
    let mut input = fs::File::open(file).map_err(|e| FileError::new("opening", file, e))?;
    let permissions = input
        .metadata()
        .map_err(|e| FileError::new("reading metadata of", file, e))?
        .permissions();
    let output = fs::File::create(tmp).map_err(|e| FileError::new("creating", tmp, e))?;
    output
        .set_permissions(permissions)
        .map_err(|e| FileError::new("setting permissions of", tmp, e))?;
    let mut encoder = GzEncoder::new(output, Compression::default());
    io::copy(&mut input, &mut encoder).map_err(|e| FileError::new("compressing", file, e))?;
    encoder
        .finish()
        .map_err(|e| FileError::new("compressing", file, e))?;
    Ok(())
}

/// Removes `file`; one already gone is fine (the runtime or a cleanup got there first).
pub(crate) fn remove(file: &Path, action: &'static str) -> Result<(), FileError> {
    match fs::remove_file(file) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(FileError::new(action, file, e)),
        _ => Ok(()),
    }
}

fn has_suffix(file: &Path, suffix: &str) -> bool {
    file.as_os_str()
        .as_encoded_bytes()
        .ends_with(suffix.as_bytes())
}

fn with_suffix(file: &Path, suffix: &str) -> PathBuf {
    let mut path = file.as_os_str().to_owned();
    path.push(suffix);
    path.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;
    use std::time::Duration;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn rotated_path_uses_utc_go_layout() {
        // 2024-03-05T07:08:09Z
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_622_489);
        let path = rotated_path(Path::new("/logs/app/0.log"), now).unwrap();
        assert_eq!(path, Path::new("/logs/app/0.log.20240305-070809"));
    }

    #[test]
    fn lists_only_files_derived_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "0.log",
            "0.log.20240101-000000",
            "0.log.20240101-000001.gz",
            "1.log",
            "0.logx",
        ] {
            fs::write(dir.path().join(name), "x").unwrap();
        }
        let found = files_starting_with(&dir.path().join("0.log"), ".").unwrap();
        assert_eq!(
            found,
            vec![
                dir.path().join("0.log.20240101-000000"),
                dir.path().join("0.log.20240101-000001.gz"),
            ]
        );
    }

    #[test]
    fn prepare_removes_leftovers_and_oldest_and_compresses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        fs::write(&log, "live").unwrap();
        fs::write(dir.path().join("0.log.20240101-000001.gz"), "old").unwrap();
        fs::write(dir.path().join("0.log.20240101-000002"), "half compressed").unwrap();
        fs::write(dir.path().join("0.log.20240101-000002.gz"), "compressed").unwrap();
        fs::write(dir.path().join("0.log.20240101-000003.tmp"), "interrupted").unwrap();
        fs::write(dir.path().join("0.log.20240101-000003"), "newest rotated").unwrap();

        prepare_rotation(&log, 4).unwrap();

        assert_eq!(
            names(dir.path()),
            [
                "0.log",
                "0.log.20240101-000002.gz",
                "0.log.20240101-000003.gz"
            ]
        );
        let mut text = String::new();
        GzDecoder::new(fs::File::open(dir.path().join("0.log.20240101-000003.gz")).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "newest rotated");
    }

    #[test]
    fn prepare_with_two_files_keeps_no_rotated_copy() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        fs::write(&log, "live").unwrap();
        fs::write(dir.path().join("0.log.20240101-000001"), "rotated").unwrap();

        prepare_rotation(&log, 2).unwrap();

        assert_eq!(names(dir.path()), ["0.log"]);
    }
}
