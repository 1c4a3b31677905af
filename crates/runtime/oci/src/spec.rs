//! build_spec: the OCI runtime spec for a CRI container, following containerd 1.7's CRI plugin
//! (container_create_linux.go and the spec options it applies), and write_bundle.

use crate::resources::{CgroupSupport, is_unified};
use crate::{
    SpecError, SpecInput, caps, cdi, cdi_apply, devices, mounts, namespaces, process, resources,
    seccomp, user,
};
use oci_spec::runtime::{
    Hook, Hooks, HooksBuilder, LinuxBuilder, LinuxDevice, LinuxDeviceCgroup, Mount, ProcessBuilder,
    RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use std::collections::HashMap;
use std::path::Path;
use tracing::debug_span;

/// The paths kubelet's default ProcMount masks (and containerd's default spec).
const DEFAULT_MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const DEFAULT_READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The parts of the spec that CDI edits, kept plain until the spec is assembled.
pub(crate) struct Draft {
    pub env: Vec<String>,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub mounts: Vec<Mount>,
    pub devices: Vec<LinuxDevice>,
    pub device_rules: Vec<LinuxDeviceCgroup>,
    pub hooks: HookLists,
}

#[derive(Default)]
pub(crate) struct HookLists {
    pub prestart: Vec<Hook>,
    pub create_runtime: Vec<Hook>,
    pub create_container: Vec<Hook>,
    pub start_container: Vec<Hook>,
    pub poststart: Vec<Hook>,
    pub poststop: Vec<Hook>,
}

impl HookLists {
    fn to_oci(&self) -> Result<Option<Hooks>, SpecError> {
        let all = [
            &self.prestart,
            &self.create_runtime,
            &self.create_container,
            &self.start_container,
            &self.poststart,
            &self.poststop,
        ];
        if all.iter().all(|l| l.is_empty()) {
            return Ok(None);
        }
        let some = |l: &Vec<Hook>| (!l.is_empty()).then(|| l.clone());
        let mut hooks = HooksBuilder::default()
            .build()
            .map_err(|e| SpecError::Build(e.to_string()))?;
        // prestart is deprecated in the OCI spec but still what some CDI specs ask for.
        #[allow(deprecated)]
        hooks.set_prestart(some(&self.prestart));
        hooks
            .set_create_runtime(some(&self.create_runtime))
            .set_create_container(some(&self.create_container))
            .set_start_container(some(&self.start_container))
            .set_poststart(some(&self.poststart))
            .set_poststop(some(&self.poststop));
        Ok(Some(hooks))
    }
}

fn build_err(e: oci_spec::OciSpecError) -> SpecError {
    SpecError::Build(e.to_string())
}

/// The OCI runtime spec for one container.
pub fn build_spec(input: &SpecInput) -> Result<Spec, SpecError> {
    let _span = debug_span!(
        "build_spec",
        container_id = input.container_id,
        sandbox_id = input.sandbox_id
    )
    .entered();
    let c = input.container;
    let linux = c.linux.as_ref();
    let security = linux.and_then(|l| l.security_context.as_ref());
    let privileged = security.is_some_and(|s| s.privileged);
    let sandbox_privileged = input
        .sandbox
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .is_some_and(|s| s.privileged);
    if privileged && !sandbox_privileged {
        return Err(SpecError::PrivilegedNotAllowed);
    }
    let readonly_rootfs = security.is_some_and(|s| s.readonly_rootfs);
    let image = input.image.config().as_ref();

    let hostname = if input.sandbox.hostname.is_empty() {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default()
    } else {
        input.sandbox.hostname.clone()
    };
    let image_user = image.and_then(|i| i.user().clone()).unwrap_or_default();
    let id = user::resolve(input.rootfs, security, &image_user)?;
    let (mounts, propagation) = mounts::build(c, input, readonly_rootfs, privileged)?;
    let (mut device_nodes, mut device_rules) = devices::from_cri(&c.devices)?;
    device_rules.splice(0..0, devices::default_rules()?);

    let all_caps = caps::current();
    let cap_set = if privileged {
        all_caps.clone()
    } else {
        match security.and_then(|s| s.capabilities.as_ref()) {
            Some(cc) => caps::from_cri(&cc.add_capabilities, &cc.drop_capabilities, &all_caps)?,
            None => caps::default_set(),
        }
    };
    if privileged {
        for dev in devices::host_devices()? {
            if !device_nodes.iter().any(|d| d.path() == dev.path()) {
                device_nodes.push(dev);
            }
        }
        device_rules = vec![devices::rule(
            true,
            oci_spec::runtime::LinuxDeviceType::A,
            None,
            None,
            "rwm",
        )?];
    }

    let mut draft = Draft {
        env: process::env(c, image, &hostname),
        uid: id.uid,
        gid: id.gid,
        additional_gids: id.additional_gids,
        mounts,
        devices: device_nodes,
        device_rules,
        hooks: HookLists::default(),
    };
    let annotations: HashMap<String, String> = c.annotations.clone().into_iter().collect();
    let cdi_names: Vec<String> = c.cdi_devices.iter().map(|d| d.name.clone()).collect();
    for (device, edits) in cdi::resolve(
        &cdi::requested(&cdi_names, &annotations),
        input.cdi_spec_dirs,
    )? {
        cdi_apply::apply(&mut draft, &device, &edits)?;
    }
    draft.additional_gids.sort_unstable();
    draft.additional_gids.dedup();

    let mut proc = ProcessBuilder::default()
        .terminal(c.tty)
        .user(
            UserBuilder::default()
                .uid(draft.uid)
                .gid(draft.gid)
                .additional_gids(draft.additional_gids.clone())
                .build()
                .map_err(build_err)?,
        )
        .args(process::args(c, image)?)
        .env(draft.env.clone())
        .cwd(process::cwd(c, image))
        .capabilities(caps::to_oci(&cap_set)?)
        .no_new_privileges(security.is_some_and(|s| s.no_new_privs));
    if let Some(r) = linux.and_then(|l| l.resources.as_ref()) {
        // Lowering oom_score_adj below our own needs CAP_SYS_RESOURCE, which the nodes we run
        // on lack (runc then fails with EACCES); containerd's restrict_oom_score_adj does the
        // same: a negative request (the kubelet's -997 for Guaranteed pods) runs at 0.
        proc = proc.oom_score_adj((r.oom_score_adj as i32).max(0));
    }

    let unified = is_unified();
    let ns = namespaces::build(c, input.sandbox, &input.namespaces, unified, privileged)?;
    let (masked, readonly) = if privileged {
        (Vec::new(), Vec::new())
    } else {
        let given = |v: Option<&Vec<String>>, default: &[&str]| match v {
            Some(v) if !v.is_empty() => v.clone(),
            _ => default.iter().map(|s| s.to_string()).collect(),
        };
        (
            given(security.map(|s| &s.masked_paths), &DEFAULT_MASKED_PATHS),
            given(security.map(|s| &s.readonly_paths), &DEFAULT_READONLY_PATHS),
        )
    };
    let resources = resources::to_oci(
        linux.and_then(|l| l.resources.as_ref()),
        input.pids_limit,
        draft.device_rules.clone(),
        CgroupSupport::probe(),
    )?;
    let mut lb = LinuxBuilder::default()
        .namespaces(ns.list)
        .devices(draft.devices.clone())
        .resources(resources)
        .masked_paths(masked)
        .readonly_paths(readonly);
    if !input.cgroups_path.is_empty() {
        lb = lb.cgroups_path(input.cgroups_path.clone());
    }
    if let Some(p) = propagation {
        lb = lb.rootfs_propagation(p);
    }
    if let Some(profile) = seccomp::profile(security, privileged, &cap_set)? {
        lb = lb.seccomp(profile);
    }

    let mut sb = SpecBuilder::default()
        .version("1.0.2-dev")
        .root(
            RootBuilder::default()
                .path(input.rootfs)
                .readonly(readonly_rootfs)
                .build()
                .map_err(build_err)?,
        )
        .mounts(draft.mounts.clone())
        .process(proc.build().map_err(build_err)?)
        .annotations(cri_annotations(input))
        .linux(lb.build().map_err(build_err)?);
    if let Some(hooks) = draft.hooks.to_oci()? {
        sb = sb.hooks(hooks);
    }
    // The builders start from oci-spec's Default (runc's example spec: hostname "youki", an
    // NOFILE rlimit): what containerd leaves unset is cleared here.
    let mut spec = sb.build().map_err(build_err)?;
    spec.set_hostname((ns.own_uts && !hostname.is_empty()).then_some(hostname));
    if let Some(p) = spec.process_mut() {
        p.set_rlimits(None);
    }
    Ok(spec)
}

/// containerd's DefaultCRIAnnotations for a container.
fn cri_annotations(input: &SpecInput) -> HashMap<String, String> {
    let meta = input.sandbox.metadata.clone().unwrap_or_default();
    let image = input.container.image.as_ref().map_or(String::new(), |i| {
        if i.user_specified_image.is_empty() {
            i.image.clone()
        } else {
            i.user_specified_image.clone()
        }
    });
    let name = input
        .container
        .metadata
        .as_ref()
        .map_or(String::new(), |m| m.name.clone());
    [
        ("io.kubernetes.cri.container-type", "container".to_string()),
        ("io.kubernetes.cri.sandbox-id", input.sandbox_id.to_string()),
        ("io.kubernetes.cri.sandbox-name", meta.name),
        ("io.kubernetes.cri.sandbox-namespace", meta.namespace),
        ("io.kubernetes.cri.sandbox-uid", meta.uid),
        ("io.kubernetes.cri.container-name", name),
        ("io.kubernetes.cri.image-name", image),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Writes `bundle_dir/config.json` (creating the dir). Not fsynced: the OCI runtime reads it at
/// once, and exec only while the container runs, which no host crash survives; a crash of the
/// daemon leaves the page cache intact, and a container still being created is removed with
/// its bundle by recovery.
pub fn write_bundle(bundle_dir: &Path, spec: &Spec) -> Result<(), SpecError> {
    std::fs::create_dir_all(bundle_dir).map_err(|source| SpecError::BundleDir {
        path: bundle_dir.to_path_buf(),
        source,
    })?;
    let bytes = serde_json::to_vec_pretty(spec)?;
    let path = bundle_dir.join("config.json");
    std::fs::write(&path, bytes).map_err(|source| SpecError::BundleFile { path, source })
}
