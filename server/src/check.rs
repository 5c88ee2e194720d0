//! `wardend check`: multi-step scenario files run against a policy offline, the CI gate
//! for policy changes.
//!
//! A scenario is one or more sessions: a sequence of actions (each with an expected
//! decision) and reported results (each optionally with an expected zone). Steps run
//! through the same [`session::judge`] and [`session::observe`] the daemon runs, so a
//! scenario that passes here decides the same way in `wardend serve`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use warden_proto::v1::Action;

use crate::normalize;
use crate::policy::{Policy, SelfGuard, Verdict};
use crate::session::{self, Observation, SessionState, Zone};

/// A scenario file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    /// Shown in reports.
    name: String,
    #[serde(default, rename = "description")]
    _description: Option<String>,
    /// Run under `profiles: [these]` instead of the policy given on the command line
    /// (`default` means the built-in default policy).
    #[serde(default)]
    profile: Option<String>,
    #[serde(default = "default_agent")]
    agent: String,
    steps: Vec<StepFile>,
}

fn default_agent() -> String {
    "agent".into()
}

/// One step: exactly one of the action forms, `report` or `session`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    /// A command line run through `warden exec`.
    exec: Option<String>,
    /// A command line typed into `warden shell`.
    shell: Option<String>,
    /// `METHOD URL`.
    http: Option<String>,
    /// `OPERATION PATH` (read, write, delete, ...).
    file: Option<String>,
    /// An MCP tool call.
    mcp: Option<McpStep>,
    /// Any action, field by field.
    action: Option<ActionStep>,
    /// A result reported for the previous action.
    report: Option<ReportStep>,
    /// Switch to (or start) another session of the same agent.
    session: Option<String>,
    /// Act as another agent from this step on.
    agent: Option<String>,
    /// Approve the approval the last `require_approval` step requested, as this
    /// approver (`approve: alice`, or `approve: { by: alice, ttl: 10m }`). `expect:
    /// refused` when the approver may not (the requesting agent).
    approve: Option<ApproveStep>,
    /// Deny the approval the last `require_approval` step requested, as this approver.
    deny_approval: Option<String>,
    /// Issue a break-glass grant (`{ session: S, ttl: 10m }`; `agent` too, or neither
    /// for the whole tenant).
    break_glass: Option<BreakGlassStep>,
    /// Move the clock forward (`11m`), e.g. past a grant's expiry.
    advance: Option<String>,
    /// Extra attributes for the action (tags, sensitivity, method, ...).
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    /// Accepted verdicts (one or a list).
    expect: Option<OneOrMany>,
    /// A rule that must be among the matched rules.
    expect_rule: Option<String>,
    /// The session's zone after the step.
    expect_zone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct McpStep {
    tool: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    operation: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionStep {
    channel: String,
    #[serde(default)]
    tool: String,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    command_line: String,
    #[serde(default)]
    cwd: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportStep {
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    sensitivity: String,
    #[serde(default)]
    bytes: u64,
    #[serde(default)]
    rows: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum ApproveStep {
    By(String),
    Full {
        by: String,
        #[serde(default)]
        ttl: Option<String>,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakGlassStep {
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    session: Option<String>,
    ttl: String,
}

/// Approvals and break-glass grants of one scenario run, kept as the daemon keeps them
/// (see `service/approvals.rs`), without a database.
#[derive(Debug, Default)]
struct Grants {
    approvals: Vec<OfflineApproval>,
    /// The approval the last `require_approval` step requested or found pending.
    last: Option<usize>,
    break_glass: Vec<OfflineBreakGlass>,
}

#[derive(Debug)]
struct OfflineApproval {
    digest: String,
    agent: String,
    /// pending, approved, denied, used.
    status: &'static str,
    uses_left: Option<u32>,
    until: i64,
}

#[derive(Debug)]
struct OfflineBreakGlass {
    agent: Option<String>,
    session: Option<String>,
    until: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The result of one step.
#[derive(Debug, Clone)]
pub struct StepResult {
    /// 1-based.
    pub index: usize,
    pub label: String,
    /// Empty when the step passed.
    pub failure: String,
    /// The verdict of an action step; `None` for reports, session switches, invalid
    /// steps and actions refused because the session had ended.
    pub verdict: Option<Verdict>,
    /// Rules behind `verdict`; empty when the policy default decided.
    pub rules: Vec<String>,
    /// The decision's reason (or why the step could not be judged).
    pub reason: String,
}

/// What one step produced, before it is numbered.
#[derive(Debug, Default)]
struct StepRun {
    label: String,
    /// What did not hold; empty when every expectation held (or none was checked).
    failure: String,
    verdict: Option<Verdict>,
    rules: Vec<String>,
    reason: String,
}

/// How a scenario is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `wardend check`: every action step needs `expect`, and every expectation is
    /// checked.
    Check,
    /// Only record what each step decided (`wardend diff`, `wardend certify`):
    /// expectations are neither required nor checked.
    Observe,
}

/// The result of one scenario file.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    pub file: PathBuf,
    pub name: String,
    /// The policy it ran under (profile or file) and its version.
    pub policy: String,
    pub steps: Vec<StepResult>,
    /// Set when the file could not be run at all.
    pub error: Option<String>,
}

impl ScenarioResult {
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.steps.iter().all(|s| s.failure.is_empty())
    }
}

/// Runs every scenario file against `policy` (or the profile a file names).
pub fn run_files(policy: &Policy, files: &[PathBuf]) -> Vec<ScenarioResult> {
    let mut by_profile: HashMap<String, Result<Policy, String>> = HashMap::new();
    files
        .iter()
        .map(|file| {
            let failed = |error: String| ScenarioResult {
                file: file.clone(),
                name: file.display().to_string(),
                policy: String::new(),
                steps: Vec::new(),
                error: Some(error),
            };
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => return failed(format!("cannot read: {e}")),
            };
            let scenario: ScenarioFile = match serde_saphyr::from_str(&text) {
                Ok(s) => s,
                Err(e) => return failed(format!("{}: {}", file.display(), e.without_snippet())),
            };
            let chosen = match &scenario.profile {
                None => Ok(policy),
                Some(name) => by_profile
                    .entry(name.clone())
                    .or_insert_with(|| profile_policy(name))
                    .as_ref()
                    .map_err(Clone::clone),
            };
            match chosen {
                Ok(p) => run_scenario(p, file, &scenario, Mode::Check),
                Err(e) => failed(e),
            }
        })
        .collect()
}

/// A policy that is exactly one built-in profile (or the built-in default).
pub fn profile_policy(name: &str) -> Result<Policy, String> {
    if name == "default" {
        return Policy::builtin_default().map_err(|e| e.to_string());
    }
    let yaml = format!("version: 1\nname: {name}\nprofiles: [{name}]\n");
    Policy::from_yaml(&format!("profile {name}"), &yaml).map_err(|e| e.to_string())
}

/// Runs one scenario given as text under `policy`, whatever profile it names, and
/// records what every step decided; expectations (`expect`, `expect_rule`,
/// `expect_zone`) are neither required nor checked. `name` stands for the file in the
/// result. For tools that compare decisions rather than check them (`wardend diff`,
/// `wardend certify`).
pub fn run_text(policy: &Policy, name: &Path, text: &str) -> ScenarioResult {
    match serde_saphyr::from_str::<ScenarioFile>(text) {
        Ok(scenario) => run_scenario(policy, name, &scenario, Mode::Observe),
        Err(e) => ScenarioResult {
            file: name.to_path_buf(),
            name: name.display().to_string(),
            policy: String::new(),
            steps: Vec::new(),
            error: Some(format!("{}: {}", name.display(), e.without_snippet())),
        },
    }
}

fn run_scenario(policy: &Policy, file: &Path, s: &ScenarioFile, mode: Mode) -> ScenarioResult {
    let mut sessions: HashMap<(String, String), SessionState> = HashMap::new();
    let mut agent = s.agent.clone();
    let mut session = "s1".to_string();
    let mut results = Vec::new();
    // Steps are a second apart, so idle timeouts behave as in a live session.
    let mut now: i64 = 1_700_000_000_000_000;
    let mut grants = Grants::default();
    for (i, step) in s.steps.iter().enumerate() {
        now += 1_000_000;
        if let Some(d) = &step.advance {
            match crate::duration::parse_us(d) {
                Ok(us) => now = now.saturating_add(us),
                Err(e) => {
                    results.push(StepResult {
                        index: i + 1,
                        label: "invalid step".into(),
                        failure: format!("`advance`: {e}"),
                        verdict: None,
                        rules: Vec::new(),
                        reason: e,
                    });
                    continue;
                }
            }
        }
        if let Some(a) = &step.agent {
            agent = a.clone();
        }
        if let Some(id) = &step.session {
            session = id.clone();
        }
        let state = sessions
            .entry((agent.clone(), session.clone()))
            .or_insert_with(|| SessionState::new(now));
        let ctx = StepContext {
            agent: &agent,
            session: &session,
            now,
            mode,
        };
        let run = run_step(policy, state, &mut grants, step, &ctx).unwrap_or_else(|e| StepRun {
            label: "invalid step".into(),
            failure: e.clone(),
            reason: e,
            ..StepRun::default()
        });
        results.push(StepResult {
            index: i + 1,
            label: run.label,
            failure: run.failure,
            verdict: run.verdict,
            rules: run.rules,
            reason: run.reason,
        });
    }
    ScenarioResult {
        file: file.to_path_buf(),
        name: s.name.clone(),
        policy: format!("{} ({})", policy.name(), &policy.version()[..12]),
        steps: results,
        error: None,
    }
}

/// Runs one step; returns its label, what it decided and what did not hold.
struct StepContext<'a> {
    agent: &'a str,
    session: &'a str,
    now: i64,
    mode: Mode,
}

fn run_step(
    policy: &Policy,
    state: &mut SessionState,
    grants: &mut Grants,
    step: &StepFile,
    ctx: &StepContext<'_>,
) -> Result<StepRun, String> {
    let StepContext {
        agent,
        session,
        now,
        mode,
    } = *ctx;
    let checking = mode == Mode::Check;
    let mut problems = Vec::new();
    if let Some(run) = grant_step(grants, step, ctx)? {
        return Ok(run);
    }
    if let Some(r) = &step.report {
        let mut tags: Vec<String> = r.tags.iter().map(|t| t.to_ascii_lowercase()).collect();
        tags.sort();
        tags.dedup();
        let observation = Observation {
            sensitivity: r.sensitivity.to_ascii_lowercase(),
            tags,
            rows: r.rows,
            bytes: r.bytes,
            ..Observation::default()
        };
        let (next, _) = session::observe(policy, state, &observation, now);
        *state = next;
        if checking {
            check_zone(step, state.zone, &mut problems)?;
        }
        return Ok(StepRun {
            label: format!("report {:?} {} bytes", r.tags, r.bytes),
            failure: problems.join("; "),
            ..StepRun::default()
        });
    }
    let Some((label, action)) = action_of(step, agent, session)? else {
        // A bare `session:` / `agent:` switch, possibly with a zone expectation.
        if checking {
            check_zone(step, state.zone, &mut problems)?;
        }
        return Ok(StepRun {
            label: format!("session {session} of {agent}"),
            failure: problems.join("; "),
            ..StepRun::default()
        });
    };
    let normalized = normalize::normalize(Some(&action)).map_err(|e| e.to_string())?;
    if let Some(why) = state.ended(policy, now) {
        let reason = format!("refused: {why}");
        return Ok(StepRun {
            label,
            failure: if checking {
                reason.clone()
            } else {
                String::new()
            },
            reason,
            ..StepRun::default()
        });
    }
    let j = session::judge(policy, SelfGuard::builtin(), state, &normalized, now);
    *state = j.next;
    let (got, how) = grants.apply(&j.outcome, &normalized, policy.version(), now);
    let run = StepRun {
        label,
        failure: String::new(),
        verdict: Some(got),
        rules: j.outcome.matched_rules.clone(),
        reason: format!("{}{how}", j.outcome.reason),
    };
    if !checking {
        return Ok(run);
    }
    if let Some(expect) = &step.expect {
        let accepted = match expect {
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(vs) => vs.clone(),
        };
        let mut verdicts = Vec::new();
        for v in &accepted {
            verdicts.push(Verdict::parse(v.trim()).ok_or_else(|| {
                format!("`expect`: unknown verdict {v:?} (allow, deny, require_approval, allow_with_redaction)")
            })?);
        }
        if !verdicts.contains(&got) {
            problems.push(format!(
                "expected {}, got {got} ({}: {})",
                accepted.join(" or "),
                if j.outcome.matched_rules.is_empty() {
                    "policy default".to_string()
                } else {
                    format!("rules {}", j.outcome.matched_rules.join(", "))
                },
                run.reason
            ));
        }
    } else {
        return Err("an action step needs `expect`".into());
    }
    if let Some(rule) = &step.expect_rule
        && !j.outcome.matched_rules.contains(rule)
    {
        problems.push(format!(
            "expected rule {rule} among the matched rules, got [{}]",
            j.outcome.matched_rules.join(", ")
        ));
    }
    check_zone(step, state.zone, &mut problems)?;
    Ok(StepRun {
        failure: problems.join("; "),
        ..run
    })
}

/// Runs an `approve`, `deny_approval` or `break_glass` step; `None` for other steps.
fn grant_step(
    grants: &mut Grants,
    step: &StepFile,
    ctx: &StepContext<'_>,
) -> Result<Option<StepRun>, String> {
    let now = ctx.now;
    if let Some(b) = &step.break_glass {
        let ttl =
            crate::duration::parse_us(&b.ttl).map_err(|e| format!("`break_glass.ttl`: {e}"))?;
        grants.break_glass.push(OfflineBreakGlass {
            agent: b.agent.clone(),
            session: b.session.clone(),
            until: now.saturating_add(ttl),
        });
        return Ok(Some(StepRun {
            label: format!(
                "break-glass {:?} for {}",
                b.session
                    .as_deref()
                    .or(b.agent.as_deref())
                    .unwrap_or("tenant"),
                b.ttl
            ),
            ..StepRun::default()
        }));
    }
    let (by, grant) = match (&step.approve, &step.deny_approval) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => return Err("a step has one of approve, deny_approval".into()),
        (Some(ApproveStep::By(by)), None) => (by.clone(), Some(None)),
        (Some(ApproveStep::Full { by, ttl }), None) => {
            let ttl = ttl
                .as_deref()
                .map(crate::duration::parse_us)
                .transpose()
                .map_err(|e| format!("`approve.ttl`: {e}"))?;
            (by.clone(), Some(ttl))
        }
        (None, Some(by)) => (by.clone(), None),
    };
    let label = format!(
        "{} by {by}",
        if grant.is_some() {
            "approve"
        } else {
            "deny approval"
        }
    );
    let Some(index) = grants.last else {
        // Under another policy (diff, certify) nothing may have asked: not an error.
        let nothing = "no earlier step asked for approval".to_string();
        return Ok(Some(StepRun {
            label,
            failure: if ctx.mode == Mode::Check {
                nothing.clone()
            } else {
                String::new()
            },
            reason: nothing,
            ..StepRun::default()
        }));
    };
    let a = &mut grants.approvals[index];
    let outcome = if by.trim().eq_ignore_ascii_case(&a.agent) {
        Err(format!(
            "agent {} cannot decide its own approval request",
            a.agent
        ))
    } else if a.status != "pending" || a.until <= now {
        Err(format!("the approval is {}, not pending", a.status))
    } else {
        match grant {
            Some(None) => {
                a.status = "approved";
                a.uses_left = Some(1);
                a.until = now.saturating_add(crate::service::SINGLE_USE_WINDOW_US);
            }
            Some(Some(ttl)) => {
                a.status = "approved";
                a.uses_left = None;
                a.until = now.saturating_add(ttl);
            }
            None => a.status = "denied",
        }
        Ok(())
    };
    let want_refused = match &step.expect {
        None => false,
        Some(OneOrMany::One(v)) if v == "refused" => true,
        Some(OneOrMany::One(v)) if v == "granted" => false,
        Some(_) => return Err("`expect` of an approve step is granted or refused".into()),
    };
    let failure = match (&outcome, want_refused) {
        (Err(e), false) if ctx.mode == Mode::Check => format!("expected granted, got refused: {e}"),
        (Ok(()), true) if ctx.mode == Mode::Check => "expected refused, got granted".to_string(),
        _ => String::new(),
    };
    Ok(Some(StepRun {
        label,
        failure,
        reason: outcome.err().unwrap_or_default(),
        ..StepRun::default()
    }))
}

