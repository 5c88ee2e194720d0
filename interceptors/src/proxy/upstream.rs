//! Opening TCP connections to upstreams: `--resolve` overrides, DNS otherwise, each
//! address tried in turn within the connect timeout.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::bail;
use tokio::net::TcpStream;

/// Why no connection to the upstream could be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("cannot resolve {host}: {detail}")]
    Resolve { host: String, detail: String },
    #[error("cannot connect to {host}:{port}: {detail}")]
    Connect {
        host: String,
        port: u16,
        detail: String,
    },
    #[error("connecting to {host}:{port} took longer than {timeout:?}")]
    TimedOut {
        host: String,
        port: u16,
        timeout: Duration,
    },
    #[error("{host}:{port} is this proxy itself")]
    Loop { host: String, port: u16 },
}

/// Static host overrides, one per `--resolve HOST=IP[:PORT]`.
pub(crate) struct Connector {
    overrides: HashMap<String, Override>,
    timeout: Duration,
}

#[derive(Clone, Copy)]
enum Override {
    Ip(std::net::IpAddr),
    Addr(SocketAddr),
}

impl Connector {
    pub(crate) fn new(resolve: &[String], timeout: Duration) -> anyhow::Result<Connector> {
        let mut overrides = HashMap::new();
        for entry in resolve {
            let Some((host, addr)) = entry.split_once('=') else {
                bail!("--resolve {entry:?}: expected HOST=IP or HOST=IP:PORT");
            };
            let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
            if host.is_empty() {
                bail!("--resolve {entry:?}: the host is empty");
            }
            let target = if let Ok(ip) = addr.parse() {
                Override::Ip(ip)
            } else if let Ok(sock) = addr.parse() {
                Override::Addr(sock)
            } else {
                bail!("--resolve {entry:?}: {addr:?} is not an IP address or IP:PORT");
            };
            overrides.insert(host, target);
        }
        Ok(Connector { overrides, timeout })
    }

    /// Connects to `host:port`, refusing when the address is `listen` (the proxy).
    pub(crate) async fn connect(
        &self,
        host: &str,
        port: u16,
        listen: SocketAddr,
    ) -> Result<TcpStream, ConnectError> {
        let work = async {
            let addrs: Vec<SocketAddr> = match self.overrides.get(host) {
                Some(Override::Ip(ip)) => vec![SocketAddr::new(*ip, port)],
                Some(Override::Addr(addr)) => vec![*addr],
                None => tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|e| ConnectError::Resolve {
                        host: host.into(),
                        detail: e.to_string(),
                    })?
                    .collect(),
            };
            if addrs.is_empty() {
                return Err(ConnectError::Resolve {
                    host: host.into(),
                    detail: "no addresses".into(),
                });
            }
            let mut last = String::new();
            for addr in addrs {
                if is_self(addr, listen) {
                    return Err(ConnectError::Loop {
                        host: host.into(),
                        port,
                    });
                }
                match TcpStream::connect(addr).await {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        return Ok(stream);
                    }
                    Err(e) => last = format!("{addr}: {e}"),
                }
            }
            Err(ConnectError::Connect {
                host: host.into(),
                port,
                detail: last,
            })
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(ConnectError::TimedOut {
                    host: host.into(),
                    port,
                    timeout: self.timeout,
                })
            })
    }
}

/// Whether `addr` reaches the proxy's own listener.
fn is_self(addr: SocketAddr, listen: SocketAddr) -> bool {
    if addr.port() != listen.port() {
        return false;
    }
    addr.ip() == listen.ip()
        || (listen.ip().is_unspecified() && (addr.ip().is_loopback() || addr.ip().is_unspecified()))
        || (addr.ip().is_loopback() && listen.ip().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_entries_are_checked() {
        assert!(Connector::new(&["a.test=127.0.0.1".into()], Duration::from_secs(1)).is_ok());
        assert!(Connector::new(&["a.test=127.0.0.1:8080".into()], Duration::from_secs(1)).is_ok());
        for bad in ["a.test", "=127.0.0.1", "a.test=nowhere"] {
            let err = Connector::new(&[bad.into()], Duration::from_secs(1))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("--resolve"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_proxy_is_not_its_own_upstream() {
        let listen: SocketAddr = "127.0.0.1:3128".parse().unwrap_or_else(|_| unreachable!());
        let parse = |s: &str| s.parse::<SocketAddr>().unwrap_or_else(|_| unreachable!());
        assert!(is_self(parse("127.0.0.1:3128"), listen));
        assert!(is_self(parse("127.0.0.2:3128"), listen));
        assert!(!is_self(parse("127.0.0.1:3129"), listen));
        assert!(!is_self(parse("10.0.0.1:3128"), listen));
        let any: SocketAddr = "0.0.0.0:3128".parse().unwrap_or_else(|_| unreachable!());
        assert!(is_self(parse("127.0.0.1:3128"), any));
    }
}
