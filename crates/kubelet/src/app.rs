//! Wires the kubelet together from its resolved configuration and runs it.

use crate::builtin_runtime::{self, BuiltinError};
use crate::cluster;
use crate::cm;
use crate::cm::machine::MachineInfo;
use crate::csi::CsiPlugins;
use crate::csi::volumes::CsiVolumes;
use crate::devicemanager::DeviceManager;
use crate::eviction::{self, EvictionManager, EvictionMetrics};
use crate::image_gc::{self, ImageGc};
use crate::mirror_pods::MirrorPods;
use crate::nodeshutdown;
use crate::pleg::Pleg;
use crate::pluginmanager::PluginManager;
use crate::pod_manager::PodManager;
use crate::pod_sync::PodSyncer;
use crate::pod_workers::PodWorkers;
use crate::podresources;
use crate::probes::Probes;
use crate::runonce;
use crate::sd_notify;
use crate::server::view::{self, View};
use crate::server::{self, healthz, read_only};
use crate::startup_code;
use crate::static_pod_uids;
use crate::status::StatusManager;
use crate::sync_loop::SyncLoop;
use kubelet_config::AuthorizationMode;
use kubelet_config::{ContainerRuntime, KubeletConfig};
use kubelet_cri::Runtime;
use kubelet_cri::instrumented::InstrumentedRuntime;
use kubelet_cri::remote::RemoteRuntime;
use kubelet_events::ApiEventRecorder;
use kubelet_kuberuntime::dns::DnsOptions;
use kubelet_kuberuntime::events::{EventRecorder, LogRecorder};
use kubelet_kuberuntime::gc::{self, DeadContainerPolicy};
use kubelet_kuberuntime::manager::{ManagerConfig, RuntimeManager};
use kubelet_kuberuntime::sandbox_config::SandboxOptions;
use kubelet_nodeshutdown::{ShutdownConfig, ShutdownWatcher};
use kubelet_nodestatus::PressureInputs;
use kubelet_objects::{ApiObjects, NoApi, ObjectSource};
use kubelet_prober::handlers::Handlers;
use kubelet_prober::{LifecycleHandlers, ProbeManager};
use kubelet_server::{Reviews, ServerConfig};
use kubelet_sources::{ApiSourceConfig, SourcesConfig};
use kubelet_stats::{BuildInfo, KubeletMetrics, StatsConfig, StatsProvider, VolumeStatsCache};
use kubelet_volumes::{TokenCache, VolumeManager};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use thiserror::Error;

/// Where POST /pods keeps submitted pods, under the root dir, watched as a pod source.
const LOCAL_PODS_DIR: &str = "local-pods";

