//! CRI list filters. All fields of a filter are ANDed; ids match exactly or by prefix (containerd
//! accepts truncated ids); label selectors are MatchLabels only.

use crate::api::{ContainerFilter, ContainerStatsFilter, PodSandboxFilter};
use std::collections::HashMap;

fn id_matches(wanted: &str, id: &str) -> bool {
    wanted.is_empty() || id.starts_with(wanted)
}

fn labels_match(selector: &HashMap<String, String>, labels: &HashMap<String, String>) -> bool {
    selector
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

pub(super) fn sandbox_matches(
    filter: &PodSandboxFilter,
    id: &str,
    state: i32,
    labels: &HashMap<String, String>,
) -> bool {
    id_matches(&filter.id, id)
        && filter.state.is_none_or(|wanted| wanted.state == state)
        && labels_match(&filter.label_selector, labels)
}

pub(super) fn container_matches(
    filter: &ContainerFilter,
    id: &str,
    sandbox_id: &str,
    state: i32,
    labels: &HashMap<String, String>,
) -> bool {
    id_matches(&filter.id, id)
        && id_matches(&filter.pod_sandbox_id, sandbox_id)
        && filter.state.is_none_or(|wanted| wanted.state == state)
        && labels_match(&filter.label_selector, labels)
}

pub(super) fn stats_match(
    filter: &ContainerStatsFilter,
    id: &str,
    sandbox_id: &str,
    labels: &HashMap<String, String>,
) -> bool {
    id_matches(&filter.id, id)
        && id_matches(&filter.pod_sandbox_id, sandbox_id)
        && labels_match(&filter.label_selector, labels)
}
