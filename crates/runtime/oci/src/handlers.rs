//! Runtime handlers (RuntimeClass handler names) to OCI runtimes.

use crate::runtime::{OciError, OciRuntime};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The handler an empty CRI runtime_handler means.
pub const DEFAULT_HANDLER: &str = "runc";

/// Where binaries are looked for after $PATH: a daemon started with a thin environment still
/// finds Debian's /usr/sbin/runc.
const FALLBACK_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Handler name -> runtime; "" resolves to the default handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handlers {
    runtimes: BTreeMap<String, OciRuntime>,
    default: String,
}

impl Handlers {
    /// runc and crun, each when its binary is installed, with state roots
    /// `state_dir/<handler>`; runc is the default.
    pub fn discover(state_dir: &Path) -> Handlers {
        let runtimes = ["runc", "crun"].into_iter().filter_map(|name| {
            find_binary(name).map(|binary| OciRuntime {
                handler: name.to_string(),
                binary,
                root: state_dir.join(name),
            })
        });
        Handlers::new(DEFAULT_HANDLER, runtimes)
    }

    /// A table of the given runtimes; `default` names the one "" maps to.
    pub fn new(default: &str, runtimes: impl IntoIterator<Item = OciRuntime>) -> Handlers {
        Handlers {
            runtimes: runtimes
                .into_iter()
                .map(|r| (r.handler.clone(), r))
                .collect(),
            default: default.to_string(),
        }
    }

    /// The runtime for a CRI runtime_handler.
    pub fn get(&self, handler: &str) -> Result<&OciRuntime, OciError> {
        let name = if handler.is_empty() {
            &self.default
        } else {
            handler
        };
        self.runtimes
            .get(name)
            .ok_or_else(|| OciError::UnknownHandler {
                handler: name.to_string(),
                known: self.names(),
            })
    }

    /// The handler names, sorted (for Status' runtime_handlers).
    pub fn names(&self) -> Vec<String> {
        self.runtimes.keys().cloned().collect()
    }

    pub fn default_handler(&self) -> &str {
        &self.default
    }
}

/// The first executable `name` on $PATH or in the usual system dirs.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(FALLBACK_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}
