//! The listener the HTTP interceptors (`warden proxy`, `warden llm`) share: accept until
//! SIGTERM/SIGINT, serve each connection with hyper's HTTP/1.1 server, then the one
//! shutdown pattern — stop accepting, ask open connections to finish their exchange,
//! wait for everything still holding the drain sender, up to a deadline. Also the
//! hop-by-hop headers neither of them passes on.

use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::header::{CONNECTION, HeaderMap, HeaderName};
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

/// Limits of one client connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    /// A connection that sends no complete request head for this long is closed.
    pub(crate) header_timeout: Duration,
    /// Largest request head accepted (larger ones get 431).
    pub(crate) max_header_bytes: usize,
}

/// Accepts until a shutdown signal, handing each connection to `accept` together with
/// the receiver that turns true when shutdown begins. Then waits until `drained` closes
/// (every sender dropped) or `drain_timeout` passes.
pub(crate) async fn accept_until_signal<F>(
    listener: TcpListener,
    drain_timeout: Duration,
    mut drained: mpsc::Receiver<()>,
    mut accept: F,
) -> anyhow::Result<()>
where
    F: FnMut(TcpStream, SocketAddr, watch::Receiver<bool>),
{
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
        accept(stream, peer, stopping.clone());
    }
    drop(listener);
    let _ = stop.send(true);
    drop(accept);
    tracing::info!(deadline = ?drain_timeout, "shutting down: draining open exchanges");
    match tokio::time::timeout(drain_timeout, drained.recv()).await {
        Ok(_) => tracing::info!("drained"),
        Err(_) => tracing::warn!("drain deadline passed; closing what is still open"),
    }
    Ok(())
}

/// Serves one client connection (upgrades allowed, for CONNECT) until it closes, or
/// until shutdown asks it to finish the exchange in progress.
pub(crate) async fn serve_connection<S>(
    stream: TcpStream,
    peer: SocketAddr,
    service: S,
    mut stopping: watch::Receiver<bool>,
    limits: ConnLimits,
) where
    S: HttpService<Incoming> + Send,
    S::Future: Send,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: Body + Send + 'static,
    <S::ResBody as Body>::Data: Send,
    <S::ResBody as Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .preserve_header_case(true)
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

/// Removes the headers that describe one hop (RFC 9110 section 7.6.1), including those
/// the Connection header names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        "connection",
        "proxy-connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}
