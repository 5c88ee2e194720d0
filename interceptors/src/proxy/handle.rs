//! One request, in order: who is asking, what is asked, the decision, then forward or
//! tunnel. Every way out that is not an allowed exchange is a JSON answer from
//! [`reply`]; nothing reaches an upstream before an allow.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};
use warden_proto::v1::{Action, Decision, Verdict};

use super::reply::{self, ProxyBody};
use super::{Shared, forward, identity, tunnel};
use crate::client::Waited;

/// What the client asked for.
pub(crate) struct Target {
    /// Lower-case host, without brackets for IPv6.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `host` or `[v6]`, with `:port` when it is not the scheme's default.
    pub(crate) authority: String,
    /// The URL the decision names.
    pub(crate) url: String,
    pub(crate) tunnel: bool,
}

impl Target {
    fn of(req: &Request<Incoming>) -> Result<Target, String> {
        let uri = req.uri();
        let tunnel = req.method() == Method::CONNECT;
        if !tunnel {
            match uri.scheme_str() {
                Some("http") => {}
                Some("https") => {
                    return Err("https:// URLs go through a CONNECT tunnel (the proxy does not terminate TLS)".into());
                }
                Some(other) => return Err(format!("the {other}:// scheme is not proxied")),
                None => {
                    return Err(format!(
                        "{} {uri}: a forward proxy needs an absolute URL (http://host/path) or CONNECT host:port",
                        req.method()
                    ));
                }
            }
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{} {uri}: no host in the request target", req.method()))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if host.is_empty() {
            return Err("the request target names no host".into());
        }
        let port = match (authority.port_u16(), tunnel) {
            (Some(p), _) => p,
            (None, false) => 80,
            (None, true) => return Err(format!("CONNECT {authority}: a port is required")),
        };
        let host_part = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let default_port = if tunnel { 443 } else { 80 };
        let authority = if port == default_port {
            host_part
        } else {
            format!("{host_part}:{port}")
        };
        // A tunnel's protocol is invisible (no TLS interception); it is named https,
        // which nearly every CONNECT is, with no path.
        let url = if tunnel {
            format!("https://{authority}/")
        } else {
            let path = uri.path_and_query().map_or("/", |p| p.as_str());
            format!("http://{authority}{path}")
        };
        Ok(Target {
            host,
            port,
            authority,
            url,
            tunnel,
        })
    }

    fn action(&self, who: &identity::Who, req: &Request<Incoming>) -> Action {
        let mut action = Action {
            tenant: who.tenant.clone(),
            agent: who.agent.clone(),
            session: who.session.clone(),
            channel: "http".into(),
            tool: req.method().as_str().to_string(),
            resource: self.url.clone(),
            ..Default::default()
        };
        let attrs = &mut action.attributes;
        attrs.insert("method".into(), req.method().as_str().into());
        attrs.insert("host".into(), self.host.clone());
        attrs.insert("port".into(), self.port.to_string());
        attrs.insert(
            "scheme".into(),
            if self.tunnel { "https" } else { "http" }.into(),
        );
        if self.tunnel {
            attrs.insert("tunnel".into(), "true".into());
        }
        if let Some(ua) = req.headers().get(USER_AGENT).and_then(|v| v.to_str().ok()) {
            attrs.insert("user_agent".into(), ua.chars().take(256).collect());
        }
        // A declared body size reserves room in egress budgets before anything is sent.
        if let Some(len) = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            attrs.insert("estimated_bytes".into(), len.to_string());
        }
        action
    }
}

pub(crate) async fn handle(
    shared: Arc<Shared>,
    upstream: Arc<tokio::sync::Mutex<Option<forward::Upstream>>>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    // 1. Who is asking.
    let who = match identity::identify(req.headers(), &shared.identity, shared.token.as_deref()) {
        Ok(who) => who,
        Err(e) => {
            tracing::info!(%peer, error = %e, "proxy authentication refused");
            return Ok(reply::auth_required(e));
        }
    };
    // 2. What is asked.
    let target = match Target::of(&req) {
        Ok(t) => t,
        Err(e) => return Ok(reply::error(StatusCode::BAD_REQUEST, e)),
    };
    // 3. The decision.
    let action = target.action(&who, &req);
    let decision = match decide(&shared, &action).await {
        Decided::Go(d) => d,
        Decided::Refuse(response) => {
            tracing::info!(
                %peer,
                agent = action.agent.as_str(),
                session = action.session.as_str(),
                method = action.tool.as_str(),
                url = action.resource.as_str(),
                status = response.status().as_u16(),
                decision = response
                    .headers()
                    .get(reply::DECISION_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("0"),
                "refused"
            );
            return Ok(response);
        }
    };
    // 4. Carry it out.
    let response = if target.tunnel {
        tunnel::open(shared, req, target, action, decision).await
    } else {
        forward::send(shared, upstream, req, target, action, decision).await
    };
    Ok(response)
}

enum Decided {
    /// Go ahead; the decision (`None` under `--fail-open` without one).
    Go(Option<Decision>),
    Refuse(Response<ProxyBody>),
}

async fn decide(shared: &Shared, action: &Action) -> Decided {
    let mut client = shared.client.clone();
    let decision = match client.evaluate(action.clone()).await {
        Ok(d) => d,
        Err(e) if e.is_unavailable() && shared.identity.fail_open => {
            tracing::warn!(
                url = action.resource.as_str(),
                error = %e,
                "forwarding WITHOUT a policy decision (--fail-open)"
            );
            return Decided::Go(None);
        }
        Err(e) => {
            return Decided::Refuse(reply::no_decision(&e.to_string(), e.is_unavailable()));
        }
    };
    let decision = match (decision.verdict(), shared.wait_approval) {
        (Verdict::RequireApproval, Some(timeout)) if !decision.approval_id.is_empty() => {
            let pending = decision.clone();
            match client.await_approval(action, decision, timeout).await {
                Waited::Decided(d) => d,
                Waited::NotGranted(why) => {
                    let mut refused = pending;
                    refused.reason = format!("{}; {why}", refused.reason);
                    return Decided::Refuse(reply::refused(&refused));
                }
                Waited::Failed(why) => return Decided::Refuse(reply::no_decision(&why, false)),
            }
        }
        _ => decision,
    };
    match decision.verdict() {
        Verdict::Allow => Decided::Go(Some(decision)),
        // Redaction needs the body in hand; a streamed body (and anything inside a
        // tunnel) cannot be rewritten here, so the request is refused rather than sent
        // unredacted.
        Verdict::AllowWithRedaction => {
            let mut refused = decision;
            refused.reason = format!(
                "{} — the policy asks for redaction, which warden proxy cannot apply to a streamed body; refused instead",
                refused.reason
            );
            Decided::Refuse(reply::refused(&refused))
        }
        _ => Decided::Refuse(reply::refused(&decision)),
    }
}
