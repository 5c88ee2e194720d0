//! `warden proxy`: an HTTP/1.1 forward proxy that asks wardend before every request and
//! every CONNECT tunnel an agent makes, and reports the bytes that went each way.
//!
//! One connection from a client is served by hyper; each request on it goes through the
//! phases of [`handle::handle`]: who is asking (flags or `Proxy-Authorization`), what is
//! asked (absolute-form URL or CONNECT authority), the decision, then forwarding
//! ([`forward`]) or tunnelling ([`tunnel`]) with bodies streamed and counted
//! ([`meter`]), and a report when the exchange ends. Refusals are JSON ([`reply`]).
//! No TLS is terminated: inside a tunnel the proxy sees only host and port.

mod forward;
mod handle;
mod identity;
mod meter;
mod reply;
mod tunnel;
mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::admin::parse_duration;
use crate::client::{DaemonClient, IdentityArgs};
use crate::listen::{self, ConnLimits};

#[derive(Debug, Args)]
pub struct ProxyArgs {
    #[command(flatten)]
    identity: IdentityArgs,
    #[command(flatten)]
    pub(crate) runtime: crate::RuntimeArgs,
    /// Address to listen on. Loopback by default; a non-loopback address needs
    /// `--token-file` (the proxy would otherwise be an open relay).
    #[arg(long, env = "WARDEN_PROXY_LISTEN", default_value = "127.0.0.1:3128")]
    listen: SocketAddr,
    /// File holding the secret clients must send as the password of
    /// `Proxy-Authorization: Basic` (user `AGENT`, `AGENT/SESSION` or
    /// `TENANT/AGENT/SESSION`). Without it, a Proxy-Authorization user is taken as the
    /// identity on trust and requests without one use the flags' identity.
    #[arg(long, env = "WARDEN_PROXY_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// `HOST=IP` or `HOST=IP:PORT`: connect to this address for HOST instead of asking
    /// DNS (like curl's --resolve; the decision still names HOST). Repeatable.
    #[arg(long = "resolve", value_name = "HOST=ADDR")]
    resolve: Vec<String>,
    /// Time allowed to open a connection to an upstream.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// Time allowed for an upstream to send its response headers.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    upstream_timeout: Duration,
    /// A tunnel with no bytes in either direction for this long is closed; so is a
    /// client connection that sends no complete request headers for this long.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Largest request head (request line and headers) accepted, in bytes; larger ones
    /// get 431.
    #[arg(long, default_value_t = 64 * 1024)]
    max_header_bytes: usize,
    #[command(flatten)]
    approval: crate::client::ApprovalWait,
    /// On SIGTERM/SIGINT: stop accepting, then give open exchanges this long to finish.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    drain_timeout: Duration,
}

/// What every request handler shares.
pub(crate) struct Shared {
    pub(crate) identity: IdentityArgs,
    pub(crate) client: DaemonClient,
    /// The secret Proxy-Authorization passwords must match, if configured.
    pub(crate) token: Option<String>,
    pub(crate) upstreams: upstream::Connector,
    pub(crate) upstream_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) wait_approval: Option<Duration>,
    /// The address the proxy listens on: requests to it are refused (no loops).
    pub(crate) listen: SocketAddr,
    /// Dropped with the last `Arc<Shared>`: every connection, tunnel and pending report
    /// holds one, so shutdown waits on this channel closing to know all have ended.
    _drain: mpsc::Sender<()>,
}

pub(crate) async fn run(args: ProxyArgs) -> i32 {
    match serve(args).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("warden proxy: {e:#}");
            1
        }
    }
}

async fn serve(args: ProxyArgs) -> anyhow::Result<()> {
    let token = match &args.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--token-file {}", path.display()))?;
            let token = text.trim().to_string();
            if token.is_empty() {
                bail!("--token-file {}: the file is empty", path.display());
            }
            Some(token)
        }
        None => None,
    };
    if !args.listen.ip().is_loopback() && token.is_none() {
        bail!(
            "refusing to listen on {} without --token-file: anyone who can reach it could use the proxy (an open relay)",
            args.listen
        );
    }
    let upstreams = upstream::Connector::new(&args.resolve, args.connect_timeout)?;
    let client = DaemonClient::lazy(&args.identity).map_err(anyhow::Error::new)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let listen = listener.local_addr()?;
    let (drain, drained) = mpsc::channel::<()>(1);
    let shared = Arc::new(Shared {
        identity: args.identity.clone(),
        client,
        token,
        upstreams,
        upstream_timeout: args.upstream_timeout,
        idle_timeout: args.idle_timeout,
        wait_approval: args.approval.wait_approval,
        listen,
        _drain: drain,
    });
    if shared.token.is_none() {
        tracing::warn!("no --token-file: Proxy-Authorization identities are taken on trust");
    }
    eprintln!(
        "warden proxy listening on {listen} (wardend at {})",
        shared.client.addr()
    );

    let limits = ConnLimits {
        header_timeout: args.idle_timeout,
        max_header_bytes: args.max_header_bytes,
    };
    let accept = {
        let shared = shared.clone();
        move |stream, peer, stopping| {
            let shared = shared.clone();
            let upstream = Arc::new(tokio::sync::Mutex::new(None));
            let service = {
                let shared = shared.clone();
                hyper::service::service_fn(move |req| {
                    handle::handle(shared.clone(), upstream.clone(), peer, req)
                })
            };
            tokio::spawn(async move {
                // Held for the connection's life: shutdown waits for it.
                let _shared = shared;
                listen::serve_connection(stream, peer, service, stopping, limits).await;
            });
        }
    };
    drop(shared);
    listen::accept_until_signal(listener, args.drain_timeout, drained, accept).await
}
