//! Import of OCI image-layout archives (a tar, or a gzip'd tar, of `index.json` and
//! `blobs/sha256/`), as `ctr images import` does: every blob is verified into the content store,
//! then each image of the index is unpacked and named after its annotations.

use crate::commit::{Parts, commit};
use crate::cri::Image;
use crate::error::ImageError;
use crate::manifest::{self, Descriptor, Parsed};
use crate::reference::{ImageRef, is_hex64};
use crate::store::{Busy, ImageStore};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use tracing::Instrument as _;

const CONTAINERD_NAME: &str = "io.containerd.image.name";
const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// An index.json larger than this is not an image index.
const MAX_INDEX: u64 = 16 << 20;

impl ImageStore {
    /// Imports every image of an OCI image-layout archive (tar or gzip'd tar). Images are named
    /// by the index's `io.containerd.image.name` annotation, else by
    /// `org.opencontainers.image.ref.name` when that is a full name; an image without either
    /// is imported by id only.
    pub async fn import(&self, archive: &Path) -> Result<Vec<Image>, ImageError> {
        let span = tracing::info_span!("import", archive = %archive.display());
        let result = self.import_archive(archive).instrument(span).await;
        result.map_err(|e| {
            // Blobs of an image that failed are no use to anyone.
            if let Err(gc) = self.collect_garbage() {
                tracing::warn!(error = %gc, "cleanup after a failed import");
            }
            ImageError::Import {
                path: archive.to_path_buf(),
                source: Box::new(e),
            }
        })
    }

    async fn import_archive(&self, archive: &Path) -> Result<Vec<Image>, ImageError> {
        let store = self.clone();
        let path = archive.to_path_buf();
        let (index, busy) = tokio::task::spawn_blocking(move || ingest_archive(&store, &path))
            .await
            .map_err(|e| ImageError::Aborted {
                cause: format!("archive read: {e}"),
            })??;
        let mut busy = busy;
        let index = index.ok_or_else(|| archive_error(archive, "no index.json".into()))?;
        let Parsed::Index(index) = manifest::parse(&index, "index.json")? else {
            return Err(archive_error(
                archive,
                "index.json is not an image index".into(),
            ));
        };
        let mut images = Vec::new();
        for desc in &index.manifests {
            let tags = names(desc);
            let parts = self.parts(archive, desc)?;
            let repo_digests = tags
                .iter()
                .filter_map(|t| ImageRef::parse(t).ok())
                .map(|r| r.repo_digest(&desc.digest))
                .collect();
            let image = commit(self, parts, &mut busy, &tags, repo_digests).await?;
            tracing::info!(id = %image.id, tags = ?image.repo_tags, "image imported");
            images.push(image);
        }
        Ok(images)
    }

    /// The manifest (this platform's, for an index) and config of one index entry, checking
    /// that every blob it needs came with the archive.
    fn parts(&self, archive: &Path, desc: &Descriptor) -> Result<Parts, ImageError> {
        let content = &self.inner.content;
        let read = |digest: &str| {
            if content.has(digest, None) {
                content.read(digest)
            } else {
                Err(archive_error(archive, format!("blob {digest} is missing")))
            }
        };
        let mut manifests = vec![desc.digest.clone()];
        let manifest = match manifest::parse(&read(&desc.digest)?, &desc.digest)? {
            Parsed::Manifest(m) => m,
            Parsed::Index(index) => {
                let chosen = manifest::select_platform(&index, &desc.digest)?
                    .digest
                    .clone();
                manifests.push(chosen.clone());
                match manifest::parse(&read(&chosen)?, &chosen)? {
                    Parsed::Manifest(m) => m,
                    Parsed::Index(_) => {
                        return Err(archive_error(
                            archive,
                            format!("{chosen} is an index inside an index"),
                        ));
                    }
                }
            }
        };
        let config = read(&manifest.config.digest)?;
        for layer in &manifest.layers {
            if !content.has(&layer.digest, Some(layer.size)) {
                return Err(archive_error(
                    archive,
                    format!("layer {} is missing or has the wrong size", layer.digest),
                ));
            }
        }
        Ok(Parts {
            manifests,
            manifest,
            config,
        })
    }
}

/// The image's names: the containerd annotation, else the OCI one when it is a whole name (it
/// is often just a tag, which names nothing on its own).
fn names(desc: &Descriptor) -> Vec<String> {
    let name = desc.annotations.get(CONTAINERD_NAME).or_else(|| {
        desc.annotations
            .get(OCI_REF_NAME)
            .filter(|n| n.contains('/'))
    });
    match name.map(|n| ImageRef::parse(n)) {
        Some(Ok(r)) => r.repo_tag().into_iter().collect(),
        Some(Err(e)) => {
            tracing::warn!(manifest = %desc.digest, error = %e, "image name ignored");
            Vec::new()
        }
        None => Vec::new(),
    }
}

fn archive_error(path: &Path, cause: String) -> ImageError {
    ImageError::Archive {
        path: path.to_path_buf(),
        cause,
    }
}

/// Reads the archive once: every `blobs/sha256/HEX` entry verified into the content store (and
/// kept out of garbage collection by the returned guard), `index.json` returned.
fn ingest_archive(store: &ImageStore, path: &Path) -> Result<(Option<Vec<u8>>, Busy), ImageError> {
    let file = File::open(path).map_err(|e| ImageError::io("open", path, e))?;
    let mut reader = BufReader::new(file);
    let gzip = reader
        .fill_buf()
        .map_err(|e| ImageError::io("read", path, e))?
        .starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let mut tar = tar::Archive::new(reader);
    let mut busy = store.busy([]);
    let mut index = None;
    let entries = tar.entries().map_err(|e| ImageError::io("read", path, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ImageError::io("read", path, e))?;
        let name: PathBuf = entry
            .path()
            .map_err(|e| ImageError::io("read", path, e))?
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        let Some(name) = name.to_str() else { continue };
        if name == "index.json" {
            if entry.size() > MAX_INDEX {
                return Err(archive_error(path, "index.json is too large".into()));
            }
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| ImageError::io("read", path, e))?;
            index = Some(bytes);
        } else if let Some(hex) = name.strip_prefix("blobs/sha256/")
            && is_hex64(hex)
        {
            let digest = format!("sha256:{hex}");
            busy.add(std::iter::once(digest.clone()));
            if store.inner.content.has(&digest, Some(entry.size())) {
                continue;
            }
            let size = entry.size();
            let mut ingest = store.inner.content.ingest()?;
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = entry
                    .read(&mut buf)
                    .map_err(|e| ImageError::io("read", path, e))?;
                if n == 0 {
                    break;
                }
                ingest.write(&buf[..n])?;
            }
            ingest.commit(Some(&digest), Some(size))?;
        }
    }
    Ok((index, busy))
}
