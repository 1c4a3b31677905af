//! The container runtimes the bench measures on: a private containerd started with the
//! repository's scripts (its own root, socket, CNI bridge and subnet, and the offline images), or
//! any CRI endpoint the user names; and the built-in runtime, served alone by a kubelet binary.

use crate::builtin_runtime::BuiltinRuntime;
use crate::cli::{Options, RuntimeKind};
use crate::error::{BenchError, Result};
use kubelet_cri::ImageService;
use kubelet_cri::api::ImageSpec;
use kubelet_cri::remote::RemoteRuntime;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use tracing::{info, warn};

/// The images every bench pod uses; the private containerd imports both at startup.
pub const BUSYBOX: &str = "localhost/busybox:1.35";
pub const PAUSE: &str = "localhost/pause:3.10";

/// A bridge and subnet of the bench's own, so it never collides with a concurrent test run's
/// containerd (kubeletrs0, 10.88.0.0/16).
pub(crate) const BRIDGE: &str = "kbench0";
pub(crate) const SUBNET: &str = "10.77.0.0/16";
const ENDPOINT_VAR: &str = "KUBELET_TEST_CRI_ENDPOINT";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The repository's scripts, found from this crate's source path: the bench is a tool of this
/// workspace and runs from a checkout.
pub(crate) fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts")
}

/// A runtime in use: its endpoint, and the private daemon to stop when the bench started one.
pub struct RuntimeEnv {
    kind: RuntimeKind,
    endpoint: String,
    private: Option<Private>,
}

enum Private {
    Containerd(PrivateContainerd),
    Builtin(BuiltinRuntime),
}

struct PrivateContainerd {
    rt_dir: tempfile::TempDir,
}

impl RuntimeEnv {
    /// Starts the runtime `kind` (containerd: unless --runtime-endpoint names one; built-in:
    /// served by --builtin-binary, else `default_binary`).
    pub async fn start(kind: RuntimeKind, opts: &Options, default_binary: &Path) -> Result<Self> {
        match kind {
            RuntimeKind::Containerd => Self::containerd(opts.runtime_endpoint.clone()),
            RuntimeKind::Builtin => {
                let binary = opts.builtin_binary.as_deref().unwrap_or(default_binary);
                let runtime = BuiltinRuntime::start(binary).await?;
                Ok(RuntimeEnv {
                    kind,
                    endpoint: runtime.endpoint().to_string(),
                    private: Some(Private::Builtin(runtime)),
                })
            }
        }
    }

    /// Uses `endpoint`, or starts a private containerd when there is none.
    fn containerd(endpoint: Option<String>) -> Result<Self> {
        let kind = RuntimeKind::Containerd;
        match endpoint {
            Some(endpoint) => Ok(RuntimeEnv {
                kind,
                endpoint,
                private: None,
            }),
            None => {
                // Short: the socket path must fit in 108 bytes.
                let rt_dir = tempfile::Builder::new()
                    .prefix("kb.")
                    .tempdir_in("/tmp")
                    .map_err(|err| BenchError::io("create the containerd dir in /tmp", err))?;
                let up = scripts_dir().join("containerd-up.sh");
                info!(dir = %rt_dir.path().display(), "starting a private containerd");
                let output = Command::new("bash")
                    .arg(&up)
                    .arg(rt_dir.path())
                    .env("KUBELET_TEST_BRIDGE", BRIDGE)
                    .env("KUBELET_TEST_SUBNET", SUBNET)
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|err| BenchError::io(format!("run {}", up.display()), err))?;
                let private = PrivateContainerd { rt_dir };
                if !output.status.success() {
                    private.stop();
                    return Err(BenchError::Script {
                        script: up,
                        status: output.status,
                        output: String::from_utf8_lossy(&output.stderr).into_owned(),
                    });
                }
                let stdout = String::from_utf8_lossy(&output.stdout);
                let endpoint = stdout
                    .lines()
                    .find_map(|line| {
                        line.strip_prefix(&format!("export {ENDPOINT_VAR}="))
                            .map(str::to_string)
                    })
                    .ok_or_else(|| BenchError::ScriptOutput {
                        script: up.clone(),
                        variable: ENDPOINT_VAR.into(),
                    });
                match endpoint {
                    Ok(endpoint) => Ok(RuntimeEnv {
                        kind,
                        endpoint,
                        private: Some(Private::Containerd(private)),
                    }),
                    Err(err) => {
                        private.stop();
                        Err(err)
                    }
                }
            }
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn kind(&self) -> RuntimeKind {
        self.kind
    }

    /// What the command line of each of the runtime's processes names: the built-in runtime's
    /// dir; for containerd the socket's dir (its config file lives there, and every shim is
    /// started with `-address SOCKET`).
    pub fn process_marker(&self) -> Option<PathBuf> {
        match &self.private {
            Some(Private::Builtin(builtin)) => builtin.dir().map(Path::to_path_buf),
            _ => Path::new(self.endpoint.trim_start_matches("unix://"))
                .parent()
                .map(Path::to_path_buf),
        }
    }

    /// A CRI client, after making sure both images are present.
    pub async fn connect(&self) -> Result<RemoteRuntime> {
        let cri = RemoteRuntime::connect(&self.endpoint, &self.endpoint, REQUEST_TIMEOUT)
            .await
            .map_err(BenchError::cri("Version"))?;
        for image in [BUSYBOX, PAUSE] {
            ensure_image(&cri, image).await?;
        }
        Ok(cri)
    }

    /// Stops the private runtime, if the bench started one.
    pub fn stop(self) {
        match self.private {
            Some(Private::Containerd(containerd)) => containerd.stop(),
            Some(Private::Builtin(builtin)) => builtin.stop(),
            None => {}
        }
    }
}

impl PrivateContainerd {
    fn stop(self) {
        let down = scripts_dir().join("containerd-down.sh");
        let status = Command::new("bash")
            .arg(&down)
            .arg(self.rt_dir.path())
            .stdin(Stdio::null())
            .status();
        match status {
            Ok(status) if status.success() => {}
            Ok(status) => warn!(script = %down.display(), %status, "stopping containerd failed"),
            Err(err) => warn!(script = %down.display(), %err, "cannot run"),
        }
        // containerd-down.sh removes the dir itself; the TempDir must not race it.
        let _ = self.rt_dir.keep();
    }
}

/// An image the pods use with IfNotPresent: present, or pulled now so no figure includes a pull.
async fn ensure_image(cri: &RemoteRuntime, image: &str) -> Result<()> {
    let spec = ImageSpec {
        image: image.into(),
        ..Default::default()
    };
    let present = cri
        .image_status(&spec)
        .await
        .map_err(BenchError::cri("ImageStatus"))?;
    if present.is_none() {
        cri.pull_image(&spec, None, None)
            .await
            .map_err(|source| BenchError::Image {
                image: image.into(),
                source,
            })?;
    }
    Ok(())
}
