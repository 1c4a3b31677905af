//! The built-in runtime's images: a content store, registry pulls, unpacking into snapshots,
//! image records, archive import and the overlay root file system of a container.
//!
//! Layout under the store's root: `content/` (blobs by digest), `snapshots/` (one unpacked
//! layer per chain id), `records/` (images, tags and leases), `tmp/` (unpacks and removals in
//! progress; cleared at open), `lock`.

mod commit;
mod content;
mod cri;
mod error;
mod hosts;
mod import;
mod manifest;
mod pull;
mod records;
mod reference;
mod rootfs;
mod snapshots;
mod store;
mod unpack;

pub use cri::Image;
pub use error::ImageError;
pub use reference::ImageRef;
pub use rootfs::{mount_rootfs, unmount_rootfs};
pub use store::ImageStore;

#[cfg(test)]
mod tests;
