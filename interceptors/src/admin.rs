//! Operator commands: `warden approvals list|approve|deny` and `warden break-glass`.
//!
//! They talk to the daemon's Approvals and Admin services. The admin token (when the
//! daemon has one) is read from `--admin-token-file` or `WARDEN_ADMIN_TOKEN_FILE` and
//! sent as `authorization: Bearer …`; it is never taken on the command line, where other
//! users could read it from the process table.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use tonic::Request;
use tonic::transport::{Channel, Endpoint};
use warden_proto::v1::{
    Approval, ApprovalStatus, ApproveRequest, BreakGlassGrant, BreakGlassRequest,
    DenyApprovalRequest, ListApprovalsRequest, ListBreakGlassRequest, RevokeBreakGlassRequest,
    admin_client::AdminClient, approvals_client::ApprovalsClient,
};

/// Exit code when the daemon refused or failed the operation.
const EXIT_FAILED: i32 = 1;

#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// wardend address (host:port or http://host:port).
    #[arg(long, env = "WARDEN_DAEMON", default_value = "http://127.0.0.1:50051")]
    pub daemon: String,
    /// File holding the admin token (needed when wardend has one).
    #[arg(long, env = "WARDEN_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Who you are, as recorded in the audit log. Default: $USER.
    #[arg(long = "as", env = "WARDEN_OPERATOR", value_name = "NAME")]
    pub operator: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// List approvals, newest first.
    List {
        #[command(flatten)]
        admin: AdminArgs,
        /// pending, approved, denied, expired, used, or all.
        #[arg(long, default_value = "pending")]
        status: String,
        #[arg(long, default_value = "")]
        tenant: String,
        #[arg(long, default_value = "")]
        agent: String,
        #[arg(long, default_value = "")]
        session: String,
    },
    /// Grant a pending approval: the same action may then run once (or, with --ttl, for
    /// that long).
    Approve {
        #[command(flatten)]
        admin: AdminArgs,
        id: String,
        /// Why; recorded in the audit log.
        #[arg(long, default_value = "")]
        reason: String,
        /// Allow the same action repeatedly for this long (e.g. 30m) instead of once.
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<Duration>,
    },
    /// Refuse a pending approval.
    Deny {
        #[command(flatten)]
        admin: AdminArgs,
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BudgetsCommand {
    /// Budgets that apply to a tenant, agent or session, with their current window's
    /// usage, and the recent usage history.
    Show {
        #[command(flatten)]
        admin: AdminArgs,
        #[arg(long, default_value = "default")]
        tenant: String,
        #[arg(long, default_value = "")]
        agent: String,
        #[arg(long, default_value = "")]
        session: String,
        /// History rows to show.
        #[arg(long, default_value_t = 20)]
        history: u32,
    },
}

pub(crate) async fn budgets(cmd: BudgetsCommand) -> i32 {
    finish(budgets_inner(cmd).await)
}

async fn budgets_inner(cmd: BudgetsCommand) -> Result<(), String> {
    use warden_proto::v1::{GetUsageRequest, budgets_client::BudgetsClient};
    let BudgetsCommand::Show {
        admin,
        tenant,
        agent,
        session,
        history,
    } = cmd;
    let mut client = BudgetsClient::new(admin.channel().await?);
    let usage = client
        .get_usage(GetUsageRequest {
            tenant,
            agent,
            session,
            since_us: 0,
            history_limit: history.max(1),
        })
        .await
        .map_err(status_text)?
        .into_inner();
    if usage.budgets.is_empty() {
        println!(
            "no budgets apply (per-agent budgets need --agent, per-session ones --session too)"
        );
    }
    for b in &usage.budgets {
        println!(
            "{:<24} {:<13} per {:<7} this {:<7} used {} of {} ({} reserved, {} left){}",
            b.budget,
            b.metric,
            b.scope,
            b.window,
            b.used,
            b.limit,
            b.reserved,
            b.remaining,
            if b.hard { "" } else { "  [soft]" }
        );
    }
    if !usage.history.is_empty() {
        println!("history (newest first):");
    }
    for h in usage.history.iter().take(history as usize) {
        println!(
            "  {} {}/{} {} {} {} tokens={}+{} cost=${} bytes={} rows={} ms={} calls={}",
            h.time_us,
            h.agent,
            h.session,
            h.channel,
            h.tool,
            h.model,
            h.tokens_in,
            h.tokens_out,
            h.cost_usd,
            h.egress_bytes,
            h.rows,
            h.wall_time_ms,
            h.tool_calls
        );
    }
    Ok(())
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BreakGlassArgs {
    #[command(subcommand)]
    command: Option<BreakGlassCommand>,
    #[command(flatten)]
    issue: IssueArgs,
}

#[derive(Debug, Args)]
struct IssueArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// Why the override is needed (required; audited).
    #[arg(long)]
    reason: Option<String>,
    /// How long it lasts, e.g. 10m (at most 24h).
    #[arg(long, value_parser = parse_duration)]
    ttl: Option<Duration>,
    #[arg(long, default_value = "default")]
    tenant: String,
    /// Only this agent's actions.
    #[arg(long)]
    agent: Option<String>,
    /// Only this session's actions.
    #[arg(long)]
    session: Option<String>,
    /// Every agent and session of the tenant.
    #[arg(long)]
    tenant_wide: bool,
}

#[derive(Debug, Subcommand)]
enum BreakGlassCommand {
    /// End a grant now.
    Revoke {
        #[command(flatten)]
        admin: AdminArgs,
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List active grants (all grants with --all).
    List {
        #[command(flatten)]
        admin: AdminArgs,
        #[arg(long)]
        all: bool,
    },
}

/// `30s`, `10m`, `2h`, `1d`, or a number of seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (write e.g. 30s, 10m, 2h)"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3_600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use s, m, h or d)")),
    };
    Ok(Duration::from_secs(secs))
}