impl Grants {
    /// What break-glass grants and approvals make of an outcome, as
    /// `service::approvals::gate` does in the daemon; returns the verdict and what to
    /// add to the reason.
    fn apply(
        &mut self,
        outcome: &crate::policy::Outcome,
        action: &normalize::NormalizedAction,
        policy_version: &str,
        now: i64,
    ) -> (Verdict, String) {
        let mut verdict = outcome.verdict;
        let mut how = String::new();
        if let Some(lifted) = outcome.under_break_glass() {
            let covered = self.break_glass.iter().any(|g| {
                g.until > now
                    && g.agent.as_deref().is_none_or(|a| a == action.agent)
                    && g.session.as_deref().is_none_or(|s| s == action.session)
            });
            if covered {
                verdict = lifted;
                how = format!("; lifted to {lifted} by break-glass");
            }
        }
        if verdict != Verdict::RequireApproval {
            return (verdict, how);
        }
        let digest = crate::service::approval_digest(action, policy_version);
        let live = |a: &OfflineApproval| a.digest == digest && a.until > now;
        if let Some(a) = self
            .approvals
            .iter_mut()
            .find(|a| live(a) && a.status == "approved" && a.uses_left.is_none_or(|n| n > 0))
        {
            if let Some(n) = &mut a.uses_left {
                *n -= 1;
                if *n == 0 {
                    a.status = "used";
                }
            }
            return (Verdict::Allow, format!("{how}; allowed by an approval"));
        }
        if let Some(i) = self
            .approvals
            .iter()
            .position(|a| live(a) && a.status == "pending")
        {
            self.last = Some(i);
            return (verdict, format!("{how}; waiting for approval"));
        }
        if self
            .approvals
            .iter()
            .any(|a| live(a) && a.status == "denied")
        {
            return (Verdict::Deny, format!("{how}; the approval was denied"));
        }
        self.approvals.push(OfflineApproval {
            digest,
            agent: action.agent.clone(),
            status: "pending",
            uses_left: None,
            // The daemon's default --approval-timeout.
            until: now.saturating_add(3_600_000_000),
        });
        self.last = Some(self.approvals.len() - 1);
        (verdict, format!("{how}; approval requested"))
    }
}

