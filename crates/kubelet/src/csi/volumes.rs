//! persistentVolumeClaim volumes backed by CSI persistent volumes (upstream csi_attacher's
//! MountDevice / UnmountDevice and csi_mounter's SetUp / TearDown) and CSI ephemeral inline
//! volumes (a pod's `csi:` volumes: never staged, published straight into the pod's volume dir
//! under a handle made from the pod UID and volume name, only for drivers whose CSIDriver lists
//! the Ephemeral lifecycle mode), in upstream's layout so a node switched from the upstream
//! kubelet keeps its mounts:
//!
//! - staged once per volume per node (drivers with STAGE_UNSTAGE_VOLUME) at
//!   `ROOT/plugins/kubernetes.io/csi/DRIVER/SHA256(volumeHandle)/globalmount`, a vol_data.json
//!   beside it;
//! - published per pod at `ROOT/pods/UID/volumes/kubernetes.io~csi/NAME/mount` (NAME: the PV,
//!   or the pod's volume for an inline one), a vol_data.json beside it recording the lifecycle
//!   mode, written before the driver is called so teardown always finds the volume;
//! - torn down from those files alone (unpublish, then unstage once no pod dir names the volume
//!   any more), so it works after a restart.
//!
//! A pod's fsGroup is handed to a driver that mounts with it, else applied to the published
//! volume as the driver's fsGroupPolicy allows ([`fs_group`](super::fs_group)); a CSIDriver's
//! tokenRequests put the pod's service account tokens in NodePublishVolume's volume context
//! ([`tokens`](super::tokens)).
//!
//! Set-up volumes are remembered per pod, so the syncs of a running pod ask neither the API
//! server nor the driver again, except NodePublishVolume for a driver whose CSIDriver sets
//! requiresRepublish. Stage, publish and teardown run one at a time, so a volume is never
//! unstaged while another pod is publishing it.
//!
//! Volumes of drivers that attach are reported in node.status.volumesInUse from the moment a
//! pod needs them (before the kubelet waits for the attach-detach controller, which must not
//! detach a volume in use) until they are unpublished from every pod and unstaged. They are
//! mounted only once the node status lists them in use and attached, as upstream's
//! VerifyControllerAttachedVolume requires.

use super::CsiPlugins;
use super::access_modes::csi_access_mode;
use super::block::{self, BlockVolume};
use super::client::{self, VolumeRequest};
use super::fs_group::{self, AccessModes, Ownership};
use super::tokens;
use super::volume_stats::PublishedVolume;
use async_trait::async_trait;
use k8s_openapi::api::core::v1::{
    CSIVolumeSource, Node, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimVolumeSource, Pod, Secret, SecretReference, Volume,
};
use k8s_openapi::api::storage::v1::{CSIDriver, CSIDriverSpec, VolumeAttachment};
use kube::Api;
use kubelet_objects::{NoApi, ObjectSource};
use kubelet_stats::VolumeStatsCache;
use kubelet_stats::types::VolumeStats;
use kubelet_volumes::{ClaimMount, ClaimVolumes, FsGroup, TokenCache};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The plugin's directory name in a pod's volumes dir.
pub const POD_VOLUME_PLUGIN_DIR: &str = "kubernetes.io~csi";
pub(super) const VOL_DATA_FILE: &str = "vol_data.json";
const GLOBAL_MOUNT: &str = "globalmount";

/// A pod's volume the driver let go of.
struct Unpublished {
    driver: String,
    handle: String,
    /// An inline volume, which has nothing staged.
    ephemeral: bool,
}

/// One pod volume's NodePublishVolume, all but its volume context (pod info and tokens are
/// computed at each call) and its secrets (read at each call).
#[derive(Debug, Clone)]
struct Publish {
    driver: String,
    driver_spec: CSIDriverSpec,
    ephemeral: bool,
    attributes: Option<BTreeMap<String, String>>,
    request: VolumeRequest,
    staging: Option<PathBuf>,
    target: PathBuf,
    read_only: bool,
    secret_ref: Option<SecretReference>,
}

impl Publish {
    /// Kept for asking again when the driver's CSIDriver sets requiresRepublish.
    fn again(&self) -> Option<Publish> {
        (self.driver_spec.requires_republish == Some(true)).then(|| self.clone())
    }
}

/// What a volume's set-up answers: the mount, the volume as published, and what to publish
/// again at each sync of the pod if the driver requires it.
type SetUp = (ClaimMount, PublishedVolume, Option<Publish>);

