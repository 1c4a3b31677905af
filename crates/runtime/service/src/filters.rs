//! The List* filters: id (a prefix, as crictl passes short ids), state, sandbox and a label
//! selector where every given label must match exactly.

use k8s_cri::v1::{ContainerFilter, ContainerStatsFilter, PodSandboxFilter, PodSandboxStatsFilter};
use std::collections::HashMap;

/// What a filter looks at in one object.
pub(crate) struct Subject<'a> {
    pub id: &'a str,
    /// The CRI state enum value.
    pub state: i32,
    /// The sandbox of a container; empty for sandboxes.
    pub sandbox_id: &'a str,
    pub labels: &'a HashMap<String, String>,
}

/// One filter's conditions; an empty field matches everything.
#[derive(Debug, Default)]
pub(crate) struct Filter<'a> {
    pub id: &'a str,
    pub state: Option<i32>,
    pub sandbox_id: &'a str,
    pub labels: Option<&'a HashMap<String, String>>,
}

impl Filter<'_> {
    pub(crate) fn matches(&self, s: &Subject) -> bool {
        s.id.starts_with(self.id)
            && self.state.is_none_or(|state| state == s.state)
            && s.sandbox_id.starts_with(self.sandbox_id)
            && self.labels.is_none_or(|selector| {
                selector
                    .iter()
                    .all(|(k, v)| s.labels.get(k).is_some_and(|have| have == v))
            })
    }
}

impl<'a> From<Option<&'a PodSandboxFilter>> for Filter<'a> {
    fn from(f: Option<&'a PodSandboxFilter>) -> Self {
        f.map_or_else(Filter::default, |f| Filter {
            id: &f.id,
            state: f.state.as_ref().map(|s| s.state),
            sandbox_id: "",
            labels: Some(&f.label_selector),
        })
    }
}

impl<'a> From<Option<&'a ContainerFilter>> for Filter<'a> {
    fn from(f: Option<&'a ContainerFilter>) -> Self {
        f.map_or_else(Filter::default, |f| Filter {
            id: &f.id,
            state: f.state.as_ref().map(|s| s.state),
            sandbox_id: &f.pod_sandbox_id,
            labels: Some(&f.label_selector),
        })
    }
}

impl<'a> From<Option<&'a ContainerStatsFilter>> for Filter<'a> {
    fn from(f: Option<&'a ContainerStatsFilter>) -> Self {
        f.map_or_else(Filter::default, |f| Filter {
            id: &f.id,
            state: None,
            sandbox_id: &f.pod_sandbox_id,
            labels: Some(&f.label_selector),
        })
    }
}

impl<'a> From<Option<&'a PodSandboxStatsFilter>> for Filter<'a> {
    fn from(f: Option<&'a PodSandboxStatsFilter>) -> Self {
        f.map_or_else(Filter::default, |f| Filter {
            id: &f.id,
            state: None,
            sandbox_id: "",
            labels: Some(&f.label_selector),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::{ContainerState, ContainerStateValue};

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_empty_filter_matches_everything() {
        let l = labels(&[("app", "web")]);
        let s = Subject {
            id: "abc",
            state: 1,
            sandbox_id: "s1",
            labels: &l,
        };
        assert!(Filter::from(None::<&ContainerFilter>).matches(&s));
        assert!(Filter::from(Some(&ContainerFilter::default())).matches(&s));
    }

    #[test]
    fn container_filters_check_prefix_state_sandbox_and_labels() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let s = Subject {
            id: "abcdef",
            state: ContainerState::ContainerRunning as i32,
            sandbox_id: "s123",
            labels: &l,
        };
        let running = Some(ContainerStateValue {
            state: ContainerState::ContainerRunning as i32,
        });
        let f = ContainerFilter {
            id: "abc".into(),
            state: running,
            pod_sandbox_id: "s1".into(),
            label_selector: labels(&[("app", "web")]),
        };
        assert!(Filter::from(Some(&f)).matches(&s));
        for f in [
            ContainerFilter {
                id: "abd".into(),
                ..f.clone()
            },
            ContainerFilter {
                state: Some(ContainerStateValue {
                    state: ContainerState::ContainerExited as i32,
                }),
                ..f.clone()
            },
            ContainerFilter {
                pod_sandbox_id: "s2".into(),
                ..f.clone()
            },
            ContainerFilter {
                label_selector: labels(&[("app", "db")]),
                ..f.clone()
            },
            ContainerFilter {
                label_selector: labels(&[("missing", "")]),
                ..f.clone()
            },
        ] {
            assert!(!Filter::from(Some(&f)).matches(&s), "{f:?}");
        }
    }

    #[test]
    fn a_state_of_zero_is_a_real_state() {
        // CONTAINER_CREATED and SANDBOX_READY are 0: a state value given as 0 still filters.
        let l = HashMap::new();
        let s = Subject {
            id: "a",
            state: 1,
            sandbox_id: "",
            labels: &l,
        };
        let f = PodSandboxFilter {
            state: Some(k8s_cri::v1::PodSandboxStateValue { state: 0 }),
            ..Default::default()
        };
        assert!(!Filter::from(Some(&f)).matches(&s));
    }
}
