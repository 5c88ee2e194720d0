//! `wardend bench engine`: how long one policy decision takes in-process, for a realistic
//! 100-rule policy, next to the `cedar-policy` crate deciding an equivalent policy over
//! the same actions in the same run.
//!
//! The policy is generated ([`rules`]) and rendered both as Warden YAML and as Cedar
//! policies; the workload ([`workload`]) is a few hundred distinct actions of every
//! channel, judged in a session that is already in the `sensitive` zone with session
//! tags. Before anything is timed, both engines decide every workload action and must
//! agree on the verdict and on the rules behind it.
//!
//! What is timed, per decision:
//!
//! - **Warden**: `Policy::context` (egress, declared tags and sensitivity,
//!   self-protection) + `Policy::decide` (every rule, the most restrictive verdict, its
//!   rule ids and reason) on an action normalized in advance;
//! - **Warden with normalization**: the same, starting from the raw `warden.v1.Action`
//!   (`normalize::normalize`: paths, URLs, argv, command facts);
//! - **Cedar**: `Authorizer::is_authorized` on a request built in advance (its context
//!   holds Warden's normalized facts) with empty entities. Turning Cedar's determining
//!   policies into Warden's four verdicts is not timed.
//!
//! Cedar is built in only with the `cedar-bench` feature, so it never ships in the
//! production binary; without it the command measures Warden alone.

#[cfg(feature = "cedar-bench")]
mod cedar;
mod rules;
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use warden_proto::v1::Action;

use crate::normalize::{self, NormalizedAction};
use crate::policy::{Policy, SelfGuard};
use crate::session::Zone;

#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Measured passes over the workload, per engine.
    #[arg(long, default_value_t = 100)]
    pub rounds: usize,
    /// Unmeasured passes before them.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Passes each engine runs before the next engine takes over (the engines alternate
    /// block by block, so drift in the machine's speed hits both; 1 alternates every
    /// pass, which leaves each pass starting with caches the other engine filled).
    #[arg(long, default_value_t = 10)]
    pub block: usize,
    /// Also write the generated policies here (bench-100.yaml, bench-100.cedar).
    #[arg(long)]
    pub write_policies: Option<PathBuf>,
}

/// The session every workload action is judged in.
const ZONE: Zone = Zone::Sensitive;
const SESSION_TAGS: &[&str] = &["customer", "pii"];

/// Everything prepared before timing.
pub(crate) struct Bench {
    pub(crate) rules: Vec<rules::BenchRule>,
    pub(crate) policy: Policy,
    pub(crate) raw: Vec<Action>,
    pub(crate) actions: Vec<NormalizedAction>,
    pub(crate) session_tags: BTreeSet<String>,
}

impl Bench {
    /// Generates and compiles the policy and normalizes the workload.
    pub(crate) fn new() -> anyhow::Result<Bench> {
        let rules = rules::rules();
        let policy = Policy::from_yaml("bench-100 (generated)", &rules::warden_yaml(&rules))
            .map_err(|e| anyhow::anyhow!("the generated bench policy does not compile: {e}"))?;
        let raw = workload::actions();
        let actions = raw
            .iter()
            .map(|a| normalize::normalize(Some(a)))
            .collect::<Result<Vec<_>, _>>()
            .context("a workload action does not normalize")?;
        Ok(Bench {
            rules,
            policy,
            raw,
            actions,
            session_tags: SESSION_TAGS.iter().map(|t| t.to_string()).collect(),
        })
    }

    /// Warden's decision for one normalized action (what is timed).
    fn warden(&self, action: &NormalizedAction) -> crate::policy::Outcome {
        let subject = self.policy.context(action, SelfGuard::builtin());
        self.policy.decide(&subject, ZONE, &self.session_tags)
    }

    fn warden_raw(&self, raw: &Action) -> Option<crate::policy::Outcome> {
        let action = normalize::normalize(Some(raw)).ok()?;
        Some(self.warden(&action))
    }
}

/// Latency figures of one engine, in nanoseconds.
#[derive(Debug, Clone, Copy)]
struct Figures {
    p50: f64,
    p99: f64,
    mean: f64,
}

fn figures(samples: &mut [u64]) -> Figures {
    samples.sort_unstable();
    let at = |p: f64| {
        let i = ((samples.len() as f64 * p) as usize).min(samples.len().saturating_sub(1));
        samples.get(i).copied().unwrap_or(0) as f64
    };
    let mean = samples.iter().sum::<u64>() as f64 / samples.len().max(1) as f64;
    Figures {
        p50: at(0.50),
        p99: at(0.99),
        mean,
    }
}

