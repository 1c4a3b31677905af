//! OCI images and image-layout archives built in memory for the tests: layers from a list of
//! entries, gzip / zstd / uncompressed, with a config and manifest whose digests are real.
#![allow(dead_code)] // Shared by the unit and the integration tests; each uses a part.

use sha2::{Digest as _, Sha256};
use std::io::Write as _;
use std::path::Path;

pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// One tar entry: a directory or a file with contents.
pub enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
}

/// An uncompressed layer tar of `entries`, owned by root, fixed times.
pub fn layer(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            E::Dir(name) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, name, &[][..]).unwrap();
            }
            E::File(name, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, name, *data).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

#[derive(Clone, Copy, PartialEq)]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.to_string(),
            digest: digest(&bytes),
            bytes,
        }
    }

    fn descriptor(&self) -> serde_json::Value {
        serde_json::json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()})
    }
}

pub struct TestImage {
    /// `io.containerd.image.name` in the archive's index, when set.
    pub name: Option<String>,
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Blob>,
}

pub struct Options<'a> {
    pub compression: Compression,
    pub user: &'a str,
    /// Writes a wrong diff id for the first layer into the config.
    pub bad_diff_id: bool,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            compression: Compression::Gzip,
            user: "",
            bad_diff_id: false,
        }
    }
}

impl TestImage {
    pub fn new(name: Option<&str>, layers: &[Vec<u8>], opts: Options) -> TestImage {
        let mut diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
        if opts.bad_diff_id {
            diff_ids[0] = digest(b"not this layer");
        }
        let layers: Vec<Blob> = layers
            .iter()
            .map(|l| match opts.compression {
                Compression::Gzip => {
                    let mut gz =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    gz.write_all(l).unwrap();
                    Blob::new(
                        "application/vnd.oci.image.layer.v1.tar+gzip",
                        gz.finish().unwrap(),
                    )
                }
                Compression::Zstd => Blob::new(
                    "application/vnd.oci.image.layer.v1.tar+zstd",
                    zstd::encode_all(&l[..], 3).unwrap(),
                ),
                Compression::None => Blob::new("application/vnd.oci.image.layer.v1.tar", l.clone()),
            })
            .collect();
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"User": opts.user, "Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config = Blob::new(
            "application/vnd.oci.image.config.v1+json",
            serde_json::to_vec(&config).unwrap(),
        );
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config.descriptor(),
            "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        });
        let manifest = Blob::new(
            "application/vnd.oci.image.manifest.v1+json",
            serde_json::to_vec(&manifest).unwrap(),
        );
        TestImage {
            name: name.map(str::to_string),
            manifest,
            config,
            layers,
        }
    }

    /// The image id, `sha256:<config digest>`.
    pub fn id(&self) -> &str {
        &self.config.digest
    }
}

/// Writes an OCI image-layout archive holding `images` (a gzip'd tar when `gzip`).
pub fn write_archive(path: &Path, images: &[&TestImage], gzip: bool) {
    write_layout(path, images, None, gzip);
}

/// Writes an archive with one multi-platform image: a nested index (manifest list) of
/// `images`, the first one linux/amd64, the others linux/arm64. Returns the list's digest.
pub fn write_list_archive(path: &Path, images: &[&TestImage]) -> String {
    let entries: Vec<serde_json::Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let mut desc = image.manifest.descriptor();
            let arch = if i == 0 { "amd64" } else { "arm64" };
            desc["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
            desc
        })
        .collect();
    let list = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    });
    let list = Blob::new(
        "application/vnd.oci.image.index.v1+json",
        serde_json::to_vec(&list).unwrap(),
    );
    let digest = list.digest.clone();
    write_layout(path, images, Some(list), false);
    digest
}

fn write_layout(path: &Path, images: &[&TestImage], list: Option<Blob>, gzip: bool) {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(bytes.len() as u64);
        h.set_mtime(0);
        b.append_data(&mut h, name, bytes).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let mut manifests = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for image in images {
        for blob in std::iter::once(&image.manifest)
            .chain(std::iter::once(&image.config))
            .chain(&image.layers)
        {
            if seen.insert(blob.digest.clone()) {
                add(
                    &format!("blobs/sha256/{}", &blob.digest["sha256:".len()..]),
                    &blob.bytes,
                );
            }
        }
        if list.is_none() {
            let mut desc = image.manifest.descriptor();
            desc["platform"] = serde_json::json!({"architecture": "amd64", "os": "linux"});
            if let Some(name) = &image.name {
                desc["annotations"] = serde_json::json!({"io.containerd.image.name": name});
            }
            manifests.push(desc);
        }
    }
    if let Some(list) = &list {
        add(
            &format!("blobs/sha256/{}", &list.digest["sha256:".len()..]),
            &list.bytes,
        );
        manifests.push(list.descriptor());
    }
    let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
    add("index.json", &serde_json::to_vec(&index).unwrap());
    let tar = b.into_inner().unwrap();
    let bytes = if gzip {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    } else {
        tar
    };
    std::fs::write(path, bytes).unwrap();
}
