//! What a scripted container does once the runtime starts it.

use std::time::Duration;

/// The scripted life of every container with a given name, set with
/// [`FakeRuntime::set_behavior`](super::FakeRuntime::set_behavior).
///
/// The behaviour in force when a container is created (for [`Behavior::FailCreate`]) or started
/// (for everything else) applies to it; changing it later affects only later containers, which
/// is how a test scripts "crash twice, then run".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Behavior {
    /// Runs until stopped. On StopContainer it handles SIGTERM and exits 0 ("Completed") at
    /// once, like a well-behaved server. This is the default for unscripted names.
    #[default]
    RunForever,
    /// Runs until stopped and ignores SIGTERM, like busybox as PID 1: StopContainer waits out the
    /// whole grace period (on tokio time, so paused-time tests advance instantly) and the
    /// container ends killed, exit code 137, reason "Error".
    IgnoreTerm,
    /// Exits by itself `after` the start with exit code `code` (reason "Completed" for 0,
    /// "Error" otherwise). Measured on tokio time and applied lazily: the exit is noticed by the
    /// first call into the fake at or after the deadline, or by an open event stream, which
    /// wakes itself at the deadline. Stopped earlier, it behaves like [`Behavior::RunForever`].
    ExitAfter { after: Duration, code: i32 },
    /// Like [`Behavior::ExitAfter`] with exit code 137 and reason "OOMKilled": the cgroup's
    /// out-of-memory killer ended it.
    OomAfter { after: Duration },
    /// StartContainer fails with this message. As in containerd, the container is left EXITED
    /// with exit code 128, reason "StartError" and the error as its message.
    FailStart(String),
    /// CreateContainer fails with this message and no container is created.
    FailCreate(String),
}

/// How a container ends, once it ends by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ScheduledExit {
    pub after: Duration,
    pub code: i32,
    pub oom: bool,
}

impl Behavior {
    pub(super) fn scheduled_exit(&self) -> Option<ScheduledExit> {
        match *self {
            Behavior::ExitAfter { after, code } => Some(ScheduledExit {
                after,
                code,
                oom: false,
            }),
            Behavior::OomAfter { after } => Some(ScheduledExit {
                after,
                code: 137,
                oom: true,
            }),
            _ => None,
        }
    }
}
