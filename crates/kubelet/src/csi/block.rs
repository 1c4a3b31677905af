//! Raw block CSI persistent volumes (PV volumeMode Block; upstream csi_block.go and
//! volumepathhandler), in upstream's layout under ROOT/plugins/kubernetes.io/csi/volumeDevices:
//!
//! - `PV/data/vol_data.json`: what teardown and volumesInUse need, written before the driver is
//!   first asked;
//! - `staging/PV`: NodeStageVolume's staging path (drivers with STAGE_UNSTAGE_VOLUME);
//! - `publish/PV/POD_UID`: NodePublishVolume's target, a file the driver puts the device on;
//!
//! and per pod `ROOT/pods/UID/volumeDevices/kubernetes.io~csi/PV`, a symlink to the published
//! device: the host path containers' volumeDevices get (runtimes resolve it). The symlink is made
//! before NodePublishVolume, so a crash mid-publish leaves the pod's volume found by teardown.
//!
//! Upstream also bind-mounts the published device under `PV/dev/POD_UID` and attaches a loop
//! device to that, only to keep the device open while pods map it. Here the driver's mount on
//! the publish path holds the device already, and no loop device is left to leak across a crash.
//!
//! A volume is staged while any pod's publish path is left under `publish/PV`, which survives a
//! restart: the first pod stages it, the last one to go unstages it.

use super::CsiPlugins;
use super::client::{self, VolumeRequest};
use super::volumes::{
    POD_VOLUME_PLUGIN_DIR, VOL_DATA_FILE, attachment_name, create_dir, mounted, read_vol_data,
    remove_if_present, write_vol_data,
};
use k8s_openapi::api::core::v1::{PersistentVolumeSpec, Pod};
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

const BLOCK: &str = "Block";

/// Whether the PV is a raw block volume.
pub(super) fn is_block(spec: &PersistentVolumeSpec) -> bool {
    spec.volume_mode.as_deref() == Some(BLOCK)
}

/// Upstream's volume mode check: a block volume is for volumeDevices only, any other for
/// volumeMounts only, in every container of the pod.
pub(super) fn check_use(pod: &Pod, volume_name: &str, block: bool) -> Result<(), String> {
    let spec = pod.spec.as_ref();
    let containers = spec.iter().flat_map(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
    });
    let mut mounts: Vec<&str> = Vec::new();
    let mut devices: Vec<&str> = Vec::new();
    for c in containers {
        mounts.extend(c.volume_mounts.iter().flatten().map(|m| m.name.as_str()));
        devices.extend(c.volume_devices.iter().flatten().map(|d| d.name.as_str()));
    }
    for c in spec
        .iter()
        .flat_map(|s| s.ephemeral_containers.iter().flatten())
    {
        mounts.extend(c.volume_mounts.iter().flatten().map(|m| m.name.as_str()));
        devices.extend(c.volume_devices.iter().flatten().map(|d| d.name.as_str()));
    }
    let mode = if block { BLOCK } else { "Filesystem" };
    let misused = if block {
        mounts.contains(&volume_name).then_some("volumeMounts")
    } else {
        devices.contains(&volume_name).then_some("volumeDevices")
    };
    match misused {
        Some(field) => Err(format!(
            "volume {volume_name} has volumeMode {mode}, but is specified in {field}"
        )),
        None => Ok(()),
    }
}

/// ROOT/plugins/kubernetes.io/csi/volumeDevices.
fn devices_dir(root: &Path) -> PathBuf {
    root.join("plugins")
        .join(super::CSI_PLUGIN_NAME)
        .join("volumeDevices")
}

/// The node-wide paths of one block PV.
struct Paths {
    dir: PathBuf,
    pv: String,
}

impl Paths {
    fn new(root: &Path, pv: &str) -> Result<Self, String> {
        if !kubelet_volumes::is_single_component(pv) {
            return Err(format!(
                "invalid persistent volume name {pv:?}: it must be a single path component"
            ));
        }
        Ok(Paths {
            dir: devices_dir(root),
            pv: pv.to_string(),
        })
    }

    fn volume_dir(&self) -> PathBuf {
        self.dir.join(&self.pv)
    }

    fn data_dir(&self) -> PathBuf {
        self.volume_dir().join("data")
    }

    fn staging(&self) -> PathBuf {
        self.dir.join("staging").join(&self.pv)
    }

    fn publish_dir(&self) -> PathBuf {
        self.dir.join("publish").join(&self.pv)
    }

    fn publish_path(&self, pod_uid: &str) -> PathBuf {
        self.publish_dir().join(pod_uid)
    }

    /// Whether a pod other than `except` has its publish path here.
    fn published_for_others(&self, except: Option<&str>) -> Result<bool, String> {
        let dir = self.publish_dir();
        match std::fs::read_dir(&dir) {
            Ok(entries) => Ok(entries
                .flatten()
                .any(|e| Some(e.file_name().to_string_lossy().as_ref()) != except)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!("cannot list {}: {e}", dir.display())),
        }
    }
}

