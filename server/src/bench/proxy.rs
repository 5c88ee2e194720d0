//! `wardend bench proxy` and `wardend bench llm`: HTTP requests through `warden proxy`
//! (or model calls through `warden llm`) next to the same requests sent straight to the
//! same local upstream, in one run, so the ratio (or the added latency) is the figure.
//!
//! For `llm` the upstream answers every `POST /v1/chat/completions` with a fixed
//! completion proposing one allowed tool call (`run_command {"command":"echo hello"}`),
//! so each call through the filter is a pre-call Evaluate, the forward, one Evaluate of
//! the proposed call and a Report.
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
use http_body_util::{BodyExt, Full};
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
    /// `bench llm` only: streamed calls (`"stream": true`); the fake provider answers
    /// the same completion as server-sent events in fragments.
    #[arg(long)]
    pub stream: bool,
}

const BODY: &[u8] = &[b'x'; 256];

/// What the `llm` upstream answers: a completion proposing one allowed tool call.
const COMPLETION: &[u8] = br#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"run_command","arguments":"{\"command\":\"echo hello\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":42,"completion_tokens":9,"total_tokens":51}}"#;

/// [`COMPLETION`] as a provider streams it: role, the call's arguments in fragments,
/// finish, usage, `[DONE]`.
const STREAMED_COMPLETION: &[u8] = concat!(
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"run_command\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"command\\\":\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"echo hello\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":42,\"completion_tokens\":9,\"total_tokens\":51}}\n\n",
    "data: [DONE]\n\n",
)
.as_bytes();

/// What the agent sends in the `llm` benchmark, streamed.
const CHAT_STREAM_REQUEST: &str = r#"{"model":"bench-model","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"say hello in the shell"}],"tools":[{"type":"function","function":{"name":"run_command","parameters":{"type":"object","properties":{"command":{"type":"string"}}}}}]}"#;

/// What the agent sends in the `llm` benchmark.
const CHAT_REQUEST: &str = r#"{"model":"bench-model","messages":[{"role":"user","content":"say hello in the shell"}],"tools":[{"type":"function","function":{"name":"run_command","parameters":{"type":"object","properties":{"command":{"type":"string"}}}}}]}"#;

/// Which interceptor is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interceptor {
    Proxy,
    Llm,
}

pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    run_for(args, Interceptor::Proxy).await
}

pub async fn run_llm(args: ProxyArgs) -> anyhow::Result<()> {
    run_for(args, Interceptor::Llm).await
}

async fn run_for(args: ProxyArgs, which: Interceptor) -> anyhow::Result<()> {
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
    let answer = match which {
        Interceptor::Proxy => BODY,
        Interceptor::Llm if args.stream => STREAMED_COMPLETION,
        Interceptor::Llm => COMPLETION,
    };
    let upstream = start_upstream(Duration::from_millis(args.upstream_delay_ms), answer).await?;

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
    let mut command = tokio::process::Command::new(&warden);
    match which {
        Interceptor::Proxy => command
            .args(["proxy", "--daemon", &daemon_url])
            .args(["--resolve", "bench.test=127.0.0.1"]),
        Interceptor::Llm => command.args(["llm", "--daemon", &daemon_url]).args([
            "--upstream",
            &format!("http://127.0.0.1:{}/v1", upstream.port()),
        ]),
    };
    let mut proxy = command
        .args(["--listen", &format!("127.0.0.1:{proxy_port}")])
        .env("WARDEN_LOG", "warn")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", warden.display()))?;
    let proxy_addr = SocketAddr::from(([127, 0, 0, 1], proxy_port));
    wait_for_port(proxy_addr).await?;

    println!(
        "bench {}: {} connections, one request in flight each, {} s per side after {} s warm-up; upstream answers {} bytes after {} ms; daemon on {}",
        match which {
            Interceptor::Proxy => "proxy",
            Interceptor::Llm => "llm",
        },
        args.connections,
        args.duration,
        args.warmup,
        answer.len(),
        args.upstream_delay_ms,
        if db.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    let port = upstream.port();
    let (direct_route, through_route, name) = match which {
        Interceptor::Proxy => (
            Route::Direct { port },
            Route::Proxy { port },
            "warden proxy",
        ),
        Interceptor::Llm => (
            Route::ChatDirect {
                port,
                stream: args.stream,
            },
            Route::ChatFilter {
                port: proxy_port,
                stream: args.stream,
            },
            "warden llm",
        ),
    };
    let expect = answer.len();
    let direct = drive(&args, upstream, direct_route, expect).await?;
    print_row("direct to upstream", &direct);
    let through = drive(&args, proxy_addr, through_route, expect).await?;
    print_row(&format!("through {name}"), &through);
    print_ratio(&format!("{name}/direct"), &through, &direct);
    println!(
        "added latency: p50 {:+.3} ms, p99 {:+.3} ms",
        (through.p50.as_secs_f64() - direct.p50.as_secs_f64()) * 1e3,
        (through.p99.as_secs_f64() - direct.p99.as_secs_f64()) * 1e3
    );

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
    /// A chat completion straight to the fake provider (streamed or not).
    ChatDirect { port: u16, stream: bool },
    /// The same chat completion through `warden llm`.
    ChatFilter { port: u16, stream: bool },
}

impl Route {
    fn request(self, i: usize, session: usize) -> anyhow::Result<Request<Full<Bytes>>> {
        let request = match self {
            Route::Direct { port } => Request::get(format!("/items/{i}"))
                .header("host", format!("127.0.0.1:{port}"))
                .body(Full::default())?,
            Route::Proxy { port } => Request::get(format!("http://bench.test:{port}/items/{i}"))
                .header("host", format!("bench.test:{port}"))
                .header(
                    "proxy-authorization",
                    basic(&format!("bench-agent/bench-session-{session}")),
                )
                .body(Full::default())?,
            Route::ChatDirect { port, stream } | Route::ChatFilter { port, stream } => {
                let body = if stream {
                    CHAT_STREAM_REQUEST
                } else {
                    CHAT_REQUEST
                };
                Request::post("/v1/chat/completions")
                    .header("host", format!("127.0.0.1:{port}"))
                    .header("content-type", "application/json")
                    .header("authorization", "Bearer sk-bench")
                    .header("x-warden-session", format!("bench-session-{session}"))
                    .body(Full::new(Bytes::from_static(body.as_bytes())))?
            }
        };
        Ok(request)
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
async fn drive(
    args: &ProxyArgs,
    addr: SocketAddr,
    route: Route,
    expect: usize,
) -> anyhow::Result<Figures> {
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
                let ok = one(&mut sender, addr, route, i, session, expect)
                    .await
                    .is_ok();
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

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// One request on the worker's connection (opened, or reopened after a failure), the
/// whole answer read; an error when the status is not 200 or the body is short.
async fn one(
    sender: &mut Option<Sender>,
    addr: SocketAddr,
    route: Route,
    i: usize,
    session: usize,
    expect: usize,
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
    if status != 200 || body.len() != expect {
        bail!("status {status}, {} bytes", body.len());
    }
    Ok(())
}

/// The local upstream: HTTP/1.1 keep-alive, `answer` after `delay`.
async fn start_upstream(delay: Duration, answer: &'static [u8]) -> anyhow::Result<SocketAddr> {
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
                            Bytes::from_static(answer),
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
