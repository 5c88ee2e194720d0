//! `wardend simulate`: replays the sessions recorded in the audit log through a new
//! policy and reports which decisions would change, and why.
//!
//! Records are read in sequence order and every session (tenant, agent, session) is
//! replayed statefully, through the same [`session::judge`] and [`session::observe`] the
//! daemon runs, with the new policy:
//!
//! - an `evaluate` record is judged again: its action is rebuilt from the stored JSON as a
//!   `warden.v1.Action` and normalized again by [`normalize::normalize`], the daemon's
//!   own normalizer, and the new verdict is compared with the recorded one;
//! - a `report` record is observed again (its `ResultMeta` JSON gives sensitivity, tags,
//!   rows, bytes and egress), so a result that escalates the zone under the new policy
//!   changes the decisions after it;
//! - `session_open` starts a session and `session_close` ends it; later actions of an
//!   ended session (closed, or idle past the new policy's `sessions.idle_timeout`) are
//!   `refused`, as the daemon would refuse them.
//!
//! The comparison is between policies: a decision that an approval grant turned into
//! allow (or an approver's refusal into deny) counts as the `require_approval` the
//! policy asked for, and a decision that a break-glass grant overrode is replayed for
//! the session's state but not compared.
//!
//! What a replay cannot know: secrets that the audit log redacted stay redacted (a rule
//! matching a secret's value sees `[REDACTED]`), and only the built-in self-protection
//! paths are known, as in `wardend check` (not the recording daemon's own binary, policy
//! file and database). Records before `--since` are replayed to rebuild session state but
//! not counted.

mod report;
mod since;
mod stored;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::audit::{AuditRow, KIND_EVALUATE, KIND_REPORT, KIND_SESSION_CLOSE, KIND_SESSION_OPEN};
use crate::cli::{DbArgs, action_summary};
use crate::policy::{Policy, SelfGuard, Verdict};
use crate::session::{self, Escalation, SessionState};
use crate::store::{AuditFilter, SessionKey};
pub use report::render;
pub use since::parse_since;
use stored::{stored_action, stored_observation};

/// The new verdict of an action whose session had ended under the new policy.
pub const REFUSED: &str = "refused";
/// Stands for "no rule matched" in per-rule counts.
pub const DEFAULT_RULE: &str = "(default)";
/// Stands for "the session had ended" in per-rule counts.
pub const ENDED_RULE: &str = "(session ended)";

/// Records read from the store per query.
const PAGE: u32 = 1000;
/// Records that could not be replayed, listed in the report.
const MAX_LISTED_SKIPS: usize = 5;

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The new policy: recorded sessions are replayed through it.
    #[arg(long)]
    pub policy: PathBuf,
    #[command(flatten)]
    pub db: DbArgs,
    /// Count only decisions recorded at or after this time: RFC 3339 UTC
    /// (2026-11-20T00:00:00Z) or a duration back from now (24h, 7d). Earlier records
    /// still rebuild session state.
    #[arg(long)]
    pub since: Option<String>,
    /// Only this tenant's sessions. Default: every tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Changed decisions shown per transition.
    #[arg(long, default_value_t = 3)]
    pub examples: usize,
}

/// A transition: (recorded verdict, new verdict).
pub type Transition = (String, String);

/// One changed decision, for the report.
#[derive(Debug, Clone)]
pub struct Example {
    pub seq: u64,
    pub time_us: i64,
    pub session: SessionKey,
    pub channel: String,
    /// The action as the timeline shows it (command line, resource or tool).
    pub what: String,
    pub old_rules: Vec<String>,
    pub new_rules: Vec<String>,
    pub new_reason: String,
    pub old_zone: String,
    pub new_zone: String,
}

