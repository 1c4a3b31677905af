//! The image store: names normalised the way containerd resolves them, ids and digests derived
//! from the name.

use super::ids::{hex64, stable_hash};
use crate::api::{Image, ImageSpec};

/// Sizes of fake images, for image GC and `ImageFsInfo`: a few MiB, like busybox.
const BASE_IMAGE_SIZE: u64 = 4 << 20;

/// Expands a reference as containerd (docker's reference library) does:
/// `busybox` -> `docker.io/library/busybox:latest`, `foo/bar:1` -> `docker.io/foo/bar:1`.
/// Image ids (`sha256:...`) are returned as they are.
pub(super) fn normalize(reference: &str) -> String {
    if reference.starts_with("sha256:") {
        return reference.to_string();
    }
    let (named, digest) = match reference.find('@') {
        Some(at) => reference.split_at(at),
        None => (reference, ""),
    };
    let last_component = named.rfind('/').map_or(0, |slash| slash + 1);
    let (repo, tag) = match named[last_component..].find(':') {
        Some(colon) => named.split_at(last_component + colon),
        None => (named, ""),
    };
    let first = repo.split('/').next().unwrap_or_default();
    let has_domain =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_domain {
        repo.to_string()
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    };
    if full.starts_with("docker.io/") && full.matches('/').count() == 1 {
        full = full.replacen("docker.io/", "docker.io/library/", 1);
    }
    let tag = if tag.is_empty() && digest.is_empty() {
        ":latest"
    } else {
        tag
    };
    format!("{full}{tag}{digest}")
}

/// The repository part of a normalised reference (no tag, no digest).
fn repository(normalized: &str) -> &str {
    let named = normalized.split('@').next().unwrap_or(normalized);
    let last_component = named.rfind('/').map_or(0, |slash| slash + 1);
    match named[last_component..].find(':') {
        Some(colon) => &named[..last_component + colon],
        None => named,
    }
}

#[derive(Debug, Clone)]
pub(super) struct StoredImage {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub size: u64,
}

impl StoredImage {
    fn for_reference(normalized: &str) -> Self {
        let seed = stable_hash(normalized);
        let id = format!("sha256:{}", hex64(seed));
        let digest = format!("sha256:{}", hex64(seed ^ 0x6d61_6e69_6665_7374));
        let repo = repository(normalized);
        let is_digest_ref = normalized.contains('@');
        StoredImage {
            id,
            repo_tags: if is_digest_ref {
                Vec::new()
            } else {
                vec![normalized.to_string()]
            },
            repo_digests: vec![if is_digest_ref {
                normalized.to_string()
            } else {
                format!("{repo}@{digest}")
            }],
            size: BASE_IMAGE_SIZE + seed % (BASE_IMAGE_SIZE / 4),
        }
    }

    fn is_known_as(&self, reference: &str) -> bool {
        self.id == reference
            || self.repo_tags.iter().any(|tag| tag == reference)
            || self.repo_digests.iter().any(|digest| digest == reference)
    }

    /// The digested reference containerd reports as a container's `image_ref`.
    pub fn image_ref(&self) -> String {
        self.repo_digests
            .first()
            .cloned()
            .unwrap_or_else(|| self.id.clone())
    }

    pub fn to_cri(&self) -> Image {
        Image {
            id: self.id.clone(),
            repo_tags: self.repo_tags.clone(),
            repo_digests: self.repo_digests.clone(),
            size: self.size,
            uid: None,
            username: String::new(),
            spec: Some(ImageSpec {
                image: self.id.clone(),
                ..Default::default()
            }),
            pinned: false,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct ImageStore {
    images: Vec<StoredImage>,
}

impl ImageStore {
    /// Finds an image by name (normalised), digest or id.
    pub fn resolve(&self, reference: &str) -> Option<&StoredImage> {
        let normalized = normalize(reference);
        self.images
            .iter()
            .find(|image| image.is_known_as(&normalized))
    }

    /// Adds the image if no image answers to `reference` yet; returns its id.
    pub fn add(&mut self, reference: &str) -> String {
        if let Some(existing) = self.resolve(reference) {
            return existing.id.clone();
        }
        let image = StoredImage::for_reference(&normalize(reference));
        let id = image.id.clone();
        self.images.push(image);
        id
    }

    /// Removes the image that answers to `reference` with all its names, as containerd does.
    pub fn remove(&mut self, reference: &str) -> bool {
        let Some(id) = self.resolve(reference).map(|image| image.id.clone()) else {
            return false;
        };
        self.images.retain(|image| image.id != id);
        true
    }

    pub fn all(&self) -> &[StoredImage] {
        &self.images
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker_references() {
        assert_eq!(normalize("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalize("busybox:1.35"), "docker.io/library/busybox:1.35");
        assert_eq!(
            normalize("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(normalize("foo/bar"), "docker.io/foo/bar:latest");
        assert_eq!(normalize("localhost/pause:3.10"), "localhost/pause:3.10");
        assert_eq!(
            normalize("127.0.0.1:5000/busybox"),
            "127.0.0.1:5000/busybox:latest"
        );
        assert_eq!(
            normalize("registry.k8s.io/pause@sha256:abc"),
            "registry.k8s.io/pause@sha256:abc"
        );
        assert_eq!(normalize("sha256:abc"), "sha256:abc");
    }

    #[test]
    fn resolves_by_any_name_and_removes_all_names() {
        let mut store = ImageStore::default();
        let id = store.add("busybox");
        assert_eq!(store.add("docker.io/library/busybox:latest"), id);
        let image = store.resolve("busybox:latest").expect("resolved by tag");
        assert_eq!(image.id, id);
        let digest = image.repo_digests[0].clone();
        assert!(digest.starts_with("docker.io/library/busybox@sha256:"));
        assert_eq!(
            store.resolve(&digest).map(|i| i.id.clone()),
            Some(id.clone())
        );
        assert_eq!(store.resolve(&id).map(|i| i.id.clone()), Some(id.clone()));
        assert!(store.resolve("busybox:1.35").is_none());
        assert!(store.remove(&id));
        assert!(store.resolve("busybox").is_none());
        assert!(!store.remove("busybox"));
    }
}
