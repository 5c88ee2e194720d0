//! Generates the tonic clients and servers from `warden/v1/*.proto` at build time with a
//! vendored `protoc`, so building needs no system tools. The descriptor set is kept for
//! server reflection.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let config = || {
        let mut config = tonic_prost_build::Config::new();
        config.protoc_executable(&protoc);
        config
    };

    let includes = [PathBuf::from("."), protoc_bin_vendored::include_path()?];
    // The public API, with the descriptor set that server reflection advertises.
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("warden_descriptor.bin"))
        .codec_path("crate::codec::WardenCodec")
        .compile_with_config(
            config(),
            &[PathBuf::from("warden/v1/warden.proto")],
            &includes,
        )?;
    // The benchmark-only service, compiled apart (own output directory, warden.v1 types
    // referenced from the crate) so reflection never lists it.
    std::fs::create_dir_all(out_dir.join("bench"))?;
    tonic_prost_build::configure()
        .out_dir(out_dir.join("bench"))
        .file_descriptor_set_path(out_dir.join("bench").join("descriptor.bin"))
        .codec_path("crate::codec::WardenCodec")
        .extern_path(".warden.v1", "crate::v1")
        .compile_with_config(
            config(),
            &[PathBuf::from("warden/v1/bench.proto")],
            &includes,
        )?;
    println!("cargo:rerun-if-changed=warden");
    Ok(())
}
