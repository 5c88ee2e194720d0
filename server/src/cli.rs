//! `wardend`'s command line: the daemon and its offline tools. Each subcommand is a
//! function that returns the process exit code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::audit::{self, AuditRow};
use crate::policy::Policy;
use crate::server::{self, ServeConfig};
use crate::store::{AuditFilter, Store};

#[derive(Debug, Parser)]
#[command(
    name = "wardend",
    version,
    about = "Warden's policy-decision daemon for AI agents"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(DbArgs),
    /// Inspect the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Work with policy files offline.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Run multi-step scenario files against a policy; exit 1 on any mismatch.
    Check(CheckArgs),
    /// Compare two policy files by meaning (and scenarios' decisions under both); exit 1
    /// when they differ.
    Diff(crate::diff::DiffArgs),
    /// Score a policy against a built-in attack suite; exit 1 unless every attack is
    /// refused and every benign control allowed.
    Certify(crate::certify::CertifyArgs),
    /// Replay recorded sessions from the audit log through a new policy; exit 1 when
    /// decisions change.
    Simulate(crate::simulate::SimulateArgs),
    /// Measure the daemon.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Args)]
pub struct DbArgs {
    /// Database URL: sqlite://PATH or postgres://USER@HOST:PORT/DB.
    #[arg(long, env = "WARDEN_DB", default_value = "sqlite://warden.db")]
    pub db: String,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "WARDEN_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub db: DbArgs,
    /// Policy file (YAML). Default: the built-in default policy.
    #[arg(long, env = "WARDEN_POLICY")]
    pub policy: Option<PathBuf>,
    /// Do not apply database migrations at start.
    #[arg(long, env = "WARDEN_NO_MIGRATE")]
    pub no_migrate: bool,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    #[arg(long, env = "WARDEN_DRAIN_TIMEOUT", default_value_t = 10)]
    pub drain_timeout: u64,
    /// How often to check the policy file for changes, e.g. `2s`, `1m`; `0` turns
    /// reload-on-change off (SIGHUP and Admin.ReloadPolicy still work).
    #[arg(long, env = "WARDEN_POLICY_WATCH", default_value = "2s", value_parser = parse_interval)]
    pub policy_watch: Duration,
    /// How long a pending approval waits for an approver, e.g. `1h`, `15m`.
    #[arg(long, env = "WARDEN_APPROVAL_TIMEOUT", default_value = "1h", value_parser = parse_interval)]
    pub approval_timeout: Duration,
    /// File holding the admin token (first line, at least 16 characters, mode 600).
    /// With it, policy reload and approving need the token and break-glass is on;
    /// without it break-glass is off.
    #[arg(long, env = "WARDEN_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Wait before an alert's second delivery attempt, e.g. `1s` or `250ms`; each
    /// further attempt waits twice as long.
    #[arg(long, env = "WARDEN_ALERT_RETRY_BASE", default_value = "1s", value_parser = parse_alert_interval)]
    pub alert_retry_base: Duration,
    /// Longest wait between two delivery attempts of an alert.
    #[arg(long, env = "WARDEN_ALERT_RETRY_MAX", default_value = "5m", value_parser = parse_alert_interval)]
    pub alert_retry_max: Duration,
    /// Delivery attempts before an alert is given up (marked failed and logged).
    #[arg(long, env = "WARDEN_ALERT_MAX_ATTEMPTS", default_value_t = 24)]
    pub alert_max_attempts: u32,
    /// How often to look for alerts due for delivery (retries, and alerts queued by
    /// other replicas); alerts this daemon queues are sent at once.
    #[arg(long, env = "WARDEN_ALERT_POLL", default_value = "1s", value_parser = parse_alert_interval)]
    pub alert_poll: Duration,
    /// How long delivered and failed alerts stay in the outbox, e.g. `7d`.
    #[arg(long, env = "WARDEN_ALERT_RETENTION", default_value = "7d", value_parser = parse_alert_interval)]
    pub alert_retention: Duration,
    /// How long usage history rows are kept, e.g. `90d`; `0` keeps them forever. Budget
    /// counters are not affected.
    #[arg(long, env = "WARDEN_USAGE_RETENTION", default_value = "90d", value_parser = parse_interval)]
    pub usage_retention: Duration,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (decisions and their latency
    /// by channel and verdict; model tokens, cost and latency by model). Off by default.
    #[arg(long, env = "WARDEN_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

/// A duration flag: `2s`, `1m`, or `0`.
fn parse_interval(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    let us = crate::duration::parse_us(s)?;
    Ok(Duration::from_micros(u64::try_from(us).unwrap_or(0)))
}

/// An alert timing flag: a duration as [`parse_interval`] reads it, or milliseconds
/// such as `250ms`.
fn parse_alert_interval(s: &str) -> Result<Duration, String> {
    match s.trim().strip_suffix("ms") {
        Some(ms) => ms
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("duration {s:?}: expected a number of milliseconds")),
        None => parse_interval(s),
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Policy file to check. Default: the built-in default policy. A scenario that
    /// names a `profile` runs under that profile instead.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Scenario files or globs (quote globs: 'policies/scenarios/*.yaml').
    #[arg(long = "scenario", required = true)]
    pub scenarios: Vec<String>,
    /// Also write a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; exit 0 when intact, 1 naming the first bad record.
    Verify(DbArgs),
    /// Write every record as one JSON object per line to stdout.
    Export {
        #[command(flatten)]
        db: DbArgs,
        /// Only records after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
    /// Print one session's timeline.
    Replay {
        #[command(flatten)]
        db: DbArgs,
        /// Tenant of the session.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Session id.
        session: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check a policy file; print its version, or the error with file:line:column.
    Validate {
        /// Policy file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Evaluate with durable audit against a no-op tonic RPC, side by side.
    Evaluate(crate::bench::BenchArgs),
    /// In-process policy evaluation time, Warden next to Cedar on an equivalent
    /// 100-rule policy (Cedar with `--features cedar-bench`).
    Engine(crate::bench::engine::EngineArgs),
    /// The command analyzer and a policy against labelled malicious and harmless
    /// command sets: detection, pass rate, score, latency, misses.
    Shell(crate::bench::shell::ShellArgs),
    /// HTTP requests through `warden proxy` (a decision and a report per request)
    /// against the same local upstream directly, side by side.
    Proxy(crate::bench::proxy::ProxyArgs),
    /// Chat completions through `warden llm` (a decision before the call, one per
    /// proposed tool call, a report) against the same fake provider directly.
    Llm(crate::bench::proxy::ProxyArgs),
}

/// Runs a parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            let config = ServeConfig {
                listen: args.listen,
                db: args.db.db,
                policy: args.policy,
                migrate: !args.no_migrate,
                drain_timeout: Duration::from_secs(args.drain_timeout),
                policy_watch: Some(args.policy_watch).filter(|d| !d.is_zero()),
                approval_timeout: args.approval_timeout,
                usage_retention: Some(args.usage_retention).filter(|d| !d.is_zero()),
                admin_token_file: args.admin_token_file,
                metrics_listen: args.metrics_listen,
                alerts: crate::alerts::AlertConfig {
                    retry_base: args.alert_retry_base,
                    retry_max: args.alert_retry_max,
                    max_attempts: args.alert_max_attempts,
                    poll: args.alert_poll,
                    retention: args.alert_retention,
                    ..Default::default()
                },
                ..ServeConfig::default()
            };
            server::run(config, server::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate(db) => {
            let store = Store::connect(&db.db).await?;
            store.migrate().await?;
            println!("migrations applied to {}", store.display_url());
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(cmd) => audit_command(cmd).await,
        Command::Check(args) => check_command(args),
        Command::Diff(args) => Ok(crate::diff::command(&args)),
        Command::Certify(args) => crate::certify::command(&args),
        Command::Policy(PolicyCommand::Validate { file }) => match Policy::from_file(&file) {
            Ok(policy) => {
                let profiles = match policy.profiles() {
                    [] => String::new(),
                    p => format!(" (profiles: {})", p.join(", ")),
                };
                println!(
                    "{}: ok, {} rules{profiles}, version {}",
                    file.display(),
                    policy.rule_count(),
                    policy.version()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Bench(BenchCommand::Evaluate(args)) => {
            crate::bench::evaluate(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Engine(args)) => {
            crate::bench::engine::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Shell(args)) => crate::bench::shell::run(args).await,
        Command::Bench(BenchCommand::Proxy(args)) => {
            crate::bench::proxy::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Llm(args)) => {
            crate::bench::proxy::run_llm(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate(args) => crate::simulate::run(args).await,
    }
}

/// `wardend check`: exit 0 when every scenario passes, 1 on a mismatch, 2 when the
/// check cannot run.
fn check_command(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let policy = match server::load_policy(args.policy.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let files = match crate::check::expand_globs(&args.scenarios) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("wardend check: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let results = crate::check::run_files(&policy, &files);
    print!("{}", crate::check::report(&results));
    if let Some(path) = &args.junit {
        std::fs::write(path, crate::check::junit(&results))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if results.iter().all(|r| r.passed()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Opens a database that must already hold Warden's schema (offline tools never create
/// or migrate one behind the operator's back).
pub(crate) async fn open_existing(db: &str) -> anyhow::Result<Store> {
    let store = Store::connect(db).await?;
    store.audit_head().await.with_context(|| {
        format!(
            "{} does not hold a Warden audit log (run `wardend migrate` first?)",
            store.display_url()
        )
    })?;
    Ok(store)
}

async fn audit_command(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    match cmd {
        AuditCommand::Verify(db) => {
            let store = open_existing(&db.db).await?;
            let v = audit::verify(&store).await?;
            match v.failure {
                None => {
                    println!("audit chain intact: {} records", v.records);
                    Ok(ExitCode::SUCCESS)
                }
                Some(f) => {
                    println!("audit chain BROKEN at record {}: {}", f.seq, f.problem);
                    println!("{} records before it verified", v.records);
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        AuditCommand::Export { db, after } => {
            let store = open_existing(&db.db).await?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let mut after = after;
            loop {
                let page = store
                    .audit_page(&AuditFilter::default(), after, 1000)
                    .await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for row in &page {
                    serde_json::to_writer(&mut out, &row.to_export_json())?;
                    out.write_all(b"\n")?;
                }
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Replay {
            db,
            tenant,
            session,
        } => {
            let store = open_existing(&db.db).await?;
            let filter = AuditFilter {
                tenant,
                agent: String::new(),
                session: session.clone(),
            };
            let mut after = 0;
            let mut count = 0;
            loop {
                let page = store.audit_page(&filter, after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for row in &page {
                    println!("{}", timeline_line(row));
                    count += 1;
                }
            }
            if count == 0 {
                eprintln!("no records for session {session:?}");
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One line of a session timeline.
fn timeline_line(row: &AuditRow) -> String {
    let b = &row.body;
    let what = action_summary(&b.action);
    let when = format_time_us(b.time_us);
    if b.kind == audit::KIND_REPORT {
        let r: serde_json::Value = serde_json::from_str(&b.result).unwrap_or_default();
        let mut facts = Vec::new();
        if let Some(code) = r.get("exit_code").and_then(|v| v.as_i64()) {
            facts.push(format!("exit={code}"));
        }
        if let Some(sig) = r.get("signal").and_then(|v| v.as_i64()) {
            facts.push(format!("signal={sig}"));
        }
        for key in [
            "duration_ms",
            "bytes",
            "stdout_bytes",
            "stderr_bytes",
            "rows",
        ] {
            if let Some(n) = r.get(key).and_then(|v| v.as_u64()).filter(|n| *n > 0) {
                facts.push(format!("{key}={n}"));
            }
        }
        if let Some(e) = r
            .get("error")
            .and_then(|v| v.as_str())
            .filter(|e| !e.is_empty())
        {
            facts.push(format!("error={e:?}"));
        }
        format!(
            "{when}  #{:<6} report    {:<5} {what}  (for #{}) {}",
            row.seq,
            b.channel,
            b.decision_seq,
            facts.join(" ")
        )
    } else if b.kind != audit::KIND_EVALUATE {
        format!("{when}  #{:<6} {:<9} zone={}", row.seq, b.kind, b.zone)
    } else {
        let rules = if b.rule_ids.is_empty() {
            "default".to_string()
        } else {
            b.rule_ids.join(",")
        };
        format!(
            "{when}  #{:<6} evaluate  {:<5} {what}  => {} [{rules}] {}  zone={}",
            row.seq, b.channel, b.verdict, b.reason, b.zone
        )
    }
}

/// What a recorded action was about, as timelines show it: its command line, else its
/// resource, else its tool.
pub(crate) fn action_summary(action_json: &str) -> String {
    let action: serde_json::Value = serde_json::from_str(action_json).unwrap_or_default();
    action
        .get("command_line")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            action
                .get("resource")
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
        })
        .or_else(|| action.get("tool").and_then(|v| v.as_str()))
        .unwrap_or("")
        .to_string()
}

/// RFC 3339 UTC time from microseconds since the epoch.
pub fn format_time_us(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    let (year, month, day) = crate::policy::budgets::civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::format_time_us;

    #[test]
    fn formats_utc_times() {
        assert_eq!(format_time_us(0), "1970-01-01T00:00:00.000000Z");
        // 2026-11-21T22:48:00.5Z
        assert_eq!(
            format_time_us(1_795_301_280_500_000),
            "2026-11-21T22:48:00.500000Z"
        );
        assert_eq!(
            format_time_us(951_782_400_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
    }
}
