//! Unpacking one layer's tar stream into an empty directory, creating every file ourselves
//! (never tar's own unpack): paths confined by [`beneath`], OCI whiteouts turned into overlayfs
//! ones (`.wh.NAME` -> character device 0:0 `NAME`; `.wh..wh..opq` -> xattr
//! `trusted.overlay.opaque=y` on the directory), and ownership, modes, mtimes, xattrs, hard
//! links (to targets inside the layer), device nodes and fifos kept.

mod beneath;

use crate::error::{ImageError, rio};
use beneath::{Components, Root, components, proc_path};
use rustix::fs::Timespec;
use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Timestamps, Uid, XattrFlags};
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use tar::EntryType;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";

/// Unpacks the tar stream `reader` into the empty directory `dest`.
pub(crate) fn unpack(reader: impl Read, dest: &Path) -> Result<(), ImageError> {
    let root = Root::open(dest)?;
    let mut archive = tar::Archive::new(reader);
    let mut dir_times: Vec<(Components, Timespec)> = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| ImageError::io("read the tar stream of", dest, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ImageError::io("read the tar stream of", dest, e))?;
        let meta =
            Meta::of(&mut entry).map_err(|e| ImageError::io("read a tar header in", dest, e))?;
        let raw_path = entry
            .path()
            .map_err(|e| ImageError::io("read a tar path in", dest, e))?
            .into_owned();
        let mut comps = components(&raw_path)?;
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            continue;
        }
        let Some(name) = comps.pop() else {
            // The layer's root itself (`./`): only its metadata.
            apply_fd_meta(root.fd(), &root.path_of(&[]), &meta)?;
            dir_times.push((Vec::new(), meta.mtime));
            continue;
        };
        let parent = root.dir(&comps, true)?;
        let name_bytes = name.as_bytes();
        if name_bytes == OPAQUE_MARKER {
            rfs::fsetxattr(&parent, OPAQUE_XATTR, b"y", XattrFlags::empty())
                .map_err(|e| rio("mark opaque", root.path_of(&comps), e))?;
            continue;
        }
        if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX) {
            let hidden = OsString::from(std::ffi::OsStr::from_bytes(hidden));
            root.clear(&parent, &comps, &hidden, false)?;
            let path = root.path_of(&comps).join(&hidden);
            rfs::mknodat(
                &parent,
                &hidden,
                FileType::CharacterDevice,
                Mode::empty(),
                rfs::makedev(0, 0),
            )
            .map_err(|e| rio("create whiteout", &path, e))?;
            rfs::chownat(
                &parent,
                &hidden,
                Some(meta.uid),
                Some(meta.gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| rio("chown", &path, e))?;
            continue;
        }
        let mut full = comps.clone();
        full.push(name.clone());
        let path = root.path_of(&full);
        let kept_dir = root.clear(&parent, &comps, &name, kind == EntryType::Directory)?;
        match kind {
            EntryType::Regular | EntryType::Continuous => {
                let fd = rfs::openat(
                    &parent,
                    &name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| rio("create", &path, e))?;
                let mut file = File::from(fd);
                std::io::copy(&mut entry, &mut file)
                    .map_err(|e| ImageError::io("write", &path, e))?;
                let fd = OwnedFd::from(file);
                apply_fd_meta(&fd, &path, &meta)?;
                rfs::futimens(&fd, &meta.times()).map_err(|e| rio("set times of", &path, e))?;
            }
            EntryType::Directory => {
                if !kept_dir {
                    rfs::mkdirat(&parent, &name, Mode::from_raw_mode(0o700))
                        .map_err(|e| rio("create", &path, e))?;
                }
                let fd = root.dir(&full, false)?;
                apply_fd_meta(&fd, &path, &meta)?;
                dir_times.push((full, meta.mtime));
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| ImageError::io("read the link target of", &path, e))?
                    .ok_or_else(|| unsafe_entry(&raw_path, "a symlink without a target"))?;
                rfs::symlinkat(target.as_ref(), &parent, &name)
                    .map_err(|e| rio("create", &path, e))?;
                apply_at_meta(&parent, &name, &path, &meta, false)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| ImageError::io("read the link target of", &path, e))?
                    .ok_or_else(|| unsafe_entry(&raw_path, "a hard link without a target"))?;
                let mut target = components(&target)?;
                let target_name = target
                    .pop()
                    .ok_or_else(|| unsafe_entry(&raw_path, "a hard link to the layer root"))?;
                let target_dir = root.dir(&target, false)?;
                rfs::linkat(&target_dir, &target_name, &parent, &name, AtFlags::empty())
                    .map_err(|e| rio("hard-link", &path, e))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (file_type, dev) = match kind {
                    EntryType::Fifo => (FileType::Fifo, 0),
                    _ => {
                        let (major, minor) = meta.device.ok_or_else(|| {
                            unsafe_entry(&raw_path, "a device node without numbers")
                        })?;
                        let t = if kind == EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (t, rfs::makedev(major, minor))
                    }
                };
                rfs::mknodat(&parent, &name, file_type, Mode::empty(), dev)
                    .map_err(|e| rio("create", &path, e))?;
                apply_at_meta(&parent, &name, &path, &meta, true)?;
            }
            _ => return Err(unsafe_entry(&raw_path, "an unsupported tar entry type")),
        }
    }
    // Directory times last: creating their children changed them.
    for (comps, mtime) in dir_times.iter().rev() {
        let fd = root.dir(comps, false)?;
        let times = Timestamps {
            last_access: *mtime,
            last_modification: *mtime,
        };
        rfs::futimens(&fd, &times).map_err(|e| rio("set times of", root.path_of(comps), e))?;
    }
    Ok(())
}

