//! The container hash (upstream pkg/kubelet/container/helpers.go `HashContainer`, v1.31+).
//!
//! The kubelet stores this hash in the `io.kubernetes.container.hash` annotation and restarts a
//! container whose hash no longer matches its spec. Containers started by the Go kubelet must
//! keep matching after a switch to this one, so the value is reproduced byte for byte:
//! fnv-1a 32 over go-spew's `%#v` rendering of the JSON of `{"image": ..., "name": ...}`.

use crate::labels::go_json::write_string;
use k8s_openapi::api::core::v1::Container;

/// The hash upstream computes for `c`; only the name and the image take part.
pub fn container_hash(c: &Container) -> u64 {
    u64::from(fnv1a_32(&spew_go_syntax_bytes(&fields_json(c))))
}

/// The hash as the annotation holds it: lowercase hex without leading zeros.
pub fn container_hash_hex(c: &Container) -> String {
    format!("{:x}", container_hash(c))
}

/// `json.Marshal(map[string]string{"name": .., "image": ..})`: keys sorted, Go's escaping.
fn fields_json(c: &Container) -> Vec<u8> {
    let mut out = String::from("{\"image\":");
    write_string(&mut out, c.image.as_deref().unwrap_or_default());
    out.push_str(",\"name\":");
    write_string(&mut out, &c.name);
    out.push('}');
    out.into_bytes()
}

/// go-spew with `%#v` prints a `[]byte` as its type in parentheses, then the bytes in decimal,
/// space separated, in brackets: `([]uint8)[123 34 ...]`.
fn spew_go_syntax_bytes(bytes: &[u8]) -> Vec<u8> {
    let items: Vec<String> = bytes.iter().map(u8::to_string).collect();
    format!("([]uint8)[{}]", items.join(" ")).into_bytes()
}

fn fnv1a_32(data: &[u8]) -> u32 {
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    data.iter()
        .fold(OFFSET_BASIS, |h, b| (h ^ u32::from(*b)).wrapping_mul(PRIME))
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
    fn matches_upstream_test_vector() {
        // pkg/kubelet/container/helpers_test.go TestHashContainer (v1.31+).
        let c = container("test_container", "foo/image:v1");
        assert_eq!(container_hash(&c), 0x8e45_cbd0);
        assert_eq!(container_hash_hex(&c), "8e45cbd0");
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
    fn spew_rendering_of_json() {
        assert_eq!(
            fields_json(&container("a", "b<&>")),
            br#"{"image":"b\u003c\u0026\u003e","name":"a"}"#
        );
        assert_eq!(spew_go_syntax_bytes(b"{}"), b"([]uint8)[123 125]");
    }

    #[test]
    fn fnv_known_values() {
        assert_eq!(fnv1a_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
    }
}