#[derive(Debug, Error)]
pub enum AppError {
    #[error(transparent)]
    Runtime(#[from] kubelet_cri::CriError),
    /// Boxed: the runtime's errors are large and rare, the kubelet's results many.
    #[error(transparent)]
    BuiltinRuntime(#[from] Box<BuiltinError>),
    #[error("{0}")]
    Setup(String),
    #[error("--runonce: not every pod ran")]
    RunOnceFailed,
}

/// The runtime behind the CRI call metrics, as the kubelet holds it.
fn instrumented<R: Runtime>(runtime: R, metrics: &mut KubeletMetrics) -> Arc<dyn Runtime> {
    let instrumented = InstrumentedRuntime::new(runtime);
    instrumented.register(metrics.registry_mut());
    Arc::new(instrumented)
}

/// The runtime the configuration selects: a remote one over gRPC, or the built-in one in process
/// (also served on its socket), behind the CRI call metrics.
async fn container_runtime(
    cfg: &KubeletConfig,
    metrics: &mut KubeletMetrics,
) -> Result<Arc<dyn Runtime>, AppError> {
    Ok(match &cfg.container_runtime {
        ContainerRuntime::Remote {
            endpoint,
            image_endpoint,
        } => {
            let remote =
                RemoteRuntime::connect(endpoint, image_endpoint, cfg.runtime_request_timeout)
                    .await?;
            instrumented(remote, metrics)
        }
        ContainerRuntime::Builtin => {
            let socket = cfg.builtin_runtime_socket();
            tracing::info!(
                root = %cfg.builtin_runtime.root.display(),
                state = %cfg.builtin_runtime.state.display(),
                socket = %socket.display(),
                "no --container-runtime-endpoint or containerRuntimeEndpoint: using the built-in container runtime in process (upstream would use containerd's socket)"
            );
            let embedded = builtin_runtime::embed(
                &cfg.builtin_runtime,
                cfg.cgroup_driver,
                &socket,
                cfg.runtime_request_timeout,
            )
            .await
            .map_err(Box::new)?;
            instrumented(embedded, metrics)
        }
    })
}

/// The node's primary IP: the first --node-ip, else the first global address of an up interface.
fn host_ip(cfg: &KubeletConfig) -> Option<String> {
    if let Some(ip) = cfg.node_ips.first() {
        return Some(ip.to_string());
    }
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    addrs
        .filter(|a| a.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP))
        .filter(|a| {
            !a.flags
                .contains(nix::net::if_::InterfaceFlags::IFF_LOOPBACK)
        })
        .filter_map(|a| {
            a.address
                .and_then(|s| s.as_sockaddr_in().map(|v4| v4.ip().to_string()))
        })
        .next()
}

pub async fn run(mut cfg: KubeletConfig) -> Result<(), AppError> {
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    cm::cpumanager::apply_reserved_cpus(&mut cfg).map_err(|e| AppError::Setup(e.to_string()))?;
    let mut metrics = KubeletMetrics::new(&cfg.node_name, BuildInfo::default());
    let runtime = container_runtime(&cfg, &mut metrics).await?;
    let eviction_metrics = EvictionMetrics::default();
    eviction_metrics.register(metrics.registry_mut());
    let driver_volume_stats = VolumeStatsCache::default();
    metrics
        .registry_mut()
        .register_collector(driver_volume_stats.collector());
    let metrics = Arc::new(metrics);
    let version = runtime.version().await?;
    tracing::info!(runtime = %version.runtime_name, version = %version.runtime_version, api = %version.runtime_api_version, "connected to the container runtime");

    let api = match &cfg.kubeconfig {
        Some(kubeconfig) => Some(cluster::connect(&cfg, kubeconfig).await?),
        None => None,
    };

    let machine = MachineInfo::read()
        .map_err(|e| AppError::Setup(format!("cannot read the machine's resources: {e}")))?;
    let host_ip = host_ip(&cfg);
    let (events, objects): (Arc<dyn EventRecorder>, Arc<dyn ObjectSource>) = match &api {
        Some(api) => (
            ApiEventRecorder::start(api.client.clone(), cfg.node_name.clone()),
            Arc::new(ApiObjects::new(api.client.clone())),
        ),
        None => (Arc::new(LogRecorder), Arc::new(NoApi)),
    };
    let csi = CsiPlugins::new(api.as_ref().map(|a| a.client.clone()), &cfg.node_name);
    // One cache of pod tokens for projected volumes and CSI drivers, as upstream's token manager.
    let tokens = Arc::new(TokenCache::default());
    let csi_volumes = Arc::new(
        CsiVolumes::new(
            csi.clone(),
            api.as_ref().map(|a| a.client.clone()),
            &cfg.node_name,
            &cfg.root_dir,
            driver_volume_stats.clone(),
        )
        .with_tokens(objects.clone(), tokens.clone()),
    );
    tokio::spawn(csi_volumes.clone().run_volume_stats(
        cfg.volume_stats_agg_period,
        cfg.feature_gates.csi_volume_health,
    ));
    let volumes = Arc::new(
        VolumeManager::new(cfg.root_dir.clone())
            .with_objects(objects.clone())
            .with_tokens(tokens)
            .with_claims(csi_volumes.clone()),
    );
    let pods_dir = cfg.root_dir.join("pods");
    for dir in [
        &pods_dir,
        &cfg.pod_logs_dir,
        &cfg.container_logs_symlink_dir,
    ] {
        std::fs::create_dir_all(dir)
            .map_err(|e| AppError::Setup(format!("cannot create {}: {e}", dir.display())))?;
    }
    let manager_cfg = ManagerConfig {
        sandbox: SandboxOptions {
            pod_logs_dir: cfg.pod_logs_dir.clone(),
            dns: DnsOptions {
                cluster_dns: cfg.cluster_dns.clone(),
                cluster_domain: cfg.cluster_domain.clone(),
                resolv_conf: cfg.resolv_conf.clone(),
                node_ips: cfg.node_ips.clone(),
            },
            cgroup_root: cfg.cgroup_root.clone(),
            cgroups_per_qos: cfg.cgroups_per_qos,
            cgroup_driver: cm::cgroup_driver(&cfg),
            cfs_quota: cm::cfs_quota(&cfg),
        },
        pods_dir: pods_dir.clone(),
        container_logs_symlink_dir: cfg.container_logs_symlink_dir.clone(),
        host_ip: host_ip.clone(),
        node_memory_capacity: machine.memory_bytes,
        node_allocatable_cpu_milli: Some(machine.cpu_milli),
        serialize_image_pulls: cfg.serialize_image_pulls,
        dead_containers: DeadContainerPolicy {
            min_age: cfg.minimum_container_ttl_duration,
            max_per_pod_container: cfg.maximum_dead_containers_per_container,
            max_containers: cfg.maximum_dead_containers,
        },
        memory_qos: cm::memory_qos(&cfg, &machine),
    };
    let devices = DeviceManager::start(&cfg.root_dir, cfg.device_plugin_endpoint_grace_period)
        .await
        .map_err(|e| AppError::Setup(e.to_string()))?;
    tokio::spawn(PluginManager::new(&cfg.root_dir, devices.clone(), csi).run());
    let cpu_manager = Arc::new(
        cm::cpumanager::CpuManager::start(&cfg)
            .map_err(|e| AppError::Setup(format!("failed to initialize the CPU manager: {e}")))?,
    );
    let hooks = Arc::new(LifecycleHandlers::new(Handlers::new(runtime.clone())));
    let (prober, probe_updates) = ProbeManager::new(runtime.clone(), events.clone());
    let mut probe_metrics = Registry::default();
    prober.register_metrics(&mut probe_metrics);
    let manager = Arc::new(
        RuntimeManager::new(
            runtime.clone(),
            volumes.clone(),
            events.clone(),
            hooks,
            manager_cfg,
        )
        .await?
        .with_objects(objects)
        .with_device_options(Arc::new(devices.clone()))
        .with_container_cpus(cpu_manager.clone()),
    );
    // The eviction manager publishes the node's pressure and readiness.
    let (pressure_tx, pressure_rx) = tokio::sync::watch::channel(PressureInputs::default());
    let node = api.as_ref().map(|api| {
        let runtime_version = format!("{}://{}", version.runtime_name, version.runtime_version);
        let extended = Some(devices.node_resources());
        let csi_volumes = csi_volumes.clone();
        cluster::start_node(
            api.client.clone(),
            &cfg,
            pressure_rx.clone(),
            runtime_version,
            extended,
            Arc::new(move || csi_volumes.volumes_in_use()),
        )
    });
    if let Some(node) = &node {
        tokio::spawn(cluster::follow_allocatable(node.clone(), volumes.clone()));
    }
    let cgroups = cm::start_pod_cgroups(&cfg, &machine).map_err(|e| {
        AppError::Setup(format!(
            "cannot set up the QoS and node allocatable cgroups under {}: {e}",
            cfg.cgroup_root
        ))
    })?;

    let status = Arc::new(StatusManager::with_metrics(metrics.clone()));
    let syncer = Arc::new(PodSyncer {
        runtime: manager.clone(),
        volumes,
        cgroups,
        status: status.clone(),
        events: events.clone(),
        pods_dir,
        pod_logs_dir: cfg.pod_logs_dir.clone(),
        host_ip,
        sync_frequency: cfg.sync_frequency,
        probes: Probes::new(prober),
        metrics: metrics.clone(),
    });
    let workers = PodWorkers::new(syncer);

    let health = healthz::Health::default();
    let pods = PodManager::default();
    podresources::serve(
        &cfg.root_dir,
        podresources::active_pods(pods.clone(), status.clone()),
        devices.clone(),
        cpu_manager.clone(),
    )
    .map_err(|e| AppError::Setup(e.to_string()))?;
    if let Some(api) = &api {
        status.start_api_sync(api.client.clone(), pods.clone());
    }
    let local_pods_dir = cfg
        .local_pod_submission
        .then(|| cfg.root_dir.join(LOCAL_PODS_DIR));
    if cfg.healthz_port > 0 {
        let addr = SocketAddr::new(cfg.healthz_bind_address, cfg.healthz_port);
        server::serve("healthz", addr, healthz::router(health.clone()))
            .await
            .map_err(AppError::Setup)?;
    }
    let stats = Arc::new(
        StatsProvider::new(StatsConfig {
            cgroup_mount: PathBuf::from("/sys/fs/cgroup"),
            pod_cgroup_root: cfg.cgroup_root.clone(),
            cgroups_per_qos: cfg.cgroups_per_qos,
            cgroup_driver: cm::cgroup_driver(&cfg),
            proc_root: PathBuf::from("/proc"),
            root_dir: cfg.root_dir.clone(),
            pod_logs_dir: cfg.pod_logs_dir.clone(),
            image_fs_from_cri: true,
        })
        .with_driver_volumes(driver_volume_stats),
    );
    // What the kubelet port and the read-only port read.
    let view = Arc::new(View {
        node_name: cfg.node_name.clone(),
        pods: pods.clone(),
        status: status.clone(),
        runtime: runtime.clone(),
        health: health.clone(),
        configz: view::configz(&cfg),
        metrics: metrics.clone(),
        probe_metrics: Arc::new(probe_metrics),
        stats: stats.clone(),
    });
    let needs_api =
        cfg.authorization_mode == AuthorizationMode::Webhook || cfg.authentication_webhook;
    if needs_api && api.is_none() {
        // The webhooks ask the API server; standalone, the port stays closed rather than open
        // to everyone.
        tracing::error!(
            port = cfg.port,
            "the kubelet API port is not served: the authentication or authorization webhook needs the API server (--kubeconfig); set authentication.webhook.enabled false and authorization.mode AlwaysAllow to serve it standalone"
        );
    } else {
        let server = ServerConfig {
            address: cfg.address,
            port: cfg.port,
            tls_cert_file: cfg.tls_cert_file.clone(),
            tls_private_key_file: cfg.tls_private_key_file.clone(),
            cert_dir: cfg.cert_dir.clone(),
            node_ips: cfg.node_ips.clone(),
            client_ca_file: cfg.client_ca_file.clone(),
            anonymous_auth: cfg.anonymous_auth,
            authorization_mode: cfg.authorization_mode,
            tls_min_version: cfg.tls_min_version.clone(),
            tls_cipher_suites: cfg.tls_cipher_suites.clone(),
            log_dir: PathBuf::from("/var/log"),
            authentication_webhook: cfg.authentication_webhook,
            authentication_webhook_cache_ttl: cfg.authentication_webhook_cache_ttl,
            authorization_webhook_cache_authorized_ttl: cfg
                .authorization_webhook_cache_authorized_ttl,
            authorization_webhook_cache_unauthorized_ttl: cfg
                .authorization_webhook_cache_unauthorized_ttl,
            reviews: api
                .as_ref()
                .map(|api| Reviews::from_client(api.client.clone())),
            local_pods_dir: local_pods_dir.clone(),
            cert_resolver: match (&api, &node) {
                (Some(api), Some(node)) if cfg.server_tls_bootstrap => {
                    Some(cluster::serving_certificate(&cfg, api, node.clone())?)
                }
                _ => None,
            },
        };
        kubelet_server::serve(server, view.clone())
            .await
            .map_err(|e| {
                AppError::Setup(format!("kubelet API on {}:{}: {e}", cfg.address, cfg.port))
            })?;
    }
    if cfg.read_only_port > 0 {
        let addr = SocketAddr::new(cfg.address, cfg.read_only_port);
        let router = read_only::router(view.clone());
        server::serve("read-only", addr, router)
            .await
            .map_err(AppError::Setup)?;
    }

    let logs = kubelet_logs::ContainerLogManager::new(
        runtime.clone(),
        cfg.container_log_max_size,
        cfg.container_log_max_files,
    )
    .map_err(|e| AppError::Setup(format!("container log rotation: {e}")))?;
    tokio::spawn(async move { logs.run(std::future::pending()).await });
    let image_gc = Arc::new(tokio::sync::Mutex::new(ImageGc::new(
        runtime.clone(),
        cfg.image_gc.clone(),
        events.clone(),
    )));
    tokio::spawn(ImageGc::run(image_gc.clone(), image_gc::PERIOD));
    tokio::spawn(gc::run_node_gc(manager.clone()));
    let eviction = eviction::Deps {
        runtime: runtime.clone(),
        stats,
        pods: pods.clone(),
        workers: workers.clone(),
        status: status.clone(),
        events: events.clone(),
        image_gc,
        containers: manager.clone(),
        metrics: eviction_metrics,
    };
    // As the node status loop did before: no slower than the status updates.
    let period = cfg
        .node_status_update_frequency
        .min(eviction::MONITORING_PERIOD);
    tokio::spawn(EvictionManager::new(&cfg, period, eviction).run(pressure_tx));

    let (pleg, pleg_events) = Pleg::new(runtime.clone());
    let pleg = pleg.with_metrics(metrics.clone());
    tokio::spawn(pleg.run());

    let mut sources = kubelet_sources::start(SourcesConfig {
        node_name: cfg.node_name.clone(),
        manifest_path: cfg.static_pod_path.clone(),
        file_check_frequency: cfg.file_check_frequency,
        manifest_url: cfg.static_pod_url.clone(),
        manifest_url_headers: cfg.static_pod_url_headers.clone(),
        http_check_frequency: cfg.http_check_frequency,
        api: api.as_ref().map(|api| ApiSourceConfig {
            client: api.client.clone(),
            server: api.server.clone(),
        }),
        local_pods_dir,
        adopted_uids: static_pod_uids::running(runtime.as_ref()).await,
    });
    tokio::spawn(cpu_manager.clone().run(
        runtime.clone(),
        podresources::active_pods(pods.clone(), status.clone()),
        pods.clone(),
    ));
    if let (Some(api), Some(node)) = (&api, &node) {
        let mirrors = MirrorPods::new(
            api.client.clone(),
            cfg.node_name.clone(),
            node.clone(),
            pods.clone(),
        )
        .with_status(status.clone());
        tokio::spawn(mirrors.run());
    }
    let mut sync_loop = SyncLoop::new(
        pods.clone(),
        workers.clone(),
        sources.ready.clone(),
        machine,
        cfg.max_pods,
        events,
        health,
    );
    sync_loop = sync_loop
        .with_eviction(pressure_rx)
        .with_devices(devices)
        .with_cpus(cpu_manager.clone());
    if let Some(node) = node {
        sync_loop = sync_loop.with_node(node);
    }
    let shutdown = ShutdownConfig::new(
        cfg.shutdown_grace_period,
        cfg.shutdown_grace_period_critical_pods,
    );
    match ShutdownWatcher::start(shutdown).await {
        Ok(Some(watcher)) => {
            sync_loop = sync_loop.with_node_shutdown(watcher.shutting_down());
            tokio::spawn(nodeshutdown::run(watcher, pods, workers, status.clone()));
        }
        Ok(None) => {}
        // As upstream: the kubelet runs on without graceful shutdown.
        Err(e) => tracing::error!("cannot watch for node shutdown: {e}"),
    }
    tracing::info!(node = %cfg.node_name, "kubelet started");
    // Every port is bound by now: healthz, the kubelet API and the read-only port.
    sd_notify::ready();
    // Start-up is over: the code only it ran need not stay resident.
    startup_code::release_and_log();

    if cfg.run_once {
        let (forward, loop_updates) = tokio::sync::mpsc::unbounded_channel();
        let pods = runonce::collect_pods(&mut sources.updates, &forward, &sources.ready).await;
        tokio::spawn(async move {
            // Later changes still reach the loop, so pods keep converging while we wait.
            while let Some(u) = sources.updates.recv().await {
                let _ = forward.send(u);
            }
        });
        tokio::spawn(sync_loop.run(loop_updates, pleg_events, probe_updates));
        return if runonce::wait(&pods, &status, runonce::TIMEOUT).await {
            Ok(())
        } else {
            Err(AppError::RunOnceFailed)
        };
    }

    let main_loop = tokio::spawn(sync_loop.run(sources.updates, pleg_events, probe_updates));
    shutdown_signal().await;
    sd_notify::stopping();
    tracing::info!("shutting down; pods keep running");
    main_loop.abort();
    Ok(())
}

/// SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
