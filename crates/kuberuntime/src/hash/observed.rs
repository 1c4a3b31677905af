//! The last word on a container whose hash no known kubelet would compute for its spec: the
//! fields upstream restarts a container for, as far as the runtime and the annotations still
//! show them. A field nothing shows (command, args, env) cannot tell a change, so it keeps the
//! container rather than restart it on a guess.

use crate::runtime_status::ContainerStatus;
use k8s_openapi::api::core::v1::Container;

pub(super) fn fields_match(status: &ContainerStatus, c: &Container) -> bool {
    let info = &status.info;
    let spec_image = c.image.as_deref().unwrap_or_default();
    let image = status.image.is_empty()
        || status.image_ref == spec_image
        || normalized(&status.image) == normalized(spec_image);
    let ports = info.ports.as_slice() == c.ports.as_deref().unwrap_or_default();
    let message_path = info.termination_message_path.is_empty()
        || Some(info.termination_message_path.as_str()) == c.termination_message_path.as_deref();
    let message_policy = info.termination_message_policy.is_empty()
        || Some(info.termination_message_policy.as_str())
            == c.termination_message_policy.as_deref();
    let pre_stop =
        info.pre_stop_handler.as_ref() == c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref());
    image && ports && message_path && message_policy && pre_stop
}

/// An image reference in the long form runtimes report: `busybox` is
/// `docker.io/library/busybox:latest`.
fn normalized(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let (first, rest) = name.split_once('/').unwrap_or(("", name));
    let registry_given = first.contains(['.', ':']) || first == "localhost";
    let mut full = match (first, registry_given) {
        ("", _) => format!("docker.io/library/{rest}"),
        ("docker.io", _) if !rest.contains('/') => format!("docker.io/library/{rest}"),
        (_, true) => name.to_owned(),
        (_, false) => format!("docker.io/{name}"),
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if digest.is_none() && !last.contains(':') {
        full.push_str(":latest");
    }
    match digest {
        Some(digest) => format!("{full}@{digest}"),
        None => full,
    }
}

#[cfg(test)]
mod tests {
    use super::normalized;

    #[test]
    fn references_normalize_like_runtimes_report_them() {
        assert_eq!(normalized("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalized("busybox:1.35"), "docker.io/library/busybox:1.35");
        assert_eq!(
            normalized("docker.io/busybox:1"),
            "docker.io/library/busybox:1"
        );
        assert_eq!(normalized("user/app:2"), "docker.io/user/app:2");
        assert_eq!(
            normalized("localhost/busybox:1.35"),
            "localhost/busybox:1.35"
        );
        assert_eq!(normalized("reg:5000/app"), "reg:5000/app:latest");
        assert_eq!(normalized("quay.io/a/b@sha256:00"), "quay.io/a/b@sha256:00");
    }
}
