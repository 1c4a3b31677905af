//! Version, Status, runtime config and what is not built.

use crate::fixture::Fixture;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use k8s_cri::v1::*;
use runtime_service::Runtime;
use tonic::{Code, Request};

pub fn version_status_and_config(fx: &Fixture) {
    fx.tokio.block_on(async {
        let rt = Runtime::open(fx.options("svc")).await.expect("open");
        let v = rt
            .version(Request::new(VersionRequest::default()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(v.runtime_name, "kubelet-rs");
        assert_eq!(v.runtime_api_version, "v1");

        let s = rt
            .status(Request::new(StatusRequest { verbose: true }))
            .await
            .unwrap()
            .into_inner();
        let conditions = s.status.expect("status").conditions;
        let ready = |t: &str| conditions.iter().find(|c| c.r#type == t).expect(t).status;
        assert!(
            ready("RuntimeReady") && ready("NetworkReady"),
            "{conditions:?}"
        );
        let names: Vec<&str> = s.runtime_handlers.iter().map(|h| h.name.as_str()).collect();
        assert!(
            names.contains(&"runc") && names.contains(&"crun") && names.contains(&""),
            "{names:?}"
        );
        // runc (the default, also listed as "") applies rro; crun 1.8 cannot say it does.
        for h in &s.runtime_handlers {
            assert_eq!(
                h.features,
                Some(RuntimeHandlerFeatures {
                    recursive_read_only_mounts: h.name != "crun",
                    user_namespaces: false,
                }),
                "{}",
                h.name
            );
        }

        let c = rt
            .runtime_config(Request::new(RuntimeConfigRequest {}))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            c.linux.unwrap().cgroup_driver,
            CgroupDriver::Cgroupfs as i32
        );
        rt.update_runtime_config(Request::new(UpdateRuntimeConfigRequest {
            runtime_config: Some(RuntimeConfig {
                network_config: Some(NetworkConfig {
                    pod_cidr: "10.244.0.0/24".into(),
                }),
            }),
        }))
        .await
        .unwrap();
        let s = rt
            .status(Request::new(StatusRequest { verbose: true }))
            .await
            .unwrap()
            .into_inner();
        assert!(s.info["config"].contains("10.244.0.0/24"), "{:?}", s.info);

        // Without a network config the node must go NotReady, as upstream's does.
        let mut options = fx.options("svc-nonet");
        options.cni_conf_dir = fx.path().join("no-net.d");
        let rt = Runtime::open(options).await.expect("open");
        let s = rt
            .status(Request::new(StatusRequest::default()))
            .await
            .unwrap()
            .into_inner();
        let network = s
            .status
            .unwrap()
            .conditions
            .into_iter()
            .find(|c| c.r#type == "NetworkReady")
            .unwrap();
        assert!(!network.status);
        assert_eq!(network.reason, "NetworkPluginNotReady");
        assert!(!network.message.is_empty());
    });
}

pub fn unimplemented(fx: &Fixture) {
    fx.tokio.block_on(async {
        let rt = Runtime::open(fx.options("svc-unimpl")).await.expect("open");
        // Streaming URLs are handed out only for what exists, after the request's own checks.
        let status = rt
            .exec(Request::new(ExecRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (Code::InvalidArgument, "missing required container_id")
        );
        let status = rt
            .exec(Request::new(ExecRequest {
                container_id: "nosuchcontainer".into(),
                cmd: vec!["true".into()],
                stdout: true,
                ..Default::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let status = rt
            .port_forward(Request::new(PortForwardRequest {
                pod_sandbox_id: "nosuchsandbox".into(),
                port: vec![80],
            }))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");

        let code = rt
            .checkpoint_container(Request::new(CheckpointContainerRequest::default()))
            .await
            .unwrap_err()
            .code();
        assert_eq!(code, Code::Unimplemented);
        let code = rt
            .list_metric_descriptors(Request::new(ListMetricDescriptorsRequest {}))
            .await
            .unwrap_err()
            .code();
        assert_eq!(code, Code::Unimplemented);
        let code = rt
            .list_pod_sandbox_metrics(Request::new(ListPodSandboxMetricsRequest {}))
            .await
            .unwrap_err()
            .code();
        assert_eq!(code, Code::Unimplemented);
    });
}

/// Both services on a unix socket, through a real gRPC client; a stale socket file is replaced.
pub fn served_on_a_socket(fx: &Fixture) {
    use k8s_cri::v1::image_service_client::ImageServiceClient;
    use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
    use std::os::unix::fs::PermissionsExt;

    let rt = fx.runtime("srv");
    let socket = fx.path().join("srv/sock/cri.sock");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    std::fs::write(&socket, b"stale").unwrap();
    fx.tokio.block_on(async {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let path = socket.clone();
        let server = tokio::spawn(async move {
            runtime_service::serve(rt, &path, async {
                let _ = stopped.await;
            })
            .await
        });
        let channel = crate::fixture::connect(&socket).await;
        let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);

        let mut runtime = RuntimeServiceClient::new(channel.clone());
        let v = runtime
            .version(VersionRequest::default())
            .await
            .expect("Version")
            .into_inner();
        assert_eq!(v.runtime_name, "kubelet-rs");
        let mut images = ImageServiceClient::new(channel);
        let listed = images
            .list_images(ListImagesRequest::default())
            .await
            .expect("ListImages")
            .into_inner();
        assert!(
            listed
                .images
                .iter()
                .any(|i| i.repo_tags.iter().any(|t| t == crate::fixture::BUSYBOX)),
            "{listed:?}"
        );
        let spec = |image: &str| {
            Some(ImageSpec {
                image: image.into(),
                ..Default::default()
            })
        };
        let found = images
            .image_status(ImageStatusRequest {
                image: spec(crate::fixture::BUSYBOX),
                verbose: true,
            })
            .await
            .expect("ImageStatus")
            .into_inner();
        assert!(
            found.image.is_some() && found.info.contains_key("info"),
            "{found:?}"
        );
        let missing = images
            .image_status(ImageStatusRequest {
                image: spec("localhost/nosuch:1"),
                verbose: false,
            })
            .await
            .expect("ImageStatus of a missing image")
            .into_inner();
        assert!(missing.image.is_none());
        images
            .remove_image(RemoveImageRequest {
                image: spec("localhost/nosuch:1"),
            })
            .await
            .expect("RemoveImage of a missing image succeeds");
        let fs = images
            .image_fs_info(ImageFsInfoRequest {})
            .await
            .expect("ImageFsInfo")
            .into_inner();
        assert!(
            fs.image_filesystems[0]
                .used_bytes
                .as_ref()
                .is_some_and(|b| b.value > 0)
        );

        stop.send(()).unwrap();
        server.await.unwrap().expect("serve ends cleanly");
    });
}
