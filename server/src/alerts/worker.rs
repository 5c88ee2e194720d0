//! The delivery worker: claims due alerts from the outbox with a lease, posts them,
//! and records the outcome, retrying with exponential backoff.
//!
//! Every replica runs one. A claim leases rows to this worker for [`LEASE`], far
//! longer than one attempt may take (timeouts are capped at
//! [`MAX_TIMEOUT`](crate::policy::alerts::MAX_TIMEOUT)), so no other replica takes a
//! row while it is being sent. At shutdown the worker stops claiming, lets the
//! deliveries under way finish within the drain timeout and gives back its remaining
//! leases, so the next worker (another replica, or this daemon after a restart) sends
//! them at once. A worker that dies without that (SIGKILL, power loss) leaves leases
//! that run out after [`LEASE`]; its alerts are then sent again, and receivers drop
//! repeats by `x-warden-delivery`.

use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::AlertConfig;
use super::http::{Attempt, Sender};
use super::sign;
use crate::policy::alerts::MAX_TIMEOUT;
use crate::service::{PolicyHandle, now_us};
use crate::store::{OutboxRow, Store};

/// How long a claim holds an alert: two of the longest attempts, and a margin.
pub(crate) const LEASE: Duration = MAX_TIMEOUT
    .saturating_mul(2)
    .saturating_add(Duration::from_secs(10));
/// How often delivered and failed alerts older than the retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

pub(super) struct Worker {
    pub(super) store: Store,
    pub(super) policy: Arc<PolicyHandle>,
    pub(super) sender: Sender,
    pub(super) config: AlertConfig,
    /// This worker's lease owner id, unique per process start.
    pub(super) owner: String,
    /// Poked when this process enqueues alerts, so they leave without waiting for a poll.
    pub(super) wake: Arc<Notify>,
}

/// A running worker; [`WorkerHandle::stop`] ends it.
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    store: Store,
    owner: String,
}

impl WorkerHandle {
    pub(super) fn spawn(worker: Worker) -> WorkerHandle {
        let (stop, stopped) = watch::channel(false);
        let store = worker.store.clone();
        let owner = worker.owner.clone();
        let task = tokio::spawn(Arc::new(worker).run(stopped));
        WorkerHandle {
            stop,
            task,
            store,
            owner,
        }
    }

    /// Stops claiming, waits up to `deadline` for deliveries under way, then gives back
    /// the leases of whatever this worker still holds.
    pub async fn stop(self, deadline: Duration) {
        let _ = self.stop.send(true);
        let abort = self.task.abort_handle();
        if tokio::time::timeout(deadline, self.task).await.is_err() {
            abort.abort();
            tracing::warn!("alert deliveries still under way at the drain timeout were cut off");
        }
        // One UPDATE: a few seconds are plenty, and keep the stop close to `deadline`.
        let release = deadline.min(Duration::from_secs(5));
        match tokio::time::timeout(release, self.store.alert_release(&self.owner)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(alerts = n, "released unsent alerts for the next worker"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot release alert leases; they run out on their own")
            }
            Err(_) => tracing::warn!("releasing alert leases timed out; they run out on their own"),
        }
    }
}