fn check_zone(step: &StepFile, zone: Zone, problems: &mut Vec<String>) -> Result<(), String> {
    if let Some(want) = &step.expect_zone {
        let want = Zone::parse(want.trim()).ok_or_else(|| {
            format!(
                "`expect_zone`: unknown zone {want:?} (safe, sensitive, commitment, irreversible)"
            )
        })?;
        if zone != want {
            problems.push(format!("expected zone {want}, got {zone}"));
        }
    }
    Ok(())
}

/// The action a step describes, with a label for reports; `None` for a step without one.
fn action_of(
    step: &StepFile,
    agent: &str,
    session: &str,
) -> Result<Option<(String, Action)>, String> {
    let base = Action {
        agent: agent.into(),
        session: session.into(),
        attributes: step.attributes.clone().into_iter().collect(),
        cwd: "/workspace/project".into(),
        ..Default::default()
    };
    let forms = [
        step.exec.is_some(),
        step.shell.is_some(),
        step.http.is_some(),
        step.file.is_some(),
        step.mcp.is_some(),
        step.action.is_some(),
    ];
    match forms.iter().filter(|f| **f).count() {
        0 => return Ok(None),
        1 => {}
        _ => return Err("a step has exactly one of exec, shell, http, file, mcp, action".into()),
    }
    let (label, action) = if let Some(line) = &step.exec {
        (
            format!("exec {line}"),
            Action {
                channel: "exec".into(),
                command_line: line.clone(),
                ..base
            },
        )
    } else if let Some(line) = &step.shell {
        (
            format!("shell {line}"),
            Action {
                channel: "shell".into(),
                command_line: line.clone(),
                ..base
            },
        )
    } else if let Some(text) = &step.http {
        let (method, url) = text
            .trim()
            .split_once(' ')
            .ok_or_else(|| format!("`http: {text}`: write METHOD URL"))?;
        let mut action = Action {
            channel: "http".into(),
            tool: method.to_ascii_uppercase(),
            resource: url.trim().into(),
            ..base
        };
        action
            .attributes
            .insert("method".into(), method.to_ascii_uppercase());
        (format!("http {text}"), action)
    } else if let Some(text) = &step.file {
        let (op, path) = text
            .trim()
            .split_once(' ')
            .ok_or_else(|| format!("`file: {text}`: write OPERATION PATH"))?;
        (
            format!("file {text}"),
            Action {
                channel: "file".into(),
                tool: format!("{op}_file"),
                operation: op.into(),
                resource: path.trim().into(),
                ..base
            },
        )
    } else if let Some(m) = &step.mcp {
        (
            format!("mcp {} {}", m.tool, m.resource),
            Action {
                channel: "mcp".into(),
                tool: m.tool.clone(),
                operation: m.operation.clone(),
                resource: m.resource.clone(),
                ..base
            },
        )
    } else if let Some(a) = &step.action {
        (
            format!("{} {} {}", a.channel, a.tool, a.resource),
            Action {
                channel: a.channel.clone(),
                tool: a.tool.clone(),
                operation: a.operation.clone(),
                resource: a.resource.clone(),
                command_line: a.command_line.clone(),
                cwd: if a.cwd.is_empty() {
                    base.cwd.clone()
                } else {
                    a.cwd.clone()
                },
                ..base
            },
        )
    } else {
        return Ok(None);
    };
    Ok(Some((label, action)))
}

