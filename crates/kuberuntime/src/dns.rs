//! filled in by the builders helper
