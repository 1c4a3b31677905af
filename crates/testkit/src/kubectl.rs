//! The real kubectl, pointed at one kubeconfig.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Runs kubectl with `--kubeconfig` set.
#[derive(Clone, Debug)]
pub struct Kubectl {
    kubeconfig: PathBuf,
}

impl Kubectl {
    pub fn new(kubeconfig: &Path) -> Self {
        Kubectl {
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Runs kubectl; answers its stdout, or its stderr as the error.
    pub fn run(&self, args: &[&str]) -> Result<String, String> {
        self.run_stdin(args, None)
    }

    /// Runs kubectl with `stdin` as its input.
    ///
    /// # Panics
    /// When kubectl is not installed.
    pub fn run_stdin(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let mut child = Command::new("kubectl")
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cluster tests need kubectl, which does not run ({e}): install it")
            });
        let mut input = child.stdin.take().expect("stdin is piped");
        // A kubectl that exits early breaks the pipe; its stderr then says more than the write.
        let written = stdin.map_or(Ok(()), |text| input.write_all(text.as_bytes()));
        drop(input);
        let out = child
            .wait_with_output()
            .map_err(|e| format!("waiting for kubectl: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        written.map_err(|e| format!("writing kubectl's input: {e}"))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
