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
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::admin::parse_duration;
use crate::client::{DaemonClient, IdentityArgs};

#[derive(Debug, Args)]
pub struct ProxyArgs {
    #[command(flatten)]
    identity: IdentityArgs,
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
    /// When the policy requires approval, hold the request up to TIMEOUT (default 10m)
    /// for an approver, then ask again; without it the client gets 403 with the
    /// approval id at once.
    #[arg(
        long,
        value_name = "TIMEOUT",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "10m",
        value_parser = parse_duration
    )]
    wait_approval: Option<Duration>,
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
    let (drain, mut drained) = mpsc::channel::<()>(1);
    let shared = Arc::new(Shared {
        identity: args.identity.clone(),
        client,
        token,
        upstreams,
        upstream_timeout: args.upstream_timeout,
        idle_timeout: args.idle_timeout,
        wait_approval: args.wait_approval,
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

    let (stop, stopping) = watch::channel(false);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            shared.clone(),
            stream,
            peer,
            stopping.clone(),
            args.max_header_bytes,
        ));
    }

    // Stop accepting, ask open connections to finish their exchange, wait for them.
    drop(listener);
    let _ = stop.send(true);
    let deadline = args.drain_timeout;
    drop(shared);
    tracing::info!(?deadline, "shutting down: draining open exchanges");
    match tokio::time::timeout(deadline, drained.recv()).await {
        Ok(_) => tracing::info!("drained"),
        Err(_) => tracing::warn!("drain deadline passed; closing what is still open"),
    }
    Ok(())
}

/// Serves one client connection until it closes or shutdown asks it to finish.
async fn connection(
    shared: Arc<Shared>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    mut stopping: watch::Receiver<bool>,
    max_header_bytes: usize,
) {
    let upstream = Arc::new(tokio::sync::Mutex::new(None));
    let service = {
        let shared = shared.clone();
        hyper::service::service_fn(move |req| {
            handle::handle(shared.clone(), upstream.clone(), peer, req)
        })
    };
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.idle_timeout)
        .max_buf_size(max_header_bytes.max(8192))
        .preserve_header_case(true)
        .title_case_headers(false)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let stop = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stop => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "client connection ended with an error");
    }
}