/// Where CSI persistent volumes come from and go to.
pub struct CsiVolumes {
    pub(super) csi: CsiPlugins,
    client: Option<kube::Client>,
    node_name: String,
    root_dir: PathBuf,
    /// (pod uid, volume name) -> what its set-up answered and where the volume is published.
    set_up: Mutex<BTreeMap<(String, String), (ClaimMount, PublishedVolume)>>,
    operations: tokio::sync::Mutex<()>,
    /// Where the published volumes' figures from their drivers go.
    stats: VolumeStatsCache,
    /// (pod uid, volume name) -> unique volume name, for the attachable volumes pods need here,
    /// from before their set-up until their teardown.
    needed: Mutex<BTreeMap<(String, String), String>>,
    /// Driver -> whether it attaches, as its CSIDriver object last said.
    attaches: Mutex<HashMap<String, bool>>,
    /// (pod uid, volume name) -> its NodePublishVolume, for drivers requiring republish.
    republish: Mutex<BTreeMap<(String, String), Publish>>,
    /// Where the tokens of CSIDriver tokenRequests come from.
    objects: Arc<dyn ObjectSource>,
    tokens: Arc<TokenCache>,
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Upstream's getAttachmentName: the VolumeAttachment the attach-detach controller makes.
pub fn attachment_name(volume_handle: &str, driver: &str, node: &str) -> String {
    format!(
        "csi-{}",
        sha256_hex(&format!("{volume_handle}{driver}{node}"))
    )
}

/// Upstream's unique volume name of a CSI volume: the plugin's name, then `DRIVER^HANDLE`.
pub fn unique_volume_name(driver: &str, volume_handle: &str) -> String {
    format!("{}/{driver}^{volume_handle}", super::CSI_PLUGIN_NAME)
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The (driver, handle) named by the vol_data.json in each subdirectory of `dir`; inline
/// ephemeral volumes, which never attach, are left out.
fn volumes_in_subdirs(dir: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| read_vol_data(&entry.path()).ok().flatten())
        .filter(|data| data.get("volumeLifecycleMode").map(String::as_str) != Some("Ephemeral"))
        .filter_map(|mut data| Some((data.remove("driverName")?, data.remove("volumeHandle")?)))
        .collect()
}

/// Upstream's makeVolumeHandle: an inline volume's id, "csi-" and the SHA-256 of the pod UID
/// followed by the volume's name.
pub fn inline_volume_handle(pod_uid: &str, volume_name: &str) -> String {
    format!("csi-{}", sha256_hex(&format!("{pod_uid}{volume_name}")))
}

const EPHEMERAL: &str = "Ephemeral";

/// Upstream's supportsVolumeLifecycleMode for an inline volume: only a driver whose CSIDriver
/// object lists Ephemeral serves one; without the object (always so standalone) it is refused.
fn check_ephemeral<'a>(
    driver: &str,
    csi_driver: Option<&'a CSIDriver>,
) -> Result<&'a CSIDriverSpec, String> {
    let Some(object) = csi_driver else {
        return Err(format!(
            "volume mode \"{EPHEMERAL}\" not supported by driver {driver} (no CSIDriver object)"
        ));
    };
    let modes = object
        .spec
        .volume_lifecycle_modes
        .clone()
        .unwrap_or_default();
    if modes.iter().any(|m| m == EPHEMERAL) {
        Ok(&object.spec)
    } else {
        Err(format!(
            "volume mode \"{EPHEMERAL}\" not supported by driver {driver} (only supports {})",
            super::quoted_list(&modes)
        ))
    }
}

/// Upstream's podAttributes: what a driver with podInfoOnMount learns of the pod in its volume
/// context.
fn pod_info(pod: &Pod, ephemeral: bool) -> [(String, String); 5] {
    let service_account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_default();
    [
        (
            "csi.storage.k8s.io/pod.name",
            pod.metadata.name.clone().unwrap_or_default(),
        ),
        (
            "csi.storage.k8s.io/pod.namespace",
            pod.metadata.namespace.clone().unwrap_or_default(),
        ),
        (
            "csi.storage.k8s.io/pod.uid",
            pod.metadata.uid.clone().unwrap_or_default(),
        ),
        ("csi.storage.k8s.io/serviceAccount.name", service_account),
        ("csi.storage.k8s.io/ephemeral", ephemeral.to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v))
}

/// NodePublishVolume's volume context but for tokens: the volume's attributes, and the pod's
/// info when the driver asks for it (the pod's keys win, as upstream merges them last).
fn with_pod_info(
    pod: &Pod,
    driver: &CSIDriverSpec,
    ephemeral: bool,
    attributes: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut context = attributes.cloned().unwrap_or_default();
    if driver.pod_info_on_mount == Some(true) {
        context.extend(pod_info(pod, ephemeral));
    }
    context
}

/// Upstream's SetVolumeOwnership after NodePublishVolume, when the kubelet is the one to apply
/// the pod's fsGroup.
fn apply_ownership(pod: &Pod, target: &Path, ownership: Ownership) -> Result<(), String> {
    let Ownership::Changed(group) = ownership else {
        return Ok(());
    };
    kubelet_volumes::set_ownership(target, group, false)
        .map_err(|e| format!("applyFSGroup failed for {}: {e}", target.display()))?;
    tracing::debug!(
        pod_uid = pod.metadata.uid.as_deref().unwrap_or_default(),
        pod_namespace = pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod_name = pod.metadata.name.as_deref().unwrap_or_default(),
        gid = group.gid,
        "fsGroup applied to {}",
        target.display()
    );
    Ok(())
}

pub(super) fn create_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("failed to create dir {dir:?}: {e}"))
}

/// What teardown needs, written beside each mount as upstream's vol_data.json.
pub(super) fn write_vol_data(dir: &Path, data: &BTreeMap<&str, String>) -> Result<(), String> {
    create_dir(dir)?;
    let text = serde_json::to_string(data).map_err(|e| e.to_string())?;
    let file = dir.join(VOL_DATA_FILE);
    std::fs::write(&file, text).map_err(|e| format!("failed to save volume info data: {e}"))
}

pub(super) fn read_vol_data(dir: &Path) -> Result<Option<BTreeMap<String, String>>, String> {
    let file = dir.join(VOL_DATA_FILE);
    match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("failed to parse volume data file {}: {e}", file.display())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "failed to open volume data file {}: {e}",
            file.display()
        )),
    }
}

pub(super) fn remove_if_present(path: &Path, dir: bool) -> Result<(), String> {
    let removed = if dir {
        std::fs::remove_dir(path)
    } else {
        std::fs::remove_file(path)
    };
    match removed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("failed to remove {}: {e}", path.display())),
    }
}

pub(super) fn mounted(path: &Path) -> Result<bool, String> {
    kubelet_volumes::is_mount_point(path)
        .map_err(|e| format!("cannot read the mount table for {}: {e}", path.display()))
}

