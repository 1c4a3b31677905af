//! The container hash of upstream v1.31 and later (pkg/kubelet/container/helpers.go
//! `HashContainer`), the one this kubelet writes: only the name and the image take part, so
//! a change elsewhere in the spec never restarts a running container.

use super::spew_fnv_hash;
use crate::labels::go_json::write_string;
use k8s_openapi::api::core::v1::Container;

/// The hash upstream computes for `c`.
pub fn container_hash(c: &Container) -> u64 {
    spew_fnv_hash(fields_json(c).as_bytes())
}

/// The hash as the annotation holds it: lowercase hex without leading zeros.
pub fn container_hash_hex(c: &Container) -> String {
    format!("{:x}", container_hash(c))
}

/// `json.Marshal(map[string]string{"name": .., "image": ..})`: keys sorted, Go's escaping.
fn fields_json(c: &Container) -> String {
    let mut out = String::from("{\"image\":");
    write_string(&mut out, c.image.as_deref().unwrap_or_default());
    out.push_str(",\"name\":");
    write_string(&mut out, &c.name);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str, image: &str) -> Container {
        Container {
            name: name.into(),
            image: Some(image.into()),
            args: Some(vec!["/bin/sh".into(), "-c".into(), "echo abc".into()]),
            ..Default::default()
        }
    }

    #[test]
    fn matches_upstream_test_vectors() {
        // helpers_test.go TestHashContainer, v1.31 to v1.35.
        let c = container("test_container", "foo/image:v1");
        assert_eq!(container_hash(&c), 0x8e45_cbd0);
        assert_eq!(container_hash_hex(&c), "8e45cbd0");
        // helpers_test.go TestHashContainerWithoutResources from v1.31 on: resources and resize
        // policies no longer count, every case hashes alike.
        let mut c = container("foo", "bar");
        c.args = None;
        assert_eq!(container_hash(&c), 0x11a6_d6d6);
    }

    #[test]
    fn only_name_and_image_count() {
        let a = container("web", "nginx:1");
        let mut b = a.clone();
        b.args = None;
        b.working_dir = Some("/srv".into());
        assert_eq!(container_hash(&a), container_hash(&b));
        assert_ne!(
            container_hash(&a),
            container_hash(&container("web", "nginx:2"))
        );
    }

    #[test]
    fn go_escaping_in_the_json() {
        assert_eq!(
            fields_json(&container("a", "b<&>")),
            r#"{"image":"b\u003c\u0026\u003e","name":"a"}"#
        );
    }
}
