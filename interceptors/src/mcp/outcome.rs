//! What came back from an upstream: scanned for secrets and personal data, redacted
//! when the decision (or `redact_detected`) says so, and reported to wardend with its
//! size, tags and outcome class.
//!
//! Results are looked at as JSON: every string in them (text content, structured
//! content, embedded resources, prompt messages) is scanned and, when needed,
//! rewritten. A result that needs no rewriting is returned exactly as received.

use std::time::Instant;

use regex::Regex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use warden_proto::v1::{Decision, ResultMeta, Sensitivity};

use crate::detect::{self, Tag};

/// `ResultMeta.outcome` values.
pub(crate) const OK: &str = "ok";
pub(crate) const TOOL_ERROR: &str = "tool_error";
pub(crate) const RPC_ERROR: &str = "rpc_error";
pub(crate) const TRANSPORT_ERROR: &str = "transport_error";

/// Most strings scanned in one result; the rest pass unscanned but are counted.
const MAX_STRINGS: usize = 100_000;

/// What scanning found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub(crate) tags: Vec<String>,
    pub(crate) bytes: u64,
    pub(crate) secret: bool,
    pub(crate) pii: bool,
}

/// Redactions to apply to a result.
pub(crate) struct Redactor {
    patterns: Vec<(Regex, String)>,
    detected: bool,
}

impl Redactor {
    /// The decision's redactions (ALLOW_WITH_REDACTION), plus detector findings when
    /// `detected`. A pattern that does not compile is an error: the result must not
    /// pass unredacted.
    pub(crate) fn new(decision: Option<&Decision>, detected: bool) -> Result<Redactor, String> {
        let mut patterns = Vec::new();
        for r in decision
            .map(|d| d.redactions.as_slice())
            .unwrap_or_default()
        {
            let re = Regex::new(&r.pattern).map_err(|e| {
                format!(
                    "redaction pattern of rule {} does not compile: {e}",
                    r.rule_id
                )
            })?;
            let with = if r.replacement.is_empty() {
                "[REDACTED]".to_string()
            } else {
                r.replacement.clone()
            };
            patterns.push((re, with));
        }
        Ok(Redactor { patterns, detected })
    }

    fn is_empty(&self) -> bool {
        self.patterns.is_empty() && !self.detected
    }

    fn apply(&self, text: &str) -> Option<String> {
        let mut out = std::borrow::Cow::Borrowed(text);
        for (re, with) in &self.patterns {
            if re.is_match(&out) {
                out = std::borrow::Cow::Owned(re.replace_all(&out, with.as_str()).into_owned());
            }
        }
        if self.detected {
            let found = detect::scan(&out);
            if !found.is_empty() {
                out = std::borrow::Cow::Owned(detect::redact(&out, &found));
            }
        }
        match out {
            std::borrow::Cow::Owned(s) => Some(s),
            std::borrow::Cow::Borrowed(_) => None,
        }
    }
}

/// Scans `result` and, when `redactor` changes any string, returns the rewritten
/// result. Scanning looks at the result as received (what the upstream revealed).
pub(crate) fn inspect<T: Serialize + DeserializeOwned>(
    result: T,
    redactor: &Redactor,
) -> Result<(T, Scan), String> {
    let mut json =
        serde_json::to_value(&result).map_err(|e| format!("cannot read the result: {e}"))?;
    let mut scan = Scan {
        bytes: serde_json::to_vec(&json).map_or(0, |v| v.len() as u64),
        ..Scan::default()
    };
    let mut kinds = std::collections::BTreeSet::new();
    let mut changed = false;
    let mut seen = 0usize;
    walk(&mut json, &mut |s: &mut String| {
        seen += 1;
        if seen > MAX_STRINGS {
            return;
        }
        for f in detect::scan(s) {
            match f.tag {
                Tag::Secret => scan.secret = true,
                Tag::Pii => scan.pii = true,
            }
            kinds.insert(f.kind);
        }
        if !redactor.is_empty()
            && let Some(new) = redactor.apply(s)
        {
            *s = new;
            changed = true;
        }
    });
    if scan.secret {
        scan.tags.push(Tag::Secret.as_str().into());
    }
    if scan.pii {
        scan.tags.push(Tag::Pii.as_str().into());
    }
    scan.tags
        .extend(kinds.into_iter().map(|k| format!("detected:{k}")));
    if !changed {
        return Ok((result, scan));
    }
    let rewritten =
        serde_json::from_value(json).map_err(|e| format!("cannot rewrite the result: {e}"))?;
    Ok((rewritten, scan))
}

fn walk(v: &mut Value, f: &mut impl FnMut(&mut String)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter_mut().for_each(|i| walk(i, f)),
        Value::Object(map) => map.values_mut().for_each(|i| walk(i, f)),
        _ => {}
    }
}

/// The report for a result.
pub(crate) fn meta(scan: &Scan, outcome: &str, error: String, started: Instant) -> ResultMeta {
    let sensitivity = if scan.secret {
        Sensitivity::High
    } else if scan.pii {
        Sensitivity::Medium
    } else {
        Sensitivity::Unspecified
    };
    let mut error = error;
    if error.len() > 4000 {
        let mut end = 4000;
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        error.truncate(end);
    }
    ResultMeta {
        sensitivity: sensitivity as i32,
        tags: scan.tags.clone(),
        bytes: scan.bytes,
        bytes_received: scan.bytes,
        duration_ms: started.elapsed().as_millis() as u64,
        error,
        outcome: outcome.to_string(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_proto::v1::Redaction;

    #[test]
    fn untouched_results_come_back_as_they_were() {
        let v = serde_json::json!({"content": [{"type": "text", "text": "hello"}]});
        let r = Redactor::new(None, false).expect("no patterns");
        let (out, scan) = inspect(v.clone(), &r).expect("inspects");
        assert_eq!(out, v);
        assert!(scan.tags.is_empty());
        assert!(scan.bytes > 0);
    }

    #[test]
    fn secrets_are_tagged_and_redacted_as_decided() {
        let v =
            serde_json::json!({"content": [{"type": "text", "text": "key AKIAIOSFODNN7EXAMPLE"}]});
        let d = Decision {
            redactions: vec![Redaction {
                rule_id: "r".into(),
                pattern: "AKIA[A-Z0-9]{16}".into(),
                replacement: String::new(),
            }],
            ..Default::default()
        };
        let r = Redactor::new(Some(&d), false).expect("compiles");
        let (out, scan) = inspect(v, &r).expect("inspects");
        assert_eq!(out["content"][0]["text"], "key [REDACTED]");
        assert_eq!(scan.tags, vec!["secret", "detected:aws_access_key"]);
        let r = Redactor::new(None, true).expect("detected");
        let v = serde_json::json!({"text": "mail bob@example.com"});
        let (out, scan) = inspect(v, &r).expect("inspects");
        assert_eq!(out["text"], "mail [REDACTED:email]");
        assert!(scan.pii);
    }
}
