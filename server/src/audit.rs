//! The hash-chained audit log: record encoding, the group-commit writer, verification.

mod record;
mod verify;
mod writer;

pub use record::{
    AuditRow, GENESIS_HASH, KIND_APPROVAL, KIND_BREAK_GLASS, KIND_EVALUATE, KIND_REPORT,
    KIND_REPORT_REJECTED, KIND_SESSION_CLOSE, KIND_SESSION_OPEN, RecordBody, chain_hash,
};
pub use verify::{ChainFailure, Verification, verify};
pub use writer::{AuditError, AuditWriter, Committed, DEFAULT_MAX_BATCH, WriterTask};
