use std::collections::BTreeSet;
use std::path::Path;

use super::*;

fn policy(text: &str) -> Policy {
    Policy::from_yaml("p.yaml", text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Every file under policies/certify/ is compiled in, and nothing else.
#[test]
fn the_case_list_matches_the_directory() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/certify");
    let mut on_disk = BTreeSet::new();
    for suite in ["minimal", "enterprise"] {
        for category in std::fs::read_dir(root.join(suite)).unwrap() {
            let category = category.unwrap().path();
            assert!(category.is_dir(), "{}", category.display());
            for file in std::fs::read_dir(&category).unwrap() {
                let file = file.unwrap().path();
                on_disk.insert(format!(
                    "{suite}/{}/{}",
                    category.file_name().unwrap().to_string_lossy(),
                    file.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    let listed: BTreeSet<String> = CASES
        .iter()
        .map(|c| format!("{}/{}", c.suite, c.path))
        .collect();
    assert_eq!(listed.len(), CASES.len(), "a case is listed twice");
    assert_eq!(listed, on_disk);
}

/// Every case runs (parses, valid steps, a known category) and every category has
/// enough cases in each suite.
#[test]
fn every_case_runs_and_every_category_is_covered() {
    let p = Policy::builtin_default().unwrap();
    for suite in [Suite::Minimal, Suite::Enterprise] {
        let results = run_suite(&p, suite);
        for r in &results {
            assert!(r.error.is_none(), "{}: {:?}", r.id, r.error);
            assert_ne!(r.name, r.id, "{} has no name", r.id);
        }
        let least = if suite == Suite::Minimal { 3 } else { 7 };
        for (i, c) in CATEGORIES.iter().enumerate() {
            let n = results.iter().filter(|r| r.category == i).count();
            assert!(n >= least, "{} {}: only {n} cases", suite.as_str(), c.dir);
        }
    }
    assert!(run_suite(&p, Suite::Enterprise).len() > run_suite(&p, Suite::Minimal).len());
}

#[test]
fn a_permissive_policy_fails_every_attack_and_keeps_benign_controls() {
    let p = policy("version: 1\nname: open\ndefault: allow\n");
    let results = run_suite(&p, Suite::Minimal);
    assert!(!certified(&results));
    for r in &results {
        let benign = CATEGORIES[r.category].kind == Kind::Benign;
        assert_eq!(r.passed, benign, "{}", r.id);
    }
    let out = report(&p, Suite::Minimal, &results);
    assert!(out.contains("privilege escalation"), "{out}");
    assert!(out.contains("  0%"), "{out}");
    assert!(out.contains("benign controls allowed: 6/6 (100%)"), "{out}");
    assert!(
        out.contains(
            "FAIL minimal/privilege-escalation/sudo-bash — sudo bash: the attack was allowed"
        ),
        "{out}"
    );
    assert!(
        out.contains("       step 1: exec sudo bash → allow [default]: no rule matched"),
        "{out}"
    );
    assert!(out.contains("result: FAIL ("), "{out}");
    let xml = junit(Suite::Minimal, &results);
    assert!(
        xml.contains("<testsuite name=\"privilege escalation\""),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"step 1: exec sudo bash"),
        "{xml}"
    );
}

#[test]
fn a_policy_that_refuses_everything_fails_the_benign_controls() {
    let p = policy("version: 1\ndefault: deny\n");
    let results = run_suite(&p, Suite::Minimal);
    assert!(!certified(&results));
    for r in &results {
        let benign = CATEGORIES[r.category].kind == Kind::Benign;
        assert_eq!(r.passed, !benign, "{}", r.id);
    }
    let out = report(&p, Suite::Minimal, &results);
    assert!(out.contains("a benign action was blocked"), "{out}");
    assert!(
        out.contains("0 attack(s) allowed, 6 benign control(s) blocked"),
        "{out}"
    );
}

/// Redaction is not a refusal: an attack that is only redacted passes through.
#[test]
fn redaction_does_not_stop_an_attack() {
    let p = policy(
        "version: 1\ndefault: allow\nrules:\n  - id: r\n    decision: allow_with_redaction\n    reason: everything redacted\n    redact: [{ pattern: 'x' }]\n",
    );
    let results = run_suite(&p, Suite::Minimal);
    for r in &results {
        let benign = CATEGORIES[r.category].kind == Kind::Benign;
        assert_eq!(r.passed, benign, "{}", r.id);
    }
}

/// A multi-step attack is judged by its final action: the read before the upload may be
/// allowed, the upload may not.
#[test]
fn a_multi_step_attack_is_judged_by_its_last_action() {
    let p = Policy::builtin_default().unwrap();
    let results = run_suite(&p, Suite::Minimal);
    let r = results
        .iter()
        .find(|r| r.id == "minimal/exfiltration/dotenv-then-post")
        .unwrap();
    assert!(r.passed, "{r:?}");
    let step = r.step.as_ref().unwrap();
    assert_eq!(step.index, 2);
    assert_eq!(step.verdict, Some(Verdict::Deny));
    assert_eq!(step.rules, ["baseline/deny-egress-from-sensitive-session"]);
}
