//! The /var/log/containers symlinks: one `<pod>_<namespace>_<container>-<id>.log` link per
//! container, pointing at its log under /var/log/pods. Log shippers discover containers there.

use crate::error::{FileError, LogError};
use crate::files::remove;
use kubelet_cri::RuntimeService;
use kubelet_cri::api::ContainerState;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use tracing::{debug, info, warn};

const LOG_SUFFIX: &str = ".log";
/// ext4's limit on one file name; upstream cuts longer names to fit.
const MAX_FILE_NAME_LEN: usize = 255;
/// The runtime finds a container by an id prefix this long; shorter tails are not ids.
const MIN_CONTAINER_ID_LEN: usize = 6;

/// The symlink's file name, cut to 255 bytes as upstream does (the `.log` suffix is kept).
pub fn symlink_name(
    pod_name: &str,
    pod_namespace: &str,
    container_name: &str,
    container_id: &str,
) -> String {
    let mut stem = format!("{pod_name}_{pod_namespace}_{container_name}-{container_id}");
    let mut len = MAX_FILE_NAME_LEN - LOG_SUFFIX.len();
    if stem.len() > len {
        while !stem.is_char_boundary(len) {
            len -= 1;
        }
        stem.truncate(len);
    }
    stem + LOG_SUFFIX
}

/// The symlink's full path inside `symlink_dir`.
pub fn symlink_path(
    symlink_dir: &Path,
    pod_name: &str,
    pod_namespace: &str,
    container_name: &str,
    container_id: &str,
) -> PathBuf {
    symlink_dir.join(symlink_name(
        pod_name,
        pod_namespace,
        container_name,
        container_id,
    ))
}

/// Links the container's log into `symlink_dir`, making the folder if needed. Like upstream it
/// links nothing while the log does not exist yet; a link already there is replaced, so the call
/// is safe to repeat.
pub fn create_symlink(
    symlink_dir: &Path,
    pod_name: &str,
    pod_namespace: &str,
    container_name: &str,
    container_id: &str,
    log_path: &Path,
) -> Result<(), LogError> {
    match fs::metadata(log_path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            debug!(container_id, log_path = %log_path.display(), "container log does not exist, no symlink");
            return Ok(());
        }
        _ => {}
    }
    fs::create_dir_all(symlink_dir).map_err(|e| FileError::new("creating", symlink_dir, e))?;
    let link = symlink_path(
        symlink_dir,
        pod_name,
        pod_namespace,
        container_name,
        container_id,
    );
    match fs::read_link(&link) {
        Ok(target) if target == log_path => return Ok(()),
        Ok(_) => remove(&link, "replacing symlink")?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(FileError::new("reading symlink", &link, e).into()),
    }
    std::os::unix::fs::symlink(log_path, &link)
        .map_err(|e| FileError::new("creating symlink", &link, e))?;
    Ok(())
}

/// Removes every symlink in `symlink_dir` that belongs to `container_id`. A name cut to 255
/// bytes may have lost its id; [`remove_dangling_symlinks`] collects those once the log is gone.
pub fn remove_symlinks_for(symlink_dir: &Path, container_id: &str) -> Result<(), LogError> {
    let tail = format!("-{container_id}{LOG_SUFFIX}");
    for link in log_symlinks(symlink_dir)? {
        if link_name(&link).is_some_and(|name| name.ends_with(&tail)) {
            remove(&link, "removing symlink")?;
            debug!(container_id, link = %link.display(), "removed container log symlink");
        }
    }
    Ok(())
}

/// Removes the symlinks whose log is gone, as upstream's container GC does, and returns them.
/// A link of a container that is still known and not exited is kept: its log is only missing
/// for the moment a rotation takes.
pub async fn remove_dangling_symlinks(
    runtime: &dyn RuntimeService,
    symlink_dir: &Path,
) -> Result<Vec<PathBuf>, LogError> {
    let mut removed = Vec::new();
    for link in log_symlinks(symlink_dir)? {
        match fs::metadata(&link) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            _ => continue,
        }
        if let Some(container_id) = link_name(&link).and_then(container_id_of) {
            match runtime.container_status(container_id).await {
                Ok(status) if status.state != ContainerState::ContainerExited as i32 => {
                    debug!(container_id, link = %link.display(), "log missing while the container lives, keeping symlink");
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    debug!(container_id, error = %e, "no status for the container of a dangling symlink")
                }
            }
        }
        match remove(&link, "removing dangling symlink") {
            Ok(()) => {
                info!(link = %link.display(), "removed dangling container log symlink");
                removed.push(link);
            }
            // One link that will not go must not keep the others.
            Err(e) => warn!(error = %e, "cannot remove dangling container log symlink"),
        }
    }
    Ok(removed)
}