/// Warden's samples grouped by the channel of their action (samples come in passes
/// over the workload, in workload order).
fn by_channel(bench: &Bench, samples: &[u64]) -> Vec<(&'static str, usize, Figures)> {
    let n = bench.actions.len().max(1);
    let mut groups: BTreeMap<&'static str, (usize, Vec<u64>)> = BTreeMap::new();
    for a in &bench.actions {
        groups.entry(group(a)).or_default().0 += 1;
    }
    for (k, ns) in samples.iter().enumerate() {
        if let Some(a) = bench.actions.get(k % n) {
            groups.entry(group(a)).or_default().1.push(*ns);
        }
    }
    groups
        .into_iter()
        .map(|(name, (count, mut ns))| (name, count, figures(&mut ns)))
        .collect()
}

fn group(a: &NormalizedAction) -> &'static str {
    match a.channel.as_str() {
        "mcp" | "sdk" => "mcp/sdk",
        other => other,
    }
}

/// Times `f` once per workload action, appending nanoseconds to `samples` when `keep`.
fn pass(n: usize, keep: bool, samples: &mut Vec<u64>, mut f: impl FnMut(usize)) {
    for i in 0..n {
        let start = Instant::now();
        f(i);
        let ns = start.elapsed().as_nanos();
        if keep {
            samples.push(u64::try_from(ns).unwrap_or(u64::MAX));
        }
    }
}

fn us(ns: f64) -> String {
    format!("{:.2} µs", ns / 1000.0)
}

fn row(name: &str, f: &Figures) {
    println!(
        "  {name:<46} p50 {:>10}   p99 {:>10}   mean {:>10}",
        us(f.p50),
        us(f.p99),
        us(f.mean)
    );
}

