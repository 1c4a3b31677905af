//! A CSI node driver for tests, doing what the CSI v1 spec says and recording every call. It
//! serves Identity and Node on its own unix socket, keeps one directory per volume under its data
//! dir (created on first stage or publish), and bind-mounts it: NodeStageVolume onto the staging
//! path, NodePublishVolume from there (or straight from the volume dir without staging) onto the
//! target path, read-only when asked; an ephemeral inline volume (volume context
//! csi.storage.k8s.io/ephemeral "true") is published straight from its dir. A volume asked for
//! with the block access type is a real block device instead: a backing file per volume
//! (`VOLUME_ID.img` in the data dir) attached to a loop device on stage (or first publish
//! without staging), the device node bind-mounted onto the target file on publish, the loop
//! device detached on unstage (or unpublish without staging). It registers
//! through the plugin watcher: a pluginregistration v1 socket in `plugins_registry` answering
//! GetInfo with type CSIPlugin. It runs on a runtime of its own, so stopping it closes every
//! connection as a dying driver would.
//!
//! NodeGetVolumeStats answers as a volume with a fixed quota would: capacity and inodes are the
//! configured size, used the apparent size of the files in the volume and the number of its
//! entries (itself included), available what is left; so a test can compute every figure.

use crate::plugin_server::{
    Calls, PluginServer, PluginServerError, Registrar, bind, record, recorded, runtime,
};
use kubelet_plugin_apis::csi::v1 as csi;
use kubelet_plugin_apis::pluginregistration::v1 as reg;
use nix::mount::{MntFlags, MsFlags};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

#[derive(Debug, Clone)]
pub struct CsiDriverConfig {
    /// The driver's name, e.g. `csi.test.kubelet-rs.io`.
    pub name: String,
    /// Where the driver serves Identity and Node.
    pub endpoint: PathBuf,
    /// The kubelet's `<root dir>/plugins_registry`; the registration socket goes there.
    pub registry_dir: PathBuf,
    /// Where the per-volume directories live.
    pub data_dir: PathBuf,
    pub node_id: String,
    /// NodeGetInfo's accessible topology segments.
    pub topology: BTreeMap<String, String>,
    /// NodeGetInfo's max_volumes_per_node (0: no limit).
    pub max_volumes: i64,
    /// Offer STAGE_UNSTAGE_VOLUME.
    pub stage_unstage: bool,
    /// The CSI versions GetInfo reports.
    pub versions: Vec<String>,
    /// Offer GET_VOLUME_STATS.
    pub volume_stats: bool,
    /// Offer VOLUME_CONDITION: NodeGetVolumeStats reports every volume healthy.
    pub volume_condition: bool,
    /// Offer VOLUME_MOUNT_GROUP (the request's volume_mount_group is only recorded: a bind
    /// mount takes no group).
    pub volume_mount_group: bool,
    /// Offer SINGLE_NODE_MULTI_WRITER.
    pub single_node_multi_writer: bool,
    /// Each volume's size in bytes and in inodes, as NodeGetVolumeStats reports them.
    pub volume_capacity_bytes: i64,
    pub volume_inodes: i64,
    /// The size of a block volume's backing file.
    pub block_size_bytes: u64,
    /// NodeStageVolume and NodePublishVolume wait this long after mounting before they
    /// answer, so a test can kill the kubelet while a call is in flight with the mount made.
    pub stage_delay: Duration,
    pub publish_delay: Duration,
}

impl CsiDriverConfig {
    /// A driver named `name` with its socket and data under `dir`, registering in `registry_dir`.
    pub fn new(name: &str, dir: &Path, registry_dir: &Path) -> Self {
        CsiDriverConfig {
            name: name.to_string(),
            endpoint: dir.join("csi.sock"),
            registry_dir: registry_dir.to_path_buf(),
            data_dir: dir.join("volumes"),
            node_id: format!("{name}-node"),
            topology: BTreeMap::new(),
            max_volumes: 0,
            stage_unstage: true,
            versions: vec!["1.0.0".into()],
            volume_stats: true,
            volume_condition: false,
            volume_mount_group: false,
            single_node_multi_writer: false,
            volume_capacity_bytes: 1 << 30,
            volume_inodes: 1 << 16,
            block_size_bytes: 16 << 20,
            stage_delay: Duration::ZERO,
            publish_delay: Duration::ZERO,
        }
    }

