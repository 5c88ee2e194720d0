//! Posting one alert: an HTTP/1.1 client (hyper) over rustls with the ring provider and
//! the webpki roots, and the rules that say what a response means.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::store::OutboxRow;

/// Most response bytes read for the error message; the rest is dropped.
const MAX_RESPONSE_BYTES: usize = 4096;
/// Most response characters kept in `last_error`.
const MAX_ERROR_CHARS: usize = 300;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// 2xx: the receiver has it.
    Delivered { status: u16 },
    /// Worth trying again: 5xx, 408, 429, a network error or a timeout (`status` 0).
    /// `retry_after` is the receiver's `Retry-After`, in seconds, when it sent one.
    Retry {
        status: u16,
        error: String,
        retry_after: Option<Duration>,
    },
    /// Trying again cannot help: any other 4xx, a redirect, a malformed route.
    Failed { status: u16, error: String },
}

/// The webhook client, shared by every delivery of a worker (connections are pooled
/// per host).
#[derive(Clone)]
pub(crate) struct Sender {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    user_agent: HeaderValue,
}

impl Sender {
    /// A client that speaks http and https. The TLS provider is ring, named explicitly
    /// rather than taken from rustls's process-wide default.
    pub(crate) fn new() -> Result<Sender, rustls::Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(8)
            .build(https);
        let user_agent = HeaderValue::from_static(concat!("wardend/", env!("CARGO_PKG_VERSION")));
        Ok(Sender { client, user_agent })
    }

    /// Posts `row`'s payload, bounded by its timeout (connecting included).
    pub(crate) async fn send(&self, row: &OutboxRow, signature: Option<&str>) -> Attempt {
        let request = match self.request(row, signature) {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Failed {
                    status: 0,
                    error: format!("cannot build the request: {e}"),
                };
            }
        };
        let timeout = Duration::from_millis(u64::try_from(row.timeout_ms).unwrap_or(0))
            .clamp(Duration::from_millis(1), crate::policy::alerts::MAX_TIMEOUT);
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            // Read a little of the body to explain a refusal; a 2xx body is ignored.
            let text = if status.is_success() {
                String::new()
            } else {
                match Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                    .collect()
                    .await
                {
                    Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
                    Err(_) => String::new(),
                }
            };
            Ok::<_, hyper_util::client::legacy::Error>((status, retry_after, text))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => Attempt::Retry {
                status: 0,
                error: format!("no answer within {} ms", timeout.as_millis()),
                retry_after: None,
            },
            Ok(Err(e)) => Attempt::Retry {
                status: 0,
                error: network_error(&e),
                retry_after: None,
            },
            Ok(Ok((status, retry_after, text))) => classify(status, retry_after, &text),
        }
    }

    fn request(
        &self,
        row: &OutboxRow,
        signature: Option<&str>,
    ) -> Result<Request<Full<Bytes>>, hyper::http::Error> {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(row.url.as_str())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, self.user_agent.clone())
            .header("x-warden-event", row.event.as_str())
            .header("x-warden-delivery", row.id.as_str())
            .header("x-warden-attempt", row.attempts.to_string());
        if let Some(sig) = signature {
            builder = builder.header("x-warden-signature", sig);
        }
        builder.body(Full::new(Bytes::from(row.payload.clone())))
    }
}

/// What a response means for the alert.
fn classify(status: StatusCode, retry_after: Option<Duration>, body: &str) -> Attempt {
    let code = status.as_u16();
    if status.is_success() {
        return Attempt::Delivered { status: code };
    }
    let error = describe(status, body);
    let retryable = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT;
    if retryable {
        Attempt::Retry {
            status: code,
            error,
            retry_after,
        }
    } else if status.is_redirection() {
        Attempt::Failed {
            status: code,
            error: format!("{error} (redirects are not followed; fix the route's url)"),
        }
    } else {
        Attempt::Failed {
            status: code,
            error,
        }
    }
}

/// `HTTP 500 Internal Server Error: <first line of the body>`.
fn describe(status: StatusCode, body: &str) -> String {
    let mut out = format!("HTTP {status}");
    let snippet: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let snippet = snippet.trim();
    if !snippet.is_empty() {
        out.push_str(": ");
        out.push_str(&super::event::truncate(snippet, MAX_ERROR_CHARS));
    }
    out
}

/// A network error with its causes, which hold the useful part ("connection refused").
fn network_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_classified() {
        let s = |code| StatusCode::from_u16(code).unwrap();
        assert_eq!(
            classify(s(204), None, ""),
            Attempt::Delivered { status: 204 }
        );
        assert!(matches!(
            classify(s(500), None, ""),
            Attempt::Retry { status: 500, .. }
        ));
        assert!(matches!(classify(s(503), None, ""), Attempt::Retry { .. }));
        assert!(matches!(
            classify(s(429), Some(Duration::from_secs(7)), ""),
            Attempt::Retry { retry_after: Some(d), .. } if d == Duration::from_secs(7)
        ));
        assert!(matches!(classify(s(408), None, ""), Attempt::Retry { .. }));
        assert!(matches!(
            classify(s(400), None, ""),
            Attempt::Failed { status: 400, .. }
        ));
        assert!(matches!(classify(s(404), None, ""), Attempt::Failed { .. }));
        assert!(matches!(classify(s(301), None, ""), Attempt::Failed { .. }));
        match classify(s(400), None, "bad\nsignature") {
            Attempt::Failed { error, .. } => {
                assert_eq!(error, "HTTP 400 Bad Request: bad signature")
            }
            other => panic!("{other:?}"),
        }
    }
}
