//! From [`model::PolicyFile`] to matchers: every pattern is compiled once, every problem
//! is reported with the file:line:column of the value that caused it. Profiles named by
//! a policy are compiled from their built-in YAML and merged by union.

mod alerts;

use std::collections::{BTreeSet, HashMap};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use regex::RegexSet;
use serde_saphyr::{Location, Spanned};

use super::budgets::{Budget, Metric, Price, Scope, Window};
use super::conditions::{ConditionSpec, Conditions};
use super::model::{
    BudgetFile, MatchFile, Patterns, PolicyFile, PriceFile, RateLimitFile, ResultMatchFile,
    RuleFile, TriggerFile,
};
use super::rate_limits::{self, RateLimit};
use super::triggers::{ResultConditions, ResultSpec, Trigger, Watch};
use super::{Origin, Policy, PolicyError, Redaction, Rule, Verdict, canonical_version, profiles};
use crate::normalize::{Channel, Egress, FACT_NAMES};
use crate::session::Zone;

/// Policy files larger than this are refused before parsing.
const MAX_POLICY_BYTES: usize = 4 * 1024 * 1024;
/// Profiles may include profiles; this bounds the depth.
const MAX_PROFILE_DEPTH: usize = 8;

/// How a glob treats `/`.
#[derive(Clone, Copy)]
enum GlobKind {
    /// `*` stops at `/`; `**` crosses it (paths, URLs).
    Path,
    /// `*` matches anything (names, command lines).
    Text,
    /// Like `Text`, compared case-insensitively (operations, hosts, tags).
    CaselessText,
}

struct Compiler<'a> {
    file: &'a str,
    /// Prefix for rule and trigger ids (`coding-agent/` inside a profile).
    prefix: String,
}

/// One source file's contribution, before merging.
struct Part {
    name: Option<String>,
    default: Option<(Verdict, Location, String)>,
    rules: Vec<Rule>,
    triggers: Vec<Trigger>,
    internal_hosts: Vec<String>,
    idle_timeout_us: Option<i64>,
    budgets: Vec<Budget>,
    prices: Vec<Price>,
    rate_limits: Vec<RateLimit>,
    alerts: Vec<super::AlertRoute>,
}

/// Largest budget limit or price accepted (in the unit written), far above any real
/// one: a bigger number is a typo.
const MAX_AMOUNT: f64 = 1e15;

