//! PullImage: the reference resolved through the registry's hosts (mirrors in hosts.toml order,
//! then the server), an index resolved to this platform's manifest, every blob streamed into
//! the content store (verified there), then the layers unpacked and the image recorded.
//! Concurrent pulls of one reference share one download.

mod auth;
mod registry;

use crate::commit::{Parts, commit};
use crate::cri::Image;
use crate::error::ImageError;
use crate::hosts::{self, Endpoint};
use crate::manifest::{self, Descriptor, Parsed};
use crate::reference::ImageRef;
use crate::store::{Busy, ImageStore};
use auth::Credentials;
use futures::{FutureExt as _, StreamExt as _, TryStreamExt as _};
use registry::Remote;
use tracing::Instrument as _;

/// Blobs of one image downloaded at once.
const PARALLEL_DOWNLOADS: usize = 3;

impl ImageStore {
    /// Pulls one image. Concurrent pulls of the same reference share one download (with the
    /// first caller's credentials), and it runs to the end even when the callers give up.
    pub async fn pull(
        &self,
        reference: &str,
        auth: Option<&k8s_cri::v1::AuthConfig>,
    ) -> Result<Image, ImageError> {
        let wrap = |image: &str, e: ImageError| ImageError::Pull {
            image: image.to_string(),
            source: Box::new(e),
        };
        let image_ref = ImageRef::parse(reference).map_err(|e| wrap(reference, e))?;
        let key = image_ref.to_string();
        let credentials = auth::credentials(auth).map_err(|e| wrap(&key, e))?;
        let shared = {
            let mut pulls = self.inner.pulls.lock().unwrap_or_else(|p| p.into_inner());
            match pulls.get(&key) {
                Some(shared) => {
                    tracing::debug!(image = %key, "joining a pull in progress");
                    shared.clone()
                }
                None => {
                    let store = self.clone();
                    let task_key = key.clone();
                    let span = tracing::info_span!("pull", image = %key);
                    let task = tokio::spawn(
                        async move {
                            let _done = InFlight {
                                store: store.clone(),
                                key: task_key,
                            };
                            pull(&store, &image_ref, credentials).await
                        }
                        .instrument(span),
                    );
                    let shared = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(ImageError::Aborted {
                                cause: e.to_string(),
                            })
                        })
                    }
                    .boxed()
                    .shared();
                    pulls.insert(key.clone(), shared.clone());
                    shared
                }
            }
        };
        shared.await.map_err(|e| wrap(&key, e))
    }
}

