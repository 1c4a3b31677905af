//! filled in by the cri helper
