//! `wardend diff`: what changes, by meaning, between two policy files, and which
//! decisions of given scenarios change with it. The review aid for a policy change.
//!
//! Rules and zone triggers are compared by id in the canonical form that enters the
//! policy version, so "changed" here means exactly what a changed version means:
//! comments, formatting and key order never show up, a changed pattern, reason or
//! decision always does. Scenarios run under both policies through the same step runner
//! as `wardend check` ([`check::run_text`]), whatever profile they name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use crate::check;
use crate::policy::{CanonicalItem, Origin, Policy, Verdict};

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The policy file before the change.
    pub old: PathBuf,
    /// The policy file after the change.
    pub new: PathBuf,
    /// Scenario files or globs to run under both policies; every step whose decision
    /// changes is listed (quote globs: 'policies/scenarios/*.yaml').
    #[arg(long = "scenario")]
    pub scenarios: Vec<String>,
}

/// Runs `wardend diff`: exit 0 when the policies mean the same, 1 when they differ (or a
/// scenario decides differently), 2 when a file cannot be read or compiled.
pub fn command(args: &DiffArgs) -> ExitCode {
    let old = Policy::from_file(&args.old);
    let new = Policy::from_file(&args.new);
    let (old, new) = match (old, new) {
        (Ok(old), Ok(new)) => (old, new),
        (old, new) => {
            for e in [old.err(), new.err()].into_iter().flatten() {
                eprintln!("{e}");
            }
            return ExitCode::from(2);
        }
    };
    let mut scenarios = Vec::new();
    if !args.scenarios.is_empty() {
        let files = match check::expand_globs(&args.scenarios) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("wardend diff: {e}");
                return ExitCode::from(2);
            }
        };
        for file in files {
            match std::fs::read_to_string(&file) {
                Ok(text) => scenarios.push((file, text)),
                Err(e) => {
                    eprintln!("{}: cannot read scenario file: {e}", file.display());
                    return ExitCode::from(2);
                }
            }
        }
    }
    let diff = compare(&old, &new);
    let flips = match flips(&old, &new, &scenarios) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", render(&args.old, &args.new, &diff, &flips));
    if diff.is_empty() && flips.changed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// One field of a rule or trigger that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldChange {
    /// `decision`, `reason`, `unbreakable`, `redact`, `conditions.args`, `zone`,
    /// `on_result.tags`, ...
    pub(crate) field: String,
    pub(crate) old: String,
    pub(crate) new: String,
}

/// A rule or trigger present in both policies whose canonical form differs.
#[derive(Debug, Clone)]
pub(crate) struct Changed {
    pub(crate) id: String,
    pub(crate) origin: Origin,
    pub(crate) fields: Vec<FieldChange>,
}

/// Rules (or zone triggers) added, removed and changed, by id.
#[derive(Debug, Default)]
pub(crate) struct ItemChanges {
    pub(crate) added: Vec<CanonicalItem>,
    pub(crate) removed: Vec<CanonicalItem>,
    pub(crate) changed: Vec<Changed>,
    /// The ids both policies have are in another order (matched rules and reasons are
    /// listed in policy order, so this is part of the version too).
    pub(crate) reordered: bool,
}

impl ItemChanges {
    fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && !self.reordered
    }
}

/// The semantic difference between two compiled policies.
#[derive(Debug)]
pub(crate) struct PolicyDiff {
    pub(crate) old_version: String,
    pub(crate) new_version: String,
    pub(crate) default: Option<(Verdict, Verdict)>,
    pub(crate) profiles_added: Vec<String>,
    pub(crate) profiles_removed: Vec<String>,
    pub(crate) hosts_added: Vec<String>,
    pub(crate) hosts_removed: Vec<String>,
    pub(crate) idle_timeout: Option<(Option<i64>, Option<i64>)>,
    pub(crate) rules: ItemChanges,
    pub(crate) triggers: ItemChanges,
}

impl PolicyDiff {
    /// No semantic difference: the versions are equal.
    pub(crate) fn is_empty(&self) -> bool {
        self.old_version == self.new_version
    }

