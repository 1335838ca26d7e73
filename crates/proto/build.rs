//! Generates the gRPC code from `proto/stele/v1/*.proto` with tonic, using the
//! `protoc` binary shipped in the `protoc-bin-vendored` crate (never the
//! system's).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not compiled in: checkouts that share a target
    // directory (CI's clean clones) may share this script's binary.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = ["decision", "ledger", "admin", "raft", "common"]
        .map(|name| root.join(format!("stele/v1/{name}.proto")));
    // SAFETY: build scripts run single-threaded; nothing else reads the
    // environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    let descriptor =
        std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("stele_descriptor.bin");
    tonic_prost_build::configure()
        .file_descriptor_set_path(descriptor)
        .compile_protos(&files, &[root])?;
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    Ok(())
}
