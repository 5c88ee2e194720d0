//! `wardend serve`: wires storage, the audit writer, the policy and the gRPC services
//! together, and shuts them down in order.
//!
//! Shutdown: the shutdown future fires → health reports NOT_SERVING (draining) → the
//! listener stops accepting → in-flight requests finish (bounded by the drain timeout) →
//! the audit writer commits what is queued → the database pool closes.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use warden_proto::v1::{
    admin_server::AdminServer, approvals_server::ApprovalsServer, audit_server::AuditServer,
    budgets_server::BudgetsServer, decisions_server::DecisionsServer,
    sessions_server::SessionsServer,
};

use crate::alerts::{AlertConfig, Alerts};
use crate::audit::{AuditWriter, DEFAULT_MAX_BATCH};
use crate::policy::{Policy, SelfGuard};
use crate::service::{
    AdminService, ApprovalsService, AuditService, BudgetsService, DecisionsService, PolicyHandle,
    SessionsService, Settings, Shared,
};
use crate::store::Store;

/// Largest message the transport accepts; requests above
/// [`warden_proto::MAX_REQUEST_BYTES`] but below this get `INVALID_ARGUMENT`.
const TRANSPORT_MAX_MESSAGE: usize = 8 * 1024 * 1024;

/// Everything `wardend serve` needs to run.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// `sqlite://PATH` or `postgres://…`.
    pub db: String,
    /// Policy file; `None` for the built-in default policy.
    pub policy: Option<PathBuf>,
    /// Apply migrations at start.
    pub migrate: bool,
    /// How long in-flight requests may take to finish after shutdown begins.
    pub drain_timeout: Duration,
    /// Most audit records per group commit.
    pub max_batch: usize,
    /// How often to look for a changed policy file; `None` turns file watching off.
    pub policy_watch: Option<Duration>,
    /// How long a pending approval waits for an approver.
    pub approval_timeout: Duration,
    /// File holding the admin token (break-glass; reload and approvals need it too once
    /// set). `None`: development mode, break-glass off.
    pub admin_token_file: Option<PathBuf>,
    /// How long usage history is kept; `None` keeps it.
    pub usage_retention: Option<Duration>,
    /// Alert delivery: retries, backoff, polling and retention of the outbox.
    pub alerts: AlertConfig,
    /// Where to serve Prometheus metrics (`GET /metrics`); `None` serves none.
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            db: "sqlite://warden.db".into(),
            policy: None,
            migrate: true,
            drain_timeout: Duration::from_secs(10),
            max_batch: DEFAULT_MAX_BATCH,
            policy_watch: Some(Duration::from_secs(2)),
            approval_timeout: Duration::from_secs(3_600),
            admin_token_file: None,
            usage_retention: Some(Duration::from_secs(90 * 86_400)),
            alerts: AlertConfig::default(),
            metrics_listen: None,
        }
    }
}

/// Loads the configured policy or the built-in default.
pub fn load_policy(path: Option<&std::path::Path>) -> anyhow::Result<Policy> {
    let policy = match path {
        Some(p) => Policy::from_file(p),
        None => Policy::builtin_default(),
    };
    policy.map_err(|e| anyhow::anyhow!("invalid policy: {e}"))
}

/// Reads the admin token: the file's first line, at least 16 bytes. A token file any
/// user can read is refused; group read is accepted, because that is how Kubernetes
/// hands a Secret to a non-root container (`fsGroup`, `defaultMode: 0440`).
fn read_admin_token(path: &std::path::Path) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read the admin token file {}", path.display()))?;
    if meta.permissions().mode() & 0o007 != 0 {
        anyhow::bail!(
            "the admin token file {} is readable by others (mode {:o}); chmod 600 or 640 it",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the admin token file {}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.len() < 16 {
        anyhow::bail!(
            "the admin token in {} is shorter than 16 characters",
            path.display()
        );
    }
    Ok(token)
}

/// Files an agent must never touch: the daemon's binary and its sibling `warden`, the
/// policy file and the SQLite database.
fn self_files(config: &ServeConfig) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            files.push(dir.join("warden"));
        }
        files.push(exe);
    }
    if let Some(policy) = &config.policy {
        files.push(policy.clone());
    }
    if let Some(token) = &config.admin_token_file {
        files.push(token.clone());
    }
    if let Some(path) = config
        .db
        .strip_prefix("sqlite://")
        .or(config.db.strip_prefix("sqlite:"))
    {
        files.push(PathBuf::from(path.split('?').next().unwrap_or(path)));
    }
    files
}