/// Takes a finished pull out of the in-flight map, however it ended (a panic too), so the next
/// pull of the reference starts afresh.
struct InFlight {
    store: ImageStore,
    key: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.store
            .inner
            .pulls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

async fn pull(
    store: &ImageStore,
    r: &ImageRef,
    credentials: Credentials,
) -> Result<Image, ImageError> {
    let started = std::time::Instant::now();
    let endpoints = hosts::endpoints(store.inner.registry_config.as_deref(), &r.domain)?;
    let (capability, usable): (&'static str, Vec<&Endpoint>) = if r.digest.is_some() {
        ("pull", endpoints.iter().filter(|e| e.pull).collect())
    } else {
        ("resolve", endpoints.iter().filter(|e| e.resolve).collect())
    };
    if usable.is_empty() {
        return Err(ImageError::NoHost {
            host: r.domain.clone(),
            capability,
        });
    }
    let mut errors = Vec::new();
    for endpoint in usable {
        let result = match Remote::new(endpoint, &r.domain, &r.path, &credentials).await {
            Ok(remote) => pull_from(store, &remote, r).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(image) => {
                tracing::info!(
                    host = %endpoint.host,
                    id = %image.id,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "image pulled"
                );
                return Ok(image);
            }
            Err(e) if is_local(&e) => return Err(cleanup(store, e)),
            Err(e) => {
                tracing::warn!(
                    host = %endpoint.host,
                    error = %e,
                    "pull from this host failed"
                );
                errors.push(e);
            }
        }
    }
    // The most telling failure: a registry's answer (not found, refused, bad content) rather
    // than a mirror that did not answer at all.
    let best = match errors
        .iter()
        .position(|e| !matches!(e, ImageError::Unreachable { .. }))
    {
        Some(i) => errors.swap_remove(i),
        None => errors.pop().expect("at least one host was tried"),
    };
    Err(cleanup(store, best))
}

/// Failures of this node rather than of the registry: another host would fail the same way.
fn is_local(e: &ImageError) -> bool {
    matches!(
        e,
        ImageError::Io { .. } | ImageError::State(_) | ImageError::Aborted { .. }
    )
}

/// Removes whatever the failed pull stored but no image uses, then hands the error on.
fn cleanup(store: &ImageStore, e: ImageError) -> ImageError {
    if let Err(gc) = store.collect_garbage() {
        tracing::warn!(error = %gc, "cleanup after a failed pull");
    }
    e
}

async fn pull_from(store: &ImageStore, remote: &Remote, r: &ImageRef) -> Result<Image, ImageError> {
    let mut busy = store.busy([]);
    let (bytes, top) = remote
        .manifest(r.tag.as_deref(), r.digest.as_deref())
        .await?;
    if let Some(wanted) = &r.digest
        && *wanted != top
    {
        return Err(ImageError::DigestMismatch {
            digest: wanted.clone(),
            actual: top,
        });
    }
    store_manifest(store, &mut busy, &bytes, &top)?;
    let mut manifests = vec![top.clone()];
    let manifest = match manifest::parse(&bytes, &top)? {
        Parsed::Manifest(m) => m,
        Parsed::Index(index) => {
            let chosen = manifest::select_platform(&index, &top)?.digest.clone();
            let (bytes, digest) = remote.manifest(None, Some(&chosen)).await?;
            store_manifest(store, &mut busy, &bytes, &digest)?;
            manifests.push(digest.clone());
            match manifest::parse(&bytes, &digest)? {
                Parsed::Manifest(m) => m,
                Parsed::Index(_) => {
                    return Err(ImageError::Invalid {
                        what: "manifest",
                        digest,
                        cause: "an index where a platform's manifest was expected".into(),
                    });
                }
            }
        }
    };
    tracing::debug!(
        host = remote.host(),
        manifest = %manifests.last().unwrap_or(&top),
        layers = manifest.layers.len(),
        "manifest resolved"
    );
    busy.add(std::iter::once(manifest.config.digest.clone()));
    busy.add(manifest.layers.iter().map(|l| l.digest.clone()));
    let blobs: Vec<Descriptor> = std::iter::once(manifest.config.clone())
        .chain(manifest.layers.iter().cloned())
        .collect();
    futures::stream::iter(blobs)
        .map(|desc| async move { fetch_blob(store, remote, &desc).await })
        .buffer_unordered(PARALLEL_DOWNLOADS)
        .try_collect::<Vec<()>>()
        .await?;
    let config = store.inner.content.read(&manifest.config.digest)?;
    let tags: Vec<String> = r.repo_tag().into_iter().collect();
    let parts = Parts {
        manifests,
        manifest,
        config,
    };
    commit(store, parts, &mut busy, &tags, vec![r.repo_digest(&top)]).await
}

fn store_manifest(
    store: &ImageStore,
    busy: &mut Busy,
    bytes: &[u8],
    digest: &str,
) -> Result<(), ImageError> {
    busy.add(std::iter::once(digest.to_string()));
    if !store.inner.content.has(digest, Some(bytes.len() as u64)) {
        store.inner.content.write(bytes, Some(digest))?;
    }
    Ok(())
}

/// Streams one blob into the content store unless it is there already.
async fn fetch_blob(
    store: &ImageStore,
    remote: &Remote,
    desc: &Descriptor,
) -> Result<(), ImageError> {
    if store.inner.content.has(&desc.digest, Some(desc.size)) {
        return Ok(());
    }
    let started = std::time::Instant::now();
    // Dropped on any error below, the ingest removes its temp file.
    let mut ingest = store.inner.content.ingest()?;
    remote.blob(desc, &mut ingest).await?;
    ingest.commit(Some(&desc.digest), Some(desc.size))?;
    tracing::debug!(
        blob = %desc.digest,
        bytes = desc.size,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "blob downloaded"
    );
    Ok(())
}
