//! The environment from ConfigMaps, Secrets and Services, read through an ObjectSource.

use super::env::invalid_env_from_keys;
use super::env_sources::{EnvSources, ServicesUnavailable};
use super::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kubelet_objects::{FakeObjects, NoApi, ObjectSource};
use serde_json::json;
use std::collections::BTreeMap;

fn pod(container: serde_json::Value, links: Option<bool>) -> Pod {
    let mut spec = json!({"containers": [container]});
    if let Some(links) = links {
        spec["enableServiceLinks"] = json!(links);
    }
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "prod", "uid": "u-1"},
        "spec": spec,
    }))
    .unwrap()
}

fn objects() -> FakeObjects {
    let objects = FakeObjects::default();
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "settings", "namespace": "prod"},
        "data": {"A": "1", "B": "2", "bad=key": "x", "1ok": "y"}
    }))
    .unwrap();
    objects.put_config_map(cm);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "creds", "namespace": "prod"},
        // base64 of "pw" and "secret-a"
        "data": {"PASSWORD": "cHc=", "A": "c2VjcmV0LWE="}
    }))
    .unwrap();
    objects.put_secret(secret);
    for (ns, name, ip, ports) in [
        (
            "default",
            "kubernetes",
            "10.96.0.1",
            json!([{"name": "https", "port": 443}]),
        ),
        ("default", "other", "10.96.0.5", json!([{"port": 80}])),
        ("prod", "db", "10.0.0.7", json!([{"port": 5432}])),
        ("prod", "headless", "None", json!([{"port": 80}])),
        ("prod", "my-cache", "", json!([{"port": 6379}])),
    ] {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports}
        }))
        .unwrap();
        objects.put_service(svc);
    }
    objects
}

struct Built {
    envs: Vec<(String, String)>,
    config: Result<ContainerConfig, String>,
}

async fn build(objects: &dyn ObjectSource, pod: &Pod) -> Built {
    let dir = tempfile::tempdir().unwrap();
    let container = &pod.spec.as_ref().unwrap().containers[0];
    let env_sources = EnvSources::fetch(objects, pod, container).await;
    let input = ContainerInput {
        pod,
        container,
        restart_count: 0,
        image_ref: "sha256:abc".into(),
        mounts: vec![],
        pod_ip: None,
        pod_ips: vec![],
        host_ip: None,
        pod_dir: dir.path().to_path_buf(),
        cluster_domain: "cluster.local".into(),
        node_memory_capacity: 1 << 30,
        node_allocatable_cpu_milli: None,
        cfs_quota: Default::default(),
        memory_qos: None,
        env_sources,
    };
    let config = container_config(&input).map_err(|e| e.to_string());
    let envs = config
        .as_ref()
        .map(|c| {
            c.envs
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect()
        })
        .unwrap_or_default();
    Built { envs, config }
}

fn map(envs: &[(String, String)]) -> BTreeMap<&str, &str> {
    envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[tokio::test]
async fn env_from_and_value_from_with_prefix_and_precedence() {
    let objects = objects();
    let p = pod(
        json!({
            "name": "app",
            "envFrom": [
                {"prefix": "CM_", "configMapRef": {"name": "settings"}},
                {"secretRef": {"name": "creds"}}
            ],
            "env": [
                {"name": "B_REF", "value": "$(CM_B)"},
                {"name": "A", "value": "explicit"},
                {"name": "KEY", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "A"}}},
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASSWORD"}}}
            ]
        }),
        Some(false),
    );
    let built = build(&objects, &p).await;
    let env = map(&built.envs);
    assert_eq!(env["CM_A"], "1");
    assert_eq!(env["CM_B"], "2");
    assert_eq!(
        env["CM_1ok"], "y",
        "the relaxed rule allows a leading digit"
    );
    assert!(!env.contains_key("CM_bad=key"), "{env:?}");
    assert_eq!(env["PASSWORD"], "pw");
    assert_eq!(env["A"], "explicit", "env wins over envFrom");
    assert_eq!(env["B_REF"], "2", "env values expand envFrom variables");
    assert_eq!(env["KEY"], "1");
    assert_eq!(env["PW"], "pw");

    let container = &p.spec.as_ref().unwrap().containers[0];
    let sources = EnvSources::fetch(&objects, &p, container).await;
    assert_eq!(
        invalid_env_from_keys(&p, container, &sources),
        [
            "Keys [CM_bad=key] from the EnvFrom configMap prod/settings were skipped since they are considered invalid environment variable names."
        ]
    );
}

