//! Deterministic detectors for secrets and personal data in text an interceptor passes
//! on (MCP results now, model responses in `warden llm` later).
//!
//! [`scan`] returns [`Finding`]s (what kind, tag `secret` or `pii`, byte range);
//! [`redact`] replaces them. Every detector is a regular expression plus, where a
//! pattern alone says too little, a check: card numbers must pass the Luhn check, US
//! social security numbers must have a valid area, group and serial. No model, no
//! network: the same text always gives the same findings.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

/// What a finding is, for reports and the session's tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Tag {
    /// Credentials: API keys, tokens, private keys.
    Secret,
    /// Personal data: emails, card numbers, national ids.
    Pii,
}

impl Tag {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Tag::Secret => "secret",
            Tag::Pii => "pii",
        }
    }
}

/// One detected secret or personal datum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// Detector name, e.g. `aws_access_key`.
    pub(crate) kind: &'static str,
    pub(crate) tag: Tag,
    /// Byte range in the scanned text.
    pub(crate) range: Range<usize>,
}

/// How a candidate match is confirmed.
#[derive(Clone, Copy)]
enum Check {
    None,
    Luhn,
    Ssn,
}

struct Detector {
    kind: &'static str,
    tag: Tag,
    pattern: &'static str,
    check: Check,
}

/// The detectors, most specific first: where two overlap, the earlier one wins.
const DETECTORS: &[Detector] = &[
    Detector {
        kind: "private_key",
        tag: Tag::Secret,
        pattern: r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
        check: Check::None,
    },
    Detector {
        kind: "openai_api_key",
        tag: Tag::Secret,
        pattern: r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
        check: Check::None,
    },
    Detector {
        kind: "stripe_secret_key",
        tag: Tag::Secret,
        pattern: r"\b(?:sk|rk)_live_[A-Za-z0-9]{16,}",
        check: Check::None,
    },
    Detector {
        kind: "aws_access_key",
        tag: Tag::Secret,
        pattern: r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
        check: Check::None,
    },
    Detector {
        kind: "github_token",
        tag: Tag::Secret,
        pattern: r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
        check: Check::None,
    },
    Detector {
        kind: "slack_token",
        tag: Tag::Secret,
        pattern: r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
        check: Check::None,
    },
    Detector {
        kind: "google_api_key",
        tag: Tag::Secret,
        pattern: r"\bAIza[0-9A-Za-z_-]{35}",
        check: Check::None,
    },
    Detector {
        kind: "jwt",
        tag: Tag::Secret,
        pattern: r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        check: Check::None,
    },
    Detector {
        kind: "bearer_token",
        tag: Tag::Secret,
        pattern: r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{20,}=*",
        check: Check::None,
    },
    Detector {
        kind: "email",
        tag: Tag::Pii,
        pattern: r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
        check: Check::None,
    },
    Detector {
        kind: "card_number",
        tag: Tag::Pii,
        pattern: r"\b(?:\d[ -]?){12,18}\d\b",
        check: Check::Luhn,
    },
    Detector {
        kind: "us_ssn",
        tag: Tag::Pii,
        pattern: r"\b\d{3}-\d{2}-\d{4}\b",
        check: Check::Ssn,
    },
];

static COMPILED: LazyLock<Vec<(&'static Detector, Regex)>> = LazyLock::new(|| {
    DETECTORS
        .iter()
        .filter_map(|d| Regex::new(d.pattern).ok().map(|re| (d, re)))
        .collect()
});

/// Finds secrets and personal data in `text`, in order of position, never overlapping.
pub(crate) fn scan(text: &str) -> Vec<Finding> {
    let mut found: Vec<Finding> = Vec::new();
    for (d, re) in COMPILED.iter() {
        for m in re.find_iter(text) {
            if !confirmed(d.check, m.as_str()) {
                continue;
            }
            let range = m.range();
            if found
                .iter()
                .any(|f| f.range.start < range.end && range.start < f.range.end)
            {
                continue;
            }
            found.push(Finding {
                kind: d.kind,
                tag: d.tag,
                range,
            });
        }
    }
    found.sort_by_key(|f| f.range.start);
    found
}

/// `text` with every finding replaced by `[REDACTED:kind]`.
pub(crate) fn redact(text: &str, findings: &[Finding]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in findings {
        if f.range.start < at || f.range.end > text.len() {
            continue;
        }
        out.push_str(&text[at..f.range.start]);
        out.push_str("[REDACTED:");
        out.push_str(f.kind);
        out.push(']');
        at = f.range.end;
    }
    out.push_str(&text[at..]);
    out
}

fn confirmed(check: Check, candidate: &str) -> bool {
    match check {
        Check::None => true,
        Check::Luhn => luhn(candidate),
        Check::Ssn => ssn(candidate),
    }
}

/// The Luhn checksum over the digits of `s` (13 to 19 of them).
fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) || digits.iter().all(|&d| d == digits[0]) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if !i.is_multiple_of(2) {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A US social security number that could be issued: area not 000, 666 or 9xx, group
/// not 00, serial not 0000.
fn ssn(s: &str) -> bool {
    let mut parts = s.split('-');
    let (Some(area), Some(group), Some(serial)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

#[cfg(test)]
mod tests;
