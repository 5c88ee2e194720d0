//! Walks the chain from the first record and names the first record that breaks it.

use super::record::{AuditRow, GENESIS_HASH, chain_hash};
use crate::store::{Store, StoreError};

/// Records fetched per round trip while verifying.
const PAGE: u32 = 5000;

/// Result of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Records checked.
    pub records: u64,
    /// `None` when the chain is intact.
    pub failure: Option<ChainFailure>,
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFailure {
    /// First bad sequence number.
    pub seq: u64,
    pub problem: String,
}

/// Incremental checker: feed rows in seq order.
struct Walker {
    expected_seq: u64,
    prev_hash: String,
    checked: u64,
}

impl Walker {
    fn new() -> Walker {
        Walker {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_string(),
            checked: 0,
        }
    }

    fn check(&mut self, row: &AuditRow) -> Result<(), ChainFailure> {
        if row.seq != self.expected_seq {
            return Err(ChainFailure {
                seq: self.expected_seq,
                problem: if row.seq > self.expected_seq {
                    format!(
                        "record {} is missing (the next record is {})",
                        self.expected_seq, row.seq
                    )
                } else {
                    format!("record {} appears out of order", row.seq)
                },
            });
        }
        if row.prev_hash != self.prev_hash {
            return Err(ChainFailure {
                seq: row.seq,
                problem: format!(
                    "record {} does not link to the record before it (prev_hash {} but the previous hash is {})",
                    row.seq,
                    short(&row.prev_hash),
                    short(&self.prev_hash)
                ),
            });
        }
        let computed = chain_hash(&row.prev_hash, row.seq, &row.body.canonical_json());
        if computed != row.hash {
            return Err(ChainFailure {
                seq: row.seq,
                problem: format!(
                    "record {} was modified (stored hash {} but its contents hash to {})",
                    row.seq,
                    short(&row.hash),
                    short(&computed)
                ),
            });
        }
        self.prev_hash = row.hash.clone();
        self.expected_seq += 1;
        self.checked += 1;
        Ok(())
    }
}

fn short(hash: &str) -> &str {
    hash.get(..16).unwrap_or(hash)
}

/// Verifies the whole chain in `store` and checks it against the chain head, which is
/// read before and after the walk so that records appended meanwhile are not mistaken
/// for tampering:
/// - every record up to the starting head must be present, and the one at the head's
///   seq must carry the head's hash (a deleted tail shows here);
/// - no record may lie beyond the head as it stands at the end (a record appended
///   without going through the chain head shows here).
pub async fn verify(store: &Store) -> Result<Verification, StoreError> {
    let start_head = store.audit_head().await?;
    let mut walker = Walker::new();
    let mut hash_at_head = (start_head.seq == 0).then(|| GENESIS_HASH.to_string());
    let mut after = 0;
    loop {
        let page = store.audit_page(&Default::default(), after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for row in &page {
            if let Err(failure) = walker.check(row) {
                return Ok(Verification {
                    records: walker.checked,
                    failure: Some(failure),
                });
            }
            if row.seq == start_head.seq {
                hash_at_head = Some(row.hash.clone());
            }
        }
    }
    let last_seq = walker.expected_seq - 1;
    let end_head = store.audit_head().await?;
    let failure = if last_seq < start_head.seq {
        Some(ChainFailure {
            seq: last_seq + 1,
            problem: format!(
                "the chain head records {} records but the log ends at record {last_seq}: records {}..={} are missing",
                start_head.seq,
                last_seq + 1,
                start_head.seq
            ),
        })
    } else if hash_at_head.as_deref() != Some(start_head.hash.as_str()) {
        Some(ChainFailure {
            seq: start_head.seq.max(1),
            problem: format!(
                "the chain head (record {}, hash {}) does not match the log's record {}",
                start_head.seq,
                short(&start_head.hash),
                start_head.seq
            ),
        })
    } else if last_seq > end_head.seq {
        Some(ChainFailure {
            seq: end_head.seq + 1,
            problem: format!(
                "record {} lies beyond the chain head (record {}): it was not appended by wardend",
                end_head.seq + 1,
                end_head.seq
            ),
        })
    } else {
        None
    };
    Ok(Verification {
        records: walker.checked,
        failure,
    })
}