    /// Whether any difference below was found (when the versions differ and this is
    /// false, the report says so rather than claiming nothing changed).
    fn has_details(&self) -> bool {
        self.default.is_some()
            || !self.profiles_added.is_empty()
            || !self.profiles_removed.is_empty()
            || !self.hosts_added.is_empty()
            || !self.hosts_removed.is_empty()
            || self.idle_timeout.is_some()
            || !self.rules.is_empty()
            || !self.triggers.is_empty()
    }
}

/// Compares two compiled policies.
pub(crate) fn compare(old: &Policy, new: &Policy) -> PolicyDiff {
    let old_default = old.default_verdict();
    let new_default = new.default_verdict();
    let old_idle = old.idle_timeout_us();
    let new_idle = new.idle_timeout_us();
    PolicyDiff {
        old_version: old.version().to_string(),
        new_version: new.version().to_string(),
        default: (old_default != new_default).then_some((old_default, new_default)),
        profiles_added: minus(new.profiles(), old.profiles()),
        profiles_removed: minus(old.profiles(), new.profiles()),
        hosts_added: minus(new.internal_host_patterns(), old.internal_host_patterns()),
        hosts_removed: minus(old.internal_host_patterns(), new.internal_host_patterns()),
        idle_timeout: (old_idle != new_idle).then_some((old_idle, new_idle)),
        rules: items(&old.canonical_rules(), &new.canonical_rules(), "conditions"),
        triggers: items(&old.canonical_triggers(), &new.canonical_triggers(), ""),
    }
}

/// Entries of `a` not in `b`, in `a`'s order.
fn minus(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().filter(|x| !b.contains(x)).cloned().collect()
}

/// Compares rules or triggers by id. `match_name` renames a rule's `match` key in field
/// names (`conditions.args`); triggers keep `on_action` / `on_result`.
fn items(old: &[CanonicalItem], new: &[CanonicalItem], match_name: &str) -> ItemChanges {
    let old_ids: BTreeMap<&str, &CanonicalItem> = old.iter().map(|i| (i.id.as_str(), i)).collect();
    let new_ids: BTreeMap<&str, &CanonicalItem> = new.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut out = ItemChanges {
        added: new
            .iter()
            .filter(|i| !old_ids.contains_key(i.id.as_str()))
            .cloned()
            .collect(),
        removed: old
            .iter()
            .filter(|i| !new_ids.contains_key(i.id.as_str()))
            .cloned()
            .collect(),
        ..ItemChanges::default()
    };
    for item in new {
        let Some(before) = old_ids.get(item.id.as_str()) else {
            continue;
        };
        let fields = fields(&before.spec, &item.spec, match_name);
        if !fields.is_empty() {
            out.changed.push(Changed {
                id: item.id.clone(),
                origin: item.origin.clone(),
                fields,
            });
        }
    }
    let common_old: Vec<&str> = old
        .iter()
        .map(|i| i.id.as_str())
        .filter(|id| new_ids.contains_key(id))
        .collect();
    let common_new: Vec<&str> = new
        .iter()
        .map(|i| i.id.as_str())
        .filter(|id| old_ids.contains_key(id))
        .collect();
    out.reordered = common_old != common_new;
    out
}

/// Field-by-field differences of two canonical objects; the conditions objects
/// (`match`, `on_action`, `on_result`) are compared condition by condition.
fn fields(old: &Value, new: &Value, match_name: &str) -> Vec<FieldChange> {
    let mut out = Vec::new();
    for key in keys(old, new) {
        let (a, b) = (&old[key.as_str()], &new[key.as_str()]);
        if a == b {
            continue;
        }
        let nested = matches!(key.as_str(), "match" | "on_action" | "on_result");
        let name = match key.as_str() {
            "match" if !match_name.is_empty() => match_name.to_string(),
            "redact" => "redact patterns".to_string(),
            k => k.to_string(),
        };
        if nested && a.is_object() && b.is_object() {
            for sub in keys(a, b) {
                let (x, y) = (&a[sub.as_str()], &b[sub.as_str()]);
                if x != y {
                    out.push(FieldChange {
                        field: format!("{name}.{sub}"),
                        old: show(x),
                        new: show(y),
                    });
                }
            }
        } else {
            // Decisions and zones are names; everything else is shown as written.
            let bare = |v: &Value| match (key.as_str(), v.as_str()) {
                ("decision" | "zone", Some(s)) => s.to_string(),
                _ => show(v),
            };
            out.push(FieldChange {
                field: name,
                old: bare(a),
                new: bare(b),
            });
        }
    }
    out
}

