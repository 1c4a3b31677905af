//! subPathExpr: `$(VAR)` references expanded from the container's env, with upstream's syntax
//! (`$$` is a literal `$`, an unclosed `$(` stays as written).

use k8s_openapi::api::core::v1::Container;
use std::collections::BTreeMap;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ExpandError {
    #[error("missing value for {}", .0.join(", "))]
    Missing(Vec<String>),
    #[error("env var {0} is set with valueFrom, which subPathExpr cannot expand yet")]
    ValueFrom(String),
}

enum EnvValue {
    Literal(String),
    /// fieldRef, resourceFieldRef, configMapKeyRef or secretKeyRef: not resolved here yet.
    FromSource,
}

/// Expands `expr` against the container's env; every referenced variable must have a value.
pub(crate) fn expand_subpath_expr(
    expr: &str,
    container: &Container,
) -> Result<String, ExpandError> {
    let env = container_env(container);
    let mut missing = Vec::new();
    let mut from_source = None;
    let expanded = expand(expr, |name| match env.get(name) {
        Some(EnvValue::Literal(value)) if !value.is_empty() => value.clone(),
        Some(EnvValue::FromSource) => {
            from_source.get_or_insert_with(|| name.to_owned());
            String::new()
        }
        _ => {
            missing.push(name.to_owned());
            String::new()
        }
    });
    if let Some(name) = from_source {
        return Err(ExpandError::ValueFrom(name));
    }
    if !missing.is_empty() {
        missing.sort();
        missing.dedup();
        return Err(ExpandError::Missing(missing));
    }
    Ok(expanded)
}

/// The env as the runtime will see it: in order, later definitions win, and each literal value
/// may itself reference the variables defined before it (left as written when undefined).
fn container_env(container: &Container) -> BTreeMap<String, EnvValue> {
    let mut env = BTreeMap::new();
    for var in container.env.iter().flatten() {
        let value = if var.value_from.is_some() {
            EnvValue::FromSource
        } else {
            let raw = var.value.as_deref().unwrap_or("");
            EnvValue::Literal(expand(raw, |name| match env.get(name) {
                Some(EnvValue::Literal(v)) => v.clone(),
                _ => format!("$({name})"),
            }))
        };
        env.insert(var.name.clone(), value);
    }
    env
}

fn expand(input: &str, mut mapping: impl FnMut(&str) -> String) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if after.is_empty() {
            // A trailing `$` is literal.
            out.push('$');
            rest = after;
        } else if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(reference) = after.strip_prefix('(') {
            match reference.find(')') {
                Some(close) => {
                    out.push_str(&mapping(&reference[..close]));
                    rest = &reference[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = reference;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector};

    fn literal(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }

    fn container(env: Vec<EnvVar>) -> Container {
        Container {
            name: "app".into(),
            env: Some(env),
            ..Default::default()
        }
    }

    #[test]
    fn syntax_matches_upstream() {
        let map = |name: &str| format!("<{name}>");
        assert_eq!(expand("a/$(X)/b", map), "a/<X>/b");
        assert_eq!(expand("$$(X)", map), "$(X)");
        assert_eq!(expand("$(X", map), "$(X");
        assert_eq!(expand("cost$", map), "cost$");
        assert_eq!(expand("$x$(Y)", map), "$x<Y>");
    }

    #[test]
    fn expands_literal_env_including_earlier_references() {
        let c = container(vec![
            literal("BASE", "logs"),
            literal("DIR", "$(BASE)/app"),
            literal("BASE", "other"),
        ]);
        assert_eq!(expand_subpath_expr("$(DIR)/x", &c).unwrap(), "logs/app/x");
        assert_eq!(expand_subpath_expr("$(BASE)", &c).unwrap(), "other");
    }

    #[test]
    fn missing_and_empty_values_are_errors() {
        let c = container(vec![literal("EMPTY", "")]);
        let err = expand_subpath_expr("$(NOPE)/$(EMPTY)", &c).unwrap_err();
        assert_eq!(
            err,
            ExpandError::Missing(vec!["EMPTY".into(), "NOPE".into()])
        );
        assert_eq!(err.to_string(), "missing value for EMPTY, NOPE");
    }

    #[test]
    fn value_from_is_refused_clearly() {
        let pod_name = EnvVar {
            name: "POD_NAME".into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: None,
                    field_path: "metadata.name".into(),
                }),
                ..Default::default()
            }),
        };
        let c = container(vec![pod_name]);
        assert_eq!(
            expand_subpath_expr("$(POD_NAME)", &c).unwrap_err(),
            ExpandError::ValueFrom("POD_NAME".into())
        );
    }
}