/// Runs the daemon until `shutdown` completes, then drains and returns.
pub async fn run(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let policy = load_policy(config.policy.as_deref())?;
    let admin_token = match &config.admin_token_file {
        Some(path) => Some(read_admin_token(path)?),
        None => None,
    };
    if config.approval_timeout.is_zero() {
        anyhow::bail!("--approval-timeout must be longer than 0");
    }
    check_alert_config(&config.alerts)?;
    let settings = Arc::new(Settings::new(
        config.approval_timeout,
        admin_token.as_deref(),
    ));
    let store = Store::connect(&config.db).await?;
    if config.migrate {
        store
            .migrate()
            .await
            .with_context(|| format!("migrating {}", store.display_url()))?;
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let metrics_listener = match config.metrics_listen {
        Some(at) => Some(
            TcpListener::bind(at)
                .await
                .with_context(|| format!("--metrics-listen: cannot listen on {at}"))?,
        ),
        None => None,
    };

    if settings.has_admin_token() {
        tracing::warn!(
            "authentication is not configured: wardend trusts the tenant and agent fields of every request; \
             admin operations (reload, approvals, break-glass) need the admin token"
        );
    } else {
        tracing::warn!(
            "authentication is not configured: wardend trusts the tenant and agent fields of every request \
             and lets any caller reload policy and decide approvals (development mode); \
             break-glass is off until an admin token is configured (--admin-token-file)"
        );
    }
    tracing::info!(
        db = store.display_url(),
        backend = store.backend_name(),
        policy = policy.source(),
        policy_version = policy.version(),
        rules = policy.rule_count(),
        alert_routes = policy.alerts().len(),
        "wardend starting"
    );

    let policy = PolicyHandle::new(policy, config.policy.clone());
    let (audit, writer) = AuditWriter::start(&config.db, config.max_batch).await?;
    let alerts = Alerts::new(store.clone(), policy.clone());
    let alert_worker = alerts
        .start_worker(config.alerts.clone())
        .context("cannot start the alert worker")?;
    let shared = Shared {
        policy: policy.clone(),
        guard: Arc::new(SelfGuard::for_daemon(&self_files(&config))),
        audit,
        store: store.clone(),
        settings,
        alerts,
        rate_cache: Arc::default(),
        metrics: Arc::default(),
    };
    let metrics_endpoint = match metrics_listener {
        Some(listener) => {
            tracing::info!("metrics on http://{}/metrics", listener.local_addr()?);
            Some(tokio::spawn(crate::metrics::http::serve(
                listener,
                shared.metrics.clone(),
            )))
        }
        None => None,
    };
    let sighup = tokio::spawn(reload_on_sighup(policy.clone()));
    let housekeeping = tokio::spawn(housekeeping(store.clone(), config.usage_retention));
    let watcher = match (&config.policy, config.policy_watch) {
        (Some(path), Some(every)) => {
            Some(tokio::spawn(reload_on_change(policy, path.clone(), every)))
        }
        _ => None,
    };

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<DecisionsServer<DecisionsService>>()
        .await;
    health_reporter
        .set_serving::<AuditServer<AuditService>>()
        .await;
    health_reporter
        .set_serving::<AdminServer<AdminService>>()
        .await;
    health_reporter
        .set_serving::<SessionsServer<SessionsService>>()
        .await;
    health_reporter
        .set_serving::<ApprovalsServer<ApprovalsService>>()
        .await;
    health_reporter
        .set_serving::<BudgetsServer<BudgetsService>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(warden_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(warden_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let router = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            DecisionsServer::new(DecisionsService::new(shared.clone()))
                .max_decoding_message_size(TRANSPORT_MAX_MESSAGE),
        )
        .add_service(
            SessionsServer::new(SessionsService::new(shared.clone()))
                .max_decoding_message_size(TRANSPORT_MAX_MESSAGE),
        )
        .add_service(
            ApprovalsServer::new(ApprovalsService::new(shared.clone()))
                .max_decoding_message_size(TRANSPORT_MAX_MESSAGE),
        )
        .add_service(
            BudgetsServer::new(BudgetsService::new(shared.clone()))
                .max_decoding_message_size(TRANSPORT_MAX_MESSAGE),
        )
        .add_service(
            AuditServer::new(AuditService::new(shared.clone()))
                .max_decoding_message_size(TRANSPORT_MAX_MESSAGE),
        )
        .add_service(
            AdminServer::new(AdminService::new(shared))
                .max_decoding_message_size(TRANSPORT_MAX_MESSAGE),
        );

    tracing::info!("listening on {addr}");
    let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
    let reporter = health_reporter.clone();
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutdown requested: draining in-flight requests");
        reporter
            .set_not_serving::<DecisionsServer<DecisionsService>>()
            .await;
        let _ = draining_tx.send(());
    };
    // Boxed, so that dropping it after a drain timeout really drops the router and the
    // audit writer handles its services hold.
    // The builder's tcp_nodelay only applies to listeners it binds itself; accepted
    // sockets of ours need it set here, or a long-lived client connection waits out
    // delayed ACKs (~40 ms) between the frames of one answer.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut serve = Box::pin(router.serve_with_incoming_shutdown(incoming, graceful));
    let drain_timeout = config.drain_timeout;
    let deadline = async move {
        if draining_rx.await.is_ok() {
            tokio::time::sleep(drain_timeout).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = &mut serve => result.context("gRPC server failed")?,
        () = deadline => {
            tracing::warn!(timeout = ?drain_timeout, "drain timeout: closing connections with requests still in flight");
        }
    }
    // The router (and with it every AuditWriter handle) is gone: the writer commits
    // what is queued and stops.
    drop(serve);
    sighup.abort();
    housekeeping.abort();
    if let Some(w) = watcher {
        w.abort();
    }
    if let Some(m) = metrics_endpoint {
        m.abort();
    }
    // The audit writer commits what is queued while the alert worker finishes the
    // deliveries under way and gives back the leases of the rest.
    let (writer_finished, ()) = tokio::join!(
        tokio::time::timeout(drain_timeout, writer.finished()),
        alert_worker.stop(drain_timeout),
    );
    if writer_finished.is_err() {
        tracing::error!("audit writer did not finish within the drain timeout");
    }
    if tokio::time::timeout(drain_timeout, store.close())
        .await
        .is_err()
    {
        tracing::error!("database connections did not close within the drain timeout");
    }
    tracing::info!("wardend stopped");
    Ok(())
}

/// Refuses alert settings that would make the worker spin or never retry.
fn check_alert_config(c: &AlertConfig) -> anyhow::Result<()> {
    if c.retry_base.is_zero() || c.poll.is_zero() {
        anyhow::bail!("--alert-retry-base and --alert-poll must be longer than 0");
    }
    if c.retry_max < c.retry_base {
        anyhow::bail!("--alert-retry-max must be at least --alert-retry-base");
    }
    if c.max_attempts == 0 {
        anyhow::bail!("--alert-max-attempts must be at least 1");
    }
    if c.batch == 0 {
        anyhow::bail!("the alert batch size must be at least 1");
    }
    Ok(())
}

/// At start and then hourly: deletes usage history older than `usage_keep` (when
/// set) and rate-limit buckets that have been full for an hour (a missing bucket is a
/// full one, so this changes no decision). Every replica may run it; the DELETEs are
/// idempotent.
async fn housekeeping(store: Store, usage_keep: Option<Duration>) {
    const HOUR_US: i64 = 3_600_000_000;
    let mut ticker = tokio::time::interval(Duration::from_secs(3_600));
    loop {
        ticker.tick().await;
        let now = crate::service::now_us();
        if let Some(keep) = usage_keep {
            let keep_us = i64::try_from(keep.as_micros()).unwrap_or(i64::MAX);
            match store.usage_prune(now.saturating_sub(keep_us)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "pruned usage history past the retention"),
                Err(e) => tracing::warn!(error = %e, "cannot prune the usage history"),
            }
        }
        match store.rate_buckets_prune(now.saturating_sub(HOUR_US)).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(rows = n, "pruned full rate-limit buckets"),
            Err(e) => tracing::warn!(error = %e, "cannot prune rate-limit buckets"),
        }
    }
}

