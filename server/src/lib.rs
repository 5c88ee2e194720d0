//! `wardend`: Warden's policy-decision daemon and its offline tools.
//!
//! Start at [`server::run`] for the daemon, [`service`] for the request path and
//! docs/ARCHITECTURE.md for the walk from socket to audit row.

pub mod alerts;
pub mod analyzer;
pub mod audit;
mod batch;
pub mod bench;
pub mod certify;
pub mod check;
pub mod cli;
pub mod diff;
pub mod duration;
mod error;
pub use error::{CAUSE_AUDIT_STORE, CAUSE_KEY};
mod ids;
pub mod metrics;
pub mod normalize;
pub mod policy;
mod redact;
pub mod server;
pub mod service;
pub mod session;
pub mod simulate;
pub mod store;