impl CsiVolumes {
    pub fn new(
        csi: CsiPlugins,
        client: Option<kube::Client>,
        node_name: &str,
        root_dir: &Path,
        stats: VolumeStatsCache,
    ) -> Self {
        CsiVolumes {
            csi,
            client,
            node_name: node_name.to_string(),
            root_dir: root_dir.to_path_buf(),
            set_up: Mutex::default(),
            operations: tokio::sync::Mutex::new(()),
            stats,
            needed: Mutex::default(),
            attaches: Mutex::default(),
            republish: Mutex::default(),
            objects: Arc::new(NoApi),
            tokens: Arc::default(),
        }
    }

    /// Where service account tokens for drivers come from, and the pod tokens cache (shared
    /// with the volume manager's projected tokens).
    pub fn with_tokens(mut self, objects: Arc<dyn ObjectSource>, tokens: Arc<TokenCache>) -> Self {
        self.objects = objects;
        self.tokens = tokens;
        self
    }

    /// NodePublishVolume's volume context: the attributes, the pod's info and the tokens the
    /// driver asks for (NodeStageVolume gets the attributes alone, as upstream's MountDevice).
    async fn publish_volume_context(
        &self,
        pod: &Pod,
        driver: &CSIDriverSpec,
        ephemeral: bool,
        attributes: Option<&BTreeMap<String, String>>,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut context = with_pod_info(pod, driver, ephemeral, attributes);
        context
            .extend(tokens::token_context(&self.tokens, self.objects.as_ref(), pod, driver).await?);
        Ok(context)
    }

    async fn publish(
        &self,
        pod: &Pod,
        publish: &Publish,
        secrets: BTreeMap<String, String>,
    ) -> Result<(), String> {
        let endpoint = self.endpoint(&publish.driver)?;
        let volume_context = self
            .publish_volume_context(
                pod,
                &publish.driver_spec,
                publish.ephemeral,
                publish.attributes.as_ref(),
            )
            .await?;
        let request = VolumeRequest {
            volume_context,
            ..publish.request.clone()
        };
        client::node_publish(
            &endpoint,
            &request,
            publish.staging.as_deref(),
            &publish.target,
            publish.read_only,
            secrets,
        )
        .await
    }

    /// The unique names of the attachable volumes pods here need or still have on disk (pod
    /// dirs, staging dirs; so also what a restart left), sorted: upstream's GetVolumesInUse. A
    /// driver whose CSIDriver was not read yet counts as attaching, as with no CSIDriver object:
    /// reporting a volume in use never harms, dropping one lets it be detached under a pod.
    pub fn volumes_in_use(&self) -> Vec<String> {
        let mut in_use: BTreeSet<String> = locked(&self.needed).values().cloned().collect();
        let mut on_disk = Vec::new();
        if let Ok(pods) = std::fs::read_dir(self.root_dir.join("pods")) {
            for pod in pods.flatten() {
                let dir = pod.path().join("volumes").join(POD_VOLUME_PLUGIN_DIR);
                on_disk.extend(volumes_in_subdirs(&dir));
            }
        }
        let plugin_dir = self.root_dir.join("plugins").join(super::CSI_PLUGIN_NAME);
        if let Ok(drivers) = std::fs::read_dir(plugin_dir) {
            for driver in drivers.flatten() {
                on_disk.extend(volumes_in_subdirs(&driver.path()));
            }
        }
        on_disk.extend(block::volumes_on_disk(&self.root_dir));
        let attaches = locked(&self.attaches);
        in_use.extend(
            on_disk
                .into_iter()
                .filter(|(driver, _)| attaches.get(driver) != Some(&false))
                .map(|(driver, handle)| unique_volume_name(&driver, &handle)),
        );
        in_use.into_iter().collect()
    }

    fn remembered(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), (ClaimMount, PublishedVolume)>> {
        locked(&self.set_up)
    }

    /// The set-up volumes by (pod uid, volume name), as of now.
    pub(super) fn published(&self) -> Vec<(String, String, PublishedVolume)> {
        self.remembered()
            .iter()
            .map(|((uid, name), (_, volume))| (uid.clone(), name.clone(), volume.clone()))
            .collect()
    }

    /// Stores one round of figures, less those of pods torn down meanwhile: holding the set-up
    /// volumes while storing orders this before or after a teardown's forgetting.
    pub(super) fn store_stats(&self, mut pods: HashMap<String, Vec<VolumeStats>>) {
        let remembered = self.remembered();
        pods.retain(|pod_uid, _| remembered.keys().any(|(uid, _)| uid == pod_uid));
        self.stats.store(pods);
    }

    /// ROOT/plugins/kubernetes.io/csi/DRIVER/SHA256(handle): the staging mount's parent.
    fn global_dir(&self, driver: &str, handle: &str) -> PathBuf {
        self.root_dir
            .join("plugins")
            .join(super::CSI_PLUGIN_NAME)
            .join(driver)
            .join(sha256_hex(handle))
    }

    fn client(&self) -> Result<&kube::Client, String> {
        self.client
            .as_ref()
            .ok_or_else(|| "failed to get a kubernetes client".to_string())
    }

    fn endpoint(&self, driver: &str) -> Result<PathBuf, String> {
        self.csi.endpoint(driver).ok_or_else(|| {
            format!("driver name {driver} not found in the list of registered CSI drivers")
        })
    }