impl Compiler<'_> {
    /// A non-negative, finite amount in the metric's written unit, as stored units.
    fn amount(&self, value: &Spanned<f64>, what: &str, metric: Metric) -> Result<i64, PolicyError> {
        let v = value.value;
        if !(0.0..=MAX_AMOUNT).contains(&v) {
            return Err(self.error(
                value.referenced,
                format!("{what} must be a number from 0 to {MAX_AMOUNT:e}, not {v}"),
            ));
        }
        if metric != Metric::CostUsd && v.fract() != 0.0 {
            return Err(self.error(
                value.referenced,
                format!("{what} counts {}, a whole number, not {v}", metric.as_str()),
            ));
        }
        Ok((v * metric.scale()).round() as i64)
    }

    fn budget(&self, raw: &Spanned<BudgetFile>) -> Result<Budget, PolicyError> {
        let b = &raw.value;
        let id = self.id(&b.id, "budget")?;
        let word = |v: &Spanned<String>| v.value.trim().to_ascii_lowercase();
        let metric = Metric::parse(&word(&b.metric)).ok_or_else(|| {
            self.error(
                b.metric.referenced,
                format!(
                    "unknown metric {:?} (expected {})",
                    b.metric.value,
                    Metric::ALL.map(Metric::as_str).join(", ")
                ),
            )
        })?;
        let scope = self.scope(&b.scope)?;
        let window = Window::parse(&word(&b.window)).ok_or_else(|| {
            self.error(
                b.window.referenced,
                format!(
                    "unknown window {:?} (expected session, hour, day or month)",
                    b.window.value
                ),
            )
        })?;
        let limit = self.amount(&b.limit, "`limit`", metric)?;
        let hard = match &b.enforce {
            None => true,
            Some(e) => match word(e).as_str() {
                "hard" => true,
                "soft" => false,
                other => {
                    return Err(self.error(
                        e.referenced,
                        format!("unknown enforce {other:?} (expected hard or soft)"),
                    ));
                }
            },
        };
        let mut alert_at = Vec::new();
        for a in &b.alert_at {
            if !a.value.is_finite() || a.value <= 0.0 || a.value > 10.0 {
                return Err(self.error(
                    a.referenced,
                    format!(
                        "`alert_at` takes fractions of the limit such as 0.8 or 1.0, not {}",
                        a.value
                    ),
                ));
            }
            alert_at.push(a.value);
        }
        alert_at.sort_by(f64::total_cmp);
        alert_at.dedup();
        let conditions = match &b.conditions {
            Some(m) => self.conditions(&m.value)?,
            None => Conditions::default(),
        };
        Ok(Budget {
            id,
            origin: self.origin(raw.referenced),
            metric,
            scope,
            window,
            limit,
            hard,
            alert_at,
            conditions,
        })
    }

    fn scope(&self, value: &Spanned<String>) -> Result<Scope, PolicyError> {
        Scope::parse(&value.value.trim().to_ascii_lowercase()).ok_or_else(|| {
            self.error(
                value.referenced,
                format!(
                    "unknown scope {:?} (expected session, agent or tenant)",
                    value.value
                ),
            )
        })
    }

    fn rate_limit(&self, raw: &Spanned<RateLimitFile>) -> Result<RateLimit, PolicyError> {
        let r = &raw.value;
        let id = self.id(&r.id, "rate limit")?;
        let (interval_us, count) =
            rate_limits::parse_rate(&r.rate.value).map_err(|e| self.error(r.rate.referenced, e))?;
        let burst = match &r.burst {
            None => count.max(1),
            Some(b) => {
                let v = b.value;
                if !(1.0..=rate_limits::MAX_BURST).contains(&v) || v.fract() != 0.0 {
                    return Err(self.error(
                        b.referenced,
                        format!(
                            "`burst` must be a whole number from 1 to {:e}, not {v}",
                            rate_limits::MAX_BURST
                        ),
                    ));
                }
                v as i64
            }
        };
        // A bucket spans burst × interval; past ~3,000 years the stored times would
        // overflow long before the bucket could ever refuse.
        if i128::from(interval_us) * i128::from(burst) > rate_limits::MAX_SPAN_US {
            return Err(self.error(
                r.rate.referenced,
                format!(
                    "rate {:?} with a burst of {burst} spans more than 3,000 years; use a faster rate or a smaller burst",
                    r.rate.value.trim()
                ),
            ));
        }
        let scope = match &r.scope {
            None => Scope::Agent,
            Some(s) => self.scope(s)?,
        };
        let conditions = match &r.conditions {
            Some(m) => self.conditions(&m.value)?,
            None => Conditions::default(),
        };
        Ok(RateLimit {
            id,
            origin: self.origin(raw.referenced),
            scope,
            rate: r.rate.value.trim().to_string(),
            interval_us,
            burst,
            conditions,
        })
    }

    fn price(&self, raw: &Spanned<PriceFile>) -> Result<Price, PolicyError> {
        let p = &raw.value;
        let model = p.model.value.trim().to_string();
        if model.is_empty() {
            return Err(self.error(p.model.referenced, "`model` is empty"));
        }
        let matcher = self
            .glob("model", &model, p.model.referenced, GlobKind::Text)?
            .compile_matcher();
        Ok(Price {
            input_micro_per_mtok: self.amount(
                &p.input,
                "`input` (USD per million tokens)",
                Metric::CostUsd,
            )?,
            output_micro_per_mtok: self.amount(
                &p.output,
                "`output` (USD per million tokens)",
                Metric::CostUsd,
            )?,
            model,
            matcher,
        })
    }

    fn origin(&self, at: Location) -> Origin {
        Origin {
            file: self.file.to_string(),
            line: at.line(),
            column: at.column(),
        }
    }

    fn error(&self, at: Location, message: impl Into<String>) -> PolicyError {
        PolicyError {
            file: self.file.to_string(),
            line: at.line(),
            column: at.column(),
            message: message.into(),
        }
    }

    fn verdict(&self, value: &Spanned<String>, what: &str) -> Result<Verdict, PolicyError> {
        Verdict::parse(value.value.trim()).ok_or_else(|| {
            self.error(
                value.referenced,
                format!(
                    "unknown {what} {:?} (expected allow, deny, require_approval or allow_with_redaction)",
                    value.value
                ),
            )
        })
    }

    fn list(&self, field: &str, patterns: &Spanned<Patterns>) -> Result<Vec<String>, PolicyError> {
        let list = patterns.value.to_vec();
        if list.is_empty() {
            return Err(self.error(
                patterns.referenced,
                format!("`{field}` is an empty list, so it could never match"),
            ));
        }
        if list.iter().any(|p| p.trim().is_empty()) {
            return Err(self.error(
                patterns.referenced,
                format!("`{field}` contains an empty pattern"),
            ));
        }
        Ok(list)
    }

    fn globs(
        &self,
        field: &str,
        patterns: &Spanned<Patterns>,
        kind: GlobKind,
    ) -> Result<(GlobSet, Vec<String>), PolicyError> {
        let list = self.list(field, patterns)?;
        let mut set = GlobSetBuilder::new();
        for pattern in &list {
            set.add(self.glob(field, pattern, patterns.referenced, kind)?);
        }
        let set = set
            .build()
            .map_err(|e| self.error(patterns.referenced, format!("`{field}`: {e}")))?;
        Ok((set, list))
    }

    fn glob(
        &self,
        field: &str,
        pattern: &str,
        at: Location,
        kind: GlobKind,
    ) -> Result<Glob, PolicyError> {
        let mut builder = GlobBuilder::new(pattern);
        match kind {
            GlobKind::Path => builder.literal_separator(true),
            GlobKind::Text => builder.literal_separator(false),
            GlobKind::CaselessText => builder.literal_separator(false).case_insensitive(true),
        };
        builder.backslash_escape(true).build().map_err(|e| {
            self.error(
                at,
                format!("`{field}` pattern {pattern:?} is not a valid glob: {e}"),
            )
        })
    }

    fn regexes(
        &self,
        field: &str,
        patterns: &Spanned<Patterns>,
        out: &mut Vec<String>,
    ) -> Result<RegexSet, PolicyError> {
        let list = self.list(field, patterns)?;
        for pattern in &list {
            regex::Regex::new(pattern).map_err(|e| {
                self.error(
                    patterns.referenced,
                    format!(
                        "`{field}` {pattern:?} is not a valid regular expression: {}",
                        regex_problem(&e)
                    ),
                )
            })?;
        }
        let set = RegexSet::new(&list)
            .map_err(|e| self.error(patterns.referenced, format!("`{field}`: {e}")))?;
        *out = list;
        Ok(set)
    }

    /// Each entry of a list must be one of `allowed`.
    fn names<T>(
        &self,
        field: &str,
        patterns: &Spanned<Patterns>,
        parse: impl Fn(&str) -> Option<T>,
        expected: &str,
    ) -> Result<Vec<T>, PolicyError> {
        self.list(field, patterns)?
            .iter()
            .map(|v| {
                parse(&v.trim().to_ascii_lowercase()).ok_or_else(|| {
                    self.error(
                        patterns.referenced,
                        format!("unknown {field} {v:?} (expected {expected})"),
                    )
                })
            })
            .collect()
    }

    fn egress(&self, p: &Spanned<Patterns>) -> Result<Vec<Egress>, PolicyError> {
        self.names("egress", p, Egress::parse, "internal or external")
    }

    fn sensitivity(&self, p: &Spanned<Patterns>) -> Result<Vec<String>, PolicyError> {
        self.names(
            "sensitivity",
            p,
            |s| {
                ["low", "medium", "high"]
                    .contains(&s)
                    .then(|| s.to_string())
            },
            "low, medium or high",
        )
    }

    fn zone(&self, value: &Spanned<String>) -> Result<Zone, PolicyError> {
        Zone::parse(value.value.trim()).ok_or_else(|| {
            self.error(
                value.referenced,
                format!(
                    "unknown zone {:?} (expected safe, sensitive, commitment or irreversible)",
                    value.value
                ),
            )
        })
    }

    fn conditions(&self, m: &MatchFile) -> Result<Conditions, PolicyError> {
        let mut c = Conditions::default();
        let mut spec = ConditionSpec::default();
        if let Some(p) = &m.channel {
            let channels = self.names(
                "channel",
                p,
                Channel::parse,
                "exec, shell, http, mcp, llm, sdk or file",
            )?;
            spec.channel = channels.clone();
            c.channel = Some(channels);
        }
        let glob_field = |name: &str,
                          value: &Option<Spanned<Patterns>>,
                          kind: GlobKind,
                          out: &mut Vec<String>|
         -> Result<Option<GlobSet>, PolicyError> {
            value
                .as_ref()
                .map(|p| {
                    let (set, list) = self.globs(name, p, kind)?;
                    *out = list;
                    Ok(set)
                })
                .transpose()
        };
        c.tool = glob_field("tool", &m.tool, GlobKind::Text, &mut spec.tool)?;
        c.operation = glob_field(
            "operation",
            &m.operation,
            GlobKind::CaselessText,
            &mut spec.operation,
        )?;
        c.resource = glob_field("resource", &m.resource, GlobKind::Path, &mut spec.resource)?;
        c.command = glob_field("command", &m.command, GlobKind::Text, &mut spec.command)?;
        c.host = glob_field("host", &m.host, GlobKind::CaselessText, &mut spec.host)?;
        c.tags = glob_field("tags", &m.tags, GlobKind::CaselessText, &mut spec.tags)?;
        c.session_tags = glob_field(
            "session_tags",
            &m.session_tags,
            GlobKind::CaselessText,
            &mut spec.session_tags,
        )?;
        c.agent = glob_field("agent", &m.agent, GlobKind::Text, &mut spec.agent)?;
        c.tenant = glob_field("tenant", &m.tenant, GlobKind::Text, &mut spec.tenant)?;
        if let Some(p) = &m.resource_regex {
            c.resource_regex = Some(self.regexes("resource_regex", p, &mut spec.resource_regex)?);
        }
        if let Some(p) = &m.command_regex {
            c.command_regex = Some(self.regexes("command_regex", p, &mut spec.command_regex)?);
        }
        if let Some(p) = &m.egress {
            let egress = self.egress(p)?;
            spec.egress = egress.clone();
            c.egress = Some(egress);
        }
        if let Some(p) = &m.sensitivity {
            let levels = self.sensitivity(p)?;
            spec.sensitivity = levels.clone();
            c.sensitivity = Some(levels);
        }
        if let Some(p) = &m.facts {
            let facts = self.names(
                "fact",
                p,
                |s| FACT_NAMES.iter().find(|f| **f == s).copied(),
                &FACT_NAMES.join(", "),
            )?;
            spec.facts = facts.iter().map(|f| f.to_string()).collect();
            c.facts = Some(facts);
        }
        let mut zones: Option<BTreeSet<Zone>> = None;
        if let Some(p) = &m.zone {
            let list = self.names(
                "zone",
                p,
                Zone::parse,
                "safe, sensitive, commitment or irreversible",
            )?;
            zones = Some(list.into_iter().collect());
        }
        if let Some(least) = &m.zone_at_least {
            let floor = self.zone(least)?;
            let at_least: BTreeSet<Zone> = Zone::ALL.into_iter().filter(|z| *z >= floor).collect();
            let both: BTreeSet<Zone> = match zones {
                Some(z) => z.intersection(&at_least).copied().collect(),
                None => at_least,
            };
            if both.is_empty() {
                return Err(self.error(
                    least.referenced,
                    "`zone` and `zone_at_least` have no zone in common, so this could never match",
                ));
            }
            zones = Some(both);
        }
        if let Some(z) = zones {
            spec.zone = z.iter().copied().collect();
            c.zone = Some(spec.zone.clone());
        }
        if let Some(w) = &m.warden_self {
            spec.warden_self = w.value;
            c.warden_self = Some(w.value);
        }
        let command_only = |what: &str, at: Location| -> Result<(), PolicyError> {
            let excluded = c.channel.as_ref().is_some_and(|cs| {
                cs.iter()
                    .all(|ch| !matches!(ch, Channel::Exec | Channel::Shell))
            });
            if excluded {
                return Err(self.error(
                    at,
                    format!(
                        "`{what}` only matches exec and shell actions, but the channels exclude both, so this could never match"
                    ),
                ));
            }
            Ok(())
        };
        if let Some(groups) = &m.args {
            if groups.value.is_empty() {
                return Err(self.error(groups.referenced, "`args` is an empty list"));
            }
            command_only("args", groups.referenced)?;
            for group in &groups.value {
                let spanned = Spanned::new(group.clone(), groups.referenced, groups.defined);
                let (set, list) = self.globs("args", &spanned, GlobKind::Path)?;
                c.args.push(set);
                spec.args.push(list);
            }
        }
        // `facts`, `command` and `command_regex` match other channels too: the
        // analyzer reads commands in structured arguments (`normalize/arguments.rs`).
        c.spec = spec;
        Ok(c)
    }

    fn rule(&self, raw: &Spanned<RuleFile>) -> Result<Rule, PolicyError> {
        let r = &raw.value;
        let id = self.id(&r.id, "rule")?;
        let verdict = self.verdict(&r.decision, "decision")?;
        let reason = self.reason(&r.reason, &id)?;
        let conditions = match &r.conditions {
            Some(m) => self.conditions(&m.value)?,
            None => Conditions::default(),
        };
        let mut redactions = Vec::new();
        for item in &r.redact {
            let pattern = item.value.pattern.value.clone();
            regex::Regex::new(&pattern).map_err(|e| {
                self.error(
                    item.value.pattern.referenced,
                    format!(
                        "redaction pattern {pattern:?} is not a valid regular expression: {}",
                        regex_problem(&e)
                    ),
                )
            })?;
            redactions.push(Redaction {
                rule_id: id.clone(),
                pattern,
                replacement: item
                    .value
                    .replacement
                    .clone()
                    .unwrap_or_else(|| "[REDACTED]".into()),
            });
        }
        match (verdict, redactions.is_empty()) {
            (Verdict::AllowWithRedaction, true) => {
                return Err(self.error(
                    r.decision.referenced,
                    format!(
                        "rule {id:?} decides allow_with_redaction but has no `redact` patterns"
                    ),
                ));
            }
            (v, false) if v != Verdict::AllowWithRedaction => {
                return Err(self.error(
                    r.redact[0].referenced,
                    format!("rule {id:?} has `redact` patterns but decides {v}; only allow_with_redaction redacts"),
                ));
            }
            _ => {}
        }
        Ok(Rule {
            origin: self.origin(r.id.referenced),
            id,
            verdict,
            reason,
            unbreakable: r.unbreakable,
            redactions,
            conditions,
        })
    }

    fn trigger(&self, raw: &Spanned<TriggerFile>) -> Result<Trigger, PolicyError> {
        let t = &raw.value;
        let id = self.id(&t.id, "zone trigger")?;
        let zone = self.zone(&t.zone)?;
        if zone == Zone::Safe {
            return Err(self.error(
                t.zone.referenced,
                format!("zone trigger {id:?} escalates to safe, the lowest zone, so it could never change a session"),
            ));
        }
        let reason = self.reason(&t.reason, &id)?;
        let watch = match (&t.on_action, &t.on_result) {
            (Some(m), None) => Watch::Action(Box::new(self.conditions(&m.value)?)),
            (None, Some(r)) => Watch::Result(self.result_conditions(&r.value, r.referenced)?),
            _ => {
                return Err(self.error(
                    raw.referenced,
                    format!("zone trigger {id:?} needs exactly one of `on_action` and `on_result`"),
                ));
            }
        };
        Ok(Trigger {
            origin: self.origin(t.id.referenced),
            id,
            zone,
            reason,
            watch,
        })
    }

    fn result_conditions(
        &self,
        m: &ResultMatchFile,
        at: Location,
    ) -> Result<ResultConditions, PolicyError> {
        let mut spec = ResultSpec::default();
        let mut tags = None;
        if let Some(p) = &m.tags {
            let (set, list) = self.globs("tags", p, GlobKind::CaselessText)?;
            tags = Some(set);
            spec.tags = list.iter().map(|t| t.to_ascii_lowercase()).collect();
        }
        if let Some(p) = &m.sensitivity {
            spec.sensitivity = self.sensitivity(p)?;
        }
        if let Some(p) = &m.egress {
            spec.egress = self
                .egress(p)?
                .iter()
                .map(|e| e.as_str().to_string())
                .collect();
        }
        spec.bytes_over = m.bytes_over.as_ref().map(|v| v.value);
        spec.rows_over = m.rows_over.as_ref().map(|v| v.value);
        spec.session_bytes_over = m.session_bytes_over.as_ref().map(|v| v.value);
        spec.session_rows_over = m.session_rows_over.as_ref().map(|v| v.value);
        let any = tags.is_some()
            || !spec.sensitivity.is_empty()
            || !spec.egress.is_empty()
            || spec.bytes_over.is_some()
            || spec.rows_over.is_some()
            || spec.session_bytes_over.is_some()
            || spec.session_rows_over.is_some();
        if !any {
            return Err(self.error(
                at,
                "`on_result` has no condition; it would escalate on every report",
            ));
        }
        Ok(ResultConditions { spec, tags })
    }

    fn id(&self, value: &Spanned<String>, what: &str) -> Result<String, PolicyError> {
        let id = value.value.trim();
        if id.is_empty() {
            return Err(self.error(value.referenced, format!("{what} id is empty")));
        }
        if id.contains('/') || id.chars().any(char::is_whitespace) {
            return Err(self.error(
                value.referenced,
                format!(
                    "{what} id {id:?} may not contain `/` or spaces (`/` separates profile names)"
                ),
            ));
        }
        Ok(format!("{}{id}", self.prefix))
    }

    fn reason(&self, value: &Spanned<String>, id: &str) -> Result<String, PolicyError> {
        let reason = value.value.trim();
        if reason.is_empty() {
            return Err(self.error(
                value.referenced,
                format!("{id:?} has an empty reason; every decision must explain itself"),
            ));
        }
        Ok(reason.to_string())
    }

    /// Parses one file and compiles its own rules and triggers; returns the profiles it
    /// names, with their locations.
    fn part(&self, text: &str) -> Result<(Part, Vec<Spanned<String>>), PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(self.error(
                Location::UNKNOWN,
                format!(
                    "policy is {} bytes; the limit is {MAX_POLICY_BYTES}",
                    text.len()
                ),
            ));
        }
        let file: PolicyFile = serde_saphyr::from_str(text).map_err(|e| {
            let at = e.location();
            PolicyError {
                file: self.file.to_string(),
                line: at.map_or(0, |l| l.line()),
                column: at.map_or(0, |l| l.column()),
                message: first_line(&e.without_snippet().to_string()),
            }
        })?;
        if file.version.value != 1 {
            return Err(self.error(
                file.version.referenced,
                format!(
                    "unsupported policy version {} (this wardend reads version 1)",
                    file.version.value
                ),
            ));
        }
        let default = match &file.default {
            Some(d) => {
                let v = self.verdict(d, "default decision")?;
                if v == Verdict::AllowWithRedaction {
                    return Err(self.error(
                        d.referenced,
                        "the default decision must be allow, deny or require_approval (redaction needs a rule that names its patterns)",
                    ));
                }
                Some((v, d.referenced, self.file.to_string()))
            }
            None => None,
        };
        let mut internal_hosts = Vec::new();
        if let Some(p) = &file.internal_hosts {
            let _ = self.globs("internal_hosts", p, GlobKind::CaselessText)?;
            internal_hosts = self.list("internal_hosts", p)?;
        }
        let mut idle_timeout_us = None;
        if let Some(s) = &file.sessions
            && let Some(t) = &s.value.idle_timeout
        {
            idle_timeout_us = Some(
                crate::duration::parse_us(&t.value)
                    .map_err(|e| self.error(t.referenced, format!("`idle_timeout`: {e}")))?,
            );
        }
        let rules = file
            .rules
            .iter()
            .map(|r| self.rule(r))
            .collect::<Result<Vec<_>, _>>()?;
        let triggers = file
            .zone_triggers
            .iter()
            .map(|t| self.trigger(t))
            .collect::<Result<Vec<_>, _>>()?;
        let alerts = file
            .alerts
            .iter()
            .map(|a| self.alert_route(a))
            .collect::<Result<Vec<_>, _>>()?;
        let budgets = file
            .budgets
            .iter()
            .map(|b| self.budget(b))
            .collect::<Result<Vec<_>, _>>()?;
        let prices = file
            .prices
            .iter()
            .map(|p| self.price(p))
            .collect::<Result<Vec<_>, _>>()?;
        let rate_limits = file
            .rate_limits
            .iter()
            .map(|r| self.rate_limit(r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((
            Part {
                name: file.name.clone(),
                default,
                rules,
                triggers,
                alerts,
                internal_hosts,
                idle_timeout_us,
                budgets,
                prices,
                rate_limits,
            },
            file.profiles.clone(),
        ))
    }
}

