//! Generates the gRPC code from the vendored .proto files with protoc (as the k8s-cri crate does;
//! scripts/install-deps.sh installs protobuf-compiler).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/deviceplugin/v1beta1/api.proto",
        "proto/pluginregistration/v1/api.proto",
        "proto/podresources/v1/api.proto",
        "proto/podresources/v1alpha1/api.proto",
        "proto/csi/v1/csi.proto",
    ];
    // Ordered maps: an AllocateResponse marshals the same bytes every time (its bytes go into the
    // device manager's checkpoint, whose checksum must be stable).
    tonic_prost_build::configure()
        .btree_map(".")
        .compile_protos(&protos, &["proto"])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