    /// The claim and the PV bound to it, checked as upstream's volume populator does.
    async fn bound_volume(
        &self,
        namespace: &str,
        claim_name: &str,
    ) -> Result<PersistentVolume, String> {
        let client = self.client()?;
        let fail = |e: String| format!("error processing PVC {namespace}/{claim_name}: {e}");
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
        let pvc = claims
            .get(claim_name)
            .await
            .map_err(|e| fail(format!("failed to fetch PVC from API server: {e}")))?;
        if pvc.metadata.deletion_timestamp.is_some() {
            return Err(format!(
                "can't start pod because PVC {namespace}/{claim_name} is being deleted"
            ));
        }
        let phase = pvc
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let volume_name = pvc
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .unwrap_or_default();
        if phase != "Bound" || volume_name.is_empty() {
            return Err(fail(format!(
                "PVC {namespace}/{claim_name} has non-bound phase ({phase:?}) or empty pvc.Spec.VolumeName ({volume_name:?})"
            )));
        }
        let volumes: Api<PersistentVolume> = Api::all(client.clone());
        let pv = volumes.get(&volume_name).await.map_err(|e| {
            fail(format!(
                "failed to fetch PV {volume_name} from API server: {e}"
            ))
        })?;
        let claim_uid = pvc.metadata.uid.clone().unwrap_or_default();
        let claim_ref = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
        match claim_ref.and_then(|r| r.uid.as_deref()) {
            None | Some("") => Err(fail(format!(
                "found PV object {volume_name} but it has a nil or empty ClaimRef"
            ))),
            Some(uid) if uid != claim_uid => Err(fail(format!(
                "found PV object {volume_name} but its ClaimRef.UID {uid:?} does not point to claim.UID {claim_uid:?}"
            ))),
            Some(_) => Ok(pv),
        }
    }

    /// The driver's CSIDriver object, None when there is none (every field at its default).
    async fn csi_driver(&self, driver: &str) -> Result<Option<CSIDriver>, String> {
        let drivers: Api<CSIDriver> = Api::all(self.client()?.clone());
        drivers.get_opt(driver).await.map_err(|e| e.to_string())
    }

    /// Upstream's VerifyControllerAttachedVolume: the Node's status lists the volume in use
    /// (this kubelet reported it, so the controller will not detach it) and attached (the
    /// attach-detach controller's word).
    async fn verify_attached(&self, unique: &str, pv_name: &str) -> Result<(), String> {
        let nodes: Api<Node> = Api::all(self.client()?.clone());
        let node = nodes.get(&self.node_name).await.map_err(|e| {
            format!("VerifyControllerAttachedVolume failed fetching node from API server for volume {pv_name:?}: {e}")
        })?;
        let status = node.status.unwrap_or_default();
        if !status.volumes_in_use.iter().flatten().any(|v| v == unique) {
            return Err(format!(
                "Volume has not been added to the list of VolumesInUse in the node's volume status for volume {pv_name:?}"
            ));
        }
        if !status
            .volumes_attached
            .iter()
            .flatten()
            .any(|v| v.name == unique)
        {
            return Err(format!(
                "Volume not attached according to node status for volume {pv_name:?}"
            ));
        }
        Ok(())
    }

    /// For drivers that attach: the attachment's metadata once the attach-detach controller
    /// reports the volume attached here.
    async fn publish_context(
        &self,
        driver: &str,
        handle: &str,
    ) -> Result<BTreeMap<String, String>, String> {
        let name = attachment_name(handle, driver, &self.node_name);
        let attachments: Api<VolumeAttachment> = Api::all(self.client()?.clone());
        let attachment = attachments.get(&name).await.map_err(|e| e.to_string())?;
        let status = attachment.status.unwrap_or_default();
        if !status.attached {
            return Err(format!(
                "volume {handle} is not attached to node {} yet (VolumeAttachment {name})",
                self.node_name
            ));
        }
        Ok(status.attachment_metadata.unwrap_or_default())
    }

    async fn secrets(
        &self,
        reference: Option<&SecretReference>,
    ) -> Result<BTreeMap<String, String>, String> {
        let Some(reference) = reference else {
            return Ok(BTreeMap::new());
        };
        let name = reference.name.clone().unwrap_or_default();
        let namespace = reference.namespace.clone().unwrap_or_default();
        let secrets: Api<Secret> = Api::namespaced(self.client()?.clone(), &namespace);
        let secret = secrets.get(&name).await.map_err(|e| {
            format!("failed to find the secret {name} in the namespace {namespace} with error: {e}")
        })?;
        Ok(secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .collect())
    }

    /// Unpublishes the pod's volume in `dir` (a kubernetes.io~csi/NAME dir) and removes its
    /// files; answers what it held.
    async fn unpublish(&self, dir: &Path) -> Result<Option<Unpublished>, String> {
        let Some(data) = read_vol_data(dir)? else {
            // Nothing was ever asked of a driver here.
            remove_if_present(&dir.join("mount"), true)?;
            remove_if_present(dir, true)?;
            return Ok(None);
        };
        let driver = data.get("driverName").cloned().unwrap_or_default();
        let handle = data.get("volumeHandle").cloned().unwrap_or_default();
        let target = dir.join("mount");
        if target.exists() || mounted(&target)? {
            let endpoint = self.endpoint(&driver)?;
            client::node_unpublish(&endpoint, &handle, &target).await?;
            if mounted(&target)? {
                return Err(format!(
                    "{} is still mounted after NodeUnpublishVolume",
                    target.display()
                ));
            }
            remove_if_present(&target, true)?;
        }
        remove_if_present(&dir.join(VOL_DATA_FILE), false)?;
        remove_if_present(dir, true)?;
        Ok(Some(Unpublished {
            driver,
            handle,
            ephemeral: data.get("volumeLifecycleMode").map(String::as_str) == Some(EPHEMERAL),
        }))
    }

