//! Generates the tonic clients and servers from `warden/v1/*.proto` at build time with a
//! vendored `protoc`, so building needs no system tools. The descriptor set is kept for
//! server reflection.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    let protos = ["warden/v1/warden.proto", "warden/v1/bench.proto"];
    let includes = [PathBuf::from("."), protoc_bin_vendored::include_path()?];
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("warden_descriptor.bin"))
        .codec_path("crate::codec::WardenCodec")
        .compile_with_config(config, &protos.map(PathBuf::from), &includes)?;
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
