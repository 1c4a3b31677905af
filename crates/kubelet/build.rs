//! Links the kubelet binary position-dependent, as the upstream kubelet is (Go's default): a
//! position-independent binary relocates its 1 MB of pointer tables (.data.rel.ro) at every start,
//! which copies them into private memory and reads 1.4 MB of relocations; here the linker resolves
//! them once and they stay clean file pages, resident only where used.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
