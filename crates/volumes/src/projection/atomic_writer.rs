//! Upstream's AtomicWriter: a volume's files change all at once. The payload is written to a
//! fresh timestamped directory, then the `..data` symlink is switched to it with one rename, so a
//! reader sees either the whole old set or the whole new one. Users see `key -> ..data/key`.
//!
//! ```text
//! TARGET/..data -> ..2026_11_23_16_48_21.3927461538
//! TARGET/..2026_11_23_16_48_21.3927461538/key
//! TARGET/key -> ..data/key
//! ```

use super::{FileProjection, Payload};
use crate::error::{PathIo, SetupError};
use nix::fcntl::OFlag;
use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::hash::{BuildHasher, RandomState};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Component, Path};

const DATA_DIR: &str = "..data";
const NEW_DATA_DIR: &str = "..data_tmp";
const MAX_FILE_NAME_LENGTH: usize = 255;
const MAX_PATH_LENGTH: usize = 4096;
/// Group and others must be able to walk the tree to reach files their mode lets them read.
const DIR_MODE: u32 = 0o755;

/// Checks every path of a payload (upstream's validatePath) and returns it keyed by the cleaned
/// paths: nothing may name a place outside the volume or the writer's own `..` entries.
pub(crate) fn validate(payload: Payload) -> Result<Payload, SetupError> {
    payload
        .into_iter()
        .map(|(path, file)| Ok((clean(&path)?, file)))
        .collect()
}

fn clean(path: &str) -> Result<String, SetupError> {
    let invalid = |why: String| Err(SetupError::InvalidPath(why));
    if path.is_empty() {
        return invalid(format!("must not be empty: {path:?}"));
    }
    if path.starts_with('/') {
        return invalid(format!("must be relative path: {path}"));
    }
    if path.len() > MAX_PATH_LENGTH {
        return invalid(format!(
            "must be less than or equal to {MAX_PATH_LENGTH} characters"
        ));
    }
    let items: Vec<&str> = path.split('/').collect();
    for item in &items {
        if *item == ".." {
            return invalid(format!("must not contain '..': {path}"));
        }
        if item.len() > MAX_FILE_NAME_LENGTH {
            return invalid(format!(
                "filenames must be less than or equal to {MAX_FILE_NAME_LENGTH} characters"
            ));
        }
    }
    let kept: Vec<&str> = items
        .into_iter()
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    match kept.first() {
        None => invalid(format!("must name a file: {path}")),
        // Checked after cleaning too, so "./..data" cannot reach the writer's own entries.
        Some(first) if first.starts_with("..") => {
            invalid(format!("must not start with '..': {path}"))
        }
        Some(_) => Ok(kept.join("/")),
    }
}

/// Whether a payload was written here before (the `..data` link exists).
pub(crate) fn is_written(target: &Path) -> bool {
    fs::read_link(target.join(DATA_DIR)).is_ok()
}

/// Writes a validated payload into `target`, an existing directory. Returns whether anything
/// changed: an unchanged payload costs a readlink, a directory walk and reading each file.
pub(crate) fn write(target: &Path, payload: &Payload) -> Result<bool, SetupError> {
    let old = current_dir(target)?;
    if let Some(old) = &old
        && !differs(&target.join(old), payload)?
    {
        link_user_visible(target, payload)?;
        return Ok(false);
    }
    let new = new_timestamp_dir(target)?;
    let new_path = target.join(&new);
    let swapped = write_files(&new_path, payload)
        .and_then(|()| link_user_visible(target, payload))
        .and_then(|()| swap_data_dir(target, &new));
    if let Err(e) = swapped {
        if let Err(error) = fs::remove_dir_all(&new_path) {
            tracing::warn!(path = %new_path.display(), %error, "cannot remove an unused data directory");
        }
        return Err(e);
    }
    remove_stale(target, &new, payload)?;
    tracing::debug!(target = %target.display(), data = %new, old = ?old, "volume payload written");
    Ok(true)
}

/// The timestamped directory `..data` names, when it is one of ours.
fn current_dir(target: &Path) -> Result<Option<String>, SetupError> {
    let link = target.join(DATA_DIR);
    match fs::read_link(&link) {
        Ok(dest) => Ok(dest
            .to_str()
            .filter(|d| is_timestamp_dir(d) && !d.contains('/'))
            .map(str::to_owned)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PathIo::new("read the link", link, e).into()),
    }
}

