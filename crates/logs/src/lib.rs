//! Container log rotation and the /var/log/containers symlinks (upstream pkg/kubelet/logs).
