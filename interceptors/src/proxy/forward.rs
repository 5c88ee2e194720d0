//! Forwarding an allowed plain-HTTP request: origin-form to the upstream, hop-by-hop
//! headers dropped, both bodies streamed through [`Counted`], and one upstream
//! connection kept per client connection while the client stays on the same host.

use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HOST, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use warden_proto::v1::{Action, Decision};

use super::Shared;
use super::handle::Target;
use super::meter::{Counted, Direction, Exchange};
use super::reply::{self, ProxyBody};
use crate::listen::strip_hop_by_hop;

type UpstreamBody = Counted<Incoming>;

/// An open upstream connection, kept for the next request of the same client
/// connection to the same host and port.
pub(crate) struct Upstream {
    host: String,
    port: u16,
    sender: SendRequest<UpstreamBody>,
}

pub(crate) async fn send(
    shared: Arc<Shared>,
    slot: Arc<tokio::sync::Mutex<Option<Upstream>>>,
    req: Request<Incoming>,
    target: Target,
    action: Action,
    decision: Option<Decision>,
) -> Response<ProxyBody> {
    let seq = decision
        .as_ref()
        .map(|d| d.id.as_ref().map_or(0, |id| id.seq));
    let exchange = Exchange::new(shared.clone(), action, seq);

    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.uri = match parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse::<Uri>()
    {
        Ok(uri) => uri,
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, format!("request target: {e}")),
    };
    if !parts.headers.contains_key(HOST)
        && let Ok(host) = HeaderValue::from_str(&target.authority)
    {
        parts.headers.insert(HOST, host);
    }
    let request = Request::from_parts(parts, Counted::new(body, exchange.clone(), Direction::Sent));

    let mut upstream = match checkout(&shared, &slot, &target).await {
        Ok(u) => u,
        Err(e) => {
            exchange.fail(&e);
            exchange.set_status(502);
            return reply::error(StatusCode::BAD_GATEWAY, e);
        }
    };
    let response = match tokio::time::timeout(
        shared.upstream_timeout,
        upstream.sender.send_request(request),
    )
    .await
    {
        Err(_) => {
            let why = format!(
                "{} did not answer within {:?}",
                target.authority, shared.upstream_timeout
            );
            exchange.fail(&why);
            exchange.set_status(504);
            return reply::error(StatusCode::GATEWAY_TIMEOUT, why);
        }
        Ok(Err(e)) => {
            let why = format!("{}: {e}", target.authority);
            exchange.fail(&why);
            exchange.set_status(502);
            return reply::error(StatusCode::BAD_GATEWAY, why);
        }
        Ok(Ok(response)) => response,
    };
    *slot.lock().await = Some(upstream);

    exchange.set_status(response.status().as_u16());
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let body = Counted::new(body, exchange, Direction::Received).boxed_unsync();
    let mut response = Response::from_parts(parts, body);
    if let Some(d) = &decision {
        reply::stamp(&mut response, d);
    }
    response
}

/// The client connection's upstream connection when it goes to the same place and is
/// still usable, else a new one.
async fn checkout(
    shared: &Shared,
    slot: &tokio::sync::Mutex<Option<Upstream>>,
    target: &Target,
) -> Result<Upstream, String> {
    if let Some(mut kept) = slot.lock().await.take()
        && kept.host == target.host
        && kept.port == target.port
        && kept.sender.ready().await.is_ok()
    {
        return Ok(kept);
    }
    let stream = shared
        .upstreams
        .connect(&target.host, target.port, shared.listen)
        .await
        .map_err(|e| e.to_string())?;
    let (sender, conn) = http1::Builder::new()
        .preserve_header_case(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("{}: {e}", target.authority))?;
    let authority = target.authority.clone();
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(upstream = authority.as_str(), error = %e, "upstream connection ended with an error");
        }
    });
    Ok(Upstream {
        host: target.host.clone(),
        port: target.port,
        sender,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::{HeaderMap, HeaderName};

    #[test]
    fn hop_by_hop_headers_stay_behind() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("proxy-authorization", "Basic eDp5"),
            ("transfer-encoding", "chunked"),
            ("x-end", "kept"),
            ("content-type", "text/plain"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["content-type", "x-end"]);
    }
}