/// Parses and compiles a policy and every profile it names.
pub(super) fn compile(source: &str, text: &str) -> Result<Policy, PolicyError> {
    let top = Compiler {
        file: source,
        prefix: String::new(),
    };
    let (main, named) = top.part(text)?;
    if main.default.is_none() && named.is_empty() {
        return Err(top.error(
            Location::UNKNOWN,
            "missing field `default` (a policy without profiles must say what happens when no rule matches)",
        ));
    }
    let mut parts = vec![main];
    let mut included: Vec<String> = Vec::new();
    let mut queue: Vec<(Spanned<String>, String, usize)> = named
        .into_iter()
        .map(|n| (n, source.to_string(), 0))
        .collect();
    while let Some((name, from, depth)) = queue.pop() {
        let wanted = name.value.trim().to_string();
        let Some(text) = profiles::text(&wanted) else {
            return Err(PolicyError {
                file: from,
                line: name.referenced.line(),
                column: name.referenced.column(),
                message: format!(
                    "unknown profile {wanted:?} (built-in profiles: {})",
                    profiles::names().join(", ")
                ),
            });
        };
        if included.contains(&wanted) {
            continue;
        }
        if depth >= MAX_PROFILE_DEPTH {
            return Err(PolicyError {
                file: from,
                line: name.referenced.line(),
                column: name.referenced.column(),
                message: format!("profile {wanted:?} is nested more than {MAX_PROFILE_DEPTH} deep"),
            });
        }
        included.push(wanted.clone());
        let file = format!("profile {wanted}");
        let c = Compiler {
            file: &file,
            prefix: format!("{wanted}/"),
        };
        let (part, more) = c.part(text)?;
        queue.extend(more.into_iter().map(|n| (n, file.clone(), depth + 1)));
        parts.push(part);
    }
    merge(source, text, parts, included)
}

