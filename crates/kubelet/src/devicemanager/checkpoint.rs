//! The device manager's checkpoint, device-plugins/kubelet_internal_checkpoint, in upstream's
//! format (pkg/kubelet/cm/devicemanager/checkpoint): JSON of `{Data, Checksum}`, the checksum
//! being FNV-32a over go-spew's `%#v` rendering of `Data` (upstream checksum.New). A kubelet
//! switched either way reads the other's file.
//!
//! Go tells a nil slice or map from an empty one and spew prints them differently (`<nil>` vs
//! `[]`), so every list here is an `Option`: `None` is Go's nil (JSON null or absent).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use thiserror::Error;

pub const FILE_NAME: &str = "kubelet_internal_checkpoint";

/// Device ids by NUMA node (upstream DevicesPerNUMA); devices without topology sit under -1.
pub type DevicesPerNuma = BTreeMap<i64, Option<Vec<String>>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodDevicesEntry {
    #[serde(rename = "PodUID")]
    pub pod_uid: String,
    #[serde(rename = "ContainerName")]
    pub container_name: String,
    #[serde(rename = "ResourceName")]
    pub resource_name: String,
    #[serde(rename = "DeviceIDs", default)]
    pub device_ids: Option<DevicesPerNuma>,
    /// The plugin's ContainerAllocateResponse, protobuf-encoded; base64 in JSON as Go's []byte.
    #[serde(rename = "AllocResp", default, with = "go_bytes")]
    pub alloc_resp: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointData {
    #[serde(rename = "PodDeviceEntries", default)]
    pub pod_device_entries: Option<Vec<PodDevicesEntry>>,
    #[serde(rename = "RegisteredDevices", default)]
    pub registered_devices: Option<BTreeMap<String, Option<Vec<String>>>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct File {
    #[serde(rename = "Data")]
    data: CheckpointData,
    #[serde(rename = "Checksum")]
    checksum: u64,
}

#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("cannot read the device manager checkpoint {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write the device manager checkpoint {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("the device manager checkpoint {path} is not valid JSON: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("checkpoint is corrupted: {path} has checksum {found}, its data {computed}")]
    Corrupt {
        path: String,
        found: u64,
        computed: u64,
    },
}

/// Go's encoding/json for []byte: standard base64, nil as null.
mod go_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

fn spew_strings(out: &mut String, list: &Option<Vec<String>>) {
    match list {
        None => out.push_str("<nil>"),
        Some(items) => {
            out.push('[');
            out.push_str(&items.join(" "));
            out.push(']');
        }
    }
}

/// go-spew's `%#v` of upstream's checkpointData: types in parentheses except where spew omits
/// them (slice elements, map keys and values), field names, map keys sorted.
pub fn spew(data: &CheckpointData) -> String {
    let mut out = String::from("(checkpoint.checkpointData){PodDeviceEntries:");
    out.push_str("([]checkpoint.PodDevicesEntry)");
    match &data.pod_device_entries {
        None => out.push_str("<nil>"),
        Some(entries) => {
            out.push('[');
            for (i, e) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                let _ = write!(
                    out,
                    "{{PodUID:(string){} ContainerName:(string){} ResourceName:(string){} DeviceIDs:(checkpoint.DevicesPerNUMA)",
                    e.pod_uid, e.container_name, e.resource_name
                );
                match &e.device_ids {
                    None => out.push_str("<nil>"),
                    Some(per_numa) => {
                        out.push_str("map[");
                        for (j, (numa, ids)) in per_numa.iter().enumerate() {
                            if j > 0 {
                                out.push(' ');
                            }
                            let _ = write!(out, "{numa}:");
                            spew_strings(&mut out, ids);
                        }
                        out.push(']');
                    }
                }
                out.push_str(" AllocResp:([]uint8)");
                match &e.alloc_resp {
                    None => out.push_str("<nil>"),
                    Some(bytes) => {
                        let bytes: Vec<String> = bytes.iter().map(u8::to_string).collect();
                        let _ = write!(out, "[{}]", bytes.join(" "));
                    }
                }
                out.push('}');
            }
            out.push(']');
        }
    }
    out.push_str(" RegisteredDevices:(map[string][]string)");
    match &data.registered_devices {
        None => out.push_str("<nil>"),
        Some(devices) => {
            out.push_str("map[");
            for (i, (resource, ids)) in devices.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                let _ = write!(out, "{resource}:");
                spew_strings(&mut out, ids);
            }
            out.push(']');
        }
    }
    out.push('}');
    out
}

fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash: u32, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Upstream checksum.New: FNV-32a of the spew rendering, widened to uint64.
pub fn checksum(data: &CheckpointData) -> u64 {
    u64::from(fnv32a(spew(data).as_bytes()))
}

pub fn encode(data: &CheckpointData) -> Vec<u8> {
    let file = File {
        checksum: checksum(data),
        data: data.clone(),
    };
    serde_json::to_vec(&file).expect("the checkpoint serializes")
}

pub fn decode(path: &Path, bytes: &[u8]) -> Result<CheckpointData, CheckpointError> {
    let file: File = serde_json::from_slice(bytes).map_err(|source| CheckpointError::Parse {
        path: path.display().to_string(),
        source,
    })?;
    let computed = checksum(&file.data);
    if computed != file.checksum {
        return Err(CheckpointError::Corrupt {
            path: path.display().to_string(),
            found: file.checksum,
            computed,
        });
    }
    Ok(file.data)
}

