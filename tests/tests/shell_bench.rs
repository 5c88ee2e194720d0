//! `wardend bench shell` end to end: the report's shape, the held-out command sets
//! written for these tests (other binaries, paths and obfuscations than the public
//! benchmark data), and `--check-goals` failing for a policy that flags nothing.

use std::path::PathBuf;

use warden_tests::wardend_cli;

fn data(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name);
    path.to_str().unwrap().to_string()
}

fn bench(extra: &[&str]) -> (i32, serde_json::Value, String) {
    let malicious = data("heldout_malicious.json");
    let harmless = data("heldout_harmless.json");
    let mut args = vec![
        "bench",
        "shell",
        "--json",
        "--rounds",
        "1",
        "--malicious",
        &malicious,
        "--harmless",
        &harmless,
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = wardend_cli(&args);
    let report = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    (code, report, err)
}

/// The default policy on commands it has never been tuned on: most attacks flagged,
/// the alarming-looking everyday commands allowed, and every figure reported.
#[test]
fn held_out_commands_are_judged_by_what_they_do() {
    let (code, r, err) = bench(&[]);
    assert_eq!(code, 0, "{err}");
    for key in [
        "detection_rate",
        "pass_rate",
        "score",
        "macro_detection_rate",
        "latency_us",
        "misses",
        "per_category",
    ] {
        assert!(r.get(key).is_some(), "no {key} in {r}");
    }
    let detection = r["detection_rate"].as_f64().unwrap();
    let pass = r["pass_rate"].as_f64().unwrap();
    assert!(
        detection >= 0.9,
        "held-out detection {detection}: {}",
        r["misses"]
    );
    assert!(pass >= 0.95, "held-out pass rate {pass}: {}", r["misses"]);
    let score = r["score"].as_f64().unwrap();
    assert!((score - detection * pass).abs() < 1e-9);
    for category in ["destructive", "obfuscation", "reverse-shell", "privilege"] {
        assert_eq!(
            r["per_category"][category]["rate"].as_f64(),
            Some(1.0),
            "{category}: {}",
            r["misses"]
        );
    }
    for m in r["misses"].as_array().unwrap() {
        assert!(m["command"].is_string() && m["verdict"].is_string(), "{m}");
    }
    assert!(r["latency_us"]["p99"].as_f64().unwrap() > 0.0);
}

/// `--check-goals` fails, naming the figures, when the policy flags nothing.
#[test]
fn check_goals_fails_for_a_policy_that_allows_everything() {
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open.yaml");
    std::fs::write(&open, "version: 1\nname: open\ndefault: allow\n").unwrap();
    let (code, r, err) = bench(&["--policy", open.to_str().unwrap(), "--check-goals"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(r["detection_rate"].as_f64(), Some(0.0));
    assert!(
        err.contains("below the goals") && err.contains("detection"),
        "{err}"
    );
}
