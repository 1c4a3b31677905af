//! The image records on disk, each written atomically through runtime-state's [`RecordDir`]:
//! `images/` (one per image id: manifest, config and layers), `names/` (one per repo tag, so a
//! tag moving to a new image is one atomic write) and `leases/` (one per container holding an
//! image's snapshots). A record that does not parse is quarantined by [`RecordDir::load_all`].

use crate::error::ImageError;
use runtime_state::RecordDir;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::path::Path;

/// One layer of an image: the blob it came from and the snapshot it was unpacked into.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct LayerRecord {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub diff_id: String,
    pub chain_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    /// `sha256:<config digest>`.
    pub id: String,
    /// Blobs the image keeps: the manifest and, when the reference named a manifest list, the
    /// list too (so its digest stays a valid repo digest).
    pub manifests: Vec<String>,
    pub config_digest: String,
    pub config_size: u64,
    /// Bottom layer first, as in the manifest.
    pub layers: Vec<LayerRecord>,
    /// `name@digest` of every repository the image was pulled from by digest or by tag.
    pub repo_digests: Vec<String>,
    #[serde(default)]
    pub pinned: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct NameRecord {
    /// A normalized repo tag, `domain/path:tag`.
    pub name: String,
    pub image_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct LeaseRecord {
    pub holder: String,
    pub image_id: String,
    /// The chain ids of the leased snapshots, so they outlive the image's own record.
    pub chain_ids: Vec<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct Records {
    images: RecordDir,
    names: RecordDir,
    leases: RecordDir,
}

/// What [`Records::load`] found.
pub(crate) struct Loaded {
    pub images: Vec<ImageRecord>,
    pub names: Vec<NameRecord>,
    pub leases: Vec<LeaseRecord>,
}

impl Records {
    pub fn open(root: &Path) -> Result<Records, ImageError> {
        Ok(Records {
            images: RecordDir::open(root.join("images"))?,
            names: RecordDir::open(root.join("names"))?,
            leases: RecordDir::open(root.join("leases"))?,
        })
    }

    pub fn load(&self) -> Result<Loaded, ImageError> {
        Ok(Loaded {
            images: values(self.images.load_all()?),
            names: values(self.names.load_all()?),
            leases: values(self.leases.load_all()?),
        })
    }

    pub fn save_image(&self, image: &ImageRecord) -> Result<(), ImageError> {
        Ok(self.images.save(&hex_id(&image.id), image)?)
    }

    pub fn remove_image(&self, id: &str) -> Result<(), ImageError> {
        Ok(self.images.remove(&hex_id(id))?)
    }

    pub fn save_name(&self, name: &NameRecord) -> Result<(), ImageError> {
        Ok(self.names.save(&key(&name.name), name)?)
    }

    pub fn remove_name(&self, name: &str) -> Result<(), ImageError> {
        Ok(self.names.remove(&key(name))?)
    }

    pub fn save_lease(&self, lease: &LeaseRecord) -> Result<(), ImageError> {
        Ok(self.leases.save(&key(&lease.holder), lease)?)
    }

    pub fn remove_lease(&self, holder: &str) -> Result<(), ImageError> {
        Ok(self.leases.remove(&key(holder))?)
    }
}

fn values<T>(records: Vec<(String, T)>) -> Vec<T> {
    records.into_iter().map(|(_, r)| r).collect()
}

/// The HEX of `sha256:HEX`: record ids may not hold a colon.
fn hex_id(id: &str) -> String {
    id.trim_start_matches("sha256:").to_string()
}

/// Names and holders may hold `/` and `:`, which record ids may not, and may be longer than a
/// file name; their digest is a fixed-length id (the record itself keeps the original).
fn key(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}
