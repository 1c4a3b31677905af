//! The defaults the API server applies to a v1 Pod on creation (upstream
//! pkg/apis/core/v1/defaults.go). Static pods never pass through an API server, so the kubelet
//! applies them itself; otherwise a file pod and the same pod from the API would differ.

use k8s_openapi::api::core::v1::{
    Container, HTTPGetAction, ObjectFieldSelector, Pod, PodSecurityContext, PodSpec, Probe, Volume,
};

const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
const DEFAULT_VOLUME_MODE: i32 = 0o644;
const DEFAULT_TOKEN_EXPIRATION_SECONDS: i64 = 3600;

/// Applies the API server's defaults in place.
pub fn apply(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(Default::default);
    default_pod_spec(spec);
    let host_network = spec.host_network == Some(true);
    for container in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        default_container(container, host_network);
    }
    for volume in spec.volumes.iter_mut().flatten() {
        default_volume(volume);
    }
}

fn default_pod_spec(spec: &mut PodSpec) {
    default_str(&mut spec.dns_policy, "ClusterFirst");
    default_str(&mut spec.restart_policy, "Always");
    default_str(&mut spec.scheduler_name, DEFAULT_SCHEDULER_NAME);
    spec.security_context
        .get_or_insert_with(PodSecurityContext::default);
    spec.termination_grace_period_seconds
        .get_or_insert(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS);
    spec.enable_service_links.get_or_insert(true);
}

fn default_container(container: &mut Container, host_network: bool) {
    if container
        .image_pull_policy
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        let policy = pull_policy_for_image(container.image.as_deref().unwrap_or(""));
        container.image_pull_policy = Some(policy.to_owned());
    }
    default_str(
        &mut container.termination_message_path,
        "/dev/termination-log",
    );
    default_str(&mut container.termination_message_policy, "File");
    for port in container.ports.iter_mut().flatten() {
        default_str(&mut port.protocol, "TCP");
        // With the host's network the container port is the host port, whatever was written.
        if host_network && port.host_port.unwrap_or(0) == 0 {
            port.host_port = Some(port.container_port);
        }
    }
    if let Some(resources) = container.resources.as_mut()
        && let Some(limits) = resources.limits.as_ref()
    {
        let requests = resources.requests.get_or_insert_with(Default::default);
        for (name, limit) in limits {
            requests
                .entry(name.clone())
                .or_insert_with(|| limit.clone());
        }
    }
    for probe in [
        &mut container.liveness_probe,
        &mut container.readiness_probe,
        &mut container.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
    if let Some(lifecycle) = container.lifecycle.as_mut() {
        for handler in [&mut lifecycle.post_start, &mut lifecycle.pre_stop]
            .into_iter()
            .flatten()
        {
            if let Some(action) = handler.http_get.as_mut() {
                default_http_get(action);
            }
        }
    }
    for env in container.env.iter_mut().flatten() {
        if let Some(selector) = env.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            default_field_selector(selector);
        }
    }
}

fn default_probe(probe: &mut Probe) {
    default_positive(&mut probe.timeout_seconds, 1);
    default_positive(&mut probe.period_seconds, 10);
    default_positive(&mut probe.success_threshold, 1);
    default_positive(&mut probe.failure_threshold, 3);
    if let Some(action) = probe.http_get.as_mut() {
        default_http_get(action);
    }
    if let Some(grpc) = probe.grpc.as_mut() {
        grpc.service.get_or_insert_with(String::new);
    }
}

fn default_http_get(action: &mut HTTPGetAction) {
    default_str(&mut action.path, "/");
    default_str(&mut action.scheme, "HTTP");
}

fn default_field_selector(selector: &mut ObjectFieldSelector) {
    default_str(&mut selector.api_version, "v1");
}

