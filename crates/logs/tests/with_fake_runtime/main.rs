//! Log rotation, cleanup and symlink collection against the fake CRI runtime.

mod dangling_symlinks;
mod rotation;
mod support;