    /// The registration socket's path: `<registry dir>/<name>-reg.sock`, as the
    /// node-driver-registrar names it.
    pub fn registration_socket(&self) -> PathBuf {
        self.registry_dir.join(format!("{}-reg.sock", self.name))
    }
}

#[derive(Debug, Error)]
pub enum CsiDriverError {
    #[error("cannot create {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Server(#[from] PluginServerError),
}

/// Every NodePublishVolume request, in full, so tests can check what a volume was asked with.
type Publishes = Arc<std::sync::Mutex<Vec<csi::NodePublishVolumeRequest>>>;

#[derive(Clone)]
struct Driver {
    cfg: Arc<CsiDriverConfig>,
    calls: Calls,
    publishes: Publishes,
}

/// The volume context key the kubelet sets "true" in for CSI ephemeral inline volumes (with
/// podInfoOnMount).
const EPHEMERAL_KEY: &str = "csi.storage.k8s.io/ephemeral";

fn required(value: &str, what: &str) -> Result<(), Status> {
    if value.is_empty() {
        Err(Status::invalid_argument(format!(
            "{what} missing in request"
        )))
    } else {
        Ok(())
    }
}

/// Whether `path` is a mount point (bind mounts of the same filesystem share its device
/// number, so stat cannot tell).
fn is_mount_point(path: &Path) -> Result<bool, Status> {
    kubelet_volumes::is_mount_point(path)
        .map_err(|e| Status::internal(format!("cannot read mountinfo: {e}")))
}

fn bind_mount(source: &Path, target: &Path, readonly: bool) -> Result<(), Status> {
    let fail = |e: nix::Error| {
        Status::internal(format!(
            "bind mount {} on {}: {e}",
            source.display(),
            target.display()
        ))
    };
    nix::mount::mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(fail)?;
    if readonly {
        // A bind mount takes MS_RDONLY only on a remount.
        nix::mount::mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(fail)?;
    }
    Ok(())
}

fn unmount(target: &Path) -> Result<(), Status> {
    while is_mount_point(target)? {
        nix::mount::umount2(target, MntFlags::empty())
            .map_err(|e| Status::internal(format!("unmount {}: {e}", target.display())))?;
    }
    Ok(())
}

fn access(cap: Option<&csi::VolumeCapability>) -> Result<Access, Status> {
    use csi::volume_capability::AccessType;
    let cap =
        cap.ok_or_else(|| Status::invalid_argument("Volume capability missing in request"))?;
    match cap.access_type {
        Some(AccessType::Mount(_)) => Ok(Access::Mount),
        Some(AccessType::Block(_)) => Ok(Access::Block),
        None => Err(Status::invalid_argument(
            "Volume access type missing in request",
        )),
    }
}

/// What a request's volume capability asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Mount,
    Block,
}

