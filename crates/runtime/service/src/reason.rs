//! The reason a container exited, as the kubelet and containerd name it.

pub(crate) const COMPLETED: &str = "Completed";
pub(crate) const ERROR: &str = "Error";
pub(crate) const OOM_KILLED: &str = "OOMKilled";
pub(crate) const START_ERROR: &str = "StartError";

/// The exit code recorded when the monitor vanished without writing one (containerd's
/// unknownExitCode).
pub(crate) const UNKNOWN_EXIT_CODE: i32 = 255;

/// An OOM kill wins over the code (the kernel's SIGKILL says 137 either way); then 0 completes.
pub(crate) fn exit_reason(code: i32, oom_killed: bool) -> &'static str {
    if oom_killed {
        OOM_KILLED
    } else if code == 0 {
        COMPLETED
    } else {
        ERROR
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_follow_containerd() {
        assert_eq!(exit_reason(0, false), "Completed");
        assert_eq!(exit_reason(1, false), "Error");
        assert_eq!(exit_reason(137, false), "Error");
        assert_eq!(exit_reason(137, true), "OOMKilled");
        assert_eq!(exit_reason(0, true), "OOMKilled");
    }
}
