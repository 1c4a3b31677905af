//! The last step of a pull or an import: with every blob of an image in the content store, the
//! layers are unpacked (each once, in parallel) and the image is recorded under its tags.

use crate::cri::Image;
use crate::error::ImageError;
use crate::manifest::{Manifest, parse_config};
use crate::records::{ImageRecord, LayerRecord};
use crate::snapshots::chain_ids;
use crate::store::{Busy, ImageStore};
use futures::StreamExt as _;

/// Layers unpacked at once: unpacking is CPU (decompression) and disk bound.
const PARALLEL_UNPACKS: usize = 2;

/// An image whose manifest and config are known and stored.
pub(crate) struct Parts {
    /// The blobs of the manifest (and of the index it was chosen from).
    pub manifests: Vec<String>,
    pub manifest: Manifest,
    pub config: Vec<u8>,
}

impl Parts {
    /// The layers with their diff ids and chain ids from the config.
    pub fn layers(
        &self,
    ) -> Result<(Vec<LayerRecord>, oci_spec::image::ImageConfiguration), ImageError> {
        let digest = &self.manifest.config.digest;
        let config = parse_config(&self.config, digest, self.manifest.layers.len())?;
        let diff_ids = config.rootfs().diff_ids();
        let layers = self
            .manifest
            .layers
            .iter()
            .zip(diff_ids)
            .zip(chain_ids(diff_ids))
            .map(|((d, diff_id), chain_id)| LayerRecord {
                digest: d.digest.clone(),
                media_type: d.media_type.clone(),
                size: d.size,
                diff_id: diff_id.clone(),
                chain_id,
            })
            .collect();
        Ok((layers, config))
    }
}

/// Unpacks the (stored) layers and records the image with `tags` and `repo_digests`. `busy`
/// must already hold the image's blobs; it is extended to its snapshots.
pub(crate) async fn commit(
    store: &ImageStore,
    parts: Parts,
    busy: &mut Busy,
    tags: &[String],
    repo_digests: Vec<String>,
) -> Result<Image, ImageError> {
    let (layers, config) = parts.layers()?;
    busy.add(layers.iter().map(|l| l.chain_id.clone()));
    // Every unpack runs to its end before an error is returned: an unpack thread cannot be
    // cancelled, and one still running would publish its snapshot after the cleanup.
    let results: Vec<Result<(), ImageError>> = futures::stream::iter(layers.clone())
        .map(|layer| {
            let store = store.clone();
            let span = tracing::Span::current();
            async move {
                let blob = store.inner.content.blob_path(&layer.digest);
                tokio::task::spawn_blocking(move || {
                    let _span = span.entered();
                    store.inner.snapshots.unpack_layer(&blob, &layer)
                })
                .await
                .map_err(|e| ImageError::Aborted {
                    cause: format!("layer unpack: {e}"),
                })?
            }
        })
        .buffer_unordered(PARALLEL_UNPACKS)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    let record = ImageRecord {
        id: parts.manifest.config.digest.clone(),
        manifests: parts.manifests,
        config_digest: parts.manifest.config.digest.clone(),
        config_size: parts.manifest.config.size,
        layers,
        repo_digests,
        pinned: false,
    };
    store.add_image(record, config, tags)
}