fn default_volume(volume: &mut Volume) {
    if !has_volume_source(volume) {
        volume.empty_dir = Some(Default::default());
    }
    if let Some(host_path) = volume.host_path.as_mut() {
        host_path.type_.get_or_insert_with(String::new);
    }
    if let Some(secret) = volume.secret.as_mut() {
        secret.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
    if let Some(config_map) = volume.config_map.as_mut() {
        config_map.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
    if let Some(downward) = volume.downward_api.as_mut() {
        downward.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
        for item in downward.items.iter_mut().flatten() {
            if let Some(selector) = item.field_ref.as_mut() {
                default_field_selector(selector);
            }
        }
    }
    if let Some(iscsi) = volume.iscsi.as_mut() {
        default_str(&mut iscsi.iscsi_interface, "default");
    }
    if let Some(rbd) = volume.rbd.as_mut() {
        default_str(&mut rbd.pool, "rbd");
        default_str(&mut rbd.user, "admin");
        default_str(&mut rbd.keyring, "/etc/ceph/keyring");
    }
    if let Some(azure) = volume.azure_disk.as_mut() {
        azure
            .caching_mode
            .get_or_insert_with(|| "ReadWrite".to_owned());
        azure.kind.get_or_insert_with(|| "Shared".to_owned());
        azure.fs_type.get_or_insert_with(|| "ext4".to_owned());
        azure.read_only.get_or_insert(false);
    }
    if let Some(scale_io) = volume.scale_io.as_mut() {
        default_str(&mut scale_io.storage_mode, "ThinProvisioned");
        default_str(&mut scale_io.fs_type, "xfs");
    }
    let claim = volume
        .ephemeral
        .as_mut()
        .and_then(|e| e.volume_claim_template.as_mut());
    if let Some(claim) = claim {
        claim
            .spec
            .volume_mode
            .get_or_insert_with(|| "Filesystem".to_owned());
    }
    if let Some(projected) = volume.projected.as_mut() {
        projected.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
        for source in projected.sources.iter_mut().flatten() {
            if let Some(token) = source.service_account_token.as_mut() {
                token
                    .expiration_seconds
                    .get_or_insert(DEFAULT_TOKEN_EXPIRATION_SECONDS);
            }
            let items = source.downward_api.as_mut().and_then(|d| d.items.as_mut());
            for item in items.into_iter().flatten() {
                if let Some(selector) = item.field_ref.as_mut() {
                    default_field_selector(selector);
                }
            }
        }
    }
}

/// Whether any volume source field is set. The struct has some thirty optional sources; its JSON
/// form tells without listing them all.
fn has_volume_source(volume: &Volume) -> bool {
    match serde_json::to_value(volume) {
        Ok(serde_json::Value::Object(fields)) => fields.keys().any(|key| key != "name"),
        _ => true,
    }
}

/// Upstream: `Always` when the tag is `latest`, or when there is neither tag nor digest (the tag
/// then defaults to latest); `IfNotPresent` otherwise.
pub fn pull_policy_for_image(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    // A colon before the last slash belongs to a registry host:port, not to a tag.
    let last_component = name.rsplit('/').next().unwrap_or(name);
    let tag = last_component.split_once(':').map(|(_, tag)| tag);
    match (tag, digest) {
        (Some("latest"), _) | (None, None) => "Always",
        _ => "IfNotPresent",
    }
}

fn default_str(field: &mut Option<String>, value: &str) {
    if field.as_deref().unwrap_or("").is_empty() {
        *field = Some(value.to_owned());
    }
}

/// Upstream defaults zero as well as unset for these integer fields.
fn default_positive(field: &mut Option<i32>, value: i32) {
    if field.unwrap_or(0) == 0 {
        *field = Some(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defaulted(value: serde_json::Value) -> Pod {
        let mut pod: Pod = serde_json::from_value(value).unwrap();
        apply(&mut pod);
        pod
    }

    #[test]
    fn image_pull_policy_table() {
        let table = [
            ("busybox", "Always"),
            ("busybox:latest", "Always"),
            ("busybox:1.36", "IfNotPresent"),
            ("registry.local:5000/busybox", "Always"),
            ("registry.local:5000/busybox:1.36", "IfNotPresent"),
            ("registry.local:5000/busybox:latest", "Always"),
            ("busybox@sha256:0123456789abcdef", "IfNotPresent"),
            ("busybox:latest@sha256:0123456789abcdef", "Always"),
            ("busybox:1.36@sha256:0123456789abcdef", "IfNotPresent"),
        ];
        for (image, expected) in table {
            assert_eq!(pull_policy_for_image(image), expected, "{image}");
        }
    }

    #[test]
    fn explicit_pull_policy_is_kept() {
        let pod = defaulted(json!({"spec": {"containers": [
            {"name": "a", "image": "busybox", "imagePullPolicy": "Never"}]}}));
        let container = &pod.spec.unwrap().containers[0];
        assert_eq!(container.image_pull_policy.as_deref(), Some("Never"));
    }

    #[test]
    fn pod_spec_defaults() {
        let spec = defaulted(json!({"spec": {"containers": [{"name": "a", "image": "x:1"}]}}))
            .spec
            .unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.scheduler_name.as_deref(), Some("default-scheduler"));
        assert_eq!(spec.security_context, Some(PodSecurityContext::default()));
        assert_eq!(spec.enable_service_links, Some(true));
        let container = &spec.containers[0];
        assert_eq!(container.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(
            container.termination_message_path.as_deref(),
            Some("/dev/termination-log")
        );
        assert_eq!(
            container.termination_message_policy.as_deref(),
            Some("File")
        );
    }

    #[test]
    fn explicit_spec_values_are_kept() {
        let spec = defaulted(json!({"spec": {
            "restartPolicy": "Never", "dnsPolicy": "Default", "terminationGracePeriodSeconds": 5,
            "enableServiceLinks": false, "containers": [{"name": "a", "image": "x:1"}]}}))
        .spec
        .unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.dns_policy.as_deref(), Some("Default"));
        assert_eq!(spec.termination_grace_period_seconds, Some(5));
        assert_eq!(spec.enable_service_links, Some(false));
    }

    #[test]
    fn container_defaults_apply_to_init_containers_and_keep_their_restart_policy() {
        let spec = defaulted(json!({"spec": {
            "initContainers": [{"name": "i", "image": "x", "restartPolicy": "Always",
                "ports": [{"containerPort": 80}]}],
            "containers": [{"name": "a", "image": "x:1"}]}}))
        .spec
        .unwrap();
        let init = &spec.init_containers.unwrap()[0];
        assert_eq!(init.image_pull_policy.as_deref(), Some("Always"));
        assert_eq!(init.restart_policy.as_deref(), Some("Always"));
        assert_eq!(init.termination_message_policy.as_deref(), Some("File"));
        assert_eq!(
            init.ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("TCP")
        );
    }

    #[test]
    fn ports_requests_probes_and_env() {
        let spec = defaulted(json!({"spec": {"hostNetwork": true, "containers": [{
            "name": "a", "image": "x:1",
            "ports": [{"containerPort": 8080}, {"containerPort": 53, "protocol": "UDP", "hostPort": 5353}],
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}},
            "livenessProbe": {"httpGet": {"port": 8080}},
            "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 3},
            "lifecycle": {"preStop": {"httpGet": {"port": 80, "path": "/stop"}}},
            "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
        }]}}))
        .spec
        .unwrap();
        let c = &spec.containers[0];
        let ports = c.ports.as_ref().unwrap();
        assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
        assert_eq!(ports[0].host_port, Some(8080));
        assert_eq!(ports[1].protocol.as_deref(), Some("UDP"));
        assert_eq!(ports[1].host_port, Some(5353));
        let requests = c.resources.as_ref().unwrap().requests.as_ref().unwrap();
        assert_eq!(requests["cpu"].0, "500m");
        assert_eq!(requests["memory"].0, "1Gi");
        let liveness = c.liveness_probe.as_ref().unwrap();
        assert_eq!(
            (
                liveness.timeout_seconds,
                liveness.period_seconds,
                liveness.success_threshold,
                liveness.failure_threshold
            ),
            (Some(1), Some(10), Some(1), Some(3))
        );
        let http = liveness.http_get.as_ref().unwrap();
        assert_eq!(http.path.as_deref(), Some("/"));
        assert_eq!(http.scheme.as_deref(), Some("HTTP"));
        assert_eq!(c.readiness_probe.as_ref().unwrap().period_seconds, Some(3));
        let pre_stop = c.lifecycle.as_ref().unwrap().pre_stop.as_ref().unwrap();
        let pre_stop_http = pre_stop.http_get.as_ref().unwrap();
        assert_eq!(pre_stop_http.path.as_deref(), Some("/stop"));
        assert_eq!(pre_stop_http.scheme.as_deref(), Some("HTTP"));
        let field_ref = c.env.as_ref().unwrap()[0]
            .value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap();
        assert_eq!(field_ref.api_version.as_deref(), Some("v1"));
    }

    #[test]
    fn host_port_is_not_defaulted_without_host_network() {
        let spec = defaulted(json!({"spec": {"containers": [{
            "name": "a", "image": "x:1", "ports": [{"containerPort": 8080}]}]}}))
        .spec
        .unwrap();
        assert_eq!(
            spec.containers[0].ports.as_ref().unwrap()[0].host_port,
            None
        );
    }

    #[test]
    fn volume_defaults() {
        let spec = defaulted(
            json!({"spec": {"containers": [{"name": "a", "image": "x:1"}],
            "volumes": [
                {"name": "bare"},
                {"name": "host", "hostPath": {"path": "/data"}},
                {"name": "sec", "secret": {"secretName": "s"}},
                {"name": "cm", "configMap": {"name": "c", "defaultMode": 256}},
                {"name": "proj", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
                {"name": "rbd", "rbd": {"monitors": ["m"], "image": "i"}},
                {"name": "eph", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}
            ]}}),
        )
        .spec
        .unwrap();
        let volumes = spec.volumes.unwrap();
        assert_eq!(volumes[0].empty_dir, Some(Default::default()));
        assert_eq!(
            volumes[1].host_path.as_ref().unwrap().type_.as_deref(),
            Some("")
        );
        assert_eq!(volumes[1].empty_dir, None);
        assert_eq!(
            volumes[2].secret.as_ref().unwrap().default_mode,
            Some(0o644)
        );
        assert_eq!(
            volumes[3].config_map.as_ref().unwrap().default_mode,
            Some(256)
        );
        let projected = volumes[4].projected.as_ref().unwrap();
        assert_eq!(projected.default_mode, Some(0o644));
        let token = projected.sources.as_ref().unwrap()[0]
            .service_account_token
            .as_ref()
            .unwrap();
        assert_eq!(token.expiration_seconds, Some(3600));
        let rbd = volumes[5].rbd.as_ref().unwrap();
        assert_eq!(
            (
                rbd.pool.as_deref(),
                rbd.user.as_deref(),
                rbd.keyring.as_deref()
            ),
            (Some("rbd"), Some("admin"), Some("/etc/ceph/keyring"))
        );
        let claim = volumes[6]
            .ephemeral
            .as_ref()
            .unwrap()
            .volume_claim_template
            .as_ref()
            .unwrap();
        assert_eq!(claim.spec.volume_mode.as_deref(), Some("Filesystem"));
    }

    #[test]
    fn grpc_probe_service_defaults_to_empty() {
        let spec = defaulted(json!({"spec": {"containers": [{"name": "a", "image": "x:1",
            "startupProbe": {"grpc": {"port": 9000}}}]}}))
        .spec
        .unwrap();
        let probe = spec.containers[0].startup_probe.as_ref().unwrap();
        assert_eq!(probe.grpc.as_ref().unwrap().service.as_deref(), Some(""));
        assert_eq!(probe.failure_threshold, Some(3));
    }
}
