//! Parsing of resource URLs: /api/v1/..., /apis/GROUP/VERSION/..., with /watch/ and
//! namespaced forms.

use crate::error::ApiError;
use crate::resources::{self, Resource};

/// What a resource URL addresses.
#[derive(Debug, PartialEq)]
pub struct Target {
    pub resource: &'static Resource,
    /// Set for a namespaced URL; None means all namespaces (or a cluster-scoped kind).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The deprecated /watch/ path prefix.
    pub watch_prefix: bool,
}

pub fn parse(path: &str) -> Result<Target, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, mut rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiError::UnknownPath),
    };
    let watch_prefix = rest.first() == Some(&"watch");
    if watch_prefix {
        rest = &rest[1..];
    }
    let find = |plural: &str| resources::find(group, version, plural).ok_or(ApiError::UnknownPath);
    let owned = |s: &&str| s.to_string();
    let target = match rest {
        ["namespaces", ns, plural, tail @ ..] if find(plural).is_ok_and(|r| r.namespaced) => {
            if tail.len() > 2 {
                return Err(ApiError::UnknownPath);
            }
            Target {
                resource: find(plural)?,
                namespace: Some(ns.to_string()),
                name: tail.first().map(owned),
                subresource: tail.get(1).map(owned),
                watch_prefix,
            }
        }
        [plural, tail @ ..] if tail.len() <= 2 => {
            let resource = find(plural)?;
            if resource.namespaced && !tail.is_empty() {
                return Err(ApiError::UnknownPath);
            }
            Target {
                resource,
                namespace: None,
                name: tail.first().map(owned),
                subresource: tail.get(1).map(owned),
                watch_prefix,
            }
        }
        _ => return Err(ApiError::UnknownPath),
    };
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let t = parse("/api/v1/namespaces/default/pods/web/status").unwrap();
        assert_eq!(t.resource.plural, "pods");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.subresource.as_deref(), Some("status"));

        let t = parse("/api/v1/namespaces/kube-system").unwrap();
        assert_eq!(
            (t.resource.plural, t.name.as_deref()),
            ("namespaces", Some("kube-system"))
        );

        let t = parse("/api/v1/watch/pods").unwrap();
        assert!(t.watch_prefix && t.namespace.is_none() && t.name.is_none());

        let t = parse("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1").unwrap();
        assert_eq!(t.resource.kind, "Lease");

        assert_eq!(parse("/api/v1/pods/x"), Err(ApiError::UnknownPath));
        assert_eq!(parse("/api/v1/widgets"), Err(ApiError::UnknownPath));
    }
}
