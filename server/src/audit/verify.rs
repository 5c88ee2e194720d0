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

/// Verifies the whole chain in `store`, then checks that the stored chain head agrees
/// with the last record (a missing tail shows there).
pub async fn verify(store: &Store) -> Result<Verification, StoreError> {
    let mut walker = Walker::new();
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
        }
    }
    let head = store.audit_head().await?;
    let last_seq = walker.expected_seq - 1;
    let failure = if head.seq > last_seq {
        Some(ChainFailure {
            seq: last_seq + 1,
            problem: format!(
                "the chain head records {} records but the log ends at record {last_seq}: records {}..={} are missing",
                head.seq,
                last_seq + 1,
                head.seq
            ),
        })
    } else if head.seq < last_seq || head.hash != walker.prev_hash {
        Some(ChainFailure {
            seq: head.seq + 1,
            problem: format!(
                "the chain head (record {}, hash {}) does not match the log, which ends at record {last_seq}",
                head.seq,
                short(&head.hash)
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
