//! hostPath: used in place; only the `type` checks of upstream's hostpath plugin run here.

use crate::error::{PathIo, SetupError};
use k8s_openapi::api::core::v1::HostPathVolumeSource;
use std::fs::{self, DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::PathBuf;

/// Validates the path and runs the type check (creating the path for the *OrCreate types).
pub(crate) fn set_up(source: &HostPathVolumeSource) -> Result<PathBuf, SetupError> {
    let path = source.path.as_str();
    if path.split('/').any(|c| c == "..") {
        return Err(SetupError::HostPathBacksteps(path.to_owned()));
    }
    match source.type_.as_deref().unwrap_or("") {
        "" => {}
        "DirectoryOrCreate" => {
            if !exists(path) {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(path)
                    .map_err(|e| PathIo::new("create directory", path, e))?;
            } else {
                expect(path, Kind::Directory)?;
            }
        }
        "Directory" => expect(path, Kind::Directory)?,
        "FileOrCreate" => {
            if !exists(path) {
                // Like upstream, the parent must already exist: only the file itself is created.
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o644)
                    .open(path)
                    .map_err(|e| PathIo::new("create file", path, e))?;
            } else {
                expect(path, Kind::File)?;
            }
        }
        "File" => expect(path, Kind::File)?,
        "Socket" => expect(path, Kind::Socket)?,
        "CharDevice" => expect(path, Kind::CharDevice)?,
        "BlockDevice" => expect(path, Kind::BlockDevice)?,
        other => return Err(SetupError::InvalidHostPathType(other.to_owned())),
    }
    Ok(PathBuf::from(path))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Directory,
    File,
    Socket,
    CharDevice,
    BlockDevice,
}

impl Kind {
    /// The words upstream uses in "is not a ...".
    fn description(self) -> &'static str {
        match self {
            Kind::Directory => "directory",
            Kind::File => "file",
            Kind::Socket => "socket file",
            Kind::CharDevice => "character device",
            Kind::BlockDevice => "block device",
        }
    }

    /// The HostPathType name upstream reports as what the path actually is.
    fn type_name(self) -> &'static str {
        match self {
            Kind::Directory => "Directory",
            Kind::File => "File",
            Kind::Socket => "Socket",
            Kind::CharDevice => "CharDevice",
            Kind::BlockDevice => "BlockDevice",
        }
    }
}

/// Upstream stats through symlinks: a hostPath that is a symlink to a directory is a directory.
fn exists(path: &str) -> bool {
    fs::metadata(path).is_ok()
}

fn expect(path: &str, wanted: Kind) -> Result<(), SetupError> {
    let meta = fs::metadata(path).map_err(|_| SetupError::HostPathMissing(path.to_owned()))?;
    let ft = meta.file_type();
    let actual = if ft.is_dir() {
        Kind::Directory
    } else if ft.is_file() {
        Kind::File
    } else if ft.is_socket() {
        Kind::Socket
    } else if ft.is_char_device() {
        Kind::CharDevice
    } else if ft.is_block_device() {
        Kind::BlockDevice
    } else {
        return Err(SetupError::HostPathUnknownType {
            path: path.to_owned(),
            expected: wanted.description(),
        });
    };
    if actual != wanted {
        return Err(SetupError::HostPathType {
            path: path.to_owned(),
            expected: wanted.description(),
            actual: actual.type_name(),
        });
    }
    Ok(())
}
