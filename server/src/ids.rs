//! Generated identifiers: sessions, approvals, break-glass grants.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// Makes ids unique within the process even if the system's random source fails.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `PREFIX-` followed by 24 hex digits (96 bits): random from the kernel, mixed with
/// the time, the process id and a counter so that ids stay unique without it.
pub(crate) fn new_id(prefix: &str) -> String {
    let mut random = [0u8; 16];
    let got_random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .is_ok();
    let mut h = Sha256::new();
    if got_random {
        h.update(random);
    }
    h.update(crate::service::now_us().to_be_bytes());
    h.update(std::process::id().to_be_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    format!("{prefix}-{}", &hex::encode(h.finalize())[..24])
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_prefixed_and_distinct() {
        let a = super::new_id("apr");
        let b = super::new_id("apr");
        assert!(a.starts_with("apr-") && a.len() == 28, "{a}");
        assert_ne!(a, b);
    }
}