    /// Whether any pod dir still holds the volume (driver, handle).
    fn in_use(&self, driver: &str, handle: &str) -> Result<bool, String> {
        let pods = self.root_dir.join("pods");
        let Ok(entries) = std::fs::read_dir(&pods) else {
            return Ok(false);
        };
        for pod in entries.flatten() {
            let Ok(volumes) =
                std::fs::read_dir(pod.path().join("volumes").join(POD_VOLUME_PLUGIN_DIR))
            else {
                continue;
            };
            for volume in volumes.flatten() {
                if let Some(data) = read_vol_data(&volume.path())?
                    && data.get("driverName").map(String::as_str) == Some(driver)
                    && data.get("volumeHandle").map(String::as_str) == Some(handle)
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Unstages the volume once no pod holds it, and removes its global dir.
    async fn unstage_if_unused(&self, driver: &str, handle: &str) -> Result<(), String> {
        if self.in_use(driver, handle)? {
            return Ok(());
        }
        let dir = self.global_dir(driver, handle);
        let staging = dir.join(GLOBAL_MOUNT);
        if !dir.exists() {
            return Ok(());
        }
        if mounted(&staging)? || staging.exists() {
            let endpoint = self.endpoint(driver)?;
            client::node_unstage(&endpoint, handle, &staging).await?;
            if mounted(&staging)? {
                return Err(format!(
                    "{} is still mounted after NodeUnstageVolume",
                    staging.display()
                ));
            }
            remove_if_present(&staging, true)?;
        }
        remove_if_present(&dir.join(VOL_DATA_FILE), false)?;
        remove_if_present(&dir, true)
    }
}

impl CsiVolumes {
    /// A pod's volume is set up once: later calls get the remembered mount, and set-ups run
    /// one at a time. `set_up` does nothing until awaited, so a remembered volume costs none.
    async fn once(
        &self,
        pod: &Pod,
        volume: &Volume,
        set_up: impl std::future::Future<Output = Result<SetUp, String>>,
    ) -> Result<ClaimMount, String> {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let key = (uid.to_string(), volume.name.clone());
        let known = self.remembered().get(&key).map(|(known, _)| known.clone());
        if let Some(known) = known {
            self.republish(pod, &key).await;
            return Ok(known);
        }
        let _one_at_a_time = self.operations.lock().await;
        let (mounted, published, again) = set_up.await?;
        self.remembered()
            .insert(key.clone(), (mounted.clone(), published));
        if let Some(again) = again {
            locked(&self.republish).insert(key, again);
        }
        Ok(mounted)
    }

    /// NodePublishVolume again for a driver requiring republish (upstream remounts such
    /// volumes at every sync of the pod, so the driver's tokens stay fresh). A failure leaves
    /// the volume as it was, for the next sync to try.
    async fn republish(&self, pod: &Pod, key: &(String, String)) {
        if !locked(&self.republish).contains_key(key) {
            return;
        }
        let _one_at_a_time = self.operations.lock().await;
        // Taken again under the lock: a teardown meanwhile forgot it.
        let Some(publish) = locked(&self.republish).get(key).cloned() else {
            return;
        };
        let done = match self.secrets(publish.secret_ref.as_ref()).await {
            Ok(secrets) => self.publish(pod, &publish, secrets).await,
            Err(e) => Err(e),
        };
        if let Err(error) = done {
            tracing::warn!(
                pod_uid = key.0,
                pod_namespace = pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod_name = pod.metadata.name.as_deref().unwrap_or_default(),
                volume = key.1,
                %error,
                "NodePublishVolume again (requiresRepublish) failed"
            );
        }
    }
}

#[async_trait]
impl ClaimVolumes for CsiVolumes {
    async fn set_up(
        &self,
        pod: &Pod,
        volume: &Volume,
        claim: &PersistentVolumeClaimVolumeSource,
    ) -> Result<ClaimMount, String> {
        self.once(pod, volume, self.set_up_volume(pod, &volume.name, claim))
            .await
    }

    async fn set_up_inline(
        &self,
        pod: &Pod,
        volume: &Volume,
        csi: &CSIVolumeSource,
    ) -> Result<ClaimMount, String> {
        self.once(pod, volume, self.set_up_inline_volume(pod, volume, csi))
            .await
    }

    async fn tear_down(&self, pod_uid: &str) -> Result<(), String> {
        let _one_at_a_time = self.operations.lock().await;
        self.remembered().retain(|(uid, _), _| uid != pod_uid);
        locked(&self.republish).retain(|(uid, _), _| uid != pod_uid);
        self.stats.forget_pod(pod_uid);
        block::tear_down(&self.csi, &self.root_dir, pod_uid).await?;
        self.tear_down_volumes(pod_uid).await?;
        // Unpublished and, unless another pod holds them, unstaged: no longer needed here.
        locked(&self.needed).retain(|(uid, _), _| uid != pod_uid);
        Ok(())
    }
}

impl CsiVolumes {
    async fn set_up_volume(
        &self,
        pod: &Pod,
        volume_name: &str,
        claim: &PersistentVolumeClaimVolumeSource,
    ) -> Result<SetUp, String> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let pv = self.bound_volume(namespace, &claim.claim_name).await?;
        let pv_name = pv.metadata.name.clone().unwrap_or_default();
        let spec = pv.spec.clone().unwrap_or_default();
        let Some(source) = spec.csi.as_ref() else {
            return Err(format!(
                "persistent volume {pv_name} is not a CSI volume: only CSI persistent volumes are supported"
            ));
        };
        let block = block::is_block(&spec);
        block::check_use(pod, volume_name, block)?;
        let driver = source.driver.clone();
        let handle = source.volume_handle.clone();
        let endpoint = self.endpoint(&driver)?;
        let csi_driver = self.csi_driver(&driver).await?;
        let driver_spec = csi_driver.map(|d| d.spec).unwrap_or_default();
        // No CSIDriver object, or one without attachRequired: false, means the driver attaches.
        let attaches = driver_spec.attach_required != Some(false);
        locked(&self.attaches).insert(driver.clone(), attaches);
        let publish_context = if attaches {
            let unique = unique_volume_name(&driver, &handle);
            // In use before the wait for the attachment, as upstream's desired state of world.
            locked(&self.needed).insert((uid.to_string(), volume_name.to_string()), unique.clone());
            self.verify_attached(&unique, &pv_name).await?;
            self.publish_context(&driver, &handle).await?
        } else {
            BTreeMap::new()
        };
        let capabilities = self.csi.capabilities(&driver).await?;
        let read_only = claim.read_only.unwrap_or(false) || source.read_only.unwrap_or(false);
        let fs_type = source.fs_type.clone().unwrap_or_default();
        let access_modes = spec.access_modes.clone().unwrap_or_default();
        let ownership = fs_group::ownership(
            FsGroup::of(pod),
            driver_spec.fs_group_policy.as_deref(),
            capabilities.volume_mount_group,
            &fs_type,
            AccessModes::Persistent(&access_modes),
            read_only,
        );
        let request = VolumeRequest {
            volume_id: handle.clone(),
            publish_context,
            volume_context: source.volume_attributes.clone().unwrap_or_default(),
            fs_type,
            mount_flags: spec.mount_options.clone().unwrap_or_default(),
            access_mode: csi_access_mode(
                access_modes.first().map(String::as_str),
                capabilities.single_node_multi_writer,
            ) as i32,
            volume_mount_group: ownership.mount_group(),
            block,
        };

        let pod_dir =
            kubelet_volumes::pod_volume_dir(&self.root_dir, uid, POD_VOLUME_PLUGIN_DIR, &pv_name)
                .map_err(|e| e.to_string())?;
        let target = pod_dir.join("mount");
        let stages = capabilities.stage_unstage_volume;
        if block {
            let volume = BlockVolume {
                root: &self.root_dir,
                node_name: &self.node_name,
                pod_uid: uid,
                pv_name: &pv_name,
                driver: &driver,
                endpoint: &endpoint,
                stages,
            };
            let mapped = volume
                .set_up(
                    &request,
                    read_only,
                    self.secrets(source.node_stage_secret_ref.as_ref()),
                    self.secrets(source.node_publish_secret_ref.as_ref()),
                )
                .await?;
            let published = PublishedVolume {
                namespace: namespace.to_string(),
                pod_name: pod.metadata.name.clone().unwrap_or_default(),
                claim_name: Some(claim.claim_name.clone()),
                driver,
                volume_handle: handle,
                target: mapped.publish_path,
                staging: mapped.staging,
            };
            let device = ClaimMount {
                host_path: mapped.link,
                read_only,
                block: true,
            };
            return Ok((device, published, None));
        }
        let staging = stages.then(|| self.global_dir(&driver, &handle).join(GLOBAL_MOUNT));
        let published = PublishedVolume {
            namespace: namespace.to_string(),
            pod_name: pod.metadata.name.clone().unwrap_or_default(),
            claim_name: Some(claim.claim_name.clone()),
            driver: driver.clone(),
            volume_handle: handle.clone(),
            target: target.clone(),
            staging: staging.clone(),
        };
        let publish = Publish {
            driver: driver.clone(),
            driver_spec: driver_spec.clone(),
            ephemeral: false,
            attributes: source.volume_attributes.clone(),
            request: request.clone(),
            staging: staging.clone(),
            target: target.clone(),
            read_only,
            secret_ref: source.node_publish_secret_ref.clone(),
        };
        let mount = ClaimMount {
            host_path: target.clone(),
            read_only,
            block: false,
        };
        if mounted(&target)? {
            // Published before a restart, or its ownership change failed last time.
            apply_ownership(pod, &target, ownership)?;
            return Ok((mount, published, publish.again()));
        }
        // Written before the driver is asked to stage or publish: a crash in either leaves the
        // volume found from this pod's dir, and unstaged with the pod even if the pod goes
        // while the kubelet is down.
        write_vol_data(
            &pod_dir,
            &BTreeMap::from([
                ("specVolID", pv_name.clone()),
                ("volumeHandle", handle.clone()),
                ("driverName", driver.clone()),
                ("nodeName", self.node_name.clone()),
                (
                    "attachmentID",
                    attachment_name(&handle, &driver, &self.node_name),
                ),
                ("volumeLifecycleMode", "Persistent".to_string()),
            ]),
        )?;
        if let Some(staging) = &staging {
            let global = self.global_dir(&driver, &handle);
            if !mounted(staging)? {
                write_vol_data(
                    &global,
                    &BTreeMap::from([
                        ("driverName", driver.clone()),
                        ("volumeHandle", handle.clone()),
                    ]),
                )?;
                create_dir(staging)?;
                let secrets = self.secrets(source.node_stage_secret_ref.as_ref()).await?;
                client::node_stage(&endpoint, &request, staging, secrets).await?;
                tracing::info!(
                    pod_uid = uid,
                    driver,
                    volume = handle,
                    "MountVolume.MountDevice succeeded"
                );
            }
        }
        let secrets = self.secrets(publish.secret_ref.as_ref()).await?;
        self.publish(pod, &publish, secrets).await?;
        apply_ownership(pod, &target, ownership)?;
        tracing::info!(
            pod_uid = uid,
            driver,
            volume = handle,
            "MountVolume.SetUp succeeded for volume {pv_name:?}"
        );
        Ok((mount, published, publish.again()))
    }

    /// Upstream's NewMounter and SetUp for an inline volume: the lifecycle mode checked, then
    /// NodePublishVolume straight into the pod's volume dir, nothing staged.
    async fn set_up_inline_volume(
        &self,
        pod: &Pod,
        volume: &Volume,
        source: &CSIVolumeSource,
    ) -> Result<SetUp, String> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let driver = source.driver.clone();
        let handle = inline_volume_handle(uid, &volume.name);
        // Standalone there is no CSIDriver to read, which refuses the volume as upstream does.
        let csi_driver = match self.client {
            Some(_) => self.csi_driver(&driver).await?,
            None => None,
        };
        let driver_spec = check_ephemeral(&driver, csi_driver.as_ref())?;
        let read_only = source.read_only.unwrap_or(false);
        let pod_dir = kubelet_volumes::pod_volume_dir(
            &self.root_dir,
            uid,
            POD_VOLUME_PLUGIN_DIR,
            &volume.name,
        )
        .map_err(|e| e.to_string())?;
        let target = pod_dir.join("mount");
        let mounted_volume = ClaimMount {
            host_path: target.clone(),
            read_only,
            block: false,
        };
        let published = PublishedVolume {
            namespace: namespace.clone(),
            pod_name: pod.metadata.name.clone().unwrap_or_default(),
            claim_name: None,
            driver: driver.clone(),
            volume_handle: handle.clone(),
            target: target.clone(),
            staging: None,
        };
        // An unregistered driver fails here, with upstream's words.
        self.endpoint(&driver)
            .map_err(|e| super::log(&format!("mounter.SetUpAt failed to get CSI client: {e}")))?;
        let capabilities = self.csi.capabilities(&driver).await?;
        let fs_type = source.fs_type.clone().unwrap_or_default();
        let ownership = fs_group::ownership(
            FsGroup::of(pod),
            driver_spec.fs_group_policy.as_deref(),
            capabilities.volume_mount_group,
            &fs_type,
            AccessModes::Inline,
            read_only,
        );
        // The Secret is the pod's namespace's, whatever the reference could say.
        let secret_ref = source
            .node_publish_secret_ref
            .as_ref()
            .map(|r| SecretReference {
                name: Some(r.name.clone()),
                namespace: Some(namespace.clone()),
            });
        let request = VolumeRequest {
            volume_id: handle.clone(),
            publish_context: BTreeMap::new(),
            // Made at each publish, with the pod's info and tokens.
            volume_context: BTreeMap::new(),
            fs_type,
            mount_flags: Vec::new(),
            // Upstream asks for ReadWriteOnce for every inline volume.
            access_mode: csi_access_mode(
                Some("ReadWriteOnce"),
                capabilities.single_node_multi_writer,
            ) as i32,
            volume_mount_group: ownership.mount_group(),
            block: false,
        };
        let publish = Publish {
            driver: driver.clone(),
            driver_spec: driver_spec.clone(),
            ephemeral: true,
            attributes: source.volume_attributes.clone(),
            request,
            staging: None,
            target: target.clone(),
            read_only,
            secret_ref,
        };
        if mounted(&target)? {
            apply_ownership(pod, &target, ownership)?;
            return Ok((mounted_volume, published, publish.again()));
        }
        // Written before the driver is asked, so a crash mid-publish leaves it found.
        write_vol_data(
            &pod_dir,
            &BTreeMap::from([
                ("specVolID", volume.name.clone()),
                ("volumeHandle", handle.clone()),
                ("driverName", driver.clone()),
                ("nodeName", self.node_name.clone()),
                (
                    "attachmentID",
                    attachment_name(&handle, &driver, &self.node_name),
                ),
                ("volumeLifecycleMode", EPHEMERAL.to_string()),
            ]),
        )?;
        let secrets = self
            .secrets(publish.secret_ref.as_ref())
            .await
            .map_err(|e| {
                let name = publish
                    .secret_ref
                    .as_ref()
                    .and_then(|r| r.name.clone())
                    .unwrap_or_default();
                format!("fetching NodePublishSecretRef {namespace}/{name} failed: {e}")
            })?;
        self.publish(pod, &publish, secrets).await?;
        apply_ownership(pod, &target, ownership)?;
        tracing::info!(
            pod_uid = uid,
            pod_namespace = namespace,
            pod_name = published.pod_name,
            driver,
            volume = handle,
            "MountVolume.SetUp succeeded for volume {:?}",
            volume.name
        );
        Ok((mounted_volume, published, publish.again()))
    }

    async fn tear_down_volumes(&self, pod_uid: &str) -> Result<(), String> {
        let plugin_dir =
            kubelet_volumes::pod_plugin_dir(&self.root_dir, pod_uid, POD_VOLUME_PLUGIN_DIR)
                .map_err(|e| e.to_string())?;
        let entries = match std::fs::read_dir(&plugin_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("cannot list {}: {e}", plugin_dir.display())),
        };
        let mut unpublished = Vec::new();
        for entry in entries.flatten() {
            if let Some(volume) = self.unpublish(&entry.path()).await? {
                tracing::info!(
                    pod_uid,
                    driver = volume.driver,
                    volume = volume.handle,
                    "UnmountVolume.TearDown succeeded"
                );
                // An inline volume was never staged.
                if !volume.ephemeral {
                    unpublished.push(volume);
                }
            }
        }
        for volume in unpublished {
            self.unstage_if_unused(&volume.driver, &volume.handle)
                .await?;
        }
        remove_if_present(&plugin_dir, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_upstreams() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(unique_volume_name("d", "h"), "kubernetes.io/csi/d^h");
        assert_eq!(
            attachment_name("a", "b", "c"),
            "csi-ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn inline_handles_are_upstreams() {
        // Go's fmt.Sprintf("csi-%x", sha256.Sum256([]byte(podUID + volumeName))).
        assert_eq!(
            inline_volume_handle("0f2a6c1e-7d3b-4f5a-9c8e-1b2d3e4f5a6b", "data"),
            "csi-6b4609779c557d5f80dd740927e7248b777dbcfb67d3bdbcc6b25ee4137876d0"
        );
        assert_eq!(
            inline_volume_handle("", "abc"),
            "csi-ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn csi_driver(modes: Option<&[&str]>, pod_info: Option<bool>) -> CSIDriver {
        CSIDriver {
            metadata: Default::default(),
            spec: CSIDriverSpec {
                volume_lifecycle_modes: modes.map(|m| m.iter().map(|s| s.to_string()).collect()),
                pod_info_on_mount: pod_info,
                ..Default::default()
            },
        }
    }

    #[test]
    fn only_drivers_listing_ephemeral_serve_inline_volumes() {
        assert_eq!(
            check_ephemeral("d", None).unwrap_err(),
            "volume mode \"Ephemeral\" not supported by driver d (no CSIDriver object)"
        );
        let persistent = csi_driver(Some(&["Persistent"]), None);
        assert_eq!(
            check_ephemeral("d", Some(&persistent)).unwrap_err(),
            "volume mode \"Ephemeral\" not supported by driver d (only supports [\"Persistent\"])"
        );
        let unset = csi_driver(None, None);
        assert_eq!(
            check_ephemeral("d", Some(&unset)).unwrap_err(),
            "volume mode \"Ephemeral\" not supported by driver d (only supports [])"
        );
        let both = csi_driver(Some(&["Persistent", "Ephemeral"]), None);
        assert!(check_ephemeral("d", Some(&both)).is_ok());
    }

    #[test]
    fn inline_context_is_the_attributes_and_the_pod_when_asked() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
            "spec": {"containers": [], "serviceAccountName": "sa"},
        }))
        .unwrap();
        let source = CSIVolumeSource {
            driver: "d".into(),
            volume_attributes: Some(BTreeMap::from([
                ("size".to_string(), "1Mi".to_string()),
                // A pod key the user set is overridden, as upstream's merge does.
                (
                    "csi.storage.k8s.io/pod.name".to_string(),
                    "spoofed".to_string(),
                ),
            ])),
            ..Default::default()
        };
        let without = csi_driver(Some(&["Ephemeral"]), Some(false));
        assert_eq!(
            with_pod_info(&pod, &without.spec, true, source.volume_attributes.as_ref()),
            BTreeMap::from([
                ("size".to_string(), "1Mi".to_string()),
                (
                    "csi.storage.k8s.io/pod.name".to_string(),
                    "spoofed".to_string()
                ),
            ])
        );
        let with = csi_driver(Some(&["Ephemeral"]), Some(true));
        let expected: BTreeMap<String, String> = [
            ("size", "1Mi"),
            ("csi.storage.k8s.io/pod.name", "p"),
            ("csi.storage.k8s.io/pod.namespace", "ns"),
            ("csi.storage.k8s.io/pod.uid", "u-1"),
            ("csi.storage.k8s.io/serviceAccount.name", "sa"),
            ("csi.storage.k8s.io/ephemeral", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            with_pod_info(&pod, &with.spec, true, source.volume_attributes.as_ref()),
            expected
        );
    }