/// Keys of either object, sorted, without `id`.
fn keys(a: &Value, b: &Value) -> BTreeSet<String> {
    [a, b]
        .iter()
        .filter_map(|v| v.as_object())
        .flat_map(|o| o.keys().cloned())
        .filter(|k| k != "id")
        .collect()
}

/// A canonical value for a report line: strings bare, redactions as
/// `pattern => replacement`, everything else as compact JSON; absent as `(none)`.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "(none)".into(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) if items.iter().all(|i| i.get("pattern").is_some()) => {
            let shown: Vec<String> = items
                .iter()
                .map(|i| format!("{} => {}", i["pattern"], i["replacement"]))
                .collect();
            format!("[{}]", shown.join(", "))
        }
        v => v.to_string(),
    }
}

/// One scenario step whose decision differs between the policies.
#[derive(Debug, Clone)]
pub(crate) struct Flip {
    pub(crate) file: PathBuf,
    pub(crate) step: usize,
    pub(crate) label: String,
    pub(crate) old: String,
    pub(crate) old_rules: Vec<String>,
    pub(crate) new: String,
    pub(crate) new_rules: Vec<String>,
}

/// Scenario steps run under both policies.
#[derive(Debug, Default)]
pub(crate) struct Flips {
    pub(crate) files: usize,
    /// Action steps judged under both.
    pub(crate) steps: usize,
    pub(crate) changed: Vec<Flip>,
}

