//! `warden mcp`: an MCP gateway in front of one or more upstream MCP servers.
//!
//! The agent talks MCP to the gateway over stdio (the default: an agent's MCP config
//! starts `warden mcp` as its server) or streamable HTTP (`--listen`). Upstreams are
//! spawned programs over stdio or streamable HTTP endpoints ([`upstream`]), all
//! connected at start; their tools and prompts are namespaced `NAME__tool`. Every
//! `tools/call`, `resources/read` and `prompts/get` is an action wardend judges
//! ([`judge`]) before it is forwarded; results are scanned for secrets and personal
//! data, redacted when the decision says so, and reported ([`outcome`]). The request
//! phases are in [`gateway`]; the configuration in [`config`].

mod config;
mod gateway;
pub(crate) mod judge;
pub(crate) mod outcome;
mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use hyper_util::service::TowerToHyperService;
use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::admin::parse_duration;
use crate::client::{DaemonClient, IdentityArgs};
use crate::listen::{self, ConnLimits};

#[derive(Debug, Args)]
pub struct McpArgs {
    #[command(flatten)]
    identity: IdentityArgs,
    #[command(flatten)]
    pub(crate) runtime: crate::RuntimeArgs,
    /// YAML configuration: `upstreams:` (by name: `command`/`args`/`env`/`cwd` or
    /// `url`), `listen`, `wait_approval`, `redact_detected`. See docs/MCP.md.
    #[arg(long, env = "WARDEN_MCP_CONFIG")]
    config: Option<PathBuf>,
    /// Serve the agent over streamable HTTP at this address (path /mcp) instead of
    /// stdio. Loopback addresses only unless `--allow-remote`.
    #[arg(long, env = "WARDEN_MCP_LISTEN")]
    listen: Option<SocketAddr>,
    /// Allow a non-loopback `--listen` address (e.g. a pod IP); anyone who can reach
    /// it acts as this agent.
    #[arg(long)]
    allow_remote: bool,
    /// An upstream: `NAME=PROGRAM ARGS…` (spawned, stdio; split at whitespace) or
    /// `NAME=http(s)://…` (streamable HTTP). Repeatable; adds to the file's.
    #[arg(long = "upstream", value_name = "NAME=CMD|URL", value_parser = config::parse_shortcut)]
    upstreams: Vec<config::Upstream>,
    #[command(flatten)]
    approval: crate::client::ApprovalWait,
    /// Redact every detected secret and PII in results, whatever the decision.
    #[arg(long)]
    redact_detected: bool,
    /// On SIGTERM/SIGINT (HTTP mode): stop accepting, give open requests this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    drain_timeout: Duration,
}

pub(crate) async fn run(args: McpArgs) -> i32 {
    match serve(args).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("warden mcp: {e:#}");
            1
        }
    }
}

async fn serve(args: McpArgs) -> anyhow::Result<()> {
    // One TLS crypto provider for the process (the workspace's: ring); the upstream
    // HTTP client is built without one.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let mut cfg = match &args.config {
        Some(path) => config::load(path)?,
        None => config::Config::default(),
    };
    for u in args.upstreams.clone() {
        cfg.add(u)?;
    }
    if cfg.upstreams.is_empty() {
        bail!("no upstream MCP servers: give --upstream NAME=CMD|URL or `upstreams:` in --config");
    }
    let listen = match (args.listen, &cfg.listen) {
        (Some(a), _) => Some(a),
        (None, Some(text)) => Some(
            text.parse::<SocketAddr>()
                .with_context(|| format!("listen: {text:?} is not host:port"))?,
        ),
        (None, None) => None,
    };
    if let Some(addr) = listen
        && !addr.ip().is_loopback()
        && !args.allow_remote
    {
        bail!(
            "refusing to listen on {addr}: not a loopback address (give --allow-remote to mean it)"
        );
    }

    let client = DaemonClient::lazy(&args.identity).map_err(anyhow::Error::new)?;
    let relay = Arc::new(upstream::Relay::default());
    let mut upstreams = Vec::new();
    for u in &cfg.upstreams {
        let connected = upstream::connect(u, relay.clone()).await?;
        tracing::info!(upstream = %u.name, target = %connected.target, "upstream connected");
        upstreams.push(connected);
    }
    let gw = Arc::new(gateway::Gateway {
        identity: args.identity.clone(),
        client,
        upstreams,
        relay,
        wait_approval: args.approval.wait_approval.or(cfg.wait_approval),
        redact_detected: args.redact_detected || cfg.redact_detected,
        resources: Mutex::new(HashMap::new()),
    });
    let handler = gateway::Handler { gw: gw.clone() };

    match listen {
        None => {
            let mut term = signal(SignalKind::terminate())?;
            let mut int = signal(SignalKind::interrupt())?;
            let service = handler
                .serve(rmcp::transport::stdio())
                .await
                .context("MCP handshake with the agent on stdio failed")?;
            let stop = service.cancellation_token();
            tokio::select! {
                r = service.waiting() => { let _ = r; }
                _ = term.recv() => stop.cancel(),
                _ = int.recv() => stop.cancel(),
            }
        }
        Some(addr) => {
            serve_http(handler, addr, args.allow_remote, args.drain_timeout).await?;
        }
    }
    // Close the upstreams: spawned servers see their stdin close and are stopped.
    drop(gw);
    tracing::info!("shut down");
    Ok(())
}

/// Serves streamable HTTP at `addr` (any path; agents use `/mcp`) until a signal, with
/// the shutdown pattern every HTTP interceptor shares (`listen.rs`).
async fn serve_http(
    handler: gateway::Handler,
    addr: SocketAddr,
    remote: bool,
    drain: Duration,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let mut http = StreamableHttpServerConfig::default();
    if remote {
        let mut hosts = http.allowed_hosts.clone();
        hosts.push(local.ip().to_string());
        hosts.push(local.to_string());
        http = http.with_allowed_hosts(hosts);
    }
    // On a signal the MCP sessions end first, so their open event streams close and
    // the connections can drain.
    let sessions = http.cancellation_token.clone();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        sessions.cancel();
    });
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        http,
    );
    eprintln!("warden mcp listening on http://{local}/mcp");
    let (drain_tx, drained) = tokio::sync::mpsc::channel::<()>(1);
    let limits = ConnLimits {
        header_timeout: Duration::from_secs(30),
        max_header_bytes: 64 * 1024,
    };
    let accept = move |stream, peer, stopping| {
        let svc = TowerToHyperService::new(service.clone());
        let held = drain_tx.clone();
        tokio::spawn(async move {
            listen::serve_connection(stream, peer, svc, stopping, limits).await;
            drop(held);
        });
    };
    listen::accept_until_signal(listener, drain, drained, accept).await
}
