//! The logind drop-in that raises InhibitDelayMaxSec to the shutdown grace period (upstream
//! OverrideInhibitDelay): logind caps every delay lock at that value, 5 s by default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ShutdownError;

/// The drop-in's file name; 99 so it wins over the distribution's own drop-ins.
pub const KUBELET_LOGIND_CONF: &str = "99-kubelet.conf";

/// Writes `dir/99-kubelet.conf` setting InhibitDelayMaxSec to `delay` (rounded to seconds),
/// creating `dir` when needed.
pub(crate) fn write_override(dir: &Path, delay: Duration) -> Result<PathBuf, ShutdownError> {
    let path = dir.join(KUBELET_LOGIND_CONF);
    let write_error = |source| ShutdownError::WriteOverride {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(write_error)?;
    let contents = format!(
        "# Kubelet logind override\n[Login]\nInhibitDelayMaxSec={:.0}\n",
        delay.as_secs_f64()
    );
    std::fs::write(&path, contents).map_err(write_error)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_drop_in_creating_its_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("logind.conf.d");
        let path = write_override(&dir, Duration::from_secs(45)).unwrap();
        assert_eq!(path, dir.join("99-kubelet.conf"));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# Kubelet logind override\n[Login]\nInhibitDelayMaxSec=45\n"
        );
    }

    #[test]
    fn an_unwritable_dir_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let blocker = tmp.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let err = write_override(&blocker, Duration::from_secs(1)).unwrap_err();
        assert!(
            err.to_string()
                .contains(&*blocker.join(KUBELET_LOGIND_CONF).to_string_lossy()),
            "{err}"
        );
    }
}