fn log_symlinks(symlink_dir: &Path) -> Result<Vec<PathBuf>, LogError> {
    let entries = match fs::read_dir(symlink_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FileError::new("listing", symlink_dir, e).into()),
    };
    let mut links = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| FileError::new("listing", symlink_dir, e))?;
        let path = entry.path();
        if link_name(&path).is_some_and(|name| name.ends_with(LOG_SUFFIX)) {
            links.push(path);
        }
    }
    Ok(links)
}

fn link_name(link: &Path) -> Option<&str> {
    link.file_name()?.to_str()
}

/// The id after the last `-` of a symlink name, as upstream parses it.
fn container_id_of(name: &str) -> Option<&str> {
    let id = name.rsplit('-').next()?.strip_suffix(LOG_SUFFIX)?;
    (id.len() >= MIN_CONTAINER_ID_LEN).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_joins_pod_namespace_container_and_id() {
        assert_eq!(
            symlink_name("web-0", "default", "nginx", "abcdef012345"),
            "web-0_default_nginx-abcdef012345.log"
        );
    }

    #[test]
    fn long_name_is_cut_to_255_bytes_keeping_the_suffix() {
        let pod = "p".repeat(300);
        let name = symlink_name(&pod, "ns", "c", "abcdef");
        assert_eq!(name.len(), 255);
        assert!(name.ends_with(&format!("{}.log", "p".repeat(10))));
    }

    #[test]
    fn container_id_is_the_tail_after_the_last_dash() {
        assert_eq!(
            container_id_of("web-0_default_nginx-abcdef012345.log"),
            Some("abcdef012345")
        );
        assert_eq!(container_id_of("web-0_default_nginx-abc.log"), None);
        assert_eq!(
            container_id_of("web-0_default_nginx-abcdef012345.txt"),
            None
        );
    }

    #[test]
    fn create_links_to_the_log_and_is_repeatable() {
        let dir = tempfile::tempdir().unwrap();
        let links = dir.path().join("containers");
        let log = dir.path().join("0.log");
        fs::write(&log, "line\n").unwrap();

        create_symlink(&links, "web", "default", "nginx", "abcdef0123", &log).unwrap();
        create_symlink(&links, "web", "default", "nginx", "abcdef0123", &log).unwrap();

        let link = links.join("web_default_nginx-abcdef0123.log");
        assert_eq!(fs::read_link(&link).unwrap(), log);
        assert_eq!(fs::read_to_string(&link).unwrap(), "line\n");
    }

    #[test]
    fn create_replaces_a_link_to_another_target() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.log");
        let log = dir.path().join("0.log");
        fs::write(&log, "").unwrap();
        std::os::unix::fs::symlink(&old, dir.path().join("web_default_nginx-abcdef0123.log"))
            .unwrap();

        create_symlink(dir.path(), "web", "default", "nginx", "abcdef0123", &log).unwrap();

        let link = dir.path().join("web_default_nginx-abcdef0123.log");
        assert_eq!(fs::read_link(link).unwrap(), log);
    }

    #[test]
    fn create_skips_a_log_that_does_not_exist() {
        let dir = tempfile::tempdir().unwrap();
        let links = dir.path().join("containers");

        create_symlink(
            &links,
            "web",
            "default",
            "nginx",
            "abcdef0123",
            &dir.path().join("0.log"),
        )
        .unwrap();

        assert!(!links.exists());
    }

    #[test]
    fn remove_for_takes_only_that_containers_links() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        fs::write(&log, "").unwrap();
        create_symlink(dir.path(), "web", "default", "nginx", "abcdef0123", &log).unwrap();
        create_symlink(dir.path(), "web", "default", "sidecar", "987654fedc", &log).unwrap();

        remove_symlinks_for(dir.path(), "abcdef0123").unwrap();
        remove_symlinks_for(dir.path(), "abcdef0123").unwrap();

        assert!(!dir.path().join("web_default_nginx-abcdef0123.log").exists());
        assert!(
            fs::symlink_metadata(dir.path().join("web_default_sidecar-987654fedc.log")).is_ok()
        );
    }

    #[test]
    fn remove_for_in_a_missing_folder_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        remove_symlinks_for(&dir.path().join("absent"), "abcdef0123").unwrap();
    }
}
