use std::collections::{BTreeSet, HashSet};

use super::rules::{self, Cond};
use super::*;
use crate::policy::Verdict;

#[test]
fn generated_policy_compiles_with_100_rules() {
    let bench = Bench::new().expect("bench policy and workload");
    assert_eq!(bench.rules.len(), 100);
    assert_eq!(bench.policy.rule_count(), 100);
    let ids: HashSet<&str> = bench.rules.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 100, "rule ids are unique");
    // Every kind of verdict is in the policy.
    let verdicts: BTreeSet<Verdict> = bench.rules.iter().map(|r| r.verdict).collect();
    assert_eq!(verdicts.len(), 4);
}

#[test]
fn workload_is_a_few_hundred_distinct_actions_with_every_outcome() {
    let bench = Bench::new().expect("bench policy and workload");
    assert!(bench.actions.len() >= 300, "{}", bench.actions.len());
    let distinct: HashSet<String> = bench.raw.iter().map(|a| format!("{a:?}")).collect();
    assert_eq!(
        distinct.len(),
        bench.raw.len(),
        "no two workload actions alike"
    );
    let mut outcomes = BTreeSet::new();
    let mut matched = HashSet::new();
    for a in &bench.actions {
        let o = bench.warden(a);
        outcomes.insert((o.verdict, o.matched_rules.is_empty()));
        matched.extend(o.matched_rules);
    }
    for v in [
        Verdict::Allow,
        Verdict::AllowWithRedaction,
        Verdict::RequireApproval,
        Verdict::Deny,
    ] {
        assert!(
            outcomes.contains(&(v, false)),
            "no action decided {v} by a rule"
        );
    }
    assert!(
        outcomes.contains(&(Verdict::Allow, true)),
        "no action left to the default"
    );
    // Most rules decide some action (rules for other zones and tenants may not).
    assert!(
        matched.len() >= 60,
        "only {} rules ever decide",
        matched.len()
    );
}

#[test]
fn cedar_rendering_needs_no_escaping() {
    for r in rules::rules() {
        for c in &r.conds {
            let patterns: Vec<&str> = match c {
                Cond::ResourceRegex(_, likes) | Cond::CommandRegex(_, likes) => likes.to_vec(),
                Cond::Tool(v) | Cond::Resource(v) | Cond::Command(v) | Cond::HostGlob(v) => {
                    v.to_vec()
                }
                _ => Vec::new(),
            };
            for p in patterns {
                assert!(
                    !p.contains(['"', '\\']),
                    "{}: pattern {p:?} would need escaping in Cedar",
                    r.id
                );
            }
            if let Cond::Resource(_) = c {
                // Resource globs only where Warden matches the resource alone.
                let channels = r.conds.iter().find_map(|c| match c {
                    Cond::Channel(v) => Some(*v),
                    _ => None,
                });
                let channels = channels.unwrap_or(&["exec"]);
                assert!(
                    !channels.iter().any(|c| *c == "exec" || *c == "shell"),
                    "{}: resource globs in a command rule",
                    r.id
                );
            }
        }
    }
}

#[cfg(feature = "cedar-bench")]
#[test]
fn warden_and_cedar_agree_on_every_workload_action() {
    let bench = Bench::new().expect("bench policy and workload");
    let engine = super::cedar::CedarEngine::new(&bench.rules).expect("Cedar policies parse");
    assert_eq!(engine.policy_count(), 101);
    let requests = super::requests(&bench, &engine).expect("requests");
    let disagreements = super::disagreements(&bench, &engine, &requests);
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}