/// What a replay found.
#[derive(Debug, Default)]
pub struct Summary {
    /// Audit records read (every kind, before `--since` included).
    pub records: u64,
    /// Decisions replayed and compared (evaluate records at or after `--since`).
    pub decisions: u64,
    pub unchanged: u64,
    pub changed: u64,
    /// Same verdict, different matched rules.
    pub rules_changed: u64,
    /// Decisions a break-glass grant overrode: replayed for the session state, not
    /// compared (the record does not say whether the policy denied or asked).
    pub overridden: u64,
    /// Sessions with at least one compared decision.
    pub sessions: HashSet<SessionKey>,
    /// Changed decisions per transition.
    pub transitions: BTreeMap<Transition, u64>,
    /// Changed decisions per transition and new rule (a decision counts once per rule).
    pub by_rule: BTreeMap<(Transition, String), u64>,
    /// Up to `--examples` changed decisions per transition, in sequence order.
    pub examples: BTreeMap<Transition, Vec<Example>>,
    /// Compared decisions per recorded policy version.
    pub old_versions: BTreeMap<String, u64>,
    /// Records that could not be replayed: how many, and the first few (seq, why).
    pub skipped: u64,
    pub skips: Vec<(u64, String)>,
}

/// Replays audit records, in sequence order, through one policy.
pub struct Replay<'a> {
    policy: &'a Policy,
    guard: &'a SelfGuard,
    since_us: i64,
    max_examples: usize,
    sessions: HashMap<SessionKey, SessionState>,
    summary: Summary,
}

/// The new decision for one recorded action.
struct NewDecision {
    verdict: &'static str,
    rules: Vec<String>,
    reason: String,
    zone: String,
}

