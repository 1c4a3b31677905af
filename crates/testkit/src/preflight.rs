//! What an integration test needs from the machine, checked up front so that a missing piece is
//! a clear failure rather than a confusing runtime error. Each check panics, naming what is
//! missing: the tests fail, never skip.

use std::path::Path;

/// Where the binaries may be even when PATH lacks the sbin directories (runc is in /usr/sbin).
const EXTRA_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin"];

/// The test runs as root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "integration tests need root (namespaces, mounts, runc and CNI do): run them as root, as scripts/test.sh does"
    );
}

/// Each of `names` is an executable on PATH or in the sbin directories.
pub fn require_binaries(names: &[&str]) {
    for name in names {
        assert!(
            on_path(name),
            "integration tests need {name}, which is not installed: run scripts/install-deps.sh"
        );
    }
}

/// Each of the CNI plugins `names` is in `dir`.
pub fn require_cni_plugins(dir: &Path, names: &[&str]) {
    for name in names {
        let plugin = dir.join(name);
        assert!(
            is_executable(&plugin),
            "integration tests need the CNI plugin {}, which is not installed: run scripts/install-deps.sh",
            plugin.display()
        );
    }
}

pub(crate) fn on_path(name: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(Into::into))
        .any(|dir| is_executable(&dir.join(name)))
}

fn is_executable(file: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    file.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
