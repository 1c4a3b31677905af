//! --kernel-memcg-notification (upstream memory_threshold_notifier.go and its cgroup v1
//! notifier): on cgroup v1 an eventfd registered in the root memory cgroup's
//! cgroup.event_control against memory.usage_in_bytes, so the kernel wakes the eviction manager
//! the moment usage crosses the threshold instead of at the next tick; re-armed at every refresh
//! with a threshold from fresh stats, as upstream re-creates its notifier. cgroup v2 has no usage
//! thresholds: there a PSI trigger on the node's memory pressure wakes the manager within its
//! window once tasks stall on memory, which is what running short of memory looks like.

use super::thresholds::Amount;
use kubelet_stats::types::MemoryStats;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    #[error("{path}: {source}")]
    Cgroup { path: String, source: io::Error },
    #[error("cannot create an eventfd: {0}")]
    EventFd(io::Error),
    #[error("cannot set the PSI trigger {trigger:?} on {path}: {source}")]
    Psi {
        path: String,
        trigger: String,
        source: io::Error,
    },
}

fn cgroup_error(path: &Path) -> impl FnOnce(io::Error) -> NotifierError + '_ {
    move |source| NotifierError::Cgroup {
        path: path.display().to_string(),
        source,
    }
}

/// Upstream UpdateThreshold: notified when the working set reaches capacity - threshold, that
/// is when usage reaches it plus the inactive file cache.
pub fn usage_threshold(memory: &MemoryStats, threshold: &Amount) -> Option<u64> {
    let usage = memory.usage_bytes?;
    let working_set = memory.working_set_bytes?;
    let capacity = memory.available_bytes? + working_set;
    let inactive_file = usage.saturating_sub(working_set);
    Some(capacity.saturating_sub(threshold.of(capacity)) + inactive_file)
}

