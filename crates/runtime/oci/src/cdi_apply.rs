//! Applying CDI container edits to a spec under construction (the CDI library's
//! ContainerEdits.Apply, for the edits we support).

use crate::cdi::{CdiError, ContainerEdits, DeviceNode};
use crate::devices;
use crate::process::merge_env;
use crate::spec::Draft;
use oci_spec::runtime::{
    HookBuilder, LinuxDevice, LinuxDeviceBuilder, LinuxDeviceType, MountBuilder,
};
use std::path::Path;

pub(crate) fn apply(
    draft: &mut Draft,
    device: &str,
    edits: &ContainerEdits,
) -> Result<(), CdiError> {
    let err = |reason: String| CdiError::Edit {
        device: device.to_string(),
        reason,
    };
    merge_env(&mut draft.env, edits.env.iter().cloned());
    for node in &edits.device_nodes {
        let mut dev = device_node(node).map_err(err)?;
        // Without an owner in the spec, the device belongs to the container's user.
        if node.uid.is_none() && draft.uid > 0 {
            dev.set_uid(Some(draft.uid));
        }
        if node.gid.is_none() && draft.gid > 0 {
            dev.set_gid(Some(draft.gid));
        }
        draft.devices.retain(|d| d.path() != dev.path());
        if matches!(dev.typ(), LinuxDeviceType::B | LinuxDeviceType::C) {
            let access = match node.permissions.as_deref() {
                None | Some("") => "rwm",
                Some("none") => "",
                Some(p) => p,
            };
            let rule = devices::rule(
                true,
                dev.typ(),
                Some(dev.major()),
                Some(dev.minor()),
                access,
            )
            .map_err(|e| err(e.to_string()))?;
            draft.device_rules.push(rule);
        }
        draft.devices.push(dev);
    }
    if !edits.mounts.is_empty() {
        for m in &edits.mounts {
            draft
                .mounts
                .retain(|x| x.destination() != Path::new(&m.container_path));
            let mut b = MountBuilder::default()
                .destination(&m.container_path)
                .source(&m.host_path)
                .options(m.options.clone());
            if let Some(t) = &m.typ {
                b = b.typ(t);
            }
            draft
                .mounts
                .push(b.build().map_err(|e| err(e.to_string()))?);
        }
        // Parents before children, as the CDI library sorts after adding mounts.
        draft
            .mounts
            .sort_by_key(|m| m.destination().components().count());
    }
    for h in &edits.hooks {
        let mut b = HookBuilder::default().path(&h.path);
        if !h.args.is_empty() {
            b = b.args(h.args.clone());
        }
        if !h.env.is_empty() {
            b = b.env(h.env.clone());
        }
        if let Some(t) = h.timeout {
            b = b.timeout(t);
        }
        let hook = b.build().map_err(|e| err(e.to_string()))?;
        let list = match h.hook_name.as_str() {
            "prestart" => &mut draft.hooks.prestart,
            "createRuntime" => &mut draft.hooks.create_runtime,
            "createContainer" => &mut draft.hooks.create_container,
            "startContainer" => &mut draft.hooks.start_container,
            "poststart" => &mut draft.hooks.poststart,
            "poststop" => &mut draft.hooks.poststop,
            other => return Err(err(format!("unknown hook name {other:?}"))),
        };
        list.push(hook);
    }
    for &gid in &edits.additional_gids {
        if gid != 0 && !draft.additional_gids.contains(&gid) {
            draft.additional_gids.push(gid);
        }
    }
    Ok(())
}

/// The OCI device for a CDI device node, with type and numbers read from the host node when
/// the spec leaves them out.
fn device_node(node: &DeviceNode) -> Result<LinuxDevice, String> {
    let host = node.host_path.as_deref().unwrap_or(&node.path);
    // As the CDI library: a type plus a major number (or a fifo) needs no look at the host.
    let needs_stat =
        node.typ.is_none() || (node.major.is_none() && node.typ.as_deref() != Some("p"));
    let probed = if needs_stat {
        devices::device_from_path(Path::new(host))
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{host} is not a device node"))
            .map(Some)?
    } else {
        None
    };
    let typ = match node.typ.as_deref() {
        Some("b") => LinuxDeviceType::B,
        Some("c") | Some("u") => LinuxDeviceType::C,
        Some("p") => LinuxDeviceType::P,
        Some(other) => return Err(format!("invalid device type {other:?}")),
        None => probed.as_ref().map_or(LinuxDeviceType::C, |p| p.typ()),
    };
    let major = node
        .major
        .or(probed.as_ref().map(|p| p.major()))
        .unwrap_or(0);
    let minor = node
        .minor
        .or(probed.as_ref().map(|p| p.minor()))
        .unwrap_or(0);
    let mut b = LinuxDeviceBuilder::default()
        .path(&node.path)
        .typ(typ)
        .major(major)
        .minor(minor);
    if let Some(mode) = node
        .file_mode
        .or(probed.as_ref().and_then(|p| p.file_mode()))
    {
        b = b.file_mode(mode);
    }
    if let Some(uid) = node.uid {
        b = b.uid(uid);
    }
    if let Some(gid) = node.gid {
        b = b.gid(gid);
    }
    b.build().map_err(|e| e.to_string())
}
