//! The text `wardend simulate` prints.

use std::fmt::Write as _;

use super::{Summary, Transition};
use crate::cli::format_time_us;
use crate::policy::Policy;

/// The report `wardend simulate` prints.
pub fn render(policy: &Policy, source: &str, since_us: Option<i64>, s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wardend simulate: {} records of {source} replayed through policy {} (version {}, {})",
        s.records,
        policy.name(),
        short(policy.version()),
        policy.source()
    );
    if let Some(since) = since_us {
        let _ = writeln!(
            out,
            "counting decisions recorded since {} (earlier records only rebuild session state)",
            format_time_us(since)
        );
    }
    if !s.old_versions.is_empty() {
        let versions: Vec<String> = s
            .old_versions
            .iter()
            .map(|(v, n)| format!("{} ({n})", short(v)))
            .collect();
        let _ = writeln!(
            out,
            "recorded under policy version(s): {}",
            versions.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "note: secrets redacted in the audit log stay redacted in the replay; only the built-in self-protection paths are known"
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "sessions: {}  decisions replayed: {}  unchanged: {}  changed: {}",
        s.sessions.len(),
        s.decisions,
        s.unchanged,
        s.changed
    );
    if s.rules_changed > 0 {
        let _ = writeln!(
            out,
            "same verdict, different rules: {} (not counted as changed)",
            s.rules_changed
        );
    }
    if s.overridden > 0 {
        let _ = writeln!(
            out,
            "break-glass overrides replayed but not compared: {}",
            s.overridden
        );
    }
    if s.skipped > 0 {
        let _ = writeln!(out, "records that could not be replayed: {}", s.skipped);
        for (seq, why) in &s.skips {
            let _ = writeln!(out, "  #{seq}: {why}");
        }
    }
    if s.transitions.is_empty() {
        return out;
    }
    let mut transitions: Vec<(&Transition, &u64)> = s.transitions.iter().collect();
    transitions.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let _ = writeln!(out, "\ntransitions:");
    for (t, n) in &transitions {
        let _ = writeln!(out, "  {:<40} {n:>6}", arrow(t));
    }
    let _ = writeln!(out, "\nby new rule:");
    for (t, _) in &transitions {
        let mut rules: Vec<(&String, &u64)> = s
            .by_rule
            .iter()
            .filter(|((rt, _), _)| rt == *t)
            .map(|((_, rule), n)| (rule, n))
            .collect();
        rules.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        for (rule, n) in rules {
            let _ = writeln!(out, "  {:<40} {rule:<48} {n:>6}", arrow(t));
        }
    }
    let _ = writeln!(out, "\nexamples:");
    for (t, _) in &transitions {
        let _ = writeln!(out, "  {}", arrow(t));
        for e in s.examples.get(*t).into_iter().flatten() {
            let zone = if e.old_zone == e.new_zone {
                format!("zone {}", e.new_zone)
            } else {
                format!("zone {} → {}", e.old_zone, e.new_zone)
            };
            let _ = writeln!(
                out,
                "    #{:<6} {}  {}/{}/{}  {:<5} {}",
                e.seq,
                format_time_us(e.time_us),
                e.session.tenant,
                e.session.agent,
                e.session.session,
                e.channel,
                e.what
            );
            let _ = writeln!(
                out,
                "            was {} [{}] → now {} [{}]  {zone}: {}",
                t.0,
                rule_list(&e.old_rules),
                t.1,
                rule_list(&e.new_rules),
                e.new_reason
            );
        }
    }
    out
}

fn arrow(t: &Transition) -> String {
    format!("{} → {}", t.0, t.1)
}

fn rule_list(rules: &[String]) -> String {
    if rules.is_empty() {
        "default".into()
    } else {
        rules.join(",")
    }
}

fn short(version: &str) -> &str {
    version.get(..12).unwrap_or(version)
}