    #[test]
    fn vol_data_round_trips_in_upstreams_shape() {
        let dir = tempfile::tempdir().unwrap();
        let data = BTreeMap::from([
            ("volumeHandle", "h".to_string()),
            ("driverName", "d".to_string()),
        ]);
        write_vol_data(dir.path(), &data).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(VOL_DATA_FILE)).unwrap(),
            r#"{"driverName":"d","volumeHandle":"h"}"#
        );
        let read = read_vol_data(dir.path()).unwrap().unwrap();
        assert_eq!(read["volumeHandle"], "h");
        assert_eq!(read_vol_data(&dir.path().join("none")).unwrap(), None);
    }

    #[test]
    fn volumes_in_use_are_the_attachable_ones_needed_or_on_disk() {
        let root = tempfile::tempdir().unwrap();
        let volumes = CsiVolumes::new(
            CsiPlugins::new(None, "node"),
            None,
            "node",
            root.path(),
            VolumeStatsCache::default(),
        );
        let pod_volume = |pod: &str, name: &str, driver: &str, mode: &str| {
            let dir = root
                .path()
                .join(format!("pods/{pod}/volumes/{POD_VOLUME_PLUGIN_DIR}/{name}"));
            let data = BTreeMap::from([
                ("driverName", driver.to_string()),
                ("volumeHandle", name.to_string()),
                ("volumeLifecycleMode", mode.to_string()),
            ]);
            write_vol_data(&dir, &data).unwrap();
        };
        pod_volume("p1", "v1", "attaching", "Persistent");
        pod_volume("p1", "v2", "node-only", "Persistent");
        pod_volume("p2", "v3", "unknown", "Persistent");
        pod_volume("p2", "v4", "unknown", "Ephemeral");
        // Staged, no pod left.
        let staged = volumes.global_dir("attaching", "v5");
        write_vol_data(
            &staged,
            &BTreeMap::from([
                ("driverName", "attaching".to_string()),
                ("volumeHandle", "v5".to_string()),
            ]),
        )
        .unwrap();
        locked(&volumes.attaches).extend([
            ("attaching".to_string(), true),
            ("node-only".to_string(), false),
        ]);
        // Needed by a pod, nothing on disk yet.
        locked(&volumes.needed).insert(
            ("p3".to_string(), "data".to_string()),
            unique_volume_name("attaching", "v0"),
        );
        assert_eq!(
            volumes.volumes_in_use(),
            [
                "kubernetes.io/csi/attaching^v0",
                "kubernetes.io/csi/attaching^v1",
                "kubernetes.io/csi/attaching^v5",
                "kubernetes.io/csi/unknown^v3",
            ]
        );
    }
}