/// SIGHUP re-reads the policy file; a bad file is logged and the old policy kept.
async fn reload_on_sighup(policy: Arc<PolicyHandle>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload the policy through Admin.ReloadPolicy");
        return;
    };
    while hup.recv().await.is_some() {
        reload_logged(&policy, "SIGHUP").await;
    }
}

/// Polls the policy file and reloads when it changes. Polling (rather than inotify)
/// sees every way a file gets replaced — an editor's rename, `kubectl` swapping a
/// ConfigMap's `..data` symlink, a network filesystem — at the cost of one to two
/// intervals of delay. A change is taken once the file has looked the same for one more
/// interval, so a file caught half-written is not compiled; an invalid file is logged
/// once and the old policy kept until the file changes again.
async fn reload_on_change(policy: Arc<PolicyHandle>, path: PathBuf, every: Duration) {
    let mut seen = file_fingerprint(&path);
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let now = file_fingerprint(&path);
        if now == seen {
            continue;
        }
        // Changed: wait until it holds still for one interval.
        ticker.tick().await;
        let settled = file_fingerprint(&path);
        if settled != now {
            continue;
        }
        seen = settled;
        if seen.is_none() {
            tracing::warn!(path = %path.display(), "policy file is gone; keeping the policy in force");
            continue;
        }
        reload_logged(&policy, "file change").await;
    }
}