/// Runs every scenario (file name, text) under both policies and lists the steps whose
/// decision differs. A scenario that cannot be parsed, or has an invalid step, is an
/// error: a review aid that silently skips steps is worse than none.
pub(crate) fn flips(
    old: &Policy,
    new: &Policy,
    scenarios: &[(PathBuf, String)],
) -> Result<Flips, String> {
    let mut out = Flips::default();
    for (file, text) in scenarios {
        let before = check::run_text(old, file, text);
        let after = check::run_text(new, file, text);
        for r in [&before, &after] {
            if let Some(e) = &r.error {
                return Err(e.clone());
            }
            if let Some(s) = r.steps.iter().find(|s| !s.failure.is_empty()) {
                return Err(format!(
                    "{} step {}: {}",
                    file.display(),
                    s.index,
                    s.failure
                ));
            }
        }
        out.files += 1;
        for (a, b) in before.steps.iter().zip(&after.steps) {
            // Reports and session switches decide nothing (a refused action has a
            // reason and no verdict).
            if a.verdict.is_none() && a.reason.is_empty() {
                continue;
            }
            out.steps += 1;
            let decided = |s: &check::StepResult| {
                s.verdict
                    .map_or_else(|| "refused".to_string(), |v| v.to_string())
            };
            let (was, is) = (decided(a), decided(b));
            if was != is {
                out.changed.push(Flip {
                    file: file.clone(),
                    step: a.index,
                    label: a.label.clone(),
                    old: was,
                    old_rules: a.rules.clone(),
                    new: is,
                    new_rules: b.rules.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// The human report.
pub(crate) fn render(old: &Path, new: &Path, d: &PolicyDiff, flips: &Flips) -> String {
    let mut out = String::new();
    let short = |v: &str| v.chars().take(12).collect::<String>();
    let _ = writeln!(out, "policy diff: {} → {}", old.display(), new.display());
    let _ = writeln!(
        out,
        "  version: {} → {}{}",
        short(&d.old_version),
        short(&d.new_version),
        if d.is_empty() { " (unchanged)" } else { "" }
    );
    if let Some((a, b)) = d.default {
        let _ = writeln!(out, "  default: {a} → {b}");
    }
    // Rules and triggers that arrive or leave with a whole profile are counted on the
    // profile's line rather than listed one by one.
    let from_profile = |id: &str, profiles: &[String]| {
        profiles.iter().any(|p| {
            id.strip_prefix(p.as_str())
                .is_some_and(|r| r.starts_with('/'))
        })
    };
    for (sign, word, profiles, rules, triggers) in [
        (
            "+",
            "added",
            &d.profiles_added,
            &d.rules.added,
            &d.triggers.added,
        ),
        (
            "-",
            "removed",
            &d.profiles_removed,
            &d.rules.removed,
            &d.triggers.removed,
        ),
    ] {
        for p in profiles {
            let count = |items: &[CanonicalItem]| {
                items
                    .iter()
                    .filter(|i| from_profile(&i.id, std::slice::from_ref(p)))
                    .count()
            };
            let _ = writeln!(
                out,
                "  {sign} profile {p} {word} ({} rules, {} zone triggers)",
                count(rules),
                count(triggers)
            );
        }
    }
    for (sign, word, hosts) in [
        ("+", "added", &d.hosts_added),
        ("-", "removed", &d.hosts_removed),
    ] {
        for h in hosts {
            let _ = writeln!(out, "  {sign} internal_hosts {word}: {h}");
        }
    }
    if let Some((a, b)) = d.idle_timeout {
        let shown = |v: Option<i64>| v.map_or_else(|| "none".into(), crate::duration::format_us);
        let _ = writeln!(out, "  sessions.idle_timeout: {} → {}", shown(a), shown(b));
    }
    for (what, changes) in [("rule", &d.rules), ("zone trigger", &d.triggers)] {
        for (sign, word, items, profiles) in [
            ("+", "added", &changes.added, &d.profiles_added),
            ("-", "removed", &changes.removed, &d.profiles_removed),
        ] {
            for i in items.iter().filter(|i| !from_profile(&i.id, profiles)) {
                let _ = writeln!(
                    out,
                    "  {sign} {what} {word}: {} ({}) at {}",
                    i.id,
                    summary(&i.spec),
                    i.origin
                );
            }
        }
        for c in &changes.changed {
            let _ = writeln!(out, "  ~ {what} changed: {} at {}", c.id, c.origin);
            for f in &c.fields {
                let _ = writeln!(out, "      {}: {} → {}", f.field, f.old, f.new);
            }
        }
        if changes.reordered {
            let _ = writeln!(
                out,
                "  ~ {what} order changed (matched rules and reasons are listed in policy order)"
            );
        }
    }
    if !d.is_empty() && !d.has_details() {
        let _ = writeln!(
            out,
            "  ~ the canonical forms differ in a way not itemized above"
        );
    }
    if flips.files > 0 {
        let _ = writeln!(
            out,
            "scenarios: {} file(s), {} action step(s) run under both policies; {} decision(s) changed",
            flips.files,
            flips.steps,
            flips.changed.len()
        );
        let mut transitions: BTreeMap<(String, String), usize> = BTreeMap::new();
        for f in &flips.changed {
            let _ = writeln!(
                out,
                "  {} step {} ({}): {} [{}] → {} [{}]",
                f.file.display(),
                f.step,
                f.label,
                f.old,
                rules_or_default(&f.old_rules),
                f.new,
                rules_or_default(&f.new_rules)
            );
            *transitions
                .entry((f.old.clone(), f.new.clone()))
                .or_default() += 1;
        }
        for ((a, b), n) in &transitions {
            let _ = writeln!(out, "  {a} → {b}: {n}");
        }
    }
    let _ = writeln!(
        out,
        "{}",
        if d.is_empty() && flips.changed.is_empty() {
            "no semantic difference"
        } else {
            "the policies differ"
        }
    );
    out
}

/// `decision` of a rule, `zone` of a trigger.
fn summary(spec: &Value) -> String {
    spec.get("decision")
        .or_else(|| spec.get("zone"))
        .and_then(Value::as_str)
        .map(|s| match spec.get("zone") {
            Some(_) => format!("zone {s}"),
            None => s.to_string(),
        })
        .unwrap_or_default()
}

fn rules_or_default(rules: &[String]) -> String {
    if rules.is_empty() {
        "default".into()
    } else {
        rules.join(", ")
    }
}

#[cfg(test)]
mod tests;