/// One pod's block PV, for set-up.
pub(super) struct BlockVolume<'a> {
    pub root: &'a Path,
    pub node_name: &'a str,
    pub pod_uid: &'a str,
    pub pv_name: &'a str,
    pub driver: &'a str,
    pub endpoint: &'a Path,
    /// The driver offers STAGE_UNSTAGE_VOLUME.
    pub stages: bool,
}

/// Where a set-up block volume is.
pub(super) struct MappedDevice {
    /// The pod's symlink to the device, for its containers.
    pub link: PathBuf,
    /// NodePublishVolume's target.
    pub publish_path: PathBuf,
    pub staging: Option<PathBuf>,
}

impl BlockVolume<'_> {
    /// Upstream's SetUpDevice and MapPodDevice: staged unless another pod has it published,
    /// then published to this pod's publish path and linked from the pod's device dir.
    /// Secrets are fetched only when the driver is to be asked.
    pub(super) async fn set_up<S, P>(
        &self,
        request: &VolumeRequest,
        read_only: bool,
        stage_secrets: S,
        publish_secrets: P,
    ) -> Result<MappedDevice, String>
    where
        S: Future<Output = Result<BTreeMap<String, String>, String>>,
        P: Future<Output = Result<BTreeMap<String, String>, String>>,
    {
        let paths = Paths::new(self.root, self.pv_name)?;
        let pod_dir =
            kubelet_volumes::pod_device_dir(self.root, self.pod_uid, POD_VOLUME_PLUGIN_DIR)
                .map_err(|e| e.to_string())?;
        let mapped = MappedDevice {
            link: pod_dir.join(self.pv_name),
            publish_path: paths.publish_path(self.pod_uid),
            staging: self.stages.then(|| paths.staging()),
        };
        let linked = std::fs::symlink_metadata(&mapped.link).is_ok_and(|m| m.is_symlink());
        if linked && mounted(&mapped.publish_path)? {
            return Ok(mapped);
        }
        write_vol_data(
            &paths.data_dir(),
            &BTreeMap::from([
                ("specVolID", self.pv_name.to_string()),
                ("volumeHandle", request.volume_id.clone()),
                ("driverName", self.driver.to_string()),
                ("nodeName", self.node_name.to_string()),
                (
                    "attachmentID",
                    attachment_name(&request.volume_id, self.driver, self.node_name),
                ),
            ]),
        )?;
        if let Some(staging) = &mapped.staging
            && !paths.published_for_others(Some(self.pod_uid))?
        {
            create_dir(staging)?;
            client::node_stage(self.endpoint, request, staging, stage_secrets.await?).await?;
            tracing::info!(
                pod_uid = self.pod_uid,
                driver = self.driver,
                volume = request.volume_id,
                "MapVolume.SetUpDevice succeeded for volume {:?}",
                self.pv_name
            );
        }
        create_dir(&paths.publish_dir())?;
        create_dir(&pod_dir)?;
        // Linked before the driver is asked, so a crash mid-publish leaves it found.
        remove_if_present(&mapped.link, false)?;
        std::os::unix::fs::symlink(&mapped.publish_path, &mapped.link).map_err(|e| {
            format!(
                "failed to create symlink {} to {}: {e}",
                mapped.link.display(),
                mapped.publish_path.display()
            )
        })?;
        client::node_publish(
            self.endpoint,
            request,
            mapped.staging.as_deref(),
            &mapped.publish_path,
            read_only,
            publish_secrets.await?,
        )
        .await?;
        let is_device =
            std::fs::metadata(&mapped.publish_path).is_ok_and(|m| m.file_type().is_block_device());
        if !is_device {
            return Err(format!(
                "NodePublishVolume left no block device at {}",
                mapped.publish_path.display()
            ));
        }
        tracing::info!(
            pod_uid = self.pod_uid,
            driver = self.driver,
            volume = request.volume_id,
            "MapVolume.MapPodDevice succeeded for volume {:?}",
            self.pv_name
        );
        Ok(mapped)
    }
}

