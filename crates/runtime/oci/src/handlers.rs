//! Runtime handlers (RuntimeClass handler names) to OCI runtimes.

use crate::runtime::{OciError, OciRuntime};
use std::collections::{BTreeMap, BTreeSet};
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
    /// The handlers whose runtime applies recursive read-only mounts.
    rro: BTreeSet<String>,
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

    /// A table of the given runtimes; `default` names the one "" maps to. Each runtime's
    /// `features` command is asked once what it supports.
    pub fn new(default: &str, runtimes: impl IntoIterator<Item = OciRuntime>) -> Handlers {
        let runtimes: BTreeMap<String, OciRuntime> = runtimes
            .into_iter()
            .map(|r| (r.handler.clone(), r))
            .collect();
        let rro = runtimes
            .values()
            .filter(|r| mount_options(&r.binary).iter().any(|o| o == "rro"))
            .map(|r| r.handler.clone())
            .collect();
        Handlers {
            runtimes,
            default: default.to_string(),
            rro,
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

    /// Whether the handler's runtime applies the `rro` mount option (runc 1.1 does, on kernels
    /// with mount_setattr; crun 1.8 has no `features` command and is not trusted with it).
    pub fn recursive_read_only(&self, handler: &str) -> bool {
        let name = if handler.is_empty() {
            &self.default
        } else {
            handler
        };
        self.rro.contains(name)
    }
}

/// The mount options `BINARY features` lists (the OCI runtime features document); none when the
/// runtime has no such command or its answer cannot be read.
fn mount_options(binary: &Path) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Features {
        #[serde(rename = "mountOptions", default)]
        mount_options: Vec<String>,
    }
    let output = match std::process::Command::new(binary).arg("features").output() {
        Ok(output) if output.status.success() => output,
        _ => return Vec::new(),
    };
    serde_json::from_slice::<Features>(&output.stdout)
        .map(|f| f.mount_options)
        .unwrap_or_default()
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
