//! Image garbage collection (upstream pkg/kubelet/images/image_gc_manager.go). Every round the
//! runtime's images are detected (first seen, last used by any container, running or not), then
//! images unused for longer than imageMaximumGCAge go, and when the image filesystem is at or
//! above imageGCHighThresholdPercent, unused images go least recently used first until usage
//! is back at imageGCLowThresholdPercent. An image in use, pinned by the runtime (its sandbox
//! image), or first seen less than imageMinimumGCAge ago is never taken.

use crate::eviction::{filesystem, image_fs_mountpoint};
use kubelet_config::ImageGcPolicy;
use kubelet_cri::api::{Container, Image, ImageSpec};
use kubelet_cri::{CriError, Runtime};
use kubelet_kuberuntime::events::{EventRecorder, EventType, reason};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Upstream's ImageGCPeriod: how often a round runs.
pub const PERIOD: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ImageGcError {
    #[error("listing images and containers: {0}")]
    Runtime(#[from] CriError),
    #[error("cannot read the image filesystem {0}")]
    ImageFs(String),
    #[error("invalid capacity 0 on image filesystem")]
    ZeroCapacity,
    #[error(
        "Failed to garbage collect required amount of images. Attempted to free {wanted} bytes, but only found {freed} bytes eligible to free."
    )]
    NotEnoughFreed { wanted: u64, freed: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Record {
    first_detected: Instant,
    /// None until a container is seen using the image.
    last_used: Option<Instant>,
    size: u64,
    pinned: bool,
}

/// What a round removes and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub too_old: Vec<String>,
    pub for_space: Vec<String>,
    /// Bytes a space collection had to free but could not find eligible images for.
    pub short_by: Option<(u64, u64)>,
}

pub struct ImageGc {
    runtime: Arc<dyn Runtime>,
    policy: ImageGcPolicy,
    /// Where the node's Warning events about failed rounds go.
    events: Arc<dyn EventRecorder>,
    records: HashMap<String, Record>,
    began: Instant,
}

impl ImageGc {
    pub fn new(
        runtime: Arc<dyn Runtime>,
        policy: ImageGcPolicy,
        events: Arc<dyn EventRecorder>,
    ) -> Self {
        Self {
            runtime,
            policy,
            events,
            records: HashMap::new(),
            began: Instant::now(),
        }
    }

    /// Runs a round every `period`, the first at once; a high threshold of 100 turns it off,
    /// as upstream. The eviction manager shares `gc` to reclaim disk under pressure.
    pub async fn run(gc: Arc<tokio::sync::Mutex<Self>>, period: Duration) {
        if gc.lock().await.policy.high_threshold_percent >= 100 {
            tracing::info!("imageGCHighThresholdPercent is 100: image garbage collection is off");
            return;
        }
        // As upstream's detection loop starts before the first round: images already here
        // count as first seen now, so the first round may take them only after
        // imageMinimumGCAge.
        if let Err(error) = gc.lock().await.refresh().await {
            tracing::warn!(%error, "image garbage collection cannot list images");
        }
        let mut failed_before = false;
        loop {
            let mut gc = gc.lock().await;
            match gc.collect().await {
                Ok(()) => {
                    if failed_before {
                        tracing::info!("image garbage collection succeeded");
                    }
                    failed_before = false;
                }
                Err(error) => {
                    report(gc.events.as_ref(), &error, failed_before);
                    failed_before = true;
                }
            }
            drop(gc);
            tokio::time::sleep(period).await;
        }
    }

    /// Detects the runtime's images and the ones in use; returns those.
    async fn refresh(&mut self) -> Result<HashSet<String>, ImageGcError> {
        let images = self.runtime.list_images().await?;
        let containers = self.runtime.list_containers(None).await?;
        Ok(self.detect(&images, &containers, Instant::now()))
    }

    /// One round: detect, then remove what the plan names.
    pub async fn collect(&mut self) -> Result<(), ImageGcError> {
        let in_use = self.refresh().await?;
        let now = Instant::now();
        let mountpoint = image_fs_mountpoint(self.runtime.as_ref()).await;
        let fs = mountpoint.as_deref().unwrap_or(Path::new("/"));
        let (bytes, _) =
            filesystem(fs).ok_or_else(|| ImageGcError::ImageFs(fs.display().to_string()))?;
        let plan = self.plan(&in_use, now, bytes.capacity, bytes.available)?;
        for id in plan.too_old.iter().chain(&plan.for_space) {
            let reason = if plan.too_old.contains(id) {
                "age"
            } else {
                "space"
            };
            let spec = ImageSpec {
                image: id.clone(),
                ..Default::default()
            };
            match self.runtime.remove_image(&spec).await {
                Ok(()) => {
                    tracing::info!(image_id = %id, reason, "removed an unused image");
                    self.records.remove(id);
                }
                Err(error) => {
                    tracing::warn!(image_id = %id, %error, "cannot remove an unused image")
                }
            }
        }
        match plan.short_by {
            Some((wanted, freed)) => Err(ImageGcError::NotEnoughFreed { wanted, freed }),
            None => Ok(()),
        }
    }