/// Runs losetup with `args`, answering what it printed.
fn losetup(args: &[&str]) -> Result<String, Status> {
    let out = Command::new("losetup")
        .args(args)
        .output()
        .map_err(|e| Status::internal(format!("cannot run losetup: {e}")))?;
    if !out.status.success() {
        return Err(Status::internal(format!(
            "losetup {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The loop devices attached to `file` (`losetup -j` lines start with the device and a colon).
fn loop_devices_of(file: &Path) -> Result<Vec<PathBuf>, Status> {
    let listed = losetup(&["-j", &file.display().to_string()])?;
    Ok(listed
        .lines()
        .filter_map(|l| l.split_once(':').map(|(dev, _)| PathBuf::from(dev)))
        .collect())
}

/// The apparent size of the files under `path` and the number of entries, `path` included;
/// symbolic links are counted, not followed.
fn apparent_usage(path: &Path) -> std::io::Result<(i64, i64)> {
    let meta = std::fs::symlink_metadata(path)?;
    let mut bytes = if meta.is_file() { meta.len() as i64 } else { 0 };
    let mut inodes = 1;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            let (b, i) = apparent_usage(&entry?.path())?;
            bytes += b;
            inodes += i;
        }
    }
    Ok((bytes, inodes))
}

impl Driver {
    /// A block volume's backing file.
    fn backing_file(&self, volume_id: &str) -> PathBuf {
        self.cfg
            .data_dir
            .join(format!("{}.img", volume_id.replace('/', "_")))
    }

    /// The loop device of a block volume, attached to its backing file (created at the
    /// configured size on first use) unless it is already.
    fn attach(&self, volume_id: &str) -> Result<PathBuf, Status> {
        let file = self.backing_file(volume_id);
        if !file.exists() {
            let created =
                std::fs::File::create(&file).and_then(|f| f.set_len(self.cfg.block_size_bytes));
            created.map_err(|e| Status::internal(format!("create {}: {e}", file.display())))?;
        }
        if let Some(device) = loop_devices_of(&file)?.into_iter().next() {
            return Ok(device);
        }
        let shown = losetup(&["--find", "--show", &file.display().to_string()])?;
        Ok(PathBuf::from(shown.trim()))
    }

    /// Detaches every loop device of a block volume; nothing to do for a filesystem one.
    fn detach(&self, volume_id: &str) -> Result<(), Status> {
        let file = self.backing_file(volume_id);
        if !file.exists() {
            return Ok(());
        }
        for device in loop_devices_of(&file)? {
            losetup(&["-d", &device.display().to_string()])?;
        }
        Ok(())
    }

    /// The directory holding `volume_id`'s data, created on first use.
    fn volume_dir(&self, volume_id: &str) -> Result<PathBuf, Status> {
        let dir = self.cfg.data_dir.join(volume_id.replace('/', "_"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Status::internal(format!("create {}: {e}", dir.display())))?;
        Ok(dir)
    }

    /// Publishes a filesystem volume: the staged mount, or the volume's dir, onto the target dir.
    fn publish_mount(&self, r: &csi::NodePublishVolumeRequest) -> Result<(), Status> {
        // An inline volume is never staged, even by a driver that stages persistent ones (as
        // csi-driver-host-path does).
        let ephemeral = r.volume_context.get(EPHEMERAL_KEY).map(String::as_str) == Some("true");
        let source = if self.cfg.stage_unstage && !ephemeral {
            required(&r.staging_target_path, "Staging target path")?;
            let staging = PathBuf::from(&r.staging_target_path);
            if !is_mount_point(&staging)? {
                return Err(Status::failed_precondition(format!(
                    "volume {} is not staged at {}",
                    r.volume_id,
                    staging.display()
                )));
            }
            staging
        } else {
            self.volume_dir(&r.volume_id)?
        };
        let target = Path::new(&r.target_path);
        // Creating the target is the driver's part; its parent is the CO's.
        std::fs::create_dir_all(target)
            .map_err(|e| Status::internal(format!("create {}: {e}", target.display())))?;
        if !is_mount_point(target)? {
            bind_mount(&source, target, r.readonly)?;
        }
        Ok(())
    }

    /// Publishes a block volume: its loop device's node bind-mounted onto the target file.
    fn publish_block(&self, r: &csi::NodePublishVolumeRequest) -> Result<(), Status> {
        let device = if self.cfg.stage_unstage {
            required(&r.staging_target_path, "Staging target path")?;
            let staged = loop_devices_of(&self.backing_file(&r.volume_id))?;
            staged.into_iter().next().ok_or_else(|| {
                Status::failed_precondition(format!("block volume {} is not staged", r.volume_id))
            })?
        } else {
            self.attach(&r.volume_id)?
        };
        let target = Path::new(&r.target_path);
        // The target file is the driver's to create; its parent is the CO's.
        if !target.exists() {
            std::fs::File::create(target)
                .map_err(|e| Status::internal(format!("create {}: {e}", target.display())))?;
        }
        if !is_mount_point(target)? {
            bind_mount(&device, target, r.readonly)?;
        }
        Ok(())
    }

    fn capabilities(&self) -> Vec<csi::NodeServiceCapability> {
        use csi::node_service_capability::rpc::Type;
        let offered = [
            (Type::StageUnstageVolume, self.cfg.stage_unstage),
            (Type::GetVolumeStats, self.cfg.volume_stats),
            (Type::VolumeCondition, self.cfg.volume_condition),
            (Type::VolumeMountGroup, self.cfg.volume_mount_group),
            (
                Type::SingleNodeMultiWriter,
                self.cfg.single_node_multi_writer,
            ),
        ];
        let types: Vec<Type> = offered
            .into_iter()
            .filter_map(|(t, on)| on.then_some(t))
            .collect();
        types
            .into_iter()
            .map(|t| csi::NodeServiceCapability {
                r#type: Some(csi::node_service_capability::Type::Rpc(
                    csi::node_service_capability::Rpc { r#type: t as i32 },
                )),
            })
            .collect()
    }
}

#[tonic::async_trait]
impl csi::identity_server::Identity for Driver {
    async fn get_plugin_info(
        &self,
        _: Request<csi::GetPluginInfoRequest>,
    ) -> Result<Response<csi::GetPluginInfoResponse>, Status> {
        record(&self.calls, "GetPluginInfo".into());
        Ok(Response::new(csi::GetPluginInfoResponse {
            name: self.cfg.name.clone(),
            vendor_version: env!("CARGO_PKG_VERSION").into(),
            manifest: BTreeMap::new(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _: Request<csi::GetPluginCapabilitiesRequest>,
    ) -> Result<Response<csi::GetPluginCapabilitiesResponse>, Status> {
        use csi::plugin_capability::service::Type;
        record(&self.calls, "GetPluginCapabilities".into());
        // A node-only driver: no controller service; topology when it reports any.
        let capabilities = if self.cfg.topology.is_empty() {
            Vec::new()
        } else {
            vec![csi::PluginCapability {
                r#type: Some(csi::plugin_capability::Type::Service(
                    csi::plugin_capability::Service {
                        r#type: Type::VolumeAccessibilityConstraints as i32,
                    },
                )),
            }]
        };
        Ok(Response::new(csi::GetPluginCapabilitiesResponse {
            capabilities,
        }))
    }

    async fn probe(
        &self,
        _: Request<csi::ProbeRequest>,
    ) -> Result<Response<csi::ProbeResponse>, Status> {
        record(&self.calls, "Probe".into());
        Ok(Response::new(csi::ProbeResponse { ready: Some(true) }))
    }
}

#[tonic::async_trait]
impl csi::node_server::Node for Driver {
    async fn node_stage_volume(
        &self,
        request: Request<csi::NodeStageVolumeRequest>,
    ) -> Result<Response<csi::NodeStageVolumeResponse>, Status> {
        let r = request.into_inner();
        // The publish context (the attachment's metadata) only when there is one.
        let context: Vec<String> = r
            .publish_context
            .iter()
            .map(|(k, v)| format!(" {k}={v}"))
            .collect();
        record(
            &self.calls,
            format!(
                "NodeStageVolume {} {}{}",
                r.volume_id,
                r.staging_target_path,
                context.concat()
            ),
        );
        if !self.cfg.stage_unstage {
            return Err(Status::unimplemented("STAGE_UNSTAGE_VOLUME is not offered"));
        }
        required(&r.volume_id, "Volume ID")?;
        required(&r.staging_target_path, "Staging target path")?;
        let access = access(r.volume_capability.as_ref())?;
        let staging = Path::new(&r.staging_target_path);
        if !staging.is_dir() {
            return Err(Status::failed_precondition(format!(
                "staging target path {} is not a directory",
                staging.display()
            )));
        }
        if access == Access::Block {
            self.attach(&r.volume_id)?;
        } else if !is_mount_point(staging)? {
            bind_mount(&self.volume_dir(&r.volume_id)?, staging, false)?;
        }
        tokio::time::sleep(self.cfg.stage_delay).await;
        Ok(Response::new(csi::NodeStageVolumeResponse {}))
    }

    async fn node_unstage_volume(
        &self,
        request: Request<csi::NodeUnstageVolumeRequest>,
    ) -> Result<Response<csi::NodeUnstageVolumeResponse>, Status> {
        let r = request.into_inner();
        record(
            &self.calls,
            format!(
                "NodeUnstageVolume {} {}",
                r.volume_id, r.staging_target_path
            ),
        );
        required(&r.volume_id, "Volume ID")?;
        required(&r.staging_target_path, "Staging target path")?;
        unmount(Path::new(&r.staging_target_path))?;
        self.detach(&r.volume_id)?;
        Ok(Response::new(csi::NodeUnstageVolumeResponse {}))
    }

    async fn node_publish_volume(
        &self,
        request: Request<csi::NodePublishVolumeRequest>,
    ) -> Result<Response<csi::NodePublishVolumeResponse>, Status> {
        let r = request.into_inner();
        record(
            &self.calls,
            format!(
                "NodePublishVolume {} {}{}",
                r.volume_id,
                r.target_path,
                if r.readonly { " ro" } else { "" }
            ),
        );
        self.publishes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(r.clone());
        required(&r.volume_id, "Volume ID")?;
        required(&r.target_path, "Target path")?;
        if access(r.volume_capability.as_ref())? == Access::Block {
            self.publish_block(&r)?;
        } else {
            self.publish_mount(&r)?;
        }
        tokio::time::sleep(self.cfg.publish_delay).await;
        Ok(Response::new(csi::NodePublishVolumeResponse {}))
    }

    async fn node_unpublish_volume(
        &self,
        request: Request<csi::NodeUnpublishVolumeRequest>,
    ) -> Result<Response<csi::NodeUnpublishVolumeResponse>, Status> {
        let r = request.into_inner();
        record(
            &self.calls,
            format!("NodeUnpublishVolume {} {}", r.volume_id, r.target_path),
        );
        required(&r.volume_id, "Volume ID")?;
        required(&r.target_path, "Target path")?;
        let target = Path::new(&r.target_path);
        unmount(target)?;
        // The driver created the target (a directory, or a file for a block volume), so it
        // removes it.
        let removed = match std::fs::symlink_metadata(target) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir(target),
            Ok(_) => std::fs::remove_file(target),
            Err(e) => Err(e),
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Status::internal(format!(
                    "remove {}: {e}",
                    target.display()
                )));
            }
        }
        // Without staging, a block volume's device lives only while it is published.
        if !self.cfg.stage_unstage {
            self.detach(&r.volume_id)?;
        }
        Ok(Response::new(csi::NodeUnpublishVolumeResponse {}))
    }

    async fn node_get_volume_stats(
        &self,
        request: Request<csi::NodeGetVolumeStatsRequest>,
    ) -> Result<Response<csi::NodeGetVolumeStatsResponse>, Status> {
        use csi::volume_usage::Unit;
        let r = request.into_inner();
        record(
            &self.calls,
            format!(
                "NodeGetVolumeStats {} {} {}",
                r.volume_id, r.volume_path, r.staging_target_path
            ),
        );
        if !self.cfg.volume_stats {
            return Err(Status::unimplemented("GET_VOLUME_STATS is not offered"));
        }
        required(&r.volume_id, "Volume ID")?;
        required(&r.volume_path, "Volume path")?;
        let path = Path::new(&r.volume_path);
        if !path.exists() {
            return Err(Status::not_found(format!(
                "volume path {} does not exist",
                path.display()
            )));
        }
        let (bytes, inodes) = apparent_usage(path)
            .map_err(|e| Status::internal(format!("usage of {}: {e}", path.display())))?;
        let usage = |unit: Unit, total: i64, used: i64| csi::VolumeUsage {
            available: (total - used).max(0),
            total,
            used,
            unit: unit as i32,
        };
        let volume_condition = self.cfg.volume_condition.then(|| csi::VolumeCondition {
            abnormal: false,
            message: "volume is healthy".into(),
        });
        Ok(Response::new(csi::NodeGetVolumeStatsResponse {
            usage: vec![
                usage(Unit::Bytes, self.cfg.volume_capacity_bytes, bytes),
                usage(Unit::Inodes, self.cfg.volume_inodes, inodes),
            ],
            volume_condition,
        }))
    }

    async fn node_expand_volume(
        &self,
        _: Request<csi::NodeExpandVolumeRequest>,
    ) -> Result<Response<csi::NodeExpandVolumeResponse>, Status> {
        record(&self.calls, "NodeExpandVolume".into());
        Err(Status::unimplemented("EXPAND_VOLUME is not offered"))
    }

    async fn node_get_capabilities(
        &self,
        _: Request<csi::NodeGetCapabilitiesRequest>,
    ) -> Result<Response<csi::NodeGetCapabilitiesResponse>, Status> {
        record(&self.calls, "NodeGetCapabilities".into());
        Ok(Response::new(csi::NodeGetCapabilitiesResponse {
            capabilities: self.capabilities(),
        }))
    }

    async fn node_get_info(
        &self,
        _: Request<csi::NodeGetInfoRequest>,
    ) -> Result<Response<csi::NodeGetInfoResponse>, Status> {
        record(&self.calls, "NodeGetInfo".into());
        let accessible_topology = (!self.cfg.topology.is_empty()).then(|| csi::Topology {
            segments: self.cfg.topology.clone(),
        });
        Ok(Response::new(csi::NodeGetInfoResponse {
            node_id: self.cfg.node_id.clone(),
            max_volumes_per_node: self.cfg.max_volumes,
            accessible_topology,
        }))
    }
}

fn create_dir(path: &Path) -> Result<(), CsiDriverError> {
    std::fs::create_dir_all(path).map_err(|source| CsiDriverError::Dir {
        path: path.to_path_buf(),
        source,
    })
}

/// A running test CSI driver; dropping it stops it and removes its sockets (its volume dirs and
/// any mounts the kubelet did not tear down stay, as with a real driver) and detaches its loop
/// devices (one still mounted goes when its last mount does), so a failed test leaks none.
pub struct TestCsiDriver {
    calls: Calls,
    publishes: Publishes,
    data_dir: PathBuf,
    _server: PluginServer,
}

impl Drop for TestCsiDriver {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.data_dir) else {
            return;
        };
        let images = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "img"));
        for image in images {
            for device in loop_devices_of(&image).unwrap_or_default() {
                let _ = losetup(&["-d", &device.display().to_string()]);
            }
        }
    }
}