fn eventfd() -> Result<OwnedFd, NotifierError> {
    // SAFETY: eventfd takes no pointers; the descriptor it returns is owned by no one else.
    let fd = unsafe { nix::libc::eventfd(0, nix::libc::EFD_CLOEXEC | nix::libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(NotifierError::EventFd(io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else closes.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One memory cgroup's usage threshold; dropping it (or arming it again) unregisters the old
/// eventfd by closing it.
pub struct MemcgNotifier {
    cgroup: PathBuf,
    wake: Arc<Notify>,
    task: Option<JoinHandle<()>>,
}

impl MemcgNotifier {
    /// Watches the memory cgroup at `cgroup` (the root one: /sys/fs/cgroup/memory); a
    /// crossing wakes `wake`.
    pub fn new(cgroup: PathBuf, wake: Arc<Notify>) -> Self {
        Self {
            cgroup,
            wake,
            task: None,
        }
    }

    /// Registers a new threshold on memory.usage_in_bytes, replacing the previous one.
    pub fn arm(&mut self, usage_threshold: u64) -> Result<(), NotifierError> {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let usage_path = self.cgroup.join("memory.usage_in_bytes");
        let usage = File::open(&usage_path).map_err(cgroup_error(&usage_path))?;
        let event = eventfd()?;
        let control = self.cgroup.join("cgroup.event_control");
        std::fs::write(
            &control,
            format!(
                "{} {} {usage_threshold}",
                event.as_raw_fd(),
                usage.as_raw_fd()
            ),
        )
        .map_err(cgroup_error(&control))?;
        // SAFETY: an OwnedFd keeps its descriptor open and unchanged until the AsyncFd drops it.
        let event =
            unsafe { AsyncFd::register(event) }.map_err(|e| NotifierError::EventFd(e.into()))?;
        let wake = self.wake.clone();
        self.task = Some(tokio::spawn(async move {
            // The usage file stays open for as long as the registration lives.
            let _usage = usage;
            loop {
                let Ok(mut ready) = event.readable().await else {
                    return;
                };
                let mut counter = [0u8; 8];
                match ready.try_io(|fd| {
                    nix::unistd::read(fd.get_ref(), &mut counter).map_err(io::Error::from)
                }) {
                    Ok(Ok(_)) => wake.notify_one(),
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "memory threshold notifier stopped");
                        return;
                    }
                    Err(_would_block) => continue,
                }
            }
        }));
        Ok(())
    }
}

impl Drop for MemcgNotifier {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The node's memory pressure file: system-wide, as the v2 root cgroup has no memory.pressure.
pub const NODE_MEMORY_PRESSURE: &str = "/proc/pressure/memory";
/// Tasks stalled on memory for this long within [`PSI_WINDOW`] wake the manager: near the
/// end of memory, stalls add up that fast, so the wake-up comes within a fraction of a second.
pub const PSI_STALL: Duration = Duration::from_millis(100);
/// A multiple of 2 s, which the kernel also accepts from a process without CAP_SYS_RESOURCE.
pub const PSI_WINDOW: Duration = Duration::from_secs(2);

/// A PSI trigger (Documentation/accounting/psi.rst): the kernel raises POLLPRI on the open
/// pressure file when "some" tasks stalled on memory for `stall` within a `window`, at most once
/// per window. The trigger lives as long as the file stays open; dropping this closes it.
pub struct PsiNotifier {
    task: JoinHandle<()>,
}

impl PsiNotifier {
    pub fn start(
        path: &Path,
        stall: Duration,
        window: Duration,
        wake: Arc<Notify>,
    ) -> Result<Self, NotifierError> {
        let trigger = format!("some {} {}", stall.as_micros(), window.as_micros());
        let psi_error = |source| NotifierError::Psi {
            path: path.display().to_string(),
            trigger: trigger.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(path)
            .map_err(psi_error)?;
        // One write of the whole string; the kernel overwrites its last byte with a NUL, so
        // the NUL is sent too.
        (&file)
            .write_all(format!("{trigger}\0").as_bytes())
            .map_err(psi_error)?;
        // SAFETY: the File owns its descriptor and keeps it open and unchanged until the
        // AsyncFd drops it.
        let file = unsafe { AsyncFd::register_with_interest(file, Interest::PRIORITY) }
            .map_err(|e| psi_error(e.into()))?;
        let task = tokio::spawn(async move {
            loop {
                match file.ready(Interest::PRIORITY).await {
                    Ok(mut ready) => {
                        if ready.ready().is_error() {
                            tracing::warn!(
                                "memory pressure trigger stopped: the kernel reported an error"
                            );
                            return;
                        }
                        ready.clear_ready();
                        wake.notify_one();
                    }
                    Err(error) => {
                        tracing::warn!(%error, "memory pressure trigger stopped");
                        return;
                    }
                }
            }
        });
        Ok(Self { task })
    }
}

impl Drop for PsiNotifier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubelet_stats::types::Timestamp;
    use std::time::Duration;

    #[test]
    fn the_usage_threshold_adds_the_inactive_file_cache() {
        let memory = MemoryStats {
            time: Timestamp(0),
            available_bytes: Some(3 << 30),
            usage_bytes: Some(6 << 30),
            working_set_bytes: Some(5 << 30),
            rss_bytes: None,
            page_faults: None,
            major_page_faults: None,
        };
        let threshold = Amount::Quantity("1Gi".into(), 1 << 30);
        // capacity 8Gi - 1Gi + 1Gi of inactive file.
        assert_eq!(usage_threshold(&memory, &threshold), Some(8 << 30));
    }

    /// A child memory cgroup of the v1 root; dropping it kills what runs in it and removes it.
    struct TestCgroup(PathBuf);

    impl Drop for TestCgroup {
        fn drop(&mut self) {
            for _ in 0..100 {
                let procs =
                    std::fs::read_to_string(self.0.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                if std::fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!("could not remove the test cgroup {}", self.0.display());
        }
    }

    #[tokio::test]
    async fn a_crossing_wakes_the_manager() {
        let root = Path::new("/sys/fs/cgroup/memory");
        assert!(
            root.join("cgroup.event_control").exists(),
            "this test needs root and the cgroup v1 memory hierarchy at {}",
            root.display()
        );
        let cgroup = TestCgroup(root.join(format!("kubelet-rs-notifier-{}", std::process::id())));
        std::fs::create_dir(&cgroup.0).expect("create a test memory cgroup (root needed)");
        let wake = Arc::new(Notify::new());
        let mut notifier = MemcgNotifier::new(cgroup.0.clone(), wake.clone());
        notifier.arm(4 << 20).expect("arm the notifier");
        let script = format!(
            "echo $$ > {}/cgroup.procs && head -c 32m /dev/zero | tail",
            cgroup.0.display()
        );
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", &script])
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sh");
        let woken = tokio::time::timeout(Duration::from_secs(20), wake.notified()).await;
        let _ = child.kill().await;
        let _ = child.wait().await;
        drop(notifier);
        assert!(
            woken.is_ok(),
            "no notification after 32 MiB were charged to the cgroup"
        );
    }

    /// Memory stalls made on purpose: a v1 memory cgroup of 8 MiB whose task fills 32 MiB of
    /// anonymous memory over and over, so the kernel reclaims in vain until the OOM killer ends
    /// each try (about 50 ms of stall per second here, against well under 1 ms idle). The PSI
    /// file is system-wide, so the trigger works the same on this cgroup v1 host as on v2.
    #[tokio::test]
    async fn a_memory_stall_wakes_the_manager() {
        let pressure = Path::new(NODE_MEMORY_PRESSURE);
        assert!(
            pressure.exists(),
            "this test needs PSI ({} is missing: a kernel with CONFIG_PSI, not booted with psi=0)",
            pressure.display()
        );
        let root = Path::new("/sys/fs/cgroup/memory");
        assert!(
            root.join("memory.limit_in_bytes").exists(),
            "this test needs root and the cgroup v1 memory hierarchy at {}",
            root.display()
        );
        let wake = Arc::new(Notify::new());
        let notifier = PsiNotifier::start(
            pressure,
            Duration::from_millis(30),
            PSI_WINDOW,
            wake.clone(),
        )
        .expect("set a PSI trigger");
        let cgroup = TestCgroup(root.join(format!("kubelet-rs-psi-{}", std::process::id())));
        std::fs::create_dir(&cgroup.0).expect("create a test memory cgroup (root needed)");
        std::fs::write(cgroup.0.join("memory.limit_in_bytes"), "8M").unwrap();
        let script = format!(
            "echo $$ > {}/cgroup.procs && while :; do head -c 32m /dev/zero | tail; done",
            cgroup.0.display()
        );
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", &script])
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sh");
        let woken = tokio::time::timeout(Duration::from_secs(20), wake.notified()).await;
        let _ = child.kill().await;
        let _ = child.wait().await;
        drop(notifier);
        assert!(
            woken.is_ok(),
            "no PSI notification while tasks of an 8 MiB cgroup ran out of memory"
        );
    }

    #[tokio::test]
    async fn a_trigger_the_kernel_refuses_names_the_file_and_the_trigger() {
        let error = PsiNotifier::start(
            Path::new(NODE_MEMORY_PRESSURE),
            Duration::from_secs(3),
            PSI_WINDOW,
            Arc::new(Notify::new()),
        )
        .err()
        .expect("a stall longer than its window is refused");
        let message = error.to_string();
        assert!(
            message.starts_with(
                "cannot set the PSI trigger \"some 3000000 2000000\" on /proc/pressure/memory: "
            ),
            "{message}"
        );
    }
}
