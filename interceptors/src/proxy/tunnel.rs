//! CONNECT tunnels: the upstream is dialled first (so a failure is a 502, not a 200
//! followed by a dead tunnel), then the client gets 200 and bytes are copied both ways
//! until both sides have closed or nothing moved for the idle timeout.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use warden_proto::v1::{Action, Decision};

use super::Shared;
use super::handle::Target;
use super::meter::Exchange;
use super::reply::{self, ProxyBody};

pub(crate) async fn open(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    target: Target,
    action: Action,
    decision: Option<Decision>,
) -> Response<ProxyBody> {
    let seq = decision
        .as_ref()
        .map(|d| d.id.as_ref().map_or(0, |id| id.seq));
    let exchange = Exchange::new(shared.clone(), action, seq);
    let upstream = match shared
        .upstreams
        .connect(&target.host, target.port, shared.listen)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            exchange.fail(&e);
            exchange.set_status(502);
            return reply::error(StatusCode::BAD_GATEWAY, e);
        }
    };
    exchange.set_status(200);
    let idle = shared.idle_timeout;
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(client) => {
                let client = TokioIo::new(client);
                if let Err(e) = copy_both_ways(client, upstream, &exchange, idle).await {
                    exchange.fail(format!("tunnel: {e}"));
                }
            }
            Err(e) => exchange.fail(format!("the client did not take the tunnel: {e}")),
        }
    });
    let mut response = Response::new(reply::empty());
    if let Some(d) = &decision {
        reply::stamp(&mut response, d);
    }
    response
}

/// Copies client → upstream (counted as sent) and upstream → client (received). An
/// end of stream on one side is passed on as a write shutdown of the other, and the
/// tunnel ends when both directions have ended.
async fn copy_both_ways<C, U>(
    client: C,
    upstream: U,
    exchange: &Exchange,
    idle: Duration,
) -> std::io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let (mut up_r, mut up_w) = tokio::io::split(upstream);
    let mut to_up = vec![0u8; 16 * 1024];
    let mut to_client = vec![0u8; 16 * 1024];
    let (mut client_open, mut upstream_open) = (true, true);
    while client_open || upstream_open {
        let timer = tokio::time::sleep(idle);
        tokio::select! {
            n = client_r.read(&mut to_up), if client_open => {
                let n = n?;
                if n == 0 {
                    client_open = false;
                    up_w.shutdown().await?;
                } else {
                    up_w.write_all(&to_up[..n]).await?;
                    exchange.sent.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            n = up_r.read(&mut to_client), if upstream_open => {
                let n = n?;
                if n == 0 {
                    upstream_open = false;
                    client_w.shutdown().await?;
                } else {
                    client_w.write_all(&to_client[..n]).await?;
                    exchange.received.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            () = timer => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("idle for {idle:?}"),
                ));
            }
        }
    }
    Ok(())
}
