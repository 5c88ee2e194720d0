use super::*;

fn kinds(text: &str) -> Vec<&'static str> {
    scan(text).into_iter().map(|f| f.kind).collect()
}

/// Golden cases: (text, expected finding kinds in order). The keys are made up and of
/// the documented shapes; none is a real credential.
const GOLDEN: &[(&str, &[&str])] = &[
    (
        "OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz012345",
        &["openai_api_key"],
    ),
    (
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        &["aws_access_key"],
    ),
    (
        "token ghp_0123456789abcdefghijABCDEFGHIJ012345 ok",
        &["github_token"],
    ),
    (
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        &["github_token"],
    ),
    ("SLACK=xoxb-123456789012-abcdefghij", &["slack_token"]),
    (
        "key=AIzaSyA1234567890abcdefghijklmnopqrstuv",
        &["google_api_key"],
    ),
    (
        "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        &["stripe_secret_key"],
    ),
    (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
        &["private_key"],
    ),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
        &["private_key"],
    ),
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        &["jwt"],
    ),
    (
        "Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123",
        &["bearer_token"],
    ),
    ("mail alice.smith+tag@example.co.uk today", &["email"]),
    ("card 4111 1111 1111 1111 exp 12/30", &["card_number"]),
    ("card 4111-1111-1111-1112", &[]),
    ("ssn 078-05-1120", &["us_ssn"]),
    ("ssn 000-12-3456 and 900-12-3456 are not issued", &[]),
    ("order 1234567890123 shipped; build 1.2.3", &[]),
    ("plain text with sk-short and AKIA123", &[]),
    (
        "two: bob@example.com then AKIAIOSFODNN7EXAMPLE",
        &["email", "aws_access_key"],
    ),
];

#[test]
fn golden_findings() {
    for (text, want) in GOLDEN {
        assert_eq!(kinds(text), *want, "{text:?}");
    }
}

#[test]
fn tags_and_ranges() {
    let text = "x AKIAIOSFODNN7EXAMPLE y bob@example.com";
    let found = scan(text);
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].tag, Tag::Secret);
    assert_eq!(&text[found[0].range.clone()], "AKIAIOSFODNN7EXAMPLE");
    assert_eq!(found[1].tag, Tag::Pii);
    assert_eq!(&text[found[1].range.clone()], "bob@example.com");
}

#[test]
fn redaction_replaces_each_finding() {
    let text = "key AKIAIOSFODNN7EXAMPLE, mail bob@example.com.";
    assert_eq!(
        redact(text, &scan(text)),
        "key [REDACTED:aws_access_key], mail [REDACTED:email]."
    );
    assert_eq!(
        redact("nothing here", &scan("nothing here")),
        "nothing here"
    );
}

#[test]
fn luhn_and_ssn_checks() {
    assert!(luhn("4111111111111111"));
    assert!(luhn("5555 5555 5555 4444"));
    assert!(!luhn("4111111111111112"));
    assert!(!luhn("0000000000000000"));
    assert!(ssn("123-45-6789"));
    assert!(!ssn("666-45-6789"));
    assert!(!ssn("123-00-6789"));
}
