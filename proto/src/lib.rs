//! Warden's gRPC API, package `warden.v1`: the messages, tonic clients and tonic
//! servers, generated at build time from `proto/warden/v1/*.proto`.
//!
//! Rust SDK callers depend on this crate and use [`v1::decisions_client::DecisionsClient`]:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use warden_proto::v1::{decisions_client::DecisionsClient, Action, EvaluateRequest};
//! let mut client = DecisionsClient::connect("http://127.0.0.1:50051").await?;
//! let action = Action {
//!     channel: "exec".into(),
//!     argv: vec!["ls".into(), "-la".into()],
//!     ..Default::default()
//! };
//! let decision = client
//!     .evaluate(EvaluateRequest { action: Some(action) })
//!     .await?
//!     .into_inner()
//!     .decision;
//! # Ok(()) }
//! ```

mod codec;

pub use codec::{MAX_REQUEST_BYTES, WardenCodec, WardenDecoder};

/// `warden.v1`: the public API.
pub mod v1 {
    tonic::include_proto!("warden.v1");
}

/// `warden.bench.v1`: the no-op baseline service used by `wardend bench`.
pub mod bench {
    /// `warden.bench.v1`.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/bench/warden.bench.v1.rs"));
    }
}

/// Encoded `FileDescriptorSet` of every Warden proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/warden_descriptor.bin"));
