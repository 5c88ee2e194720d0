//! `wardend diff` and `wardend certify` end to end: the real binary, real files, exit
//! codes and output.

use std::path::{Path, PathBuf};

use warden_tests::wardend_cli;

const OLD: &str = r#"version: 1
name: team
default: allow
profiles: [baseline]
rules:
  - id: ask-git
    decision: require_approval
    reason: git needs a look
    match: { tool: git }
  - id: no-force-push
    decision: deny
    reason: force push rewrites history
    match:
      tool: git
      args: [[push], ["--force"]]
"#;

const NEW: &str = r#"version: 1
name: team
default: require_approval
profiles: [baseline]
rules:
  - id: no-force-push
    decision: require_approval
    reason: force push rewrites history
    match:
      tool: git
      args: [[push], ["--force", "-f"]]
  - id: no-main
    decision: deny
    reason: main is protected
    match: { tool: git, args: [[main]] }
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn diff_names_added_removed_and_changed_rules() {
    let dir = tempfile::tempdir().unwrap();
    let old = write(dir.path(), "old.yaml", OLD);
    let new = write(dir.path(), "new.yaml", NEW);
    let (code, out, err) = wardend_cli(&["diff", s(&old), s(&new)]);
    assert_eq!(code, 1, "{out}{err}");
    for line in [
        "  default: allow → require_approval",
        &format!("  + rule added: no-main (deny) at {}:12:9", new.display()),
        &format!(
            "  - rule removed: ask-git (require_approval) at {}:6:9",
            old.display()
        ),
        &format!("  ~ rule changed: no-force-push at {}:6:9", new.display()),
        "      decision: deny → require_approval",
        "      conditions.args: [[\"push\"],[\"--force\"]] → [[\"push\"],[\"--force\",\"-f\"]]",
        "the policies differ",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    // Unchanged parts are not mentioned.
    assert!(!out.contains("profile"), "{out}");
    assert!(!out.contains("reason"), "{out}");
}

#[test]
fn diff_of_a_file_with_itself_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let old = write(dir.path(), "old.yaml", OLD);
    // Comments and formatting are not meaning.
    let same = write(
        dir.path(),
        "same.yaml",
        &format!(
            "# reformatted\n{}",
            OLD.replace("{ tool: git }", "{ tool: [git] }")
        ),
    );
    for other in [&old, &same] {
        let (code, out, err) = wardend_cli(&["diff", s(&old), s(other)]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("(unchanged)"), "{out}");
        assert!(out.ends_with("no semantic difference\n"), "{out}");
    }
}

#[test]
fn diff_prints_scenario_steps_whose_decision_flips() {
    let dir = tempfile::tempdir().unwrap();
    let old = write(dir.path(), "old.yaml", OLD);
    let new = write(dir.path(), "new.yaml", NEW);
    let scenario = write(
        dir.path(),
        "07-git.yaml",
        "name: git work\nsteps:\n  - exec: ls\n    expect: allow\n  - exec: git push origin main\n    expect: require_approval\n  - exec: git push -f origin feature\n    expect: allow\n",
    );
    let (code, out, err) = wardend_cli(&["diff", s(&old), s(&new), "--scenario", s(&scenario)]);
    assert_eq!(code, 1, "{out}{err}");
    for line in [
        "scenarios: 1 file(s), 3 action step(s) run under both policies; 2 decision(s) changed",
        &format!(
            "  {} step 1 (exec ls): allow [default] → require_approval [default]",
            scenario.display()
        ),
        &format!(
            "  {} step 2 (exec git push origin main): require_approval [ask-git] → deny [no-main]",
            scenario.display()
        ),
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    // Step 3 is held for approval under both (by other rules): not a flip.
    assert!(!out.contains("step 3"), "{out}");
    assert!(out.contains("  allow → require_approval: 1"), "{out}");
    assert!(out.contains("  require_approval → deny: 1"), "{out}");

    // The same scenario under one policy twice: nothing flips.
    let (code, out, _) = wardend_cli(&["diff", s(&old), s(&old), "--scenario", s(&scenario)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 decision(s) changed"), "{out}");
}

#[test]
fn diff_of_an_invalid_file_exits_2_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let old = write(dir.path(), "old.yaml", OLD);
    let bad = write(
        dir.path(),
        "bad.yaml",
        "version: 1\ndefault: allow\nrules:\n  - id: a\n    decision: nope\n    reason: x\n",
    );
    let (code, out, err) = wardend_cli(&["diff", s(&old), s(&bad)]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains(&format!(
            "{}:5:15: unknown decision \"nope\"",
            bad.display()
        )),
        "{err}"
    );
    let missing = dir.path().join("missing.yaml");
    let (code, _, err) = wardend_cli(&["diff", s(&missing), s(&old)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read policy file"), "{err}");
}

#[test]
fn certify_minimal_passes_the_default_policy() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("certify.xml");
    let (code, out, err) = wardend_cli(&["certify", "--suite", "minimal", "--junit", s(&junit)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("wardend certify: suite minimal ("), "{out}");
    for category in [
        "privilege escalation",
        "credential access",
        "destructive operations",
        "exfiltration after sensitive reads",
        "supply-chain publishing",
        "payment and checkout",
        "environment exfiltration",
        "self-protection",
        "benign controls (must stay allowed)",
    ] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(category))
            .unwrap_or_else(|| panic!("no line for {category} in\n{out}"));
        assert!(line.ends_with("100%"), "{line}");
    }
    assert!(out.contains("result: PASS"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<testsuite name=\"self-protection\""), "{xml}");
    assert!(!xml.contains("<failure"), "{xml}");
}

#[test]
fn certify_fails_a_permissive_policy_and_lists_the_attacks() {
    let dir = tempfile::tempdir().unwrap();
    let open = write(
        dir.path(),
        "open.yaml",
        "version: 1\nname: open\ndefault: allow\n",
    );
    let (code, out, err) = wardend_cli(&["certify", "--policy", s(&open), "--suite", "minimal"]);
    assert_eq!(code, 1, "{out}{err}");
    for category in [
        "privilege escalation",
        "credential access",
        "destructive operations",
        "supply-chain publishing",
        "self-protection",
    ] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(category))
            .unwrap_or_else(|| panic!("no line for {category} in\n{out}"));
        assert!(line.ends_with(" 0%"), "{line}");
    }
    let benign = out
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with("benign controls (must stay allowed)")
        })
        .unwrap();
    assert!(benign.ends_with("100%"), "{benign}");
    assert!(
        out.contains(
            "  FAIL minimal/privilege-escalation/sudo-bash — sudo bash: the attack was allowed"
        ),
        "{out}"
    );
    assert!(
        out.contains("  FAIL minimal/exfiltration/dotenv-then-post"),
        "{out}"
    );
    assert!(out.contains("result: FAIL ("), "{out}");

    let (code, _, err) = wardend_cli(&[
        "certify",
        "--policy",
        s(&dir.path().join("missing.yaml")),
        "--suite",
        "minimal",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read policy file"), "{err}");
}
