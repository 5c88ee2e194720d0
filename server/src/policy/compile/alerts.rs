//! Compiling `alerts:` routes: event names, URL, format, secret and timeout are checked
//! here, each error pointing at the value that caused it.

use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::Compiler;
use crate::policy::PolicyError;
use crate::policy::alerts::{
    AlertEventKind, AlertFormat, AlertRoute, AlertSecret, DEFAULT_TIMEOUT, MAX_TIMEOUT,
};
use crate::policy::model::AlertRouteFile;

/// Longest webhook URL accepted.
const MAX_URL_BYTES: usize = 2048;

impl Compiler<'_> {
    pub(super) fn alert_route(
        &self,
        raw: &Spanned<AlertRouteFile>,
    ) -> Result<AlertRoute, PolicyError> {
        let r = &raw.value;
        let id = self.id(&r.id, "alert route")?;
        let mut events = Vec::new();
        if r.events.value.is_empty() {
            return Err(self.error(
                r.events.referenced,
                format!("alert route {id:?} has no `events`, so it would never fire"),
            ));
        }
        for e in &r.events.value {
            let name = e.value.trim().to_ascii_lowercase();
            let kind = AlertEventKind::parse(&name).ok_or_else(|| {
                self.error(
                    e.referenced,
                    format!(
                        "unknown alert event {:?} (expected {})",
                        e.value,
                        AlertEventKind::ALL.map(AlertEventKind::as_str).join(", ")
                    ),
                )
            })?;
            events.push(kind);
        }
        events.sort();
        events.dedup();
        let url = self.alert_url(&r.url)?;
        let format = match &r.format {
            None => AlertFormat::Json,
            Some(f) => {
                AlertFormat::parse(&f.value.trim().to_ascii_lowercase()).ok_or_else(|| {
                    self.error(
                        f.referenced,
                        format!(
                            "unknown alert format {:?} (expected json or slack)",
                            f.value
                        ),
                    )
                })?
            }
        };
        let secret = r
            .secret_env
            .as_ref()
            .map(|s| self.alert_secret(s))
            .transpose()?;
        let timeout = match &r.timeout {
            None => DEFAULT_TIMEOUT,
            Some(t) => {
                let us = crate::duration::parse_us(&t.value)
                    .map_err(|e| self.error(t.referenced, format!("`timeout`: {e}")))?;
                let timeout = Duration::from_micros(u64::try_from(us).unwrap_or(0));
                if timeout.is_zero() || timeout > MAX_TIMEOUT {
                    return Err(self.error(
                        t.referenced,
                        format!(
                            "`timeout` must be more than 0 and at most {}s",
                            MAX_TIMEOUT.as_secs()
                        ),
                    ));
                }
                timeout
            }
        };
        Ok(AlertRoute {
            origin: self.origin(r.id.referenced),
            id,
            events,
            url,
            format,
            secret,
            timeout,
        })
    }

    /// An absolute `http` or `https` URL with a host and no credentials.
    fn alert_url(&self, value: &Spanned<String>) -> Result<String, PolicyError> {
        let url = value.value.trim();
        let bad = |why: &str| self.error(value.referenced, format!("alert `url` {url:?} {why}"));
        if url.len() > MAX_URL_BYTES {
            return Err(bad(&format!("is longer than {MAX_URL_BYTES} bytes")));
        }
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| bad(&format!("is not a valid URL: {e}")))?;
        match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("http" | "https") => {}
            Some(other) => {
                return Err(bad(&format!(
                    "has scheme {other:?}; only http and https are supported"
                )));
            }
            None => return Err(bad("is not an absolute URL (write http://… or https://…)")),
        }
        let Some(authority) = uri.authority() else {
            return Err(bad("has no host"));
        };
        if authority.as_str().contains('@') {
            return Err(bad(
                "carries credentials; alerts are authenticated with `secret_env`",
            ));
        }
        if authority.host().is_empty() {
            return Err(bad("has no host"));
        }
        Ok(url.to_string())
    }

    /// Reads the HMAC key from the environment variable the route names.
    fn alert_secret(&self, value: &Spanned<String>) -> Result<AlertSecret, PolicyError> {
        let name = value.value.trim();
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(self.error(
                value.referenced,
                format!("`secret_env` {name:?} is not an environment variable name"),
            ));
        }
        match std::env::var_os(name) {
            Some(v) if !v.is_empty() => Ok(AlertSecret::new(name.to_string(), v.as_bytes())),
            _ => Err(self.error(
                value.referenced,
                format!(
                    "`secret_env` names {name}, which is unset or empty in wardend's environment"
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::{AlertEventKind, AlertFormat, Policy};

    fn compile(alerts: &str) -> Policy {
        let yaml = format!("version: 1\ndefault: allow\n{alerts}");
        Policy::from_yaml("p.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    const ROUTE: &str = "alerts:\n  - { id: ops, events: [deny, chain_broken, deny], url: \"https://h.example/x\" }\n";

    #[test]
    fn routes_compile_with_defaults() {
        let p = compile(ROUTE);
        let [route] = p.alerts() else {
            panic!("{:?}", p.alerts())
        };
        assert_eq!(route.id, "ops");
        assert_eq!(
            route.events,
            [AlertEventKind::Deny, AlertEventKind::ChainBroken]
        );
        assert_eq!(route.format, AlertFormat::Json);
        assert_eq!(route.timeout, std::time::Duration::from_secs(5));
        assert!(route.secret.is_none());
        assert!(route.wants(AlertEventKind::Deny) && !route.wants(AlertEventKind::RateLimited));
        assert_eq!(route.origin.line, 4);
    }

    #[test]
    fn routes_enter_the_version_and_no_routes_change_nothing() {
        let none = compile("");
        assert_eq!(none.version(), compile("alerts: []\n").version());
        let routed = compile(ROUTE);
        assert_ne!(none.version(), routed.version());
        assert_ne!(
            routed.version(),
            compile(&ROUTE.replace("/x", "/y")).version()
        );
        // Formatting and event order do not matter.
        let same = "alerts:\n  - id: ops\n    url: https://h.example/x\n    events:\n      - chain_broken\n      - deny\n";
        assert_eq!(routed.version(), compile(same).version());
    }

    #[test]
    fn secrets_are_read_from_the_environment_and_never_shown() {
        // PATH is set wherever tests run.
        let value = std::env::var("PATH").unwrap_or_default();
        assert!(!value.is_empty());
        let with = |var: &str| {
            compile(&format!(
                "alerts:\n  - {{ id: ops, events: [deny], url: \"https://h.example/\", secret_env: {var} }}\n"
            ))
        };
        let p = with("PATH");
        let secret = p.alerts()[0].secret.as_ref().unwrap();
        assert_eq!(secret.key(), value.as_bytes());
        assert_eq!(secret.env, "PATH");
        assert!(!format!("{:?}", p.alerts()).contains(&value));
        let unsigned =
            compile("alerts:\n  - { id: ops, events: [deny], url: \"https://h.example/\" }\n");
        assert_ne!(p.version(), unsigned.version());
    }
}