impl AdminArgs {
    fn url(&self) -> String {
        if self.daemon.contains("://") {
            self.daemon.clone()
        } else {
            format!("http://{}", self.daemon)
        }
    }

    async fn channel(&self) -> Result<Channel, String> {
        let url = self.url();
        Endpoint::from_shared(url.clone())
            .map_err(|e| format!("invalid address {url:?}: {e}"))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .connect()
            .await
            .map_err(|e| format!("cannot reach wardend at {url}: {e}"))
    }

    /// A request carrying the admin token, if one is configured.
    fn request<T>(&self, message: T) -> Result<Request<T>, String> {
        let mut request = Request::new(message);
        if let Some(path) = &self.admin_token_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the admin token file {}: {e}", path.display()))?;
            let token = text.lines().next().unwrap_or("").trim();
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| format!("the admin token in {} is not valid", path.display()))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }

    fn operator(&self) -> Result<String, String> {
        self.operator
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| "say who you are with --as NAME (or set $USER)".to_string())
    }
}

pub(crate) async fn approvals(cmd: ApprovalsCommand) -> i32 {
    finish(approvals_inner(cmd).await)
}

pub(crate) async fn break_glass(args: BreakGlassArgs) -> i32 {
    finish(break_glass_inner(args).await)
}

fn finish(result: Result<(), String>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("warden: {e}");
            EXIT_FAILED
        }
    }
}

fn status_text(s: tonic::Status) -> String {
    format!("wardend refused: {} ({:?})", s.message(), s.code())
}

async fn approvals_inner(cmd: ApprovalsCommand) -> Result<(), String> {
    match cmd {
        ApprovalsCommand::List {
            admin,
            status,
            tenant,
            agent,
            session,
        } => {
            let status = match status.as_str() {
                "all" => ApprovalStatus::Unspecified,
                other => ApprovalStatus::from_str_name(&format!(
                    "APPROVAL_STATUS_{}",
                    other.to_ascii_uppercase()
                ))
                .ok_or_else(|| {
                    format!(
                        "--status {other:?}: use pending, approved, denied, expired, used or all"
                    )
                })?,
            };
            let mut client = ApprovalsClient::new(admin.channel().await?);
            let list = client
                .list(ListApprovalsRequest {
                    status: status.into(),
                    tenant,
                    agent,
                    session,
                    limit: 1000,
                })
                .await
                .map_err(status_text)?
                .into_inner();
            if list.approvals.is_empty() {
                println!("no approvals");
            }
            for a in &list.approvals {
                println!("{}", approval_line(a));
            }
            Ok(())
        }
        ApprovalsCommand::Approve {
            admin,
            id,
            reason,
            ttl,
        } => {
            let mut client = ApprovalsClient::new(admin.channel().await?);
            let request = admin.request(ApproveRequest {
                id,
                approver: admin.operator()?,
                note: reason,
                ttl_seconds: ttl.map_or(0, |d| d.as_secs().max(1)),
            })?;
            let a = client
                .approve(request)
                .await
                .map_err(status_text)?
                .into_inner();
            println!("{}", approval_line(&a));
            Ok(())
        }
        ApprovalsCommand::Deny { admin, id, reason } => {
            let mut client = ApprovalsClient::new(admin.channel().await?);
            let request = admin.request(DenyApprovalRequest {
                id,
                approver: admin.operator()?,
                note: reason,
            })?;
            let a = client
                .deny(request)
                .await
                .map_err(status_text)?
                .into_inner();
            println!("{}", approval_line(&a));
            Ok(())
        }
    }
}