fn is_timestamp_dir(name: &str) -> bool {
    name.starts_with("..") && name != DATA_DIR && name != NEW_DATA_DIR && name.len() > 2
}

/// Whether the payload differs from what `dir` holds: another set of files, or a file with other
/// bytes or another mode.
fn differs(dir: &Path, payload: &Payload) -> Result<bool, SetupError> {
    let mut on_disk = BTreeSet::new();
    if !list_files(dir, String::new(), &mut on_disk)? {
        return Ok(true);
    }
    if on_disk.len() != payload.len() || payload.keys().any(|k| !on_disk.contains(k)) {
        return Ok(true);
    }
    for (path, file) in payload {
        if !same_file(&dir.join(path), file)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Collects the regular files below `dir` as relative paths; false when `dir` is gone.
fn list_files(dir: &Path, prefix: String, out: &mut BTreeSet<String>) -> Result<bool, SetupError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(PathIo::new("list", dir, e).into()),
    };
    for entry in entries {
        let entry = entry.map_err(|e| PathIo::new("list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry
            .file_type()
            .map_err(|e| PathIo::new("inspect", entry.path(), e))?;
        if kind.is_dir() {
            list_files(&entry.path(), relative, out)?;
        } else {
            out.insert(relative);
        }
    }
    Ok(true)
}

fn same_file(path: &Path, file: &FileProjection) -> Result<bool, SetupError> {
    let mut opened = match OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(path)
    {
        Ok(f) => f,
        // Gone, or not a file of ours (a symlink refuses O_NOFOLLOW): write anew.
        Err(_) => return Ok(false),
    };
    let meta = opened
        .metadata()
        .map_err(|e| PathIo::new("inspect", path, e))?;
    if !meta.is_file()
        || meta.permissions().mode() & 0o7777 != file.mode
        || meta.len() != file.data.len() as u64
    {
        return Ok(false);
    }
    let mut content = Vec::with_capacity(file.data.len());
    opened
        .read_to_end(&mut content)
        .map_err(|e| PathIo::new("read", path, e))?;
    Ok(content == file.data)
}

/// `..YYYY_MM_DD_HH_MM_SS.N` (UTC, N random), created with mode 0755 whatever the umask.
fn new_timestamp_dir(target: &Path) -> Result<String, SetupError> {
    let stamp = k8s_openapi::jiff::Timestamp::now().strftime("..%Y_%m_%d_%H_%M_%S.");
    let random = RandomState::new();
    for attempt in 0u32.. {
        let name = format!("{stamp}{}", random.hash_one(attempt) as u32);
        let path = target.join(&name);
        match fs::DirBuilder::new().mode(DIR_MODE).create(&path) {
            Ok(()) => {
                fs::set_permissions(&path, fs::Permissions::from_mode(DIR_MODE))
                    .map_err(|e| PathIo::new("set the mode of", &path, e))?;
                return Ok(name);
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists && attempt < 100 => continue,
            Err(e) => return Err(PathIo::new("create directory", path, e).into()),
        }
    }
    unreachable!("the loop returns on every path after 100 attempts")
}

/// Writes every file with exactly its mode, into a directory only this writer has seen.
fn write_files(dir: &Path, payload: &Payload) -> Result<(), SetupError> {
    for (relative, file) in payload {
        let path = dir.join(relative);
        if let Some(parent) = path.parent().filter(|p| *p != dir) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(parent)
                .map_err(|e| PathIo::new("create directory", parent, e))?;
        }
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(OFlag::O_NOFOLLOW.bits())
            .mode(file.mode)
            .open(&path)
            .map_err(|e| PathIo::new("create file", &path, e))?;
        out.write_all(&file.data)
            .map_err(|e| PathIo::new("write", &path, e))?;
        // The umask narrowed the mode at creation.
        out.set_permissions(fs::Permissions::from_mode(file.mode))
            .map_err(|e| PathIo::new("set the mode of", &path, e))?;
    }
    Ok(())
}

/// The top-level names of the payload: `a` for both `a` and `a/b/c`.
fn top_level(payload: &Payload) -> BTreeSet<&str> {
    payload
        .keys()
        .map(|k| k.split('/').next().unwrap_or(k))
        .collect()
}

/// `name -> ..data/name` for every top-level name that has no entry yet.
fn link_user_visible(target: &Path, payload: &Payload) -> Result<(), SetupError> {
    for name in top_level(payload) {
        let visible = target.join(name);
        match fs::symlink_metadata(&visible) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                symlink(Path::new(DATA_DIR).join(name), &visible)
                    .map_err(|e| PathIo::new("create the link", &visible, e))?;
            }
            Err(e) => return Err(PathIo::new("inspect", visible, e).into()),
        }
    }
    Ok(())
}