/// `wardend bench engine`.
pub fn run(args: &EngineArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rounds >= 1, "--rounds must be at least 1");
    let bench = Bench::new()?;
    if let Some(dir) = &args.write_policies {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let yaml = dir.join("bench-100.yaml");
        std::fs::write(&yaml, rules::warden_yaml(&bench.rules))
            .with_context(|| format!("writing {}", yaml.display()))?;
        let cedar = dir.join("bench-100.cedar");
        let text: String = rules::cedar_policies(&bench.rules)
            .into_iter()
            .map(|(id, p)| format!("@id(\"{id}\")\n{p}\n\n"))
            .collect();
        std::fs::write(&cedar, text).with_context(|| format!("writing {}", cedar.display()))?;
        println!("wrote {} and {}", yaml.display(), cedar.display());
    }
    if cfg!(debug_assertions) {
        println!("note: a debug build; the figures mean something only in a release build");
    }
    let n = bench.actions.len();
    let mut by_verdict: BTreeMap<String, usize> = BTreeMap::new();
    for a in &bench.actions {
        let o = bench.warden(a);
        let key = if o.matched_rules.is_empty() {
            format!("{} (default)", o.verdict)
        } else {
            o.verdict.to_string()
        };
        *by_verdict.entry(key).or_default() += 1;
    }
    println!(
        "wardend bench engine: {}-rule policy (version {}), {n} distinct actions, session zone {ZONE} with session tags [{}]",
        bench.policy.rule_count(),
        bench.policy.version().get(..12).unwrap_or_default(),
        SESSION_TAGS.join(", ")
    );
    println!(
        "workload verdicts (Warden): {}",
        by_verdict
            .iter()
            .map(|(v, c)| format!("{v} {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    #[cfg(feature = "cedar-bench")]
    let (cedar_engine, cedar_requests) = cedar_side(&bench)?;

    // Timer overhead: an empty measured call.
    let mut empty = Vec::with_capacity(n * args.rounds);
    let mut warden = Vec::with_capacity(n * args.rounds);
    let mut warden_raw = Vec::with_capacity(n * args.rounds);
    #[cfg(feature = "cedar-bench")]
    let mut cedar_ns = Vec::with_capacity(n * args.rounds);
    let total = args.warmup + args.rounds;
    let block = args.block.max(1);
    for first in (0..total).step_by(block) {
        let rounds = first..(first + block).min(total);
        let keep = |round: usize| round >= args.warmup;
        for round in rounds.clone() {
            pass(n, keep(round), &mut empty, |i| {
                black_box(i);
            });
        }
        for round in rounds.clone() {
            pass(n, keep(round), &mut warden, |i| {
                black_box(bench.warden(black_box(&bench.actions[i])));
            });
        }
        for round in rounds.clone() {
            pass(n, keep(round), &mut warden_raw, |i| {
                black_box(bench.warden_raw(black_box(&bench.raw[i])));
            });
        }
        #[cfg(feature = "cedar-bench")]
        for round in rounds.clone() {
            pass(n, keep(round), &mut cedar_ns, |i| {
                black_box(cedar_engine.is_authorized(black_box(&cedar_requests[i])));
            });
        }
    }
    let empty = figures(&mut empty);
    let per_channel = by_channel(&bench, &warden);
    let warden = figures(&mut warden);
    let warden_raw = figures(&mut warden_raw);
    println!(
        "{} passes x {n} actions per engine after {} warm-up passes, engines alternating every {block} passes; every sample includes the timer (~{:.0} ns, p50 of an empty call)",
        args.rounds, args.warmup, empty.p50
    );
    println!(
        "timed: Warden Policy::context (egress, tags, self-protection) + Policy::decide (all rules, verdict, rule ids, reason) on a normalized action; the second line adds normalize() of the raw Action"
    );
    #[cfg(feature = "cedar-bench")]
    println!(
        "timed: Cedar Authorizer::is_authorized on a prebuilt Request (context from Warden's normalization) with empty Entities; not timed: building requests, reading Warden's verdict from the determining policies"
    );
    row("Warden  context + decide", &warden);
    row("Warden  normalize + context + decide", &warden_raw);
    for (channel, count, f) in &per_channel {
        row(
            &format!("  context + decide, {channel} ({count} actions)"),
            f,
        );
    }
    #[cfg(feature = "cedar-bench")]
    {
        let cedar = figures(&mut cedar_ns);
        row("Cedar   is_authorized (request prebuilt)", &cedar);
        // What Cedar pays per request whatever the policies: the default permit alone.
        let baseline = cedar::CedarEngine::new(&[])?;
        let mut fixed = Vec::with_capacity(n * 10);
        for round in 0..10 {
            pass(n, round > 0, &mut fixed, |i| {
                black_box(baseline.is_authorized(black_box(&cedar_requests[i])));
            });
        }
        row("  is_authorized, default permit only", &figures(&mut fixed));
        println!(
            "Warden / Cedar (context + decide vs is_authorized): p50 {:.1} %, p99 {:.1} %, mean {:.1} %  (Cedar takes {:.1}x / {:.1}x / {:.1}x as long)",
            100.0 * warden.p50 / cedar.p50.max(1.0),
            100.0 * warden.p99 / cedar.p99.max(1.0),
            100.0 * warden.mean / cedar.mean.max(1.0),
            cedar.p50 / warden.p50.max(1.0),
            cedar.p99 / warden.p99.max(1.0),
            cedar.mean / warden.mean.max(1.0),
        );
        let met =
            warden.p50 * 10.0 <= cedar.p50 && warden.p50 <= 10_000.0 && warden.p99 <= 20_000.0;
        println!(
            "target (Warden <= 1/10 of Cedar, p50 <= 10 µs, p99 <= 20 µs): {}",
            if met { "met" } else { "NOT met" }
        );
    }
    #[cfg(not(feature = "cedar-bench"))]
    {
        println!(
            "target (p50 <= 10 µs, p99 <= 20 µs): {}",
            if warden.p50 <= 10_000.0 && warden.p99 <= 20_000.0 {
                "met"
            } else {
                "NOT met"
            }
        );
        println!(
            "Cedar is not built into this wardend; for the side-by-side run build with\n  cargo build --release -p warden-server --features cedar-bench"
        );
    }
    Ok(())
}

/// Cedar's engine and one prebuilt request per workload action, after checking that
/// Cedar and Warden agree on every action.
#[cfg(feature = "cedar-bench")]
fn cedar_side(bench: &Bench) -> anyhow::Result<(cedar::CedarEngine, Vec<cedar_policy::Request>)> {
    let engine = cedar::CedarEngine::new(&bench.rules)?;
    let requests = requests(bench, &engine)?;
    let disagreements = disagreements(bench, &engine, &requests);
    println!(
        "agreement with Cedar ({} policies: the rules as forbid/permit and a default permit): {}/{} actions decide the same verdict with the same rules",
        engine.policy_count(),
        requests.len() - disagreements.len(),
        requests.len()
    );
    if !disagreements.is_empty() {
        for d in disagreements.iter().take(5) {
            eprintln!("  {d}");
        }
        anyhow::bail!(
            "Warden and Cedar disagree on {} workload action(s); the comparison would not be fair",
            disagreements.len()
        );
    }
    Ok((engine, requests))
}

#[cfg(feature = "cedar-bench")]
fn requests(
    bench: &Bench,
    engine: &cedar::CedarEngine,
) -> anyhow::Result<Vec<cedar_policy::Request>> {
    bench
        .actions
        .iter()
        .map(|a| {
            let subject = bench.policy.context(a, SelfGuard::builtin());
            engine.request(&subject, ZONE, &bench.session_tags)
        })
        .collect()
}

/// Workload actions on which the engines differ, described.
#[cfg(feature = "cedar-bench")]
fn disagreements(
    bench: &Bench,
    engine: &cedar::CedarEngine,
    requests: &[cedar_policy::Request],
) -> Vec<String> {
    let mut out = Vec::new();
    for (i, (action, request)) in bench.actions.iter().zip(requests).enumerate() {
        let w = bench.warden(action);
        let c = engine.verdict(&engine.is_authorized(request));
        if c.as_ref() != Ok(&(w.verdict, w.matched_rules.clone())) {
            out.push(format!(
                "action {i} ({} {} {}): Warden {} {:?}, Cedar {:?}",
                action.channel.as_str(),
                action.tool,
                if action.command_line.is_empty() {
                    &action.resource
                } else {
                    &action.command_line
                },
                w.verdict,
                w.matched_rules,
                c
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests;
