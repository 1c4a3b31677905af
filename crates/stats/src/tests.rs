mod endpoints;
mod fixture;
mod kubelet_metrics;
mod promtext;
mod summary;
mod volume_stats;
