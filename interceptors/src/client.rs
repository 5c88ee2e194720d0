//! The one client every interceptor uses: connection with a deadline, Evaluate and
//! Report with a deadline, and errors that say plainly that nothing was decided.

use std::time::Duration;

use clap::Args;
use tonic::transport::{Channel, Endpoint};
use warden_proto::v1::{
    Action, Approval, ApprovalStatus, Decision, EvaluateRequest, NeverAllowedRequest,
    ReportRequest, ResultMeta, WatchApprovalRequest, approvals_client::ApprovalsClient,
    decisions_client::DecisionsClient,
};

/// Status metadata key with which wardend marks "reached, but no decision" (its
/// `error::CAUSE_KEY`); the interceptors do not depend on the server crate.
const CAUSE_KEY: &str = "warden-cause";

/// Where the daemon is and who is asking. Every flag has an environment equivalent so a
/// sidecar or agent launcher can set them once.
#[derive(Debug, Clone, Args)]
pub struct IdentityArgs {
    /// wardend address (host:port or http://host:port).
    #[arg(long, env = "WARDEN_DAEMON", default_value = "http://127.0.0.1:50051")]
    pub daemon: String,
    /// Tenant the agent belongs to.
    #[arg(long, env = "WARDEN_TENANT", default_value = "default")]
    pub tenant: String,
    /// Agent id.
    #[arg(long, env = "WARDEN_AGENT", default_value = "default")]
    pub agent: String,
    /// Session id; actions of one session are judged together.
    #[arg(long, env = "WARDEN_SESSION", default_value = "default")]
    pub session: String,
    /// Milliseconds to wait for a decision before refusing.
    #[arg(long, env = "WARDEN_TIMEOUT_MS", default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Run the action anyway when no decision can be had (daemon down or slow). Every
    /// such run is announced on stderr. Policy refusals are never overridden.
    #[arg(long, env = "WARDEN_FAIL_OPEN")]
    pub fail_open: bool,
}

/// `--wait-approval[=TIMEOUT]`, the same for every interceptor.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct ApprovalWait {
    /// When the policy requires approval, wait for an approver up to TIMEOUT (default
    /// 10m when given without a value, e.g. `--wait-approval=30m`), then ask again and
    /// go ahead if allowed. Without it the refusal names the approval at once (an
    /// interactive `warden shell` asks y/N instead).
    #[arg(
        long,
        value_name = "TIMEOUT",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "10m",
        value_parser = crate::admin::parse_duration
    )]
    pub(crate) wait_approval: Option<Duration>,
}

impl IdentityArgs {
    /// Fills the identity fields of an action.
    pub fn stamp(&self, action: &mut Action) {
        action.tenant = self.tenant.clone();
        action.agent = self.agent.clone();
        action.session = self.session.clone();
    }

    fn url(&self) -> String {
        if self.daemon.contains("://") {
            self.daemon.clone()
        } else {
            format!("http://{}", self.daemon)
        }
    }
}

/// How waiting on an approval ended.
pub(crate) enum Waited {
    /// Asked again after the grant (or there was nothing to wait for): this decision.
    Decided(Decision),
    /// Denied, expired or still pending at the deadline: a refusal, with the reason.
    NotGranted(String),
    /// No answer could be had from the daemon.
    Failed(String),
}

/// Why no decision was had.
#[derive(Debug, thiserror::Error)]
pub enum NoDecision {
    #[error("cannot reach wardend at {addr}: {detail}")]
    Unreachable { addr: String, detail: String },
    #[error("wardend at {addr} did not answer within {timeout:?}")]
    TimedOut { addr: String, timeout: Duration },
    #[error("wardend rejected the request: {0}")]
    Rejected(String),
    #[error("wardend could not decide: {0}")]
    Failed(String),
}

impl NoDecision {
    /// Whether `--fail-open` may override this (the daemon is unavailable), as opposed to
    /// the daemon having looked at the request and refused to decide it.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            NoDecision::Unreachable { .. } | NoDecision::TimedOut { .. }
        )
    }
}

