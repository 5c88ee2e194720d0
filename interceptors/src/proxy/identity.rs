//! Who is asking: the sidecar's flags, or the `Proxy-Authorization: Basic` user when a
//! client names itself (`AGENT`, `AGENT/SESSION` or `TENANT/AGENT/SESSION`). With a
//! token configured, the password must match it and a request without credentials is
//! answered 407.

use base64::Engine;
use hyper::HeaderMap;
use hyper::header::PROXY_AUTHORIZATION;

use crate::client::IdentityArgs;

/// Tenant, agent and session of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Who {
    pub(crate) tenant: String,
    pub(crate) agent: String,
    pub(crate) session: String,
}

/// Why credentials were not accepted (answered 407).
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
    #[error("this proxy needs Proxy-Authorization: Basic credentials")]
    Missing,
    #[error("Proxy-Authorization: {0}")]
    Malformed(&'static str),
    #[error("Proxy-Authorization: wrong password")]
    Wrong,
}

pub(crate) fn identify(
    headers: &HeaderMap,
    defaults: &IdentityArgs,
    token: Option<&str>,
) -> Result<Who, AuthError> {
    let mut who = Who {
        tenant: defaults.tenant.clone(),
        agent: defaults.agent.clone(),
        session: defaults.session.clone(),
    };
    let Some(value) = headers.get(PROXY_AUTHORIZATION) else {
        return match token {
            Some(_) => Err(AuthError::Missing),
            None => Ok(who),
        };
    };
    let value = value
        .to_str()
        .map_err(|_| AuthError::Malformed("not text"))?;
    let (scheme, encoded) = value
        .trim()
        .split_once(' ')
        .ok_or(AuthError::Malformed("expected `Basic <base64>`"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(AuthError::Malformed("only the Basic scheme is supported"));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| AuthError::Malformed("the credentials are not base64"))?;
    let decoded = String::from_utf8(decoded)
        .map_err(|_| AuthError::Malformed("the credentials are not UTF-8"))?;
    let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
    if let Some(token) = token
        && !same(password.as_bytes(), token.as_bytes())
    {
        return Err(AuthError::Wrong);
    }
    let parts: Vec<&str> = user.split('/').collect();
    let ok = |s: &&str| !s.is_empty() && s.len() <= 256;
    if !parts.iter().all(ok) {
        return Err(AuthError::Malformed(
            "the user must be AGENT, AGENT/SESSION or TENANT/AGENT/SESSION, none empty",
        ));
    }
    match parts.as_slice() {
        [agent] => who.agent = (*agent).into(),
        [agent, session] => {
            who.agent = (*agent).into();
            who.session = (*session).into();
        }
        [tenant, agent, session] => {
            who.tenant = (*tenant).into();
            who.agent = (*agent).into();
            who.session = (*session).into();
        }
        _ => {
            return Err(AuthError::Malformed(
                "the user must be AGENT, AGENT/SESSION or TENANT/AGENT/SESSION",
            ));
        }
    }
    Ok(who)
}

/// Compares secrets in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        identity: IdentityArgs,
    }

    fn defaults() -> IdentityArgs {
        Wrap::parse_from(["x", "--agent", "side", "--session", "s0"]).identity
    }

    fn basic(user_pass: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        );
        h.insert(
            PROXY_AUTHORIZATION,
            v.parse().unwrap_or_else(|_| unreachable!()),
        );
        h
    }

    #[test]
    fn flags_unless_the_client_names_itself() {
        let d = defaults();
        let who = identify(&HeaderMap::new(), &d, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((who.agent.as_str(), who.session.as_str()), ("side", "s0"));
        let who = identify(&basic("bot/s9:x"), &d, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((who.agent.as_str(), who.session.as_str()), ("bot", "s9"));
        let who = identify(&basic("t1/bot/s9:"), &d, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(who.tenant, "t1");
    }

    #[test]
    fn a_token_is_required_and_checked() {
        let d = defaults();
        assert!(matches!(
            identify(&HeaderMap::new(), &d, Some("k")),
            Err(AuthError::Missing)
        ));
        assert!(matches!(
            identify(&basic("bot:nope"), &d, Some("k")),
            Err(AuthError::Wrong)
        ));
        assert!(identify(&basic("bot:k"), &d, Some("k")).is_ok());
        assert!(matches!(
            identify(&basic("a//b:k"), &d, Some("k")),
            Err(AuthError::Malformed(_))
        ));
    }
}