    /// Records every image the runtime holds and returns the ids in use by any container.
    fn detect(
        &mut self,
        images: &[Image],
        containers: &[Container],
        now: Instant,
    ) -> HashSet<String> {
        let named: HashSet<&str> = containers
            .iter()
            .flat_map(|c| {
                [
                    Some(c.image_ref.as_str()),
                    c.image.as_ref().map(|i| i.image.as_str()),
                ]
            })
            .flatten()
            .filter(|name| !name.is_empty())
            .collect();
        let mut in_use = HashSet::new();
        self.records
            .retain(|id, _| images.iter().any(|i| &i.id == id));
        for image in images {
            let record = self.records.entry(image.id.clone()).or_insert(Record {
                first_detected: now,
                last_used: None,
                size: image.size,
                pinned: image.pinned,
            });
            record.size = image.size;
            record.pinned = image.pinned;
            // A container names its image by id, tag or digest, depending on the runtime.
            let used = std::iter::once(&image.id)
                .chain(&image.repo_tags)
                .chain(&image.repo_digests)
                .any(|name| named.contains(name.as_str()));
            if used {
                record.last_used = Some(now);
                in_use.insert(image.id.clone());
            }
        }
        in_use
    }

    /// Which images go this round, given the image filesystem's capacity and available bytes.
    fn plan(
        &self,
        in_use: &HashSet<String>,
        now: Instant,
        capacity: u64,
        available: u64,
    ) -> Result<Plan, ImageGcError> {
        // Unused and unpinned, least recently used first, then first seen first.
        let mut candidates: Vec<(&String, &Record)> = self
            .records
            .iter()
            .filter(|(id, r)| !in_use.contains(*id) && !r.pinned)
            .collect();
        candidates.sort_by_key(|(id, r)| (r.last_used, r.first_detected, (*id).clone()));

        let mut too_old = Vec::new();
        if let Some(max_age) = self.policy.max_age
            // Until the kubelet has run for max_age, never-used images could be taken too soon.
            && now.duration_since(self.began) > max_age
        {
            for (id, record) in &candidates {
                let unused_for = record
                    .last_used
                    .map_or(now.duration_since(self.began), |used| {
                        now.duration_since(used)
                    });
                if unused_for > max_age {
                    too_old.push((*id).clone());
                }
            }
        }
        if capacity == 0 {
            return Err(ImageGcError::ZeroCapacity);
        }
        let available = available.min(capacity);
        let usage_percent = 100 - (u128::from(available) * 100 / u128::from(capacity)) as u64;
        let mut plan = Plan {
            too_old,
            for_space: Vec::new(),
            short_by: None,
        };
        if usage_percent < u64::from(self.policy.high_threshold_percent) {
            return Ok(plan);
        }
        let keep_free =
            u128::from(capacity) * u128::from(100 - self.policy.low_threshold_percent) / 100;
        let wanted = (keep_free as u64).saturating_sub(available);
        tracing::info!(
            usage = usage_percent,
            high_threshold = self.policy.high_threshold_percent,
            low_threshold = self.policy.low_threshold_percent,
            amount_to_free = wanted,
            "disk usage on the image filesystem is over the high threshold, freeing down to the low threshold"
        );
        let mut freed = 0;
        for (id, record) in candidates {
            if freed >= wanted {
                break;
            }
            // Perhaps just pulled for a container about to start.
            if now.duration_since(record.first_detected) < self.policy.min_age {
                continue;
            }
            if !plan.too_old.contains(id) {
                plan.for_space.push(id.clone());
            }
            freed += record.size;
        }
        if freed < wanted {
            plan.short_by = Some((wanted, freed));
        }
        Ok(plan)
    }
}

