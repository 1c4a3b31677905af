//! Just enough of /proc/self/mountinfo to tell whether a path is a mount point and whether it
//! is a bind mount of itself (the private mount [`super::pin`] makes of its directory).

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MountEntry {
    pub id: u32,
    pub parent: u32,
    pub dev: String,
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub shared: bool,
}

/// Mount table of this process's mount namespace, in mount order.
pub(crate) fn read() -> std::io::Result<Vec<MountEntry>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

pub(crate) fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let mut fields = line.split(' ');
    let id = fields.next()?.parse().ok()?;
    let parent = fields.next()?.parse().ok()?;
    let dev = fields.next()?.to_string();
    let root = PathBuf::from(unescape(fields.next()?));
    let mount_point = PathBuf::from(unescape(fields.next()?));
    let _options = fields.next()?;
    // Optional fields ("shared:N", "master:N", ...) run up to the "-" separator.
    let shared = fields
        .take_while(|f| *f != "-")
        .any(|f| f.starts_with("shared:"));
    Some(MountEntry {
        id,
        parent,
        dev,
        root,
        mount_point,
        shared,
    })
}

/// mountinfo escapes space, tab, newline and backslash as \ooo octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The topmost mount at exactly `path`, if `path` is a mount point.
pub(crate) fn mount_at<'a>(table: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    table.iter().rev().find(|m| m.mount_point == path)
}

/// True when the topmost mount at `path` is a bind of `path` itself: same device as the mount
/// below it and a root that is `path`'s place in that mount.
pub(crate) fn is_self_bind(table: &[MountEntry], path: &Path) -> bool {
    let Some(top) = mount_at(table, path) else {
        return false;
    };
    let Some(below) = table.iter().find(|m| m.id == top.parent) else {
        return false;
    };
    let Ok(rest) = path.strip_prefix(&below.mount_point) else {
        return false;
    };
    top.dev == below.dev && top.root == below.root.join(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 0:40 / /var rw shared:3 - ext4 /dev/vdb rw
50 40 0:40 /lib/k\\040s/ns /var/lib/k\\040s/ns rw - ext4 /dev/vdb rw
51 50 0:4 net:[4026532] /var/lib/k\\040s/ns/net rw - nsfs nsfs rw
60 27 0:50 / /run/tmp rw master:2 - tmpfs tmpfs rw
";

    #[test]
    fn parses_fields_escapes_and_propagation() {
        let table = parse(TABLE);
        assert_eq!(table.len(), 5);
        assert_eq!(table[2].mount_point, Path::new("/var/lib/k s/ns"));
        assert_eq!(table[2].root, Path::new("/lib/k s/ns"));
        assert!(table[1].shared);
        assert!(!table[2].shared);
        assert!(!table[4].shared, "master: is a slave, not shared");
    }

    #[test]
    fn tells_a_self_bind_from_other_mounts() {
        let table = parse(TABLE);
        assert!(is_self_bind(&table, Path::new("/var/lib/k s/ns")));
        assert!(!is_self_bind(&table, Path::new("/var/lib/k s/ns/net")));
        assert!(!is_self_bind(&table, Path::new("/run/tmp")));
        assert!(!is_self_bind(&table, Path::new("/var/lib")));
        assert_eq!(
            mount_at(&table, Path::new("/var/lib/k s/ns/net")).map(|m| m.id),
            Some(51)
        );
    }
}
