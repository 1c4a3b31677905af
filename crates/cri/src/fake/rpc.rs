//! CRI method names, as they appear in the call log, in injected errors and in [`CriError`]s.
//!
//! [`CriError`]: crate::CriError

pub(super) const VERSION: &str = "Version";
pub(super) const STATUS: &str = "Status";
pub(super) const RUN_POD_SANDBOX: &str = "RunPodSandbox";
pub(super) const STOP_POD_SANDBOX: &str = "StopPodSandbox";
pub(super) const REMOVE_POD_SANDBOX: &str = "RemovePodSandbox";
pub(super) const POD_SANDBOX_STATUS: &str = "PodSandboxStatus";
pub(super) const LIST_POD_SANDBOX: &str = "ListPodSandbox";
pub(super) const CREATE_CONTAINER: &str = "CreateContainer";
pub(super) const START_CONTAINER: &str = "StartContainer";
pub(super) const STOP_CONTAINER: &str = "StopContainer";
pub(super) const REMOVE_CONTAINER: &str = "RemoveContainer";
pub(super) const LIST_CONTAINERS: &str = "ListContainers";
pub(super) const CONTAINER_STATUS: &str = "ContainerStatus";
pub(super) const REOPEN_CONTAINER_LOG: &str = "ReopenContainerLog";
pub(super) const UPDATE_CONTAINER_RESOURCES: &str = "UpdateContainerResources";
pub(super) const EXEC_SYNC: &str = "ExecSync";
pub(super) const LIST_CONTAINER_STATS: &str = "ListContainerStats";
pub(super) const GET_CONTAINER_EVENTS: &str = "GetContainerEvents";
pub(super) const IMAGE_STATUS: &str = "ImageStatus";
pub(super) const PULL_IMAGE: &str = "PullImage";
pub(super) const LIST_IMAGES: &str = "ListImages";
pub(super) const REMOVE_IMAGE: &str = "RemoveImage";
pub(super) const IMAGE_FS_INFO: &str = "ImageFsInfo";

/// Every method the fake serves.
pub(super) const ALL: &[&str] = &[
    VERSION,
    STATUS,
    RUN_POD_SANDBOX,
    STOP_POD_SANDBOX,
    REMOVE_POD_SANDBOX,
    POD_SANDBOX_STATUS,
    LIST_POD_SANDBOX,
    CREATE_CONTAINER,
    START_CONTAINER,
    STOP_CONTAINER,
    REMOVE_CONTAINER,
    LIST_CONTAINERS,
    CONTAINER_STATUS,
    REOPEN_CONTAINER_LOG,
    UPDATE_CONTAINER_RESOURCES,
    EXEC_SYNC,
    LIST_CONTAINER_STATS,
    GET_CONTAINER_EVENTS,
    IMAGE_STATUS,
    PULL_IMAGE,
    LIST_IMAGES,
    REMOVE_IMAGE,
    IMAGE_FS_INFO,
];

/// Methods that only observe: left out of [`FakeRuntime::actions`](super::FakeRuntime::actions).
pub(super) const READ_ONLY: &[&str] = &[
    VERSION,
    STATUS,
    POD_SANDBOX_STATUS,
    LIST_POD_SANDBOX,
    LIST_CONTAINERS,
    CONTAINER_STATUS,
    LIST_CONTAINER_STATS,
    GET_CONTAINER_EVENTS,
    IMAGE_STATUS,
    LIST_IMAGES,
    IMAGE_FS_INFO,
];

/// The `&'static` name of a method, for errors a test injects by name.
///
/// # Panics
/// On a name that is not a CRI method the fake serves: a typo in a test.
pub(super) fn canonical(name: &str) -> &'static str {
    ALL.iter()
        .copied()
        .find(|known| *known == name)
        .unwrap_or_else(|| panic!("{name:?} is not a CRI method of the fake runtime: {ALL:?}"))
}
