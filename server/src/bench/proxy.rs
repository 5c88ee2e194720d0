//! `wardend bench proxy`: HTTP requests through `warden proxy` next to the same requests
//! sent straight to the same local upstream, in one run, so the ratio is the figure.
//!
//! Pieces, all on this machine: an upstream (hyper, HTTP/1.1 keep-alive, a fixed
//! 256-byte answer after an optional service time), a daemon with durable audit (this
//! process, SQLite by default, the built-in policy), and the real `warden proxy` binary
//! as a child process. The load is `--connections` keep-alive HTTP/1.1 connections, each
//! sending its next request when the previous answer has been read. Through the proxy
//! every request is one Evaluate (audited, in the session) before it is forwarded and
//! one Report (audited) after its response body ends.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use super::{Figures, free_port, print_ratio, print_row, tempdir, wait_until_serving};
use crate::server::{self, ServeConfig};

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The `warden` binary. Default: next to this `wardend`.
    #[arg(long)]
    pub warden: Option<PathBuf>,
    /// Database for the daemon's audit log. Default: a fresh SQLite file.
    #[arg(long, env = "WARDEN_DB")]
    pub db: Option<String>,
    /// Keep-alive client connections, each with one request in flight.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Seconds each side is measured.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Seconds of unmeasured warm-up before each side.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Milliseconds the upstream takes to answer (0: answer at once, the proxy's worst
    /// case; a real API takes tens to hundreds).
    #[arg(long, default_value_t = 0)]
    pub upstream_delay_ms: u64,
    /// Sessions the requests are spread over (each connection stays in one).
    #[arg(long, default_value_t = 32)]
    pub sessions: usize,
}

const BODY: &[u8] = &[b'x'; 256];

pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let warden = match &args.warden {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("wardend has no directory")?
            .join("warden"),
    };
    if !warden.exists() {
        bail!(
            "{} not found: build it (`cargo build --release --bins`) or pass --warden",
            warden.display()
        );
    }
    let upstream = start_upstream(Duration::from_millis(args.upstream_delay_ms)).await?;

    let tmp = tempdir()?;
    let db = match &args.db {
        Some(db) => db.clone(),
        None => format!("sqlite://{}/bench-proxy.db", tmp.display()),
    };
    let daemon_port = free_port().await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = ServeConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], daemon_port)),
        db: db.clone(),
        policy: None,
        policy_watch: None,
        ..ServeConfig::default()
    };
    let daemon = tokio::spawn(server::run(config, async {
        let _ = stopped.await;
    }));
    let daemon_url = format!("http://127.0.0.1:{daemon_port}");
    wait_until_serving(&daemon_url).await?;

    let proxy_port = free_port().await?;
    let mut proxy = tokio::process::Command::new(&warden)
        .args(["proxy", "--daemon", &daemon_url])
        .args(["--listen", &format!("127.0.0.1:{proxy_port}")])
        .args(["--resolve", "bench.test=127.0.0.1"])
        .env("WARDEN_LOG", "warn")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", warden.display()))?;
    let proxy_addr = SocketAddr::from(([127, 0, 0, 1], proxy_port));
    wait_for_port(proxy_addr).await?;

    println!(
        "bench proxy: {} connections, one request in flight each, {} s per side after {} s warm-up; upstream answers {} bytes after {} ms; daemon on {}",
        args.connections,
        args.duration,
        args.warmup,
        BODY.len(),
        args.upstream_delay_ms,
        if db.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    let direct = drive(
        &args,
        upstream,
        Route::Direct {
            port: upstream.port(),
        },
    )
    .await?;
    print_row("direct to upstream", &direct);
    let proxied = drive(
        &args,
        proxy_addr,
        Route::Proxy {
            port: upstream.port(),
        },
    )
    .await?;
    print_row("through warden proxy", &proxied);
    print_ratio("proxy/direct", &proxied, &direct);

    let _ = proxy.kill().await;
    let _ = stop.send(());
    daemon.await??;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

#[derive(Clone, Copy)]
enum Route {
    /// Origin-form requests to the upstream itself.
    Direct { port: u16 },
    /// Absolute-form requests to the proxy, for the upstream under a name the policy
    /// sees as an external host.
    Proxy { port: u16 },
}

impl Route {
    fn request(self, i: usize, session: usize) -> anyhow::Result<Request<Empty<Bytes>>> {
        let builder = match self {
            Route::Direct { port } => {
                Request::get(format!("/items/{i}")).header("host", format!("127.0.0.1:{port}"))
            }
            Route::Proxy { port } => Request::get(format!("http://bench.test:{port}/items/{i}"))
                .header("host", format!("bench.test:{port}"))
                .header(
                    "proxy-authorization",
                    basic(&format!("bench-agent/bench-session-{session}")),
                ),
        };
        Ok(builder.body(Empty::new())?)
    }
}

/// `Basic base64(user:)`.
fn basic(user: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:"))
    )
}

/// `connections` keep-alive connections to `addr`, each sending requests one after the
/// other; latencies of the measured window.
async fn drive(args: &ProxyArgs, addr: SocketAddr, route: Route) -> anyhow::Result<Figures> {
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.duration);
    let mut tasks = Vec::with_capacity(args.connections);
    for worker in 0..args.connections {
        let session = worker % args.sessions.max(1);
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::with_capacity(8192);
            let mut errors = 0u64;
            let mut sender = None;
            let mut i = worker;
            while Instant::now() < end {
                let sent = Instant::now();
                let ok = one(&mut sender, addr, route, i, session).await.is_ok();
                i += 1;
                if sent >= measure_from {
                    if ok {
                        latencies.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    } else {
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        all.extend(l);
        errors += e;
    }
    Ok(super::figures(
        all,
        errors,
        Duration::from_secs(args.duration),
    ))
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// One request on the worker's connection (opened, or reopened after a failure), the
/// whole answer read; an error when the status is not 200 or the body is short.
async fn one(
    sender: &mut Option<Sender>,
    addr: SocketAddr,
    route: Route,
    i: usize,
    session: usize,
) -> anyhow::Result<()> {
    if sender.as_ref().is_none_or(|s| s.is_closed()) {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        *sender = Some(s);
    }
    let Some(s) = sender.as_mut() else {
        bail!("no connection")
    };
    s.ready().await?;
    let response = match s.send_request(route.request(i, session)?).await {
        Ok(r) => r,
        Err(e) => {
            *sender = None;
            return Err(e.into());
        }
    };
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if status != 200 || body.len() != BODY.len() {
        bail!("status {status}, {} bytes", body.len());
    }
    Ok(())
}

/// The local upstream: HTTP/1.1 keep-alive, 256 bytes after `delay`.
async fn start_upstream(delay: Duration) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |_req: Request<hyper::body::Incoming>| async move {
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                            Bytes::from_static(BODY),
                        )))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn wait_for_port(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).await.is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "warden proxy did not listen on {addr} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn basic_credentials_are_base64() {
        assert_eq!(super::basic("a"), "Basic YTo=");
        assert_eq!(super::basic("ab"), "Basic YWI6");
        assert_eq!(
            super::basic("bench-agent/s-1"),
            "Basic YmVuY2gtYWdlbnQvcy0xOg=="
        );
    }
}
