//! Reading /proc/self/mountinfo: the kernel's own list of mounts, which survives a kubelet
//! restart and so tells what an earlier run left mounted.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

const MOUNTINFO: &str = "/proc/self/mountinfo";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountEntry {
    pub mount_point: PathBuf,
    pub fs_type: String,
}

pub(crate) fn read() -> io::Result<Vec<MountEntry>> {
    let raw = std::fs::read(MOUNTINFO)?;
    Ok(raw.split(|b| *b == b'\n').filter_map(parse_line).collect())
}

/// The file system type of the topmost mount at exactly `mount_point`, if any.
pub(crate) fn fs_type_at(mount_point: &Path) -> io::Result<Option<String>> {
    Ok(read()?
        .into_iter()
        .rev()
        .find(|m| m.mount_point == mount_point)
        .map(|m| m.fs_type))
}

/// Mount points at or below `dir`, deepest first, so they can be unmounted in that order.
pub(crate) fn mount_points_under(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut points: Vec<PathBuf> = read()?
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    Ok(points)
}

/// One line: `id parent major:minor root mount_point options [optional...] - fstype source super`.
fn parse_line(line: &[u8]) -> Option<MountEntry> {
    let fields: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
    let mount_point = fields.get(4)?;
    let separator = fields.iter().skip(6).position(|f| *f == b"-")? + 6;
    let fs_type = fields.get(separator + 1)?;
    Some(MountEntry {
        mount_point: PathBuf::from(OsString::from_vec(unescape(mount_point))),
        fs_type: String::from_utf8_lossy(fs_type).into_owned(),
    })
}

/// The kernel writes space, tab, newline and backslash in paths as `\ooo` octal escapes.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field
            .get(i + 1..i + 4)
            .filter(|d| field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_optional_fields_and_escapes() {
        let line = b"36 35 98:0 / /mnt/with\\040space rw,noatime master:1 shared:2 - tmpfs tmpfs rw,size=1024k";
        let entry = parse_line(line).unwrap();
        assert_eq!(entry.mount_point, Path::new("/mnt/with space"));
        assert_eq!(entry.fs_type, "tmpfs");
    }

    #[test]
    fn parses_without_optional_fields() {
        let entry = parse_line(b"22 1 0:21 / /proc rw,nosuid - proc proc rw").unwrap();
        assert_eq!(
            entry,
            MountEntry {
                mount_point: PathBuf::from("/proc"),
                fs_type: "proc".into()
            }
        );
    }

    #[test]
    fn rejects_truncated_lines() {
        assert_eq!(parse_line(b""), None);
        assert_eq!(parse_line(b"22 1 0:21 / /proc rw"), None);
    }

    #[test]
    fn this_process_sees_its_root_mount() {
        assert!(
            read()
                .unwrap()
                .iter()
                .any(|m| m.mount_point == Path::new("/"))
        );
    }
}
