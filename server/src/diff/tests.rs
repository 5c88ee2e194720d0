use std::path::{Path, PathBuf};

use super::*;

fn policy(text: &str) -> Policy {
    Policy::from_yaml("p.yaml", text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

const BASE: &str = r#"
version: 1
default: allow
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

fn render_of(old: &Policy, new: &Policy) -> String {
    render(
        Path::new("old.yaml"),
        Path::new("new.yaml"),
        &compare(old, new),
        &Flips::default(),
    )
}

#[test]
fn the_same_meaning_is_no_difference() {
    let a = policy(BASE);
    // Comments, key order, flow style and `tool: git` vs `[git]` do not change meaning.
    let b = policy(
        r#"
# reformatted
version: 1
default: allow
rules:
  - { id: ask-git, reason: git needs a look, decision: require_approval, match: { tool: [git] } }
  - id: no-force-push
    match:
      args: [[push], ["--force"]]
      tool: git
    decision: deny
    reason: force push rewrites history
"#,
    );
    let d = compare(&a, &b);
    assert!(d.is_empty(), "{d:?}");
    assert!(!d.has_details(), "{d:?}");
    let out = render_of(&a, &b);
    assert!(out.contains("(unchanged)"), "{out}");
    assert!(out.ends_with("no semantic difference\n"), "{out}");
}

#[test]
fn names_added_removed_and_changed_rules_field_by_field() {
    let a = policy(BASE);
    let b = policy(
        r#"
version: 1
default: allow
rules:
  - id: no-force-push
    decision: require_approval
    reason: force push rewrites history
    unbreakable: true
    match:
      tool: git
      args: [[push], ["--force", "-f"]]
  - id: no-main
    decision: deny
    reason: main is protected
    match: { tool: git, args: [[main]] }
"#,
    );
    let d = compare(&a, &b);
    assert!(!d.is_empty());
    let ids = |items: &[CanonicalItem]| items.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&d.rules.added), ["no-main"]);
    assert_eq!(ids(&d.rules.removed), ["ask-git"]);
    assert_eq!(d.rules.changed.len(), 1);
    let changed = &d.rules.changed[0];
    assert_eq!(changed.id, "no-force-push");
    let fields: Vec<&str> = changed.fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["decision", "conditions.args", "unbreakable"]);
    assert_eq!(changed.fields[0].old, "deny");
    assert_eq!(changed.fields[0].new, "require_approval");
    assert!(!d.rules.reordered);
    let out = render_of(&a, &b);
    for line in [
        "  + rule added: no-main (deny) at p.yaml:",
        "  - rule removed: ask-git (require_approval) at p.yaml:",
        "  ~ rule changed: no-force-push at p.yaml:",
        "      decision: deny → require_approval",
        "      conditions.args: [[\"push\"],[\"--force\"]] → [[\"push\"],[\"--force\",\"-f\"]]",
        "      unbreakable: (none) → true",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    assert!(out.ends_with("the policies differ\n"), "{out}");
}

#[test]
fn names_changed_reasons_and_redaction_patterns() {
    let redact = |pattern: &str, reason: &str| {
        policy(&format!(
            "version: 1\ndefault: allow\nrules:\n  - id: r\n    decision: allow_with_redaction\n    reason: {reason}\n    redact: [{{ pattern: '{pattern}' }}]\n"
        ))
    };
    let d = compare(
        &redact("AKIA[0-9A-Z]{16}", "keys"),
        &redact("sk-[a-z]+", "tokens"),
    );
    let fields: Vec<&str> = d.rules.changed[0]
        .fields
        .iter()
        .map(|f| f.field.as_str())
        .collect();
    assert_eq!(fields, ["reason", "redact patterns"]);
    assert_eq!(
        d.rules.changed[0].fields[1].new,
        "[\"sk-[a-z]+\" => \"[REDACTED]\"]"
    );
}