async fn break_glass_inner(args: BreakGlassArgs) -> Result<(), String> {
    match args.command {
        Some(BreakGlassCommand::Revoke { admin, id, reason }) => {
            let mut client = AdminClient::new(admin.channel().await?);
            let request = admin.request(RevokeBreakGlassRequest {
                id,
                revoked_by: admin.operator()?,
                reason,
            })?;
            let g = client
                .revoke_break_glass(request)
                .await
                .map_err(status_text)?
                .into_inner();
            println!("{}", grant_line(&g));
            Ok(())
        }
        Some(BreakGlassCommand::List { admin, all }) => {
            let mut client = AdminClient::new(admin.channel().await?);
            let list = client
                .list_break_glass(ListBreakGlassRequest { all })
                .await
                .map_err(status_text)?
                .into_inner();
            if list.grants.is_empty() {
                println!("no break-glass grants");
            }
            for g in &list.grants {
                println!("{}", grant_line(g));
            }
            Ok(())
        }
        None => {
            let a = args.issue;
            let reason = a
                .reason
                .ok_or("--reason is required: say why the override is needed")?;
            let ttl = a.ttl.ok_or("--ttl is required, e.g. --ttl 10m")?;
            let mut client = AdminClient::new(a.admin.channel().await?);
            let request = a.admin.request(BreakGlassRequest {
                tenant: a.tenant,
                agent: a.agent.unwrap_or_default(),
                session: a.session.unwrap_or_default(),
                tenant_wide: a.tenant_wide,
                reason,
                ttl_seconds: ttl.as_secs(),
                issued_by: a.admin.operator()?,
            })?;
            let g = client
                .break_glass(request)
                .await
                .map_err(status_text)?
                .into_inner();
            println!("{}", grant_line(&g));
            Ok(())
        }
    }
}

fn approval_line(a: &Approval) -> String {
    let status = a
        .status()
        .as_str_name()
        .trim_start_matches("APPROVAL_STATUS_")
        .to_ascii_lowercase();
    let what = summary(&a.action_json);
    let decided = if a.decided_by.is_empty() {
        String::new()
    } else {
        format!(" by {}", a.decided_by)
    };
    format!(
        "{}  {status}{decided}  agent={} session={}  {} {what}  [{}] {}",
        a.id,
        a.agent,
        a.session,
        a.channel,
        a.rule_ids.join(","),
        a.reason
    )
}

/// The command line, resource or tool of an action as the audit log stores it.
fn summary(action_json: &str) -> String {
    let action: serde_json::Value = serde_json::from_str(action_json).unwrap_or_default();
    ["command_line", "resource", "tool"]
        .iter()
        .filter_map(|key| action.get(key).and_then(|v| v.as_str()))
        .find(|s| !s.is_empty())
        .unwrap_or("")
        .to_string()
}

fn grant_line(g: &BreakGlassGrant) -> String {
    let scope = match (g.agent.as_str(), g.session.as_str()) {
        ("", "") => "whole tenant".to_string(),
        (a, "") => format!("agent={a}"),
        ("", s) => format!("session={s}"),
        (a, s) => format!("agent={a} session={s}"),
    };
    let state = if g.active {
        "active"
    } else if g.revoked_us != 0 {
        "revoked"
    } else {
        "expired"
    };
    format!(
        "{}  {state}  tenant={} {scope}  issued by {}  uses={}  expires_us={}  reason: {}",
        g.id, g.tenant, g.issued_by, g.uses, g.expires_us, g.reason
    )
}