impl Worker {
    /// Keeps up to `batch` deliveries in flight: claims as many due alerts as there is
    /// room for, and claims again whenever one finishes, a local alert is queued or the
    /// poll interval passes. A slow receiver holds its own deliveries only, never the
    /// others'.
    async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        tracing::info!(owner = %self.owner, "alert worker started");
        let mut next_prune = Instant::now();
        let mut failing = false;
        let mut in_flight = JoinSet::new();
        while !*stopped.borrow() {
            if Instant::now() >= next_prune {
                self.prune().await;
                next_prune = Instant::now() + PRUNE_EVERY;
            }
            while in_flight.try_join_next().is_some() {}
            let room = (self.config.batch as usize).saturating_sub(in_flight.len());
            let mut claimed_all_room = false;
            if room > 0 {
                let now = now_us();
                let lease_until =
                    now.saturating_add(i64::try_from(LEASE.as_micros()).unwrap_or(i64::MAX));
                let limit = u32::try_from(room).unwrap_or(u32::MAX);
                match self
                    .store
                    .alert_claim(&self.owner, now, lease_until, limit)
                    .await
                {
                    Ok(rows) => {
                        if failing {
                            tracing::info!("alert outbox reachable again");
                            failing = false;
                        }
                        claimed_all_room = rows.len() == room;
                        for row in rows {
                            let me = self.clone();
                            in_flight.spawn(async move { me.deliver(row).await });
                        }
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(error = %e, "cannot read the alert outbox; retrying every poll");
                            failing = true;
                        }
                    }
                }
            }
            if claimed_all_room {
                continue; // more may be due right now
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.poll) => {}
                () = self.wake.notified() => {}
                _ = stopped.changed() => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            }
        }
        // Deliveries under way finish; `WorkerHandle::stop` bounds the wait.
        while in_flight.join_next().await.is_some() {}
        tracing::debug!("alert worker stopped");
    }

    /// One attempt at one claimed alert, and its outcome written back.
    async fn deliver(&self, row: OutboxRow) {
        let attempt = match self.signing_key(&row.secret_env) {
            Ok(key) => {
                let signature = key.map(|k| sign::signature_header(&k, row.payload.as_bytes()));
                self.sender.send(&row, signature.as_deref()).await
            }
            Err(error) => Attempt::Retry {
                status: 0,
                error,
                retry_after: None,
            },
        };
        let host = host_of(&row.url);
        let now = now_us();
        let written = match attempt {
            Attempt::Delivered { status } => {
                tracing::info!(alert = %row.id, route = %row.route_id, event = %row.event, %host, attempt = row.attempts, status, "alert delivered");
                self.store
                    .alert_delivered(&row.id, &self.owner, now, status)
                    .await
            }
            Attempt::Retry { status, error, .. }
                if row.attempts >= i64::from(self.config.max_attempts) =>
            {
                tracing::error!(alert = %row.id, route = %row.route_id, event = %row.event, %host, attempts = row.attempts, %error, "alert given up: out of attempts");
                let error = format!("gave up after {} attempts; last: {error}", row.attempts);
                self.store
                    .alert_failed(&row.id, &self.owner, now, status, &error)
                    .await
            }
            Attempt::Retry {
                status,
                error,
                retry_after,
            } => {
                let delay = self.backoff(row.attempts, retry_after);
                tracing::warn!(alert = %row.id, route = %row.route_id, event = %row.event, %host, attempt = row.attempts, %error, retry_in = ?delay, "alert not delivered; will retry");
                let next = now.saturating_add(i64::try_from(delay.as_micros()).unwrap_or(i64::MAX));
                self.store
                    .alert_retry(&row.id, &self.owner, next, status, &error)
                    .await
            }
            Attempt::Failed { status, error } => {
                tracing::error!(alert = %row.id, route = %row.route_id, event = %row.event, %host, attempt = row.attempts, %error, "alert refused by its receiver; not retried");
                self.store
                    .alert_failed(&row.id, &self.owner, now, status, &error)
                    .await
            }
        };
        match written {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(alert = %row.id, "alert lease was lost before its outcome was recorded")
            }
            Err(e) => {
                tracing::error!(alert = %row.id, error = %e, "cannot record an alert's outcome; it is sent again once its lease runs out")
            }
        }
    }

    /// The key to sign with: from the policy in force, which read it at load, or from
    /// the environment for a route that a reload has removed since the alert was queued.
    fn signing_key(&self, env: &str) -> Result<Option<Vec<u8>>, String> {
        if env.is_empty() {
            return Ok(None);
        }
        let policy = self.policy.current();
        let loaded = policy
            .alerts()
            .iter()
            .filter_map(|r| r.secret.as_ref())
            .find(|s| s.env == env);
        if let Some(secret) = loaded {
            return Ok(Some(secret.key().to_vec()));
        }
        match std::env::var_os(env) {
            Some(v) if !v.is_empty() => Ok(Some(v.as_bytes().to_vec())),
            _ => Err(format!(
                "the signing key variable {env} is not set on this replica"
            )),
        }
    }

    /// The wait after failed attempt number `attempts` (1-based): `retry_base` doubled
    /// per attempt, at most `retry_max`; longer if the receiver asked for it with
    /// `Retry-After` (still at most `retry_max`).
    fn backoff(&self, attempts: i64, retry_after: Option<Duration>) -> Duration {
        backoff(&self.config, attempts, retry_after)
    }

    async fn prune(&self) {
        let keep = i64::try_from(self.config.retention.as_micros()).unwrap_or(i64::MAX);
        match self.store.alert_prune(now_us().saturating_sub(keep)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                alerts = n,
                "pruned delivered and failed alerts past the retention"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot prune the alert outbox"),
        }
    }
}

pub(super) fn backoff(
    config: &AlertConfig,
    attempts: i64,
    retry_after: Option<Duration>,
) -> Duration {
    let doublings = u32::try_from((attempts - 1).clamp(0, 30)).unwrap_or(30);
    let exponential = config
        .retry_base
        .saturating_mul(1u32 << doublings)
        .min(config.retry_max);
    match retry_after {
        Some(asked) => exponential.max(asked.min(config.retry_max)),
        None => exponential,
    }
}

/// The host of a URL, for logs: a webhook URL's path often holds a secret (Slack's
/// does), so logs never show more.
fn host_of(url: &str) -> String {
    url.parse::<hyper::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = AlertConfig {
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            ..AlertConfig::default()
        };
        let secs = |a, r| backoff(&config, a, r).as_secs();
        assert_eq!(
            [1, 2, 3, 4, 9, 10, 1000].map(|a| secs(a, None)),
            [1, 2, 4, 8, 256, 300, 300]
        );
        assert_eq!(secs(1, Some(Duration::from_secs(30))), 30);
        assert_eq!(secs(1, Some(Duration::from_secs(3_000))), 300);
        assert_eq!(secs(5, Some(Duration::from_secs(2))), 16);
        assert!(LEASE > MAX_TIMEOUT * 2);
    }

    #[test]
    fn logs_show_only_the_host() {
        assert_eq!(
            host_of("https://hooks.slack.com/services/T0/B0/secret"),
            "hooks.slack.com"
        );
        assert_eq!(host_of("not a url"), "");
    }
}
