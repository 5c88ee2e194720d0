//! Alert routes: the `alerts:` section of a policy. Each route names the events it
//! wants, the webhook URL they are posted to, the body format and, optionally, the
//! environment variable holding the HMAC key the body is signed with.
//!
//! A route's secret is read from the environment when the policy is compiled and lives
//! only in memory: the policy version hashes the variable's *name*, never its value,
//! and the outbox stores the name too.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::Origin;

/// A route's `timeout` when it names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest `timeout` a route may ask for. The outbox leases an alert to one delivery
/// for longer than this, so a slow receiver cannot make two replicas send it twice.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// Something that can be alerted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEventKind {
    /// An Evaluate decision was deny.
    Deny,
    /// An Evaluate decision was require_approval.
    RequireApproval,
    /// A break-glass grant lifted a refusal.
    BreakGlassUsed,
    /// A budget crossed one of its `alert_at` fractions.
    BudgetThreshold,
    /// A budget is spent (hard: actions are now refused; soft: alert only).
    BudgetExceeded,
    /// A rate limit refused an action.
    RateLimited,
    /// `Audit.Verify` found a break in the hash chain.
    ChainBroken,
}

impl AlertEventKind {
    /// Every event, in the order documentation lists them.
    pub const ALL: [AlertEventKind; 7] = [
        AlertEventKind::Deny,
        AlertEventKind::RequireApproval,
        AlertEventKind::BreakGlassUsed,
        AlertEventKind::BudgetThreshold,
        AlertEventKind::BudgetExceeded,
        AlertEventKind::RateLimited,
        AlertEventKind::ChainBroken,
    ];

    /// The name used in policy files, payloads and the `x-warden-event` header.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEventKind::Deny => "deny",
            AlertEventKind::RequireApproval => "require_approval",
            AlertEventKind::BreakGlassUsed => "break_glass_used",
            AlertEventKind::BudgetThreshold => "budget_threshold",
            AlertEventKind::BudgetExceeded => "budget_exceeded",
            AlertEventKind::RateLimited => "rate_limited",
            AlertEventKind::ChainBroken => "chain_broken",
        }
    }

    pub fn parse(s: &str) -> Option<AlertEventKind> {
        AlertEventKind::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

impl fmt::Display for AlertEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an alert's body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertFormat {
    /// Warden's own JSON object (docs/POLICY.md, "Alerts").
    Json,
    /// A Slack incoming-webhook message: `{"text": …}`.
    Slack,
}

impl AlertFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertFormat::Json => "json",
            AlertFormat::Slack => "slack",
        }
    }

    pub fn parse(s: &str) -> Option<AlertFormat> {
        [AlertFormat::Json, AlertFormat::Slack]
            .into_iter()
            .find(|f| f.as_str() == s)
    }
}

/// An HMAC key read from the environment. Its `Debug` never shows the value.
#[derive(Clone)]
pub struct AlertSecret {
    /// The environment variable it came from.
    pub env: String,
    value: Arc<[u8]>,
}

impl AlertSecret {
    pub(super) fn new(env: String, value: &[u8]) -> AlertSecret {
        AlertSecret {
            env,
            value: value.into(),
        }
    }

    /// The key bytes.
    pub fn key(&self) -> &[u8] {
        &self.value
    }
}

impl fmt::Debug for AlertSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AlertSecret(${}, [hidden])", self.env)
    }
}

/// A compiled alert route.
#[derive(Debug, Clone)]
pub struct AlertRoute {
    pub id: String,
    /// Where it was written.
    pub origin: Origin,
    /// The events it receives, sorted and deduplicated.
    pub events: Vec<AlertEventKind>,
    /// An `http` or `https` URL.
    pub url: String,
    pub format: AlertFormat,
    /// HMAC-SHA256 key for `x-warden-signature`; unsigned when `None`.
    pub secret: Option<AlertSecret>,
    /// Longest one delivery attempt may take, connection included.
    pub timeout: Duration,
}

/// A route's meaning, as it enters the policy version: the secret's variable name, not
/// its value.
#[derive(Serialize)]
pub(super) struct AlertRouteSpec<'a> {
    id: &'a str,
    events: &'a [AlertEventKind],
    url: &'a str,
    format: AlertFormat,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_env: Option<&'a str>,
    timeout_ms: u64,
}

impl AlertRoute {
    pub(super) fn spec(&self) -> AlertRouteSpec<'_> {
        AlertRouteSpec {
            id: &self.id,
            events: &self.events,
            url: &self.url,
            format: self.format,
            secret_env: self.secret.as_ref().map(|s| s.env.as_str()),
            timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Whether this route receives `event`.
    pub fn wants(&self, event: AlertEventKind) -> bool {
        self.events.contains(&event)
    }
}

/// The policy version with alert routes folded in: unchanged without routes (so a
/// policy without `alerts:` keeps its version), else the hex SHA-256 of the version
/// followed by the routes' canonical JSON, in policy order.
pub(super) fn with_routes(version: String, routes: &[AlertRoute]) -> String {
    use sha2::{Digest, Sha256};
    if routes.is_empty() {
        return version;
    }
    let specs: Vec<AlertRouteSpec<'_>> = routes.iter().map(AlertRoute::spec).collect();
    // Serializing plain strings, numbers and enums cannot fail.
    let json = serde_json::to_vec(&specs).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(version.as_bytes());
    h.update(b"\nalerts:");
    h.update(json);
    hex::encode(h.finalize())
}