/// Upstream's UnmapPodDevice and TearDownDevice for every block volume of the pod on disk:
/// unpublished, unlinked, and unstaged once no pod has it published. Works from the disk alone.
pub(super) async fn tear_down(csi: &CsiPlugins, root: &Path, pod_uid: &str) -> Result<(), String> {
    let pod_dir = kubelet_volumes::pod_device_dir(root, pod_uid, POD_VOLUME_PLUGIN_DIR)
        .map_err(|e| e.to_string())?;
    let entries = match std::fs::read_dir(&pod_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot list {}: {e}", pod_dir.display())),
    };
    for entry in entries.flatten() {
        let pv = entry.file_name().to_string_lossy().into_owned();
        let paths = Paths::new(root, &pv)?;
        let publish_path = paths.publish_path(pod_uid);
        let Some(data) = read_vol_data(&paths.data_dir())? else {
            // Nothing was ever asked of a driver for it.
            remove_if_present(&entry.path(), false)?;
            continue;
        };
        let driver = data.get("driverName").cloned().unwrap_or_default();
        let handle = data.get("volumeHandle").cloned().unwrap_or_default();
        let endpoint = || {
            csi.endpoint(&driver).ok_or_else(|| {
                format!("driver name {driver} not found in the list of registered CSI drivers")
            })
        };
        if publish_path.exists() || mounted(&publish_path)? {
            client::node_unpublish(&endpoint()?, &handle, &publish_path).await?;
            if mounted(&publish_path)? {
                return Err(format!(
                    "{} is still mounted after NodeUnpublishVolume",
                    publish_path.display()
                ));
            }
            remove_if_present(&publish_path, false)?;
        }
        remove_if_present(&entry.path(), false)?;
        tracing::info!(
            pod_uid,
            driver,
            volume = handle,
            "UnmapVolume.UnmapPodDevice succeeded for volume {pv:?}"
        );
        if paths.published_for_others(None)? {
            continue;
        }
        let staging = paths.staging();
        if staging.exists() {
            client::node_unstage(&endpoint()?, &handle, &staging).await?;
            remove_if_present(&staging, true)?;
            tracing::info!(
                driver,
                volume = handle,
                "UnmapDevice.TearDownDevice succeeded"
            );
        }
        remove_if_present(&paths.publish_dir(), true)?;
        remove_if_present(&paths.data_dir().join(VOL_DATA_FILE), false)?;
        remove_if_present(&paths.data_dir(), true)?;
        remove_if_present(&paths.volume_dir(), true)?;
    }
    remove_if_present(&pod_dir, true)?;
    remove_if_present(pod_dir.parent().unwrap_or(&pod_dir), true)
}

/// The (driver, handle) of every block volume with its data on disk.
pub(super) fn volumes_on_disk(root: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(devices_dir(root)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| read_vol_data(&entry.path().join("data")).ok().flatten())
        .filter_map(|mut data| Some((data.remove("driverName")?, data.remove("volumeHandle")?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(mounts: &[&str], devices: &[&str]) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "uid": "u"},
            "spec": {"containers": [{
                "name": "app",
                "volumeMounts": mounts.iter().map(|n| serde_json::json!({"name": n, "mountPath": "/m"})).collect::<Vec<_>>(),
            }], "initContainers": [{
                "name": "init",
                "volumeDevices": devices.iter().map(|n| serde_json::json!({"name": n, "devicePath": "/dev/x"})).collect::<Vec<_>>(),
            }]},
        }))
        .unwrap()
    }

    #[test]
    fn a_volume_is_used_as_its_mode_says() {
        assert!(check_use(&pod(&["fs"], &["raw"]), "raw", true).is_ok());
        assert!(check_use(&pod(&["fs"], &["raw"]), "fs", false).is_ok());
        assert_eq!(
            check_use(&pod(&["raw"], &[]), "raw", true).unwrap_err(),
            "volume raw has volumeMode Block, but is specified in volumeMounts"
        );
        assert_eq!(
            check_use(&pod(&[], &["fs"]), "fs", false).unwrap_err(),
            "volume fs has volumeMode Filesystem, but is specified in volumeDevices"
        );
    }

    #[test]
    fn paths_are_upstreams() {
        let paths = Paths::new(Path::new("/r"), "pv-1").unwrap();
        let base = "/r/plugins/kubernetes.io/csi/volumeDevices";
        assert_eq!(paths.data_dir(), Path::new(&format!("{base}/pv-1/data")));
        assert_eq!(paths.staging(), Path::new(&format!("{base}/staging/pv-1")));
        assert_eq!(
            paths.publish_path("uid-1"),
            Path::new(&format!("{base}/publish/pv-1/uid-1"))
        );
        assert!(Paths::new(Path::new("/r"), "../x").is_err());
    }

    #[test]
    fn staged_while_another_pod_has_it_published() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::new(root.path(), "pv").unwrap();
        assert!(!paths.published_for_others(None).unwrap());
        create_dir(&paths.publish_dir()).unwrap();
        std::fs::write(paths.publish_path("a"), "").unwrap();
        assert!(!paths.published_for_others(Some("a")).unwrap());
        assert!(paths.published_for_others(Some("b")).unwrap());
        assert!(paths.published_for_others(None).unwrap());
        write_vol_data(
            &paths.data_dir(),
            &BTreeMap::from([
                ("driverName", "d".to_string()),
                ("volumeHandle", "h".to_string()),
            ]),
        )
        .unwrap();
        assert_eq!(
            volumes_on_disk(root.path()),
            [("d".to_string(), "h".to_string())]
        );
    }
}
