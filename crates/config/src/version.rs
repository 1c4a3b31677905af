//! The `--version` text.

/// The upstream kubelet release whose flags and config file kubelet-rs follows.
pub const KUBERNETES_VERSION: &str = "v1.32.0";

pub(crate) fn render(raw: bool) -> String {
    let ours = concat!("kubelet-rs ", env!("CARGO_PKG_VERSION"));
    if raw {
        let platform = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        format!(
            "version.Info{{Major:\"1\", Minor:\"32\", GitVersion:\"{KUBERNETES_VERSION}\", Implementation:\"{ours}\", Platform:\"linux/{platform}\"}}"
        )
    } else {
        format!("Kubernetes {KUBERNETES_VERSION} ({ours})")
    }
}
