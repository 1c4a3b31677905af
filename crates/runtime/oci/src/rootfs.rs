//! Reading files of a container's root file system from the host: every symlink is resolved as
//! the container would see it, inside the rootfs, so an image cannot point us at host files.

use crate::SpecError;
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// Symlinks followed before a path is given up as a loop (Linux's own limit).
const MAX_SYMLINKS: usize = 40;
/// /etc/passwd and /etc/group larger than this are refused rather than read into memory.
const MAX_FILE: u64 = 16 << 20;

/// Resolves `path` (taken as absolute inside the container) to a host path beneath `root`.
pub(crate) fn resolve_in_root(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let mut pending: Vec<std::ffi::OsString> = components(path);
    pending.reverse();
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = root.join(&resolved).join(&part);
        match fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::other(format!(
                        "too many symlinks resolving {}",
                        path.display()
                    )));
                }
                let target = fs::read_link(&candidate)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                let mut more = components(&target);
                more.reverse();
                pending.extend(more);
            }
            // A missing component ends the walk: the caller sees NotFound on the full path.
            Ok(_) | Err(_) => resolved.push(&part),
        }
    }
    Ok(root.join(resolved))
}

fn components(path: &Path) -> Vec<std::ffi::OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// The text of a file inside the rootfs; None when it does not exist.
pub(crate) fn read_in_root(root: &Path, path: &str) -> Result<Option<String>, SpecError> {
    let host = resolve_in_root(root, Path::new(path)).map_err(|source| SpecError::RootfsFile {
        path: root.join(path),
        source,
    })?;
    let err = |source| SpecError::RootfsFile {
        path: host.clone(),
        source,
    };
    let file = match fs::File::open(&host) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(err(io::Error::other(format!(
            "larger than {MAX_FILE} bytes"
        ))));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}