impl TestCsiDriver {
    pub fn start(cfg: CsiDriverConfig) -> Result<Self, CsiDriverError> {
        for dir in [&cfg.data_dir, &cfg.registry_dir] {
            create_dir(dir)?;
        }
        if let Some(parent) = cfg.endpoint.parent() {
            create_dir(parent)?;
        }
        let runtime = runtime()?;
        let calls = Calls::default();
        let publishes = Publishes::default();
        let driver = Driver {
            cfg: Arc::new(cfg.clone()),
            calls: calls.clone(),
            publishes: publishes.clone(),
        };
        let registrar = Registrar {
            info: reg::PluginInfo {
                r#type: "CSIPlugin".into(),
                name: cfg.name.clone(),
                endpoint: cfg.endpoint.display().to_string(),
                supported_versions: cfg.versions.clone(),
            },
            calls: calls.clone(),
        };
        let registration = cfg.registration_socket();
        let sockets = vec![cfg.endpoint.clone(), registration.clone()];
        // The driver's socket first: the kubelet calls it as soon as registration succeeds.
        let (listener, registry) = {
            let _enter = runtime.enter();
            (bind(&cfg.endpoint)?, bind(&registration)?)
        };
        let serve = async move {
            let server = tonic::transport::Server::builder()
                .add_service(csi::identity_server::IdentityServer::new(driver.clone()))
                .add_service(csi::node_server::NodeServer::new(driver.clone()))
                .serve_with_incoming(UnixListenerStream::new(listener));
            tokio::spawn(server);
            let server = tonic::transport::Server::builder()
                .add_service(reg::registration_server::RegistrationServer::new(registrar))
                .serve_with_incoming(UnixListenerStream::new(registry));
            tokio::spawn(server);
        };
        Ok(TestCsiDriver {
            calls,
            publishes,
            data_dir: cfg.data_dir.clone(),
            _server: PluginServer::start(runtime, sockets, serve),
        })
    }

    /// Every call so far, in order: `GetInfo`, `NodeGetInfo`,
    /// `NodeStageVolume VOLUME_ID STAGING_PATH [KEY=VALUE of the publish context, by key]...`,
    /// `NodePublishVolume VOLUME_ID TARGET [ro]`, ...
    pub fn calls(&self) -> Vec<String> {
        recorded(&self.calls)
    }

    /// Every NodePublishVolume request so far, in order, as it arrived.
    pub fn publish_requests(&self) -> Vec<csi::NodePublishVolumeRequest> {
        self.publishes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
