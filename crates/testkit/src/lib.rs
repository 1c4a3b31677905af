//! Test support: the private containerd the integration tests share.
