//! An audit record and its canonical encoding.
//!
//! `hash = SHA-256(prev_hash ‖ canonical(record))`, where `prev_hash` is the previous
//! record's 32 raw hash bytes (32 zero bytes for the first record) and
//! `canonical(record) = seq as 8 bytes big-endian ‖ body JSON`. The body JSON is the
//! [`RecordBody`] fields in declaration order, no whitespace, strings escaped as
//! serde_json escapes them. Every column of the stored row except `seq`, `prev_hash` and
//! `hash` is a body field, so `wardend audit verify` recomputes the hash from the columns
//! alone and any edited column shows.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// `prev_hash` of the first record: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Record kinds.
pub const KIND_EVALUATE: &str = "evaluate";
pub const KIND_REPORT: &str = "report";
/// A report refused as malformed or absurd (negative or impossible usage): recorded,
/// not counted.
pub const KIND_REPORT_REJECTED: &str = "report_rejected";
/// A session opened or closed through the Sessions service.
pub const KIND_SESSION_OPEN: &str = "session_open";
pub const KIND_SESSION_CLOSE: &str = "session_close";
/// An approver approved or denied an approval request.
pub const KIND_APPROVAL: &str = "approval";
/// A break-glass grant was issued or revoked (its uses are evaluate records that carry
/// its id).
pub const KIND_BREAK_GLASS: &str = "break_glass";

/// Everything in a record except its position in the chain.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RecordBody {
    /// Microseconds since the Unix epoch, when the daemon decided.
    pub time_us: i64,
    /// [`KIND_EVALUATE`] or [`KIND_REPORT`].
    pub kind: String,
    pub tenant: String,
    pub agent: String,
    pub session: String,
    pub channel: String,
    /// The normalized action as JSON, secrets redacted.
    pub action: String,
    /// Verdict name for evaluate records; empty for reports.
    pub verdict: String,
    pub rule_ids: Vec<String>,
    pub reason: String,
    pub policy_version: String,
    /// Session zone after the action.
    pub zone: String,
    pub approval_id: String,
    pub break_glass_id: String,
    /// ResultMeta as JSON for reports; empty for evaluate records.
    pub result: String,
    /// For reports, the seq of the decision the result belongs to; else 0.
    pub decision_seq: u64,
}

impl RecordBody {
    /// The body half of the canonical encoding.
    pub fn canonical_json(&self) -> Vec<u8> {
        // Strings, integers and a vector of strings always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A stored record: body plus chain position.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub seq: u64,
    pub body: RecordBody,
    /// Lower-case hex.
    pub prev_hash: String,
    /// Lower-case hex.
    pub hash: String,
}

/// Hash of record `seq` with body JSON `body_json` following a record whose hash is
/// `prev_hash` (lower-case hex). A malformed `prev_hash` (only possible in a tampered
/// log) is hashed as its text so that verification reports a mismatch, never a panic.
pub fn chain_hash(prev_hash: &str, seq: u64, body_json: &[u8]) -> String {
    let mut hasher = Sha256::new();
    match hex::decode(prev_hash) {
        Ok(raw) if raw.len() == 32 => hasher.update(&raw),
        _ => hasher.update(prev_hash.as_bytes()),
    }
    hasher.update(seq.to_be_bytes());
    hasher.update(body_json);
    hex::encode(hasher.finalize())
}

impl AuditRow {
    /// The record as the JSON object `wardend audit export` writes (one per line).
    /// `action_json` and `result_json` are the exact stored texts (as in the gRPC API),
    /// so the chain can be recomputed from an export file alone.
    pub fn to_export_json(&self) -> serde_json::Value {
        let b = &self.body;
        serde_json::json!({
            "seq": self.seq,
            "time_us": b.time_us,
            "kind": b.kind,
            "tenant": b.tenant,
            "agent": b.agent,
            "session": b.session,
            "channel": b.channel,
            "action_json": b.action,
            "verdict": b.verdict,
            "rule_ids": b.rule_ids,
            "reason": b.reason,
            "policy_version": b.policy_version,
            "zone": b.zone,
            "approval_id": b.approval_id,
            "break_glass_id": b.break_glass_id,
            "result_json": b.result,
            "decision_seq": b.decision_seq,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        })
    }

    /// The record as the API's message.
    pub fn to_proto(&self) -> warden_proto::v1::AuditRecord {
        let b = &self.body;
        warden_proto::v1::AuditRecord {
            seq: self.seq,
            time_us: b.time_us,
            kind: b.kind.clone(),
            tenant: b.tenant.clone(),
            agent: b.agent.clone(),
            session: b.session.clone(),
            channel: b.channel.clone(),
            action_json: b.action.clone(),
            verdict: b.verdict.clone(),
            rule_ids: b.rule_ids.clone(),
            reason: b.reason.clone(),
            policy_version: b.policy_version.clone(),
            zone: b.zone.clone(),
            approval_id: b.approval_id.clone(),
            break_glass_id: b.break_glass_id.clone(),
            result_json: b.result.clone(),
            decision_seq: b.decision_seq,
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
        }
    }
}