#[test]
fn names_default_profiles_hosts_timeout_and_triggers() {
    let a = policy(
        r#"
version: 1
default: allow
profiles: [coding-agent]
internal_hosts: ["*.corp.example.com"]
zone_triggers:
  - id: big
    zone: sensitive
    reason: big result
    on_result: { rows_over: 100 }
  - id: gone
    zone: commitment
    reason: checkout
    on_action: { resource_regex: 'checkout' }
"#,
    );
    let b = policy(
        r#"
version: 1
default: require_approval
profiles: [enterprise-safe]
internal_hosts: ["*.corp.example.com", "git.example.com"]
sessions: { idle_timeout: 8h }
zone_triggers:
  - id: big
    zone: sensitive
    reason: big result
    on_result: { rows_over: 1000 }
"#,
    );
    let d = compare(&a, &b);
    assert_eq!(d.default, Some((Verdict::Allow, Verdict::RequireApproval)));
    assert_eq!(d.profiles_added, ["enterprise-safe"]);
    assert_eq!(d.profiles_removed, ["coding-agent"]);
    assert_eq!(d.hosts_added, ["git.example.com"]);
    assert!(d.hosts_removed.is_empty());
    assert_eq!(d.idle_timeout, Some((None, Some(8 * 3_600_000_000))));
    assert_eq!(d.triggers.changed[0].id, "big");
    assert_eq!(
        d.triggers.changed[0].fields,
        [FieldChange {
            field: "on_result.rows_over".into(),
            old: "100".into(),
            new: "1000".into()
        }]
    );
    let out = render_of(&a, &b);
    for line in [
        "  default: allow → require_approval",
        "  + profile enterprise-safe added (",
        "  - profile coding-agent removed (4 rules, 0 zone triggers)",
        "  + internal_hosts added: git.example.com",
        "  sessions.idle_timeout: none → 8h",
        "  - zone trigger removed: gone (zone commitment) at p.yaml:",
        "  ~ zone trigger changed: big at p.yaml:",
        "      on_result.rows_over: 100 → 1000",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    // A profile's rules are counted on its line, not listed one by one.
    assert!(
        !out.contains("coding-agent/approve-privilege-change"),
        "{out}"
    );
    assert!(!out.contains("enterprise-safe/deny-payment"), "{out}");
}

#[test]
fn rule_order_is_a_difference() {
    let a = policy(BASE);
    let b = policy(
        r#"
version: 1
default: allow
rules:
  - id: no-force-push
    decision: deny
    reason: force push rewrites history
    match:
      tool: git
      args: [[push], ["--force"]]
  - id: ask-git
    decision: require_approval
    reason: git needs a look
    match: { tool: git }
"#,
    );
    let d = compare(&a, &b);
    assert!(!d.is_empty());
    assert!(d.rules.reordered);
    assert!(d.rules.changed.is_empty() && d.rules.added.is_empty());
    assert!(render_of(&a, &b).contains("rule order changed"));
}

fn scenario(text: &str) -> Vec<(PathBuf, String)> {
    vec![(PathBuf::from("s.yaml"), text.to_string())]
}

#[test]
fn lists_scenario_steps_whose_decision_changes() {
    let a = policy("version: 1\ndefault: allow\n");
    let b = policy(
        "version: 1\ndefault: allow\nrules:\n  - { id: no-post, decision: deny, reason: no posts, match: { channel: http, operation: send } }\n",
    );
    // `profile` is ignored, and `expect` need not hold: diff compares, it does not check.
    let s = scenario(
        "name: flips\nprofile: enterprise-safe\nsteps:\n  - http: GET https://example.com/\n    expect: deny\n  - report: { tags: [pii] }\n  - http: POST https://example.com/upload\n",
    );
    let f = flips(&a, &b, &s).unwrap();
    assert_eq!((f.files, f.steps), (1, 2));
    assert_eq!(f.changed.len(), 1);
    let flip = &f.changed[0];
    assert_eq!(flip.step, 3);
    assert_eq!((flip.old.as_str(), flip.new.as_str()), ("allow", "deny"));
    assert_eq!(flip.new_rules, ["no-post"]);
    let out = render(Path::new("a"), Path::new("b"), &compare(&a, &b), &f);
    assert!(
        out.contains("  s.yaml step 3 (http POST https://example.com/upload): allow [default] → deny [no-post]"),
        "{out}"
    );
    assert!(out.contains("  allow → deny: 1"), "{out}");

    let same = flips(&a, &a, &s).unwrap();
    assert!(same.changed.is_empty());
}

#[test]
fn a_broken_scenario_is_an_error() {
    let a = policy("version: 1\ndefault: allow\n");
    let e = flips(&a, &a, &scenario("name: x\nsteps:\n  - nope: 1\n")).unwrap_err();
    assert!(e.contains("s.yaml"), "{e}");
    let e = flips(&a, &a, &scenario("name: x\nsteps:\n  - http: GET\n")).unwrap_err();
    assert!(e.contains("s.yaml step 1"), "{e}");
}