/// The checkpoint at `path`; none when there is no file yet.
pub fn read(path: &Path) -> Result<Option<CheckpointData>, CheckpointError> {
    match std::fs::read(path) {
        Ok(bytes) => decode(path, &bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CheckpointError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Writes atomically (temporary file, then rename), as upstream's checkpoint manager does.
pub fn write(path: &Path, data: &CheckpointData) -> Result<(), CheckpointError> {
    let err = |source| CheckpointError::Write {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, encode(data)).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CheckpointData {
        CheckpointData {
            pod_device_entries: Some(vec![PodDevicesEntry {
                pod_uid: "uid-1".into(),
                container_name: "app".into(),
                resource_name: "example.com/dev".into(),
                device_ids: Some(BTreeMap::from([(-1, Some(vec!["d1".into(), "d0".into()]))])),
                alloc_resp: Some(vec![10, 3, 0x41]),
            }]),
            registered_devices: Some(BTreeMap::from([(
                "example.com/dev".into(),
                Some(vec!["d0".into(), "d1".into()]),
            )])),
        }
    }

    #[test]
    fn spew_renders_like_go_spew() {
        assert_eq!(
            spew(&sample()),
            "(checkpoint.checkpointData){PodDeviceEntries:([]checkpoint.PodDevicesEntry)[{PodUID:(string)uid-1 ContainerName:(string)app ResourceName:(string)example.com/dev DeviceIDs:(checkpoint.DevicesPerNUMA)map[-1:[d1 d0]] AllocResp:([]uint8)[10 3 65]}] RegisteredDevices:(map[string][]string)map[example.com/dev:[d0 d1]]}"
        );
        assert_eq!(
            spew(&CheckpointData {
                pod_device_entries: None,
                registered_devices: Some(BTreeMap::new()),
            }),
            "(checkpoint.checkpointData){PodDeviceEntries:([]checkpoint.PodDevicesEntry)<nil> RegisteredDevices:(map[string][]string)map[]}"
        );
    }

    #[test]
    fn fnv32a_matches_the_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn round_trips_and_detects_corruption() {
        let data = sample();
        let bytes = encode(&data);
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["Data"]["PodDeviceEntries"][0]["AllocResp"], "CgNB");
        assert_eq!(
            json["Data"]["PodDeviceEntries"][0]["DeviceIDs"]["-1"][1],
            "d0"
        );
        assert_eq!(decode(Path::new("cp"), &bytes).unwrap(), data);
        let tampered = String::from_utf8(bytes).unwrap().replace("uid-1", "uid-2");
        assert!(matches!(
            decode(Path::new("cp"), tampered.as_bytes()),
            Err(CheckpointError::Corrupt { .. })
        ));
    }

    #[test]
    fn reads_nulls_as_go_nils() {
        let data = CheckpointData {
            pod_device_entries: None,
            registered_devices: Some(BTreeMap::new()),
        };
        let text = format!(
            r#"{{"Data":{{"PodDeviceEntries":null,"RegisteredDevices":{{}}}},"Checksum":{}}}"#,
            checksum(&data)
        );
        assert_eq!(decode(Path::new("cp"), text.as_bytes()).unwrap(), data);
    }

    /// Written by the upstream kubelet v1.28.4 with the test kit's device plugin
    /// (example.com/widget, two devices) and a pod whose init container and app container each
    /// ask for one: the app container reuses the init container's device.
    const UPSTREAM: &str = r#"{"Data":{"PodDeviceEntries":[{"PodUID":"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d","ContainerName":"setup","ResourceName":"example.com/widget","DeviceIDs":{"-1":["dev-0"]},"AllocResp":"ChgKD1RFU1RfREVWSUNFX0lEUxIFZGV2LTAiHwoWdGVzdC5kZXZpY2UtcGx1Z2luL2lkcxIFZGV2LTA="},{"PodUID":"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d","ContainerName":"app","ResourceName":"example.com/widget","DeviceIDs":{"-1":["dev-0"]},"AllocResp":"ChgKD1RFU1RfREVWSUNFX0lEUxIFZGV2LTAiHwoWdGVzdC5kZXZpY2UtcGx1Z2luL2lkcxIFZGV2LTA="}],"RegisteredDevices":{"example.com/widget":["dev-0","dev-1"]}},"Checksum":837271713}"#;

    /// Also written by the upstream kubelet v1.28.4, once the plugin registered, before any pod.
    const UPSTREAM_NO_PODS: &str = r#"{"Data":{"PodDeviceEntries":null,"RegisteredDevices":{"example.com/widget":["dev-0","dev-1"]}},"Checksum":1438110798}"#;

    #[test]
    fn reads_and_writes_the_upstream_files_byte_for_byte() {
        for upstream in [UPSTREAM, UPSTREAM_NO_PODS] {
            let data = decode(Path::new("upstream"), upstream.as_bytes()).unwrap();
            assert_eq!(String::from_utf8(encode(&data)).unwrap(), upstream);
        }
        let data = decode(Path::new("upstream"), UPSTREAM.as_bytes()).unwrap();
        let entries = data.pod_device_entries.unwrap();
        let devices: Vec<(&str, &DevicesPerNuma)> = entries
            .iter()
            .map(|e| (e.container_name.as_str(), e.device_ids.as_ref().unwrap()))
            .collect();
        let dev0 = BTreeMap::from([(-1, Some(vec!["dev-0".to_string()]))]);
        assert_eq!(devices, [("setup", &dev0), ("app", &dev0)]);
    }
}