/// What identifies a version of a file without reading it: size, modification time and
/// inode of what the path resolves to now. `None` when it cannot be read.
fn file_fingerprint(path: &std::path::Path) -> Option<(u64, std::time::SystemTime, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?, meta.ino()))
}

/// Reloads the policy off the async threads and logs the outcome.
async fn reload_logged(policy: &Arc<PolicyHandle>, trigger: &'static str) {
    let handle = policy.clone();
    match tokio::task::spawn_blocking(move || handle.reload()).await {
        Ok(Ok(r)) if r.previous_version == r.version => {
            tracing::info!(version = %r.version, trigger, "policy re-read; unchanged")
        }
        Ok(Ok(r)) => {
            tracing::info!(previous = %r.previous_version, version = %r.version, trigger, "policy reloaded")
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, trigger, "policy reload rejected; keeping the previous policy")
        }
        Err(e) => tracing::error!(error = %e, trigger, "policy reload task failed"),
    }
}

/// A future that completes on SIGTERM or SIGINT. The handlers are registered when this
/// is called, not when the future is first polled, so a signal that arrives while the
/// daemon is still starting is not lost (nor fatal): the daemon stops cleanly as soon
/// as it serves.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        let wait = |stream: std::io::Result<tokio::signal::unix::Signal>| async move {
            match stream {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for a shutdown signal");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            () = wait(term) => {}
            () = wait(interrupt) => {}
        }
    }
}