fn unsafe_entry(path: &Path, reason: &'static str) -> ImageError {
    ImageError::UnsafeEntry {
        entry: path.display().to_string(),
        reason,
    }
}

/// Ownership, mode, time, device numbers and xattrs of one entry, PAX records applied.
struct Meta {
    uid: Uid,
    gid: Gid,
    mode: Mode,
    mtime: Timespec,
    device: Option<(u32, u32)>,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Meta {
    fn of<R: Read>(entry: &mut tar::Entry<R>) -> std::io::Result<Meta> {
        let h = entry.header();
        let (mut uid, mut gid, mut mtime) = (h.uid()?, h.gid()?, (h.mtime()? as i64, 0i64));
        // Only device entries have meaningful numbers; other entries may leave the fields blank.
        let device = match h.entry_type() {
            EntryType::Char | EntryType::Block => match (h.device_major()?, h.device_minor()?) {
                (Some(major), Some(minor)) => Some((major, minor)),
                _ => None,
            },
            _ => None,
        };
        let mode = Mode::from_raw_mode(h.mode()? & 0o7777);
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions()? {
            for ext in pax {
                let ext = ext?;
                let key = ext.key().map_err(std::io::Error::other)?;
                let text = || ext.value().map_err(std::io::Error::other);
                match key {
                    "uid" => uid = text()?.parse().map_err(std::io::Error::other)?,
                    "gid" => gid = text()?.parse().map_err(std::io::Error::other)?,
                    "mtime" => mtime = parse_pax_time(text()?)?,
                    _ => {
                        if let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX) {
                            xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                        }
                    }
                }
            }
        }
        let id = |v: u64| u32::try_from(v).map_err(std::io::Error::other);
        Ok(Meta {
            uid: Uid::from_raw(id(uid)?),
            gid: Gid::from_raw(id(gid)?),
            mode,
            mtime: Timespec {
                tv_sec: mtime.0,
                tv_nsec: mtime.1 as _,
            },
            device,
            xattrs,
        })
    }

    fn times(&self) -> Timestamps {
        Timestamps {
            last_access: self.mtime,
            last_modification: self.mtime,
        }
    }
}

/// A PAX time, `SECONDS[.FRACTION]`.
fn parse_pax_time(s: &str) -> std::io::Result<(i64, i64)> {
    let bad = || std::io::Error::other(format!("invalid PAX time {s:?}"));
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs = secs.parse().map_err(|_| bad())?;
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let nanos = digits.parse().map_err(|_| bad())?;
    Ok((secs, nanos))
}

/// Owner first, then mode (chown clears setuid bits), then xattrs, on an open file.
fn apply_fd_meta(fd: &OwnedFd, path: &Path, meta: &Meta) -> Result<(), ImageError> {
    rfs::fchown(fd, Some(meta.uid), Some(meta.gid)).map_err(|e| rio("chown", path, e))?;
    rfs::fchmod(fd, meta.mode).map_err(|e| rio("chmod", path, e))?;
    for (name, value) in &meta.xattrs {
        rfs::fsetxattr(fd, name.as_str(), value, XattrFlags::empty())
            .map_err(|e| rio("set an xattr on", path, e))?;
    }
    Ok(())
}

/// Metadata of an entry that must not be opened (a symlink, a device node, a fifo).
fn apply_at_meta(
    dir: &OwnedFd,
    name: &OsString,
    path: &Path,
    meta: &Meta,
    chmod: bool,
) -> Result<(), ImageError> {
    rfs::chownat(
        dir,
        name,
        Some(meta.uid),
        Some(meta.gid),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| rio("chown", path, e))?;
    if chmod {
        // Not a symlink (just created by mknodat), so following is harmless.
        rfs::chmodat(dir, name, meta.mode, AtFlags::empty()).map_err(|e| rio("chmod", path, e))?;
    }
    for (xname, value) in &meta.xattrs {
        rfs::lsetxattr(
            proc_path(dir, name),
            xname.as_str(),
            value,
            XattrFlags::empty(),
        )
        .map_err(|e| rio("set an xattr on", path, e))?;
    }
    rfs::utimensat(dir, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| rio("set times of", path, e))
}

#[cfg(test)]
mod tests;
