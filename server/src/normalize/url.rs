//! URL resources: scheme and host lower-cased, default ports dropped, the host parsed out
//! and classified as internal or external.

use std::net::IpAddr;

/// A resource that is a URL.
pub(crate) struct ParsedUrl {
    /// `scheme://host[:port]/path[?query]`, normalized.
    pub(crate) normalized: String,
    /// Lower-case host without port or brackets.
    pub(crate) host: String,
}

/// Parses `scheme://[user@]host[:port][/path]`. Returns `None` for anything that is not
/// such a URL (it is then treated as a plain resource).
pub(crate) fn parse(resource: &str) -> Option<ParsedUrl> {
    let (scheme, rest) = resource.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    // Userinfo never reaches a rule or the audit log.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = split_port(authority);
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    let default_port = match scheme.as_str() {
        "http" | "ws" => Some("80"),
        "https" | "wss" => Some("443"),
        _ => None,
    };
    let port = port.filter(|p| Some(*p) != default_port);
    let host_part = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let path = if tail.is_empty() { "/" } else { tail };
    let tail = path.split('#').next().unwrap_or(path);
    let normalized = match port {
        Some(port) => format!("{scheme}://{host_part}:{port}{tail}"),
        None => format!("{scheme}://{host_part}{tail}"),
    };
    Some(ParsedUrl { normalized, host })
}

fn split_port(authority: &str) -> (&str, Option<&str>) {
    if let Some(v6) = authority.strip_prefix('[') {
        return match v6.split_once(']') {
            Some((host, rest)) => (host, rest.strip_prefix(':')),
            None => (v6, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => (host, Some(port)),
        _ => (authority, None),
    }
}

/// Loopback, private, link-local and unique-local addresses, `localhost`, single-label
/// names and the `.internal`, `.local`, `.localhost` and `.svc.cluster.local` suffixes are
/// internal; everything else is external. (Configurable internal networks come with the
/// full policy language.)
pub(crate) fn is_internal(host: &str) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return match ip {
            IpAddr::V4(v4) => {
                v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
            }
            IpAddr::V6(v6) => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    || (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
            }
        };
    }
    host == "localhost"
        || !host.contains('.')
        || [".internal", ".local", ".localhost", ".cluster.local"]
            .iter()
            .any(|suffix| host.ends_with(suffix))
}