/// A connected client with a per-call deadline. Clones share one HTTP/2 connection.
#[derive(Clone)]
pub struct DaemonClient {
    inner: DecisionsClient<Channel>,
    channel: Channel,
    addr: String,
    timeout: Duration,
}

impl DaemonClient {
    pub async fn connect(args: &IdentityArgs) -> Result<DaemonClient, NoDecision> {
        let addr = args.url();
        let timeout = Duration::from_millis(args.timeout_ms);
        let endpoint = endpoint(&addr, timeout)?;
        let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
            Err(_) => return Err(NoDecision::TimedOut { addr, timeout }),
            Ok(Err(e)) => {
                return Err(NoDecision::Unreachable {
                    detail: source_chain(&e),
                    addr,
                });
            }
            Ok(Ok(channel)) => channel,
        };
        Ok(DaemonClient {
            inner: DecisionsClient::new(channel.clone()),
            channel,
            addr,
            timeout,
        })
    }

    /// A client that connects on first use and reconnects after failures: for
    /// long-running interceptors (proxy, MCP gateway), which must start, and refuse
    /// with a reason, while the daemon is down.
    pub fn lazy(args: &IdentityArgs) -> Result<DaemonClient, NoDecision> {
        let addr = args.url();
        let timeout = Duration::from_millis(args.timeout_ms);
        let channel = endpoint(&addr, timeout)?.connect_lazy();
        Ok(DaemonClient {
            inner: DecisionsClient::new(channel.clone()),
            channel,
            addr,
            timeout,
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub async fn evaluate(&mut self, action: Action) -> Result<Decision, NoDecision> {
        let call = self.inner.evaluate(EvaluateRequest {
            action: Some(action),
        });
        let response = match tokio::time::timeout(self.timeout, call).await {
            Err(_) => {
                return Err(NoDecision::TimedOut {
                    addr: self.addr.clone(),
                    timeout: self.timeout,
                });
            }
            Ok(r) => r.map_err(|s| self.status_error(s))?,
        };
        response
            .into_inner()
            .decision
            .ok_or_else(|| NoDecision::Failed("the answer carried no decision".into()))
    }

    pub async fn report(
        &mut self,
        action: Action,
        decision_seq: u64,
        result: ResultMeta,
    ) -> Result<(), NoDecision> {
        self.report_then_evaluate(action, decision_seq, result, Vec::new())
            .await
            .map(|_| ())
    }

    /// Reports a result and has the daemon evaluate `follow_ups` (actions in the same
    /// session that the result led to) right after, in one round trip: one decision
    /// per follow-up, in order. Any failure means no follow-up may run.
    pub async fn report_then_evaluate(
        &mut self,
        action: Action,
        decision_seq: u64,
        result: ResultMeta,
        follow_ups: Vec<Action>,
    ) -> Result<Vec<Decision>, NoDecision> {
        let asked = follow_ups.len();
        let call = self.inner.report(ReportRequest {
            action: Some(action),
            decision_seq,
            result: Some(result),
            then_evaluate: follow_ups,
        });
        let decisions = match tokio::time::timeout(self.timeout, call).await {
            Err(_) => {
                return Err(NoDecision::TimedOut {
                    addr: self.addr.clone(),
                    timeout: self.timeout,
                });
            }
            Ok(r) => r.map_err(|s| self.status_error(s))?.into_inner().decisions,
        };
        if decisions.len() != asked {
            return Err(NoDecision::Failed(format!(
                "the daemon answered {} decisions for {asked} follow-up actions",
                decisions.len()
            )));
        }
        Ok(decisions)
    }

    /// The tools (of `tools`) the policy can never allow this identity on `channel`.
    pub(crate) async fn never_allowed(
        &mut self,
        identity: &IdentityArgs,
        channel: &str,
        tools: Vec<String>,
    ) -> Result<Vec<String>, NoDecision> {
        let call = self.inner.never_allowed(NeverAllowedRequest {
            tenant: identity.tenant.clone(),
            agent: identity.agent.clone(),
            session: identity.session.clone(),
            channel: channel.to_string(),
            tools,
        });
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(NoDecision::TimedOut {
                addr: self.addr.clone(),
                timeout: self.timeout,
            }),
            Ok(r) => r
                .map(|r| r.into_inner().tools)
                .map_err(|s| self.status_error(s)),
        }
    }

    /// Watches an approval until it is decided or `timeout` passes, and returns its last
    /// state (still pending on timeout).
    pub async fn wait_for_approval(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<Approval, NoDecision> {
        let mut client = ApprovalsClient::new(self.channel.clone());
        let request = WatchApprovalRequest {
            id: id.to_string(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        };
        let mut stream = client
            .watch(request)
            .await
            .map_err(|s| self.status_error(s))?
            .into_inner();
        let mut last = None;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, stream.message()).await {
                // Timed out, or the daemon ended the stream: the last state it sent.
                Err(_) | Ok(Ok(None)) => break,
                Ok(Ok(Some(approval))) => {
                    let settled = approval.status() != ApprovalStatus::Pending;
                    last = Some(approval);
                    if settled {
                        break;
                    }
                }
                Ok(Err(status)) => return Err(self.status_error(status)),
            }
        }
        last.ok_or_else(|| NoDecision::Failed(format!("approval {id}: no state received")))
    }

    /// Waits on the approval a REQUIRE_APPROVAL decision created and, once granted, asks
    /// again (the grant is bound to this exact action) and returns the new decision.
    pub(crate) async fn await_approval(
        &mut self,
        action: &Action,
        decision: Decision,
        timeout: Duration,
    ) -> Waited {
        if decision.approval_id.is_empty() {
            return Waited::Decided(decision);
        }
        let id = decision.approval_id.clone();
        let approval = match self.wait_for_approval(&id, timeout).await {
            Ok(a) => a,
            Err(e) => return Waited::Failed(format!("cannot wait for approval {id}: {e}")),
        };
        match approval.status() {
            ApprovalStatus::Approved => {}
            ApprovalStatus::Pending => {
                return Waited::NotGranted(format!(
                    "approval {id} was not decided within {}s",
                    timeout.as_secs()
                ));
            }
            other => {
                let by = if approval.decided_by.is_empty() {
                    String::new()
                } else {
                    format!(" by {}", approval.decided_by)
                };
                let note = if approval.decision_note.is_empty() {
                    String::new()
                } else {
                    format!(": {}", approval.decision_note)
                };
                let status = other
                    .as_str_name()
                    .trim_start_matches("APPROVAL_STATUS_")
                    .to_ascii_lowercase();
                return Waited::NotGranted(format!("approval {id} is {status}{by}{note}"));
            }
        }
        match self.evaluate(action.clone()).await {
            Ok(d) => Waited::Decided(d),
            Err(e) => Waited::Failed(format!(
                "approval {id} was granted but asking again failed: {e}"
            )),
        }
    }

    fn status_error(&self, status: tonic::Status) -> NoDecision {
        use tonic::Code;
        match status.code() {
            Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::PermissionDenied
            | Code::Unauthenticated => NoDecision::Rejected(status.message().to_string()),
            Code::DeadlineExceeded => NoDecision::TimedOut {
                addr: self.addr.clone(),
                timeout: self.timeout,
            },
            // The daemon answered but its audit store failed (see wardend's error.rs):
            // that is a refusal to decide, not an unreachable daemon.
            Code::Unavailable if status.metadata().get(CAUSE_KEY).is_some() => {
                NoDecision::Failed(status.message().to_string())
            }
            Code::Unavailable | Code::Cancelled | Code::Unknown => NoDecision::Unreachable {
                addr: self.addr.clone(),
                detail: status.message().to_string(),
            },
            _ => NoDecision::Failed(status.message().to_string()),
        }
    }
}

/// The daemon's endpoint with the per-call deadline as connect and request timeout.
fn endpoint(addr: &str, timeout: Duration) -> Result<Endpoint, NoDecision> {
    Ok(Endpoint::from_shared(addr.to_string())
        .map_err(|e| NoDecision::Unreachable {
            addr: addr.to_string(),
            detail: format!("invalid address: {e}"),
        })?
        .connect_timeout(timeout)
        .timeout(timeout)
        .tcp_nodelay(true))
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        // hyper and tonic repeat their source's text in their own; say it once.
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
