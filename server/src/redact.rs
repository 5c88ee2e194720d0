//! Secret redaction for what the audit log stores.
//!
//! Policies see the action as sent; the audit record must not become a second copy of
//! every credential an agent typed. Values that look like secrets (assignments to
//! `*TOKEN*`/`*SECRET*`/`*PASSWORD*`-style names, `Authorization` headers, well-known
//! key formats, `--password=` style flags, URL userinfo) are replaced by `[REDACTED]`.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

use crate::normalize::NormalizedAction;

const MARK: &str = "[REDACTED]";

/// (pattern, replacement). Capture group 1, when present, is kept.
static PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    let secret_name = r"[A-Za-z0-9_.-]*(?i:secret|token|passw(?:or)?d|passwd|api[_-]?key|access[_-]?key|private[_-]?key|credential)[A-Za-z0-9_.-]*";
    [
        // NAME=value, name: value (env assignments, query strings, config lines)
        (format!(r"(\b{secret_name}\s*[=:]\s*)[^\s&;,'\x22]+"), "${1}[REDACTED]"),
        // --password value / --token=value
        (
            r"(?i)(--?(?:password|passwd|token|secret|api-key|apikey|access-key)(?:=|\s+))[^\s&;,'\x22]+".to_string(),
            "${1}[REDACTED]",
        ),
        // Authorization: Bearer xxx
        (r"(?i)(\b(?:bearer|basic|token)\s+)[A-Za-z0-9._~+/=-]{8,}".to_string(), "${1}[REDACTED]"),
        // Well-known key formats.
        (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b".to_string(), MARK),
        (r"\bgh[pousr]_[A-Za-z0-9]{20,}\b".to_string(), MARK),
        (r"\bsk-[A-Za-z0-9_-]{20,}\b".to_string(), MARK),
        (r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b".to_string(), MARK),
        (r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b".to_string(), MARK),
        (
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)".to_string(),
            MARK,
        ),
        // scheme://user:password@host
        (r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^/\s@]+@".to_string(), "${1}[REDACTED]@"),
    ]
    .into_iter()
    .filter_map(|(pattern, replacement)| match Regex::new(&pattern) {
        Ok(re) => Some((re, replacement)),
        Err(e) => {
            // The patterns are constants covered by tests; never reached in a release.
            tracing::error!(%pattern, error = %e, "invalid built-in redaction pattern");
            None
        }
    })
    .collect()
});

/// Redacts secrets in one string.
pub(crate) fn redact(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    for (re, replacement) in PATTERNS.iter() {
        if re.is_match(&out) {
            out = Cow::Owned(re.replace_all(&out, *replacement).into_owned());
        }
    }
    out
}

/// The action as the audit log stores it: canonical JSON, secrets redacted.
pub(crate) fn action_json(action: &NormalizedAction) -> String {
    let mut a = action.clone();
    a.command_line = redact(&a.command_line).into_owned();
    a.resource = redact(&a.resource).into_owned();
    for arg in &mut a.argv {
        *arg = redact(arg).into_owned();
    }
    for (key, value) in &mut a.attributes {
        *value = if looks_secret(key) {
            MARK.to_string()
        } else {
            redact(value).into_owned()
        };
    }
    redact_json(&mut a.arguments);
    serde_json::to_string(&a).unwrap_or_default()
}

fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "secret",
        "token",
        "password",
        "passwd",
        "api_key",
        "apikey",
        "api-key",
        "authorization",
        "cookie",
        "private_key",
        "credential",
    ]
    .iter()
    .any(|s| key.contains(s))
}

fn redact_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            if let Cow::Owned(r) = redact(s) {
                *s = r;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if looks_secret(key) && !v.is_null() {
                    *v = serde_json::Value::String(MARK.into());
                } else {
                    redact_json(v);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_common_secret_shapes() {
        let cases = [
            (
                "export OPENAI_API_KEY=sk-abcdefghijklmnopqrstuvwx",
                "export OPENAI_API_KEY=[REDACTED]",
            ),
            (
                "curl -H 'Authorization: Bearer abcdefghijkl123' x",
                "curl -H 'Authorization: Bearer [REDACTED]' x",
            ),
            (
                "mysql --password=hunter22 db",
                "mysql --password=[REDACTED] db",
            ),
            (
                "git clone https://bob:pa55w0rd@git.example.com/r",
                "git clone https://bob:[REDACTED]@git.example.com/r",
            ),
            ("aws key AKIAIOSFODNN7EXAMPLE", "aws key [REDACTED]"),
            (
                "https://x.example/cb?access_token=abc123&state=1",
                "https://x.example/cb?access_token=[REDACTED]&state=1",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "input: {input}");
        }
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        for text in [
            "ls -la /tmp",
            "git push origin main",
            "cargo build --release",
            "echo tokenizer",
        ] {
            assert_eq!(redact(text), text);
        }
    }
}
