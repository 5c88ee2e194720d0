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
use tokio_stream::wrappers::TcpListenerStream;
use warden_proto::v1::{
    admin_server::AdminServer, audit_server::AuditServer, decisions_server::DecisionsServer,
    sessions_server::SessionsServer,
};

use crate::audit::{AuditWriter, DEFAULT_MAX_BATCH};
use crate::policy::{Policy, SelfGuard};
use crate::service::{
    AdminService, AuditService, DecisionsService, PolicyHandle, SessionsService, Shared,
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

    tracing::warn!(
        "authentication is not configured: wardend trusts the tenant and agent fields of every request \
         and lets any caller reload policy (development mode)"
    );
    tracing::info!(
        db = store.display_url(),
        backend = store.backend_name(),
        policy = policy.source(),
        policy_version = policy.version(),
        rules = policy.rule_count(),
        "wardend starting"
    );

    let policy = PolicyHandle::new(policy, config.policy.clone());
    let (audit, writer) = AuditWriter::start(&config.db, config.max_batch).await?;
    let shared = Shared {
        policy: policy.clone(),
        guard: Arc::new(SelfGuard::for_daemon(&self_files(&config))),
        audit,
        store: store.clone(),
    };
    let sighup = tokio::spawn(reload_on_sighup(policy));

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
    let mut serve =
        Box::pin(router.serve_with_incoming_shutdown(TcpListenerStream::new(listener), graceful));
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
    if tokio::time::timeout(drain_timeout, writer.finished())
        .await
        .is_err()
    {
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

/// SIGHUP re-reads the policy file; a bad file is logged and the old policy kept.
async fn reload_on_sighup(policy: Arc<PolicyHandle>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload the policy through Admin.ReloadPolicy");
        return;
    };
    while hup.recv().await.is_some() {
        let handle = policy.clone();
        match tokio::task::spawn_blocking(move || handle.reload()).await {
            Ok(Ok(r)) => {
                tracing::info!(previous = %r.previous_version, version = %r.version, "policy reloaded (SIGHUP)")
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "policy reload rejected; keeping the previous policy")
            }
            Err(e) => tracing::error!(error = %e, "policy reload task failed"),
        }
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