#[tokio::test]
async fn optional_references_are_skipped_and_required_ones_fail() {
    let objects = objects();
    let optional = pod(
        json!({
            "name": "app",
            "envFrom": [{"configMapRef": {"name": "ghost", "optional": true}}],
            "env": [
                {"name": "GONE", "valueFrom": {"configMapKeyRef": {"name": "ghost", "key": "A", "optional": true}}},
                {"name": "NOKEY", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "nope", "optional": true}}},
                {"name": "NOSECRET", "valueFrom": {"secretKeyRef": {"name": "ghost", "key": "A", "optional": true}}},
                {"name": "KEPT", "value": "yes"}
            ]
        }),
        Some(false),
    );
    let built = build(&objects, &optional).await;
    let own: Vec<_> = built
        .envs
        .into_iter()
        .filter(|(k, _)| !k.starts_with("KUBERNETES_"))
        .collect();
    assert_eq!(
        own,
        [("KEPT".to_string(), "yes".to_string())],
        "optional misses define nothing"
    );

    let failure = |value_from: serde_json::Value| {
        pod(
            json!({"name": "app", "env": [{"name": "X", "valueFrom": value_from}]}),
            Some(false),
        )
    };
    for (value_from, message) in [
        (
            json!({"configMapKeyRef": {"name": "settings", "key": "nope"}}),
            "couldn't find key nope in ConfigMap prod/settings",
        ),
        (
            json!({"secretKeyRef": {"name": "creds", "key": "nope"}}),
            "couldn't find key nope in Secret prod/creds",
        ),
        (
            json!({"configMapKeyRef": {"name": "ghost", "key": "A"}}),
            "configmap \"ghost\" not found",
        ),
        (
            json!({"secretKeyRef": {"name": "ghost", "key": "A"}}),
            "secret \"ghost\" not found",
        ),
    ] {
        let p = failure(value_from);
        assert_eq!(build(&objects, &p).await.config.unwrap_err(), message);
    }
    let p = pod(
        json!({"name": "app", "envFrom": [{"secretRef": {"name": "ghost"}}]}),
        Some(false),
    );
    assert_eq!(
        build(&objects, &p).await.config.unwrap_err(),
        "secret \"ghost\" not found"
    );
}

#[tokio::test]
async fn without_an_api_server_references_fail_even_when_optional() {
    let p = pod(
        json!({
            "name": "app",
            "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "A", "optional": true}}}]
        }),
        None,
    );
    assert_eq!(
        build(&NoApi, &p).await.config.unwrap_err(),
        "couldn't get secret prod/creds, no kubeClient defined"
    );
    // No Services either, and no error for that.
    let p = pod(
        json!({"name": "app", "env": [{"name": "A", "value": "1"}]}),
        None,
    );
    assert_eq!(build(&NoApi, &p).await.envs, [("A".into(), "1".into())]);
}

#[tokio::test]
async fn service_links() {
    let objects = objects();
    let with_links = pod(
        json!({
            "name": "app",
            "envFrom": [{"configMapRef": {"name": "override"}}],
            "env": [{"name": "URL", "value": "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"}],
            "command": ["echo", "$(DB_SERVICE_HOST)"]
        }),
        None,
    );
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "override", "namespace": "prod"},
        "data": {"DB_SERVICE_PORT": "6000"}
    }))
    .unwrap();
    objects.put_config_map(cm);
    let built = build(&objects, &with_links).await;
    let env = map(&built.envs);
    assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.96.0.1");
    assert_eq!(env["KUBERNETES_SERVICE_PORT"], "443");
    assert_eq!(env["KUBERNETES_SERVICE_PORT_HTTPS"], "443");
    assert_eq!(env["KUBERNETES_PORT"], "tcp://10.96.0.1:443");
    assert_eq!(env["KUBERNETES_PORT_443_TCP_ADDR"], "10.96.0.1");
    assert_eq!(env["DB_SERVICE_HOST"], "10.0.0.7");
    assert_eq!(env["DB_SERVICE_PORT"], "6000", "envFrom wins over services");
    assert_eq!(env["URL"], "https://10.96.0.1:443", "$(VAR) sees services");
    assert_eq!(built.config.unwrap().command, ["echo", "10.0.0.7"]);
    assert!(
        env.keys().all(|k| !k.starts_with("HEADLESS_")
            && !k.starts_with("MY_CACHE_")
            && !k.starts_with("OTHER_")),
        "headless, unallocated and other namespaces' Services give nothing: {env:?}"
    );
    let first_non_service = built.envs.iter().position(|(k, _)| k == "URL").unwrap();
    assert!(
        built.envs[..first_non_service]
            .iter()
            .all(|(k, _)| k.starts_with("KUBERNETES_") || k.starts_with("DB_")),
        "service variables come first: {:?}",
        built.envs
    );

    let without_links = pod(json!({"name": "app"}), Some(false));
    let env = build(&objects, &without_links).await.envs;
    assert!(!env.is_empty());
    assert!(
        env.iter().all(|(k, _)| k.starts_with("KUBERNETES_")),
        "only the kubernetes Service without links: {env:?}"
    );

    // A pod in `default` gets that namespace's Services with links.
    let mut in_default = pod(json!({"name": "app"}), None);
    in_default.metadata.namespace = Some("default".into());
    let env = build(&objects, &in_default).await.envs;
    let env = map(&env);
    assert_eq!(env["OTHER_SERVICE_HOST"], "10.96.0.5");
    assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.96.0.1");
}

#[test]
fn services_that_cannot_be_listed_fail_the_container() {
    let dir = tempfile::tempdir().unwrap();
    let p = pod(json!({"name": "app"}), None);
    let input = ContainerInput {
        pod: &p,
        container: &p.spec.as_ref().unwrap().containers[0],
        restart_count: 0,
        image_ref: String::new(),
        mounts: vec![],
        pod_ip: None,
        pod_ips: vec![],
        host_ip: None,
        pod_dir: dir.path().to_path_buf(),
        cluster_domain: String::new(),
        node_memory_capacity: 0,
        node_allocatable_cpu_milli: None,
        cfs_quota: Default::default(),
        memory_qos: None,
        env_sources: EnvSources {
            services: Err(ServicesUnavailable),
            ..Default::default()
        },
    };
    assert_eq!(
        container_config(&input).unwrap_err().to_string(),
        "failed to list services when setting up env vars"
    );
}
