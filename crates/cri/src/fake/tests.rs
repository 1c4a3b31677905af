//! Tests of the fake runtime through the CRI traits, as the kubelet uses it.

mod behaviors;
mod containers;
mod events;
mod images;
mod sandboxes;
mod scripting;
mod support;