/// A failed periodic round, as upstream reports it: no usable capacity and too little freed are
/// Warnings on the node each time; any failure is one more (ImageGCFailed) only when the round
/// before failed too, since the first round may run before the runtime's stats are ready.
fn report(events: &dyn EventRecorder, error: &ImageGcError, failed_before: bool) {
    let message = error.to_string();
    match error {
        ImageGcError::ZeroCapacity => {
            events.node_event(EventType::Warning, reason::INVALID_DISK_CAPACITY, &message)
        }
        ImageGcError::NotEnoughFreed { .. } => {
            events.node_event(EventType::Warning, reason::FREE_DISK_SPACE_FAILED, &message)
        }
        ImageGcError::Runtime(_) | ImageGcError::ImageFs(_) => {}
    }
    if failed_before {
        tracing::warn!(%error, "image garbage collection failed multiple times in a row");
        events.node_event(EventType::Warning, reason::IMAGE_GC_FAILED, &message);
    } else {
        tracing::warn!(%error, "image garbage collection failed once; stats may not be ready yet");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubelet_cri::fake::FakeRuntime;

    const MIB: u64 = 1 << 20;

    /// The node events recorded, as (reason, message).
    #[derive(Default)]
    struct NodeEvents(std::sync::Mutex<Vec<(String, String)>>);

    impl NodeEvents {
        fn take(&self) -> Vec<(String, String)> {
            std::mem::take(&mut self.0.lock().unwrap())
        }
    }

    impl EventRecorder for NodeEvents {
        fn event(
            &self,
            pod: &k8s_openapi::api::core::v1::Pod,
            _: EventType,
            reason: &str,
            _: &str,
        ) {
            panic!(
                "no pod event expected, got {reason} for {:?}",
                pod.metadata.name
            );
        }

        fn node_event(&self, kind: EventType, reason: &str, message: &str) {
            assert_eq!(kind, EventType::Warning);
            self.0.lock().unwrap().push((reason.into(), message.into()));
        }
    }

    fn policy(max_age: Option<Duration>) -> ImageGcPolicy {
        ImageGcPolicy {
            high_threshold_percent: 85,
            low_threshold_percent: 80,
            min_age: Duration::from_secs(120),
            max_age,
        }
    }

    fn image(id: &str, tag: &str, size: u64, pinned: bool) -> Image {
        Image {
            id: id.into(),
            repo_tags: vec![tag.into()],
            size,
            pinned,
            ..Default::default()
        }
    }

    fn container(image_ref: &str) -> Container {
        Container {
            image_ref: image_ref.into(),
            ..Default::default()
        }
    }

    fn gc(policy: ImageGcPolicy, began: Instant) -> ImageGc {
        let mut gc = ImageGc::new(
            Arc::new(FakeRuntime::new()),
            policy,
            Arc::new(NodeEvents::default()),
        );
        gc.began = began;
        gc
    }

    #[test]
    fn below_the_high_threshold_nothing_goes() {
        let t0 = Instant::now();
        let mut gc = gc(policy(None), t0);
        let images = [image("sha256:a", "a:1", 10 * MIB, false)];
        let later = t0 + Duration::from_secs(600);
        gc.detect(&images, &[], t0);
        let in_use = gc.detect(&images, &[], later);
        // 84% used.
        let plan = gc.plan(&in_use, later, 100 * MIB, 16 * MIB).unwrap();
        assert!(plan.for_space.is_empty() && plan.too_old.is_empty());
        assert_eq!(plan.short_by, None);
    }

    #[test]
    fn over_the_high_threshold_the_least_recently_used_go_down_to_the_low_one() {
        let t0 = Instant::now();
        let mut gc = gc(policy(None), t0);
        let all = [
            image("sha256:old", "old:1", 3 * MIB, false),
            image("sha256:mid", "mid:1", 3 * MIB, false),
            image("sha256:new", "new:1", 3 * MIB, false),
        ];
        gc.detect(&all, &[container("sha256:old")], t0);
        gc.detect(
            &all,
            &[container("sha256:mid")],
            t0 + Duration::from_secs(100),
        );
        gc.detect(&all, &[container("new:1")], t0 + Duration::from_secs(200));
        let now = t0 + Duration::from_secs(300);
        let in_use = gc.detect(&all, &[], now);
        // 90% used of 100 MiB: 10 MiB must go to reach 80%; each image is 3 MiB.
        let plan = gc.plan(&in_use, now, 100 * MIB, 10 * MIB).unwrap();
        assert_eq!(plan.for_space, ["sha256:old", "sha256:mid", "sha256:new"]);
        assert_eq!(plan.short_by, Some((10 * MIB, 9 * MIB)));
        let plan = gc.plan(&in_use, now, 100 * MIB, 15 * MIB).unwrap();
        assert_eq!(plan.for_space, ["sha256:old", "sha256:mid"]);
        assert_eq!(plan.short_by, None);
    }

    #[test]
    fn images_in_use_pinned_or_young_are_never_taken() {
        let t0 = Instant::now();
        let mut gc = gc(policy(None), t0);
        let all = [
            image("sha256:used", "used:1", MIB, false),
            image("sha256:pause", "pause:3", MIB, true),
            image("sha256:free", "free:1", MIB, false),
        ];
        gc.detect(&all[..2], &[], t0);
        let now = t0 + Duration::from_secs(180);
        // `free` was first seen a minute ago: younger than imageMinimumGCAge (2m).
        gc.detect(&all, &[], now - Duration::from_secs(60));
        // An exited container still holds its image.
        let in_use = gc.detect(&all, &[container("used:1")], now);
        assert_eq!(in_use, HashSet::from(["sha256:used".to_string()]));
        let plan = gc.plan(&in_use, now, 100 * MIB, 0).unwrap();
        assert!(plan.for_space.is_empty(), "{plan:?}");
        assert_eq!(plan.short_by, Some((20 * MIB, 0)));
    }

    #[test]
    fn images_unused_past_the_maximum_age_go_whatever_the_usage() {
        let t0 = Instant::now();
        let max = Duration::from_secs(3600);
        let mut gc = gc(policy(Some(max)), t0);
        let all = [
            image("sha256:stale", "stale:1", MIB, false),
            image("sha256:recent", "recent:1", MIB, false),
        ];
        gc.detect(&all, &[container("sha256:stale")], t0);
        gc.detect(
            &all,
            &[container("sha256:recent")],
            t0 + Duration::from_secs(1800),
        );
        // Not before the kubelet has run for max_age.
        let early = t0 + Duration::from_secs(3000);
        let in_use = gc.detect(&all, &[], early);
        assert!(gc.plan(&in_use, early, 100, 90).unwrap().too_old.is_empty());
        let now = t0 + Duration::from_secs(4000);
        let in_use = gc.detect(&all, &[], now);
        let plan = gc.plan(&in_use, now, 100, 90).unwrap();
        assert_eq!(plan.too_old, ["sha256:stale"]);
        assert!(plan.for_space.is_empty());
    }

    #[test]
    fn removed_images_are_forgotten_and_zero_capacity_is_an_error() {
        let t0 = Instant::now();
        let mut gc = gc(policy(None), t0);
        gc.detect(&[image("sha256:a", "a:1", MIB, false)], &[], t0);
        let in_use = gc.detect(&[], &[], t0);
        assert!(gc.records.is_empty());
        assert!(matches!(
            gc.plan(&in_use, t0, 0, 0),
            Err(ImageGcError::ZeroCapacity)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_failed_round_in_a_row_is_an_image_gc_failed_event_on_the_node() {
        let runtime = FakeRuntime::new();
        // The first detection, then two rounds, fail.
        for _ in 0..3 {
            runtime.inject_error("ListImages", "the runtime is down");
        }
        let events = Arc::new(NodeEvents::default());
        let gc = ImageGc::new(Arc::new(runtime), policy(None), events.clone());
        let task = tokio::spawn(ImageGc::run(Arc::new(tokio::sync::Mutex::new(gc)), PERIOD));
        tokio::time::sleep(PERIOD / 2).await;
        assert_eq!(events.take(), vec![], "a first failure is only logged");
        tokio::time::sleep(PERIOD).await;
        let events_now = events.take();
        assert_eq!(events_now.len(), 1, "{events_now:?}");
        assert_eq!(events_now[0].0, "ImageGCFailed");
        assert!(
            events_now[0]
                .1
                .starts_with("listing images and containers: ")
                && events_now[0].1.contains("the runtime is down"),
            "{events_now:?}"
        );
        task.abort();
    }

    #[test]
    fn too_little_freed_and_no_capacity_are_warnings_each_time() {
        let events = NodeEvents::default();
        let short = ImageGcError::NotEnoughFreed {
            wanted: 100,
            freed: 10,
        };
        report(&events, &short, false);
        assert_eq!(
            events.take(),
            vec![(
                "FreeDiskSpaceFailed".to_string(),
                "Failed to garbage collect required amount of images. Attempted to free 100 bytes, but only found 10 bytes eligible to free.".to_string()
            )]
        );
        report(&events, &ImageGcError::ZeroCapacity, true);
        let reasons: Vec<String> = events.take().into_iter().map(|(r, _)| r).collect();
        assert_eq!(reasons, ["InvalidDiskCapacity", "ImageGCFailed"]);
    }
}
