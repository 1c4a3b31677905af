//! Container Device Interface: spec files (JSON or YAML) in the CDI spec dirs name devices as
//! `vendor/class=name` with edits to the container (env, device nodes, mounts, hooks, extra
//! groups); a container asks for them by CRI cdi_devices or `cdi.k8s.io/*` annotations.

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The spec dirs of the CDI standard, lowest priority first.
pub const DEFAULT_SPEC_DIRS: [&str; 2] = ["/etc/cdi", "/var/run/cdi"];

/// Annotation keys with this prefix carry comma-separated qualified device names.
pub const ANNOTATION_PREFIX: &str = "cdi.k8s.io/";

#[derive(Debug, Error)]
pub enum CdiError {
    #[error("invalid CDI device name {0:?}: expected vendor.example/class=name")]
    InvalidName(String),
    #[error("unresolvable CDI devices {names:?}: no spec in {dirs:?} defines them")]
    Unresolvable {
        names: Vec<String>,
        dirs: Vec<PathBuf>,
    },
    #[error("CDI device {device}: {reason}")]
    Edit { device: String, reason: String },
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerEdits {
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub device_nodes: Vec<DeviceNode>,
    #[serde(default)]
    pub hooks: Vec<Hook>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default, rename = "additionalGIDs", alias = "additionalGids")]
    pub additional_gids: Vec<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeviceNode {
    pub path: String,
    pub host_path: Option<String>,
    #[serde(rename = "type")]
    pub typ: Option<String>,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub file_mode: Option<u32>,
    pub permissions: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    pub hook_name: String,
    pub path: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    pub timeout: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    pub host_path: String,
    pub container_path: String,
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(rename = "type")]
    pub typ: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecFile {
    kind: String,
    #[serde(default)]
    devices: Vec<DeviceEntry>,
    #[serde(default)]
    container_edits: ContainerEdits,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceEntry {
    name: String,
    #[serde(default)]
    container_edits: ContainerEdits,
}

/// A resolved device: its own edits and the edits of the spec file that defines it.
struct Resolved {
    spec_file: PathBuf,
    spec_edits: ContainerEdits,
    device_edits: ContainerEdits,
}

/// Splits "vendor.com/class=name" into ("vendor.com/class", "name").
pub fn parse_name(name: &str) -> Result<(&str, &str), CdiError> {
    let bad = || CdiError::InvalidName(name.to_string());
    let (kind, device) = name.split_once('=').ok_or_else(bad)?;
    let (vendor, class) = kind.split_once('/').ok_or_else(bad)?;
    let valid = |s: &str, extra: &[char]| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
    };
    if !valid(vendor, &['.', '-', '_'])
        || !valid(class, &['-', '_'])
        || !valid(device, &['.', '-', '_', ':'])
    {
        return Err(bad());
    }
    Ok((kind, device))
}

/// The devices a container asks for: CRI cdi_devices first, then annotation devices not
/// already named (containerd's WithCDI order).
pub fn requested(cdi_devices: &[String], annotations: &HashMap<String, String>) -> Vec<String> {
    let mut names: Vec<String> = cdi_devices.to_vec();
    let mut keys: Vec<&String> = annotations
        .keys()
        .filter(|k| k.starts_with(ANNOTATION_PREFIX))
        .collect();
    keys.sort();
    for k in keys {
        for n in annotations[k]
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            if !names.iter().any(|x| x == n) {
                names.push(n.to_string());
            }
        }
    }
    names
}

/// Every device defined in the dirs, by qualified name; a later dir overrides an earlier one.
/// Unreadable or invalid spec files are skipped with a warning: one vendor's broken file must
/// not block another vendor's devices.
fn load(dirs: &[PathBuf]) -> BTreeMap<String, Resolved> {
    let mut out = BTreeMap::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("json" | "yaml" | "yml")
                )
            })
            .collect();
        files.sort();
        for file in files {
            match read_spec(&file) {
                Ok(spec) => {
                    for d in spec.devices {
                        out.insert(
                            format!("{}={}", spec.kind, d.name),
                            Resolved {
                                spec_file: file.clone(),
                                spec_edits: spec.container_edits.clone(),
                                device_edits: d.container_edits,
                            },
                        );
                    }
                }
                Err(reason) => {
                    tracing::warn!(file = %file.display(), %reason, "skipping CDI spec");
                }
            }
        }
    }
    out
}

fn read_spec(file: &Path) -> Result<SpecFile, String> {
    let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    // YAML is a superset of JSON, so one parser reads both kinds of file.
    let spec: SpecFile = serde_yaml_ng::from_str(&text).map_err(|e| e.to_string())?;
    parse_name(&format!("{}=x", spec.kind)).map_err(|e| e.to_string())?;
    Ok(spec)
}

/// The edits for the named devices, in order: each spec file's own edits once (before its
/// first device), then each device's edits. Tagged with the device they come from.
pub fn resolve(
    names: &[String],
    dirs: &[PathBuf],
) -> Result<Vec<(String, ContainerEdits)>, CdiError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    for n in names {
        parse_name(n)?;
    }
    let registry = load(dirs);
    let missing: Vec<String> = names
        .iter()
        .filter(|n| !registry.contains_key(*n))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(CdiError::Unresolvable {
            names: missing,
            dirs: dirs.to_vec(),
        });
    }
    let mut seen_specs: Vec<&Path> = Vec::new();
    let mut edits = Vec::new();
    for n in names {
        let r = &registry[n];
        if !seen_specs.contains(&r.spec_file.as_path()) {
            seen_specs.push(&r.spec_file);
            edits.push((n.clone(), r.spec_edits.clone()));
        }
        edits.push((n.clone(), r.device_edits.clone()));
    }
    Ok(edits)
}