/// A human report: one line per scenario, details for failures.
pub fn report(results: &[ScenarioResult]) -> String {
    let mut out = String::new();
    for r in results {
        let mark = if r.passed() { "ok  " } else { "FAIL" };
        let _ = writeln!(
            out,
            "{mark} {} — {} [{}]",
            r.file.display(),
            r.name,
            r.policy
        );
        if let Some(e) = &r.error {
            let _ = writeln!(out, "       {e}");
        }
        for s in r.steps.iter().filter(|s| !s.failure.is_empty()) {
            let _ = writeln!(out, "       step {}: {}: {}", s.index, s.label, s.failure);
        }
    }
    let failed = results.iter().filter(|r| !r.passed()).count();
    let steps: usize = results.iter().map(|r| r.steps.len()).sum();
    let _ = writeln!(
        out,
        "{} scenario(s), {steps} step(s): {} passed, {failed} failed",
        results.len(),
        results.len() - failed
    );
    out
}

/// JUnit XML: one test suite per scenario file, one test case per step.
pub fn junit(results: &[ScenarioResult]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"wardend check\">\n",
    );
    for r in results {
        let failures = r.steps.iter().filter(|s| !s.failure.is_empty()).count()
            + usize::from(r.error.is_some());
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\">",
            xml(&r.name),
            r.steps.len().max(1)
        );
        if let Some(e) = &r.error {
            let _ = writeln!(
                out,
                "    <testcase name=\"load\" classname=\"{}\"><failure message=\"{}\"/></testcase>",
                xml(&r.file.display().to_string()),
                xml(e)
            );
        }
        for s in &r.steps {
            let name = format!("step {}: {}", s.index, s.label);
            if s.failure.is_empty() {
                let _ = writeln!(
                    out,
                    "    <testcase name=\"{}\" classname=\"{}\"/>",
                    xml(&name),
                    xml(&r.file.display().to_string())
                );
            } else {
                let _ = writeln!(
                    out,
                    "    <testcase name=\"{}\" classname=\"{}\"><failure message=\"{}\"/></testcase>",
                    xml(&name),
                    xml(&r.file.display().to_string()),
                    xml(&s.failure)
                );
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Expands file globs (`policies/scenarios/*.yaml`, `tests/**/*.yaml`); a pattern without
/// glob characters is taken as a path. Sorted, deduplicated. A pattern that matches
/// nothing is an error (a CI gate that silently checks nothing is worse than none).
pub fn expand_globs(patterns: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for pattern in patterns {
        if !pattern.contains(['*', '?', '[', '{']) {
            out.push(PathBuf::from(pattern));
            continue;
        }
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("{pattern}: {e}"))?
            .compile_matcher();
        // Walk from the longest directory prefix without glob characters.
        let root: PathBuf = Path::new(pattern)
            .components()
            .take_while(|c| {
                !c.as_os_str()
                    .to_string_lossy()
                    .contains(['*', '?', '[', '{'])
            })
            .collect();
        let root = if root.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            root
        };
        let before = out.len();
        walk(&root, &mut |path| {
            let shown = path.strip_prefix("./").unwrap_or(path);
            if glob.is_match(shown) {
                out.push(shown.to_path_buf());
            }
        });
        if out.len() == before {
            return Err(format!("{pattern}: matches no file"));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, found: &mut dyn FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, found);
        } else {
            found(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCENARIO: &str = "name: t\nprofile: enterprise-safe\nsteps:\n  - exec: npm publish\n  - report: { tags: [pii] }\n  - http: POST https://example.com/x\n    expect: allow\n";

    /// `run_text` runs under the policy it is given, records verdicts and rules, and
    /// neither needs nor checks expectations.
    #[test]
    fn run_text_records_decisions_under_the_given_policy() {
        let policy = Policy::builtin_default().unwrap();
        let r = run_text(&policy, Path::new("t.yaml"), SCENARIO);
        assert!(r.error.is_none(), "{r:?}");
        assert!(r.policy.starts_with("default ("), "{}", r.policy);
        assert!(r.steps.iter().all(|s| s.failure.is_empty()), "{r:?}");
        let verdicts: Vec<_> = r.steps.iter().map(|s| s.verdict).collect();
        assert_eq!(verdicts, [Some(Verdict::Deny), None, Some(Verdict::Deny)]);
        assert_eq!(r.steps[0].rules, ["baseline/deny-publish"]);
        assert_eq!(
            r.steps[2].rules,
            ["baseline/deny-egress-from-sensitive-session"]
        );

        let bad = run_text(&policy, Path::new("bad.yaml"), "name: x\nsteps: 3\n");
        assert!(bad.error.is_some_and(|e| e.starts_with("bad.yaml: ")));
    }

    /// An approval step with nothing to approve fails `wardend check` but is not an error
    /// when another policy is observed (diff, certify): that policy did not ask.
    #[test]
    fn approving_nothing_fails_check_only() {
        let text = "name: t\nsteps:\n  - exec: ls\n    expect: allow\n  - approve: alice\n";
        let policy = Policy::builtin_default().unwrap();
        let observed = run_text(&policy, Path::new("t.yaml"), text);
        assert!(observed.passed(), "{observed:?}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.yaml");
        std::fs::write(&file, text).unwrap();
        let checked = &run_files(&policy, &[file])[0];
        assert!(!checked.passed());
        assert_eq!(
            checked.steps[1].failure,
            "no earlier step asked for approval"
        );
    }

    /// `run_files` still checks expectations and records verdicts too.
    #[test]
    fn run_files_checks_expectations() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.yaml");
        std::fs::write(&file, SCENARIO).unwrap();
        let policy = Policy::builtin_default().unwrap();
        let r = &run_files(&policy, &[file])[0];
        assert!(r.policy.starts_with("enterprise-safe ("), "{}", r.policy);
        assert_eq!(r.steps[0].failure, "an action step needs `expect`");
        assert_eq!(r.steps[2].verdict, Some(Verdict::Deny));
        assert!(
            r.steps[2].failure.starts_with("expected allow, got deny"),
            "{:?}",
            r.steps[2]
        );
    }
}
