//! The built-in runtime's images: a content store, registry pulls, unpacking into snapshots,
//! image records, archive import and the overlay root file system of a container.

mod content;
mod error;
mod hosts;
mod manifest;
mod reference;
mod unpack;

pub use error::ImageError;