impl<'a> Replay<'a> {
    /// A replay through `policy` that counts decisions recorded at or after `since_us`
    /// and keeps `max_examples` examples per transition.
    pub fn new(policy: &'a Policy, since_us: i64, max_examples: usize) -> Replay<'a> {
        Replay {
            policy,
            guard: SelfGuard::builtin(),
            since_us,
            max_examples,
            sessions: HashMap::new(),
            summary: Summary::default(),
        }
    }

    /// Replays the next record; records must come in sequence order.
    pub fn record(&mut self, row: &AuditRow) {
        self.summary.records += 1;
        let b = &row.body;
        let key = SessionKey {
            tenant: b.tenant.clone(),
            agent: b.agent.clone(),
            session: b.session.clone(),
        };
        match b.kind.as_str() {
            KIND_EVALUATE => self.evaluate(row, key),
            KIND_REPORT => self.report(row, key),
            KIND_SESSION_OPEN => {
                self.sessions
                    .entry(key)
                    .or_insert_with(|| SessionState::new(b.time_us));
            }
            KIND_SESSION_CLOSE => {
                let state = self
                    .sessions
                    .entry(key)
                    .or_insert_with(|| SessionState::new(b.time_us));
                state.closed_us.get_or_insert(b.time_us);
            }
            // Kinds this version does not know decide nothing.
            _ => {}
        }
    }

    /// What the replay found.
    pub fn finish(self) -> Summary {
        self.summary
    }

    fn skip(&mut self, seq: u64, why: String) {
        self.summary.skipped += 1;
        if self.summary.skips.len() < MAX_LISTED_SKIPS {
            self.summary.skips.push((seq, why));
        }
    }

    fn evaluate(&mut self, row: &AuditRow, key: SessionKey) {
        let b = &row.body;
        let Some(recorded) = Verdict::parse(&b.verdict) else {
            return self.skip(row.seq, format!("unknown recorded verdict {:?}", b.verdict));
        };
        // Compare what the policies decide, not what grants made of it: a decision that
        // went through an approval was a require_approval of the policy; one that a
        // break-glass grant overrode was a refusal of unknown kind (replayed, not compared).
        let old = match (b.break_glass_id.is_empty(), b.approval_id.is_empty()) {
            (false, _) => None,
            (true, false) => Some(Verdict::RequireApproval),
            (true, true) => Some(recorded),
        };
        let action = match stored_action(&b.action) {
            Ok(a) => a,
            Err(e) => return self.skip(row.seq, e),
        };
        let now = b.time_us;
        let state = self
            .sessions
            .entry(key.clone())
            .or_insert_with(|| SessionState::new(now));
        let new = match state.ended(self.policy, now) {
            // The daemon refuses the action and writes nothing; the state stays.
            Some(why) => NewDecision {
                verdict: REFUSED,
                rules: Vec::new(),
                reason: why,
                zone: state.zone.as_str().into(),
            },
            None => {
                let j = session::judge(self.policy, self.guard, state, &action, now);
                *state = j.next;
                NewDecision {
                    verdict: j.outcome.verdict.as_str(),
                    rules: j.outcome.matched_rules,
                    reason: explain(&j.outcome.reason, &j.escalations),
                    zone: state.zone.as_str().into(),
                }
            }
        };
        if now < self.since_us {
            return;
        }
        let s = &mut self.summary;
        let Some(old) = old else {
            s.overridden += 1;
            return;
        };
        s.decisions += 1;
        *s.old_versions.entry(b.policy_version.clone()).or_default() += 1;
        s.sessions.insert(key.clone());
        if new.verdict == old.as_str() {
            s.unchanged += 1;
            if new.rules != b.rule_ids {
                s.rules_changed += 1;
            }
            return;
        }
        s.changed += 1;
        let transition = (old.as_str().to_string(), new.verdict.to_string());
        *s.transitions.entry(transition.clone()).or_default() += 1;
        let rules: Vec<String> = match (new.verdict, new.rules.is_empty()) {
            (REFUSED, _) => vec![ENDED_RULE.into()],
            (_, true) => vec![DEFAULT_RULE.into()],
            _ => new.rules.clone(),
        };
        for rule in rules {
            *s.by_rule.entry((transition.clone(), rule)).or_default() += 1;
        }
        let examples = s.examples.entry(transition).or_default();
        if examples.len() < self.max_examples {
            examples.push(Example {
                seq: row.seq,
                time_us: now,
                session: key,
                channel: b.channel.clone(),
                what: action_summary(&b.action),
                old_rules: b.rule_ids.clone(),
                new_rules: new.rules,
                new_reason: new.reason,
                old_zone: b.zone.clone(),
                new_zone: new.zone,
            });
        }
    }

    fn report(&mut self, row: &AuditRow, key: SessionKey) {
        let b = &row.body;
        let observation = match stored_observation(&b.result) {
            Ok(o) => o,
            Err(e) => return self.skip(row.seq, e),
        };
        // A result counts even after the session ended: what was read was read.
        let state = self
            .sessions
            .entry(key)
            .or_insert_with(|| SessionState::new(b.time_us));
        let (next, _) = session::observe(self.policy, state, &observation, b.time_us);
        *state = next;
    }
}

/// The verdict's reason followed by the escalations, as the daemon writes it.
fn explain(reason: &str, escalations: &[Escalation]) -> String {
    let mut out = reason.to_string();
    for e in escalations {
        if !out.is_empty() {
            out.push_str("; ");
        }
        let _ = write!(
            out,
            "session escalated to {} by {} ({})",
            e.zone, e.trigger, e.reason
        );
    }
    out
}

/// `wardend simulate`: 0 when no decision changes, 1 when some do, 2 when the replay
/// could not run or some records could not be replayed (and none changed).
pub async fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let policy = match crate::server::load_policy(Some(&args.policy)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("wardend simulate: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let since_us = match &args.since {
        None => None,
        Some(text) => match parse_since(text, crate::service::now_us()) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("wardend simulate: --since: {e}");
                return Ok(ExitCode::from(2));
            }
        },
    };
    let store = crate::cli::open_existing(&args.db.db).await?;
    let filter = AuditFilter {
        tenant: args.tenant.clone().unwrap_or_default(),
        ..AuditFilter::default()
    };
    let mut replay = Replay::new(&policy, since_us.unwrap_or(i64::MIN), args.examples);
    let mut after = 0;
    loop {
        let page = store.audit_page(&filter, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for row in &page {
            replay.record(row);
        }
    }
    store.close().await;
    let summary = replay.finish();
    print!(
        "{}",
        render(&policy, store.display_url(), since_us, &summary)
    );
    Ok(if summary.changed > 0 {
        ExitCode::from(1)
    } else if summary.skipped > 0 {
        eprintln!(
            "wardend simulate: {} record(s) could not be replayed; the result is incomplete",
            summary.skipped
        );
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests;
