//! Alerts: webhooks posted when something worth a human's attention happens (a
//! denial, a request for approval, a break-glass use, a spent budget, a broken audit
//! chain), routed by the policy's `alerts:` section.
//!
//! Alerts go through a durable outbox in the database (`store/alerts.rs`). The request
//! path calls [`Alerts::emit`] after the decision's audit record is committed; that
//! renders one body per matching route and inserts the rows in one statement. A worker
//! in every replica ([`WorkerHandle`]) claims due rows with a lease, posts them, and
//! retries 5xx answers, timeouts and network errors with exponential backoff; other
//! 4xx answers fail the alert at once. A daemon killed with alerts queued sends them
//! after its restart, and two replicas never send one alert at the same time.

mod event;
mod http;
mod payload;
mod sign;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

pub use crate::policy::{AlertEventKind, AlertFormat};
pub use event::AlertEvent;
pub use sign::{hmac_sha256, signature_header, verify_signature};
pub use worker::WorkerHandle;

use crate::service::{PolicyHandle, now_us};
use crate::store::{NewAlert, Store};

/// How the delivery worker retries and keeps alerts.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// Wait before the second attempt; each further attempt waits twice as long.
    pub retry_base: Duration,
    /// Longest wait between two attempts.
    pub retry_max: Duration,
    /// Attempts before an alert is given up (status `failed`).
    pub max_attempts: u32,
    /// How often the worker looks for due alerts (retries, and alerts queued by other
    /// replicas); alerts queued by this process are sent at once.
    pub poll: Duration,
    /// How long delivered and failed alerts stay in the outbox.
    pub retention: Duration,
    /// Most deliveries one worker has in flight at a time.
    pub batch: u32,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            max_attempts: 24,
            poll: Duration::from_secs(1),
            retention: Duration::from_secs(7 * 86_400),
            batch: 32,
        }
    }
}

/// The handle the request path emits alerts through. Cheap to clone.
#[derive(Clone)]
pub struct Alerts {
    store: Store,
    policy: Arc<PolicyHandle>,
    /// Wakes this process's worker when alerts are queued.
    wake: Arc<Notify>,
}

impl Alerts {
    pub fn new(store: Store, policy: Arc<PolicyHandle>) -> Alerts {
        Alerts {
            store,
            policy,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Queues `event` for every route of the policy in force that subscribes to it.
    /// Call it after the audit record the event is about is committed. Never fails: a
    /// decision already made stands, so an alert that cannot be queued is logged as
    /// lost.
    pub async fn emit(&self, event: AlertEvent) {
        self.emit_all(vec![event]).await;
    }

    /// Queues several events about one happening (e.g. `rate_limited` and the `deny`
    /// it caused). Each route receives at most one alert: for the first event in
    /// `events` it subscribes to. Put the most specific event first.
    pub async fn emit_all(&self, events: Vec<AlertEvent>) {
        let policy = self.policy.current();
        if policy.alerts().is_empty() || events.is_empty() {
            return;
        }
        let now = now_us();
        let mut rows = Vec::new();
        for route in policy.alerts() {
            let Some(event) = events.iter().find(|e| route.wants(e.kind)) else {
                continue;
            };
            let mut event = event.clone();
            if event.time_us == 0 {
                event.time_us = now;
            }
            if event.policy_version.is_empty() {
                event.policy_version = policy.version().to_string();
            }
            let id = crate::ids::new_id("alr");
            rows.push(NewAlert {
                payload: payload::render(route.format, &id, &event),
                id,
                route_id: route.id.clone(),
                url: route.url.clone(),
                format: route.format.as_str().into(),
                secret_env: route
                    .secret
                    .as_ref()
                    .map(|s| s.env.clone())
                    .unwrap_or_default(),
                timeout_ms: i64::try_from(route.timeout.as_millis()).unwrap_or(i64::MAX),
                event: event.kind.as_str().into(),
                created_us: now,
            });
        }
        if rows.is_empty() {
            return;
        }
        match self.store.alert_enqueue(&rows).await {
            Ok(()) => self.wake.notify_one(),
            Err(e) => {
                for row in &rows {
                    tracing::error!(error = %e, alert = %row.id, route = %row.route_id, event = %row.event, "alert could not be queued and is lost");
                }
            }
        }
    }

    /// Starts this process's delivery worker.
    pub fn start_worker(&self, config: AlertConfig) -> Result<WorkerHandle, rustls::Error> {
        Ok(WorkerHandle::spawn(worker::Worker {
            store: self.store.clone(),
            policy: self.policy.clone(),
            sender: http::Sender::new()?,
            config,
            owner: crate::ids::new_id("worker"),
            wake: self.wake.clone(),
        }))
    }
}