/// The one step readers can observe: rename(2) replaces `..data` atomically.
fn swap_data_dir(target: &Path, new: &str) -> Result<(), SetupError> {
    let tmp = target.join(NEW_DATA_DIR);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(PathIo::new("remove", tmp, e).into()),
    }
    symlink(new, &tmp).map_err(|e| PathIo::new("create the link", &tmp, e))?;
    let data = target.join(DATA_DIR);
    if let Err(e) = fs::rename(&tmp, &data) {
        let _ = fs::remove_file(&tmp);
        return Err(PathIo::new("rename the link onto", data, e).into());
    }
    Ok(())
}

/// After the swap: user-visible links to names the payload no longer has, and every data
/// directory but the current one (the previous one, and any an interrupted write left).
fn remove_stale(target: &Path, current: &str, payload: &Payload) -> Result<(), SetupError> {
    let wanted = top_level(payload);
    let entries = fs::read_dir(target).map_err(|e| PathIo::new("list", target, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| PathIo::new("list", target, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| PathIo::new("inspect", &path, e))?;
        if is_timestamp_dir(&name) {
            if name != current && kind.is_dir() {
                remove_tree(&path)?;
            }
        } else if !name.starts_with("..")
            && !wanted.contains(name.as_str())
            && kind.is_symlink()
            && points_into_data_dir(&path)
        {
            fs::remove_file(&path).map_err(|e| PathIo::new("remove", &path, e))?;
        }
    }
    Ok(())
}

fn points_into_data_dir(link: &Path) -> bool {
    fs::read_link(link).is_ok_and(|dest| {
        let mut parts = dest.components();
        parts.next() == Some(Component::Normal(DATA_DIR.as_ref()))
    })
}

fn remove_tree(path: &Path) -> Result<(), SetupError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PathIo::new("remove", path, e).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_or_refused_like_upstream() {
        assert_eq!(clean("a").unwrap(), "a");
        assert_eq!(clean("a//b/./c/").unwrap(), "a/b/c");
        assert_eq!(clean("./a").unwrap(), "a");
        assert_eq!(clean("a/..b").unwrap(), "a/..b");
        let refused = |p: &str| clean(p).unwrap_err().to_string();
        assert_eq!(refused(""), "invalid path: must not be empty: \"\"");
        assert_eq!(
            refused("/etc/passwd"),
            "invalid path: must be relative path: /etc/passwd"
        );
        assert_eq!(
            refused("a/../../x"),
            "invalid path: must not contain '..': a/../../x"
        );
        assert_eq!(refused(".."), "invalid path: must not contain '..': ..");
        assert_eq!(
            refused("..data"),
            "invalid path: must not start with '..': ..data"
        );
        assert_eq!(
            refused("..data/x"),
            "invalid path: must not start with '..': ..data/x"
        );
        assert_eq!(
            refused("./..data"),
            "invalid path: must not start with '..': ./..data"
        );
        assert_eq!(refused("."), "invalid path: must name a file: .");
        assert!(refused(&"x".repeat(256)).contains("255 characters"));
        assert!(refused(&"a/".repeat(2049)).contains("4096 characters"));
    }

    #[test]
    fn only_our_directories_count_as_data_directories() {
        assert!(is_timestamp_dir("..2026_11_23_16_48_21.42"));
        assert!(!is_timestamp_dir(DATA_DIR));
        assert!(!is_timestamp_dir(NEW_DATA_DIR));
        assert!(!is_timestamp_dir(".."));
        assert!(!is_timestamp_dir("key"));
    }
}