/// Union of the parts: rules and triggers concatenated (ids must stay unique), the most
/// restrictive default, every internal host, the shortest idle timeout.
fn merge(
    source: &str,
    text: &str,
    parts: Vec<Part>,
    mut profiles: Vec<String>,
) -> Result<Policy, PolicyError> {
    let name = parts
        .first()
        .and_then(|p| p.name.clone())
        .unwrap_or_else(|| "unnamed".into());
    let mut default = Verdict::Allow;
    let mut rules = Vec::new();
    let mut triggers = Vec::new();
    let mut alerts = Vec::new();
    let mut internal = Vec::new();
    let mut idle: Option<i64> = None;
    let mut budgets = Vec::new();
    let mut prices = Vec::new();
    let mut rate_limits = Vec::new();
    let mut seen: HashMap<String, Origin> = HashMap::new();
    for part in parts {
        for r in part.rate_limits {
            unique(&mut seen, "rate limit", &r.id, &r.origin)?;
            rate_limits.push(r);
        }
        for b in part.budgets {
            unique(&mut seen, "budget", &b.id, &b.origin)?;
            budgets.push(b);
        }
        prices.extend(part.prices);
        if let Some((v, _, _)) = part.default {
            default = default.max(v);
        }
        for rule in part.rules {
            unique(&mut seen, "rule", &rule.id, &rule.origin)?;
            rules.push(rule);
        }
        for t in part.triggers {
            unique(&mut seen, "zone trigger", &t.id, &t.origin)?;
            triggers.push(t);
        }
        for a in part.alerts {
            unique(&mut seen, "alert route", &a.id, &a.origin)?;
            alerts.push(a);
        }
        internal.extend(part.internal_hosts);
        idle = match (idle, part.idle_timeout_us) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    internal.sort();
    internal.dedup();
    profiles.sort();
    let mut hosts = GlobSetBuilder::new();
    for h in &internal {
        let glob = GlobBuilder::new(h)
            .case_insensitive(true)
            .build()
            .map_err(|e| PolicyError {
                file: source.into(),
                line: 0,
                column: 0,
                message: format!("`internal_hosts` pattern {h:?}: {e}"),
            })?;
        hosts.add(glob);
    }
    let internal_set = hosts.build().map_err(|e| PolicyError {
        file: source.into(),
        line: 0,
        column: 0,
        message: format!("`internal_hosts`: {e}"),
    })?;
    let version = canonical_version(
        default,
        &profiles,
        &internal,
        idle,
        &rules,
        &triggers,
        &budgets,
        &prices,
        &rate_limits,
    );
    let version = super::alerts::with_routes(version, &alerts);
    let by_channel = Channel::ALL.map(|channel| {
        rules
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.conditions
                    .channel
                    .as_ref()
                    .is_none_or(|cs| cs.contains(&channel))
            })
            .map(|(i, _)| i)
            .collect()
    });
    Ok(Policy {
        version,
        name,
        source: source.to_string(),
        text: text.to_string(),
        default,
        profiles,
        rules,
        by_channel,
        budgets,
        prices,
        rate_limits,
        triggers,
        alerts,
        internal_hosts: internal_set,
        internal_host_patterns: internal,
        idle_timeout_us: idle,
    })
}

fn unique(
    seen: &mut HashMap<String, Origin>,
    what: &str,
    id: &str,
    origin: &Origin,
) -> Result<(), PolicyError> {
    if let Some(first) = seen.get(&format!("{what} {id}")) {
        return Err(PolicyError {
            file: origin.file.clone(),
            line: origin.line,
            column: origin.column,
            message: format!("duplicate {what} id {id:?} (first defined at {first})"),
        });
    }
    seen.insert(format!("{what} {id}"), origin.clone());
    Ok(())
}

/// serde-saphyr messages may carry a location suffix or several lines; the policy error
/// adds its own location, so keep the first line's message.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    match line.rfind(" at line ") {
        Some(i) if line[i..].contains(", column ") => line[..i].trim_end().to_string(),
        _ => line.to_string(),
    }
}

/// The last line of a regex error says what is wrong; the rest repeats the pattern.
fn regex_problem(e: &regex::Error) -> String {
    e.to_string()
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .trim_start_matches("error: ")
        .to_string()
}
