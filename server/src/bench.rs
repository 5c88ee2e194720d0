//! `wardend bench evaluate`: Evaluate with durable audit next to a no-op tonic RPC, in
//! one process and one run, so the ratio between them is the figure that matters (it
//! cancels out the machine).
//!
//! Both servers listen on loopback and are driven by the same client code: `connections`
//! HTTP/2 connections with `concurrency / connections` requests in flight on each. The
//! no-op service takes the same request and returns the same response type as
//! Evaluate, so the baseline pays the same encoding and transport costs.
//!
//! `wardend bench engine` (policy evaluation in-process, next to Cedar) lives in
//! [`engine`].

pub mod engine;
pub mod proxy;
pub mod shell;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};
use warden_proto::bench::v1::noop_client::NoopClient;
use warden_proto::bench::v1::noop_server::{Noop, NoopServer};
use warden_proto::v1::decisions_client::DecisionsClient;
use warden_proto::v1::{Action, Decision, EvaluateRequest, EvaluateResponse, Verdict};

use crate::server::{self, ServeConfig};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Database for the audit log. Default: a fresh SQLite file in a temporary directory.
    /// A PostgreSQL database given here gets benchmark records appended to its chain.
    #[arg(long, env = "WARDEN_DB")]
    pub db: Option<String>,
    /// Requests in flight in total.
    #[arg(long, default_value_t = 1024)]
    pub concurrency: usize,
    /// HTTP/2 connections the requests are spread over.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Seconds each side is measured.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Seconds of unmeasured warm-up before each side.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Also measure Evaluate under a policy that puts every action under a rate limit
    /// and a hard tool-call budget (per agent, never refusing): the cost of admission.
    #[arg(long)]
    pub limits: bool,
    /// Daemons sharing the database, the load spread over them. More than one needs
    /// PostgreSQL (`--db postgres://…`).
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// Agents the requests come from (each has its own bucket and budget row).
    #[arg(long, default_value_t = 64)]
    pub agents: usize,
}

/// Throughput and latency of one side.
#[derive(Debug, Clone)]
pub struct Figures {
    pub requests: u64,
    pub errors: u64,
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

struct NoopService;

#[tonic::async_trait]
impl Noop for NoopService {
    async fn evaluate(
        &self,
        _request: Request<EvaluateRequest>,
    ) -> Result<Response<EvaluateResponse>, Status> {
        Ok(Response::new(EvaluateResponse {
            decision: Some(Decision {
                verdict: Verdict::Allow.into(),
                reason: "no-op".into(),
                ..Default::default()
            }),
        }))
    }
}

/// The rate limit and budget `--limits` adds to the built-in default policy: every
/// exec action takes a token and is charged a tool call, and neither ever refuses.
const LIMITS_YAML: &str = "
rate_limits:
  - { id: bench-commands, rate: 1000000/s, burst: 1000000000, match: { channel: exec } }
budgets:
  - { id: bench-calls, metric: tool_calls, scope: agent, window: day, limit: 1e15, match: { channel: exec } }
";

/// Sessions the requests are spread over. An agent's session sends one action at a
/// time in practice; with this many, concurrent requests rarely wait on one session
/// row.
const SESSIONS: usize = 1024;

/// A realistic exec action: what `warden exec -- git status` sends, from one of
/// `agents` agents and one of [`SESSIONS`] sessions.
fn request(i: usize, agents: usize) -> EvaluateRequest {
    EvaluateRequest {
        action: Some(Action {
            agent: format!("bench-agent-{}", i % agents),
            session: format!("bench-session-{}", i % SESSIONS),
            channel: "exec".into(),
            argv: vec!["git".into(), "status".into(), "--short".into()],
            cwd: "/workspace/project".into(),
            ..Default::default()
        }),
    }
}

pub async fn evaluate(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.concurrency >= 1 && args.connections >= 1 && args.agents >= 1,
        "--concurrency, --connections and --agents must be at least 1"
    );
    anyhow::ensure!(
        (1..=16).contains(&args.replicas),
        "--replicas must be from 1 to 16"
    );
    let tmp = tempdir()?;
    let db = match &args.db {
        Some(db) => db.clone(),
        None => format!("sqlite://{}/bench.db", tmp.display()),
    };
    anyhow::ensure!(
        args.replicas == 1 || db.starts_with("postgres"),
        "--replicas {} needs a PostgreSQL database (--db postgres://…); SQLite is single-node",
        args.replicas
    );
    let agents = args.agents;

    // Baseline: the no-op service.
    let noop_listener = TcpListener::bind("127.0.0.1:0").await?;
    let noop_addr = noop_listener.local_addr()?;
    let (noop_stop, noop_stopped) = tokio::sync::oneshot::channel::<()>();
    let noop = tokio::spawn(
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(NoopServer::new(NoopService))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(noop_listener).with_nodelay(Some(true)),
                async {
                    let _ = noop_stopped.await;
                },
            ),
    );

    println!(
        "wardend bench evaluate: {} connections x {} in flight, {}s warm-up + {}s measured per side, {} agents, audit on {}, {} replica{}",
        args.connections,
        args.concurrency.div_ceil(args.connections),
        args.warmup,
        args.duration,
        agents,
        if db.starts_with("sqlite") {
            "SQLite"
        } else {
            "PostgreSQL"
        },
        args.replicas,
        if args.replicas == 1 { "" } else { "s" }
    );

    let noop_channels = channels(&[format!("http://{noop_addr}")], args.connections).await?;
    let baseline = drive(&args, noop_channels, move |channel, i| {
        let mut client = NoopClient::new(channel);
        async move { client.evaluate(request(i, agents)).await.map(|_| ()) }
    })
    .await;
    print_row("no-op tonic RPC", &baseline);
    let _ = noop_stop.send(());
    noop.await??;

    // The daemon, exactly as `wardend serve` runs it, on the built-in default policy.
    let plain = measure_daemons(&args, &db, None).await?;
    print_row("Evaluate + durable audit", &plain);
    print_ratio("Evaluate/no-op", &plain, &baseline);

    if args.limits {
        let path = tmp.join("limits.yaml");
        std::fs::write(
            &path,
            format!("{}{LIMITS_YAML}", crate::policy::DEFAULT_POLICY_YAML),
        )?;
        let limited = measure_daemons(&args, &db, Some(path)).await?;
        print_row("+ rate limit + budget", &limited);
        print_ratio("limited/Evaluate", &limited, &plain);
        print_ratio("limited/no-op", &limited, &baseline);
    }

    // The ceiling the database sets: the same records appended directly, no gRPC.
    let store = crate::store::Store::connect(&db).await?;
    let ceiling = store_ceiling(&store, Duration::from_secs(args.duration.min(5))).await?;
    println!(
        "audit store alone: {:.0} records/s committed in batches of {STORE_BATCH} ({:.2} ms per batch)",
        ceiling.0, ceiling.1
    );
    store.close().await;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// Starts `--replicas` daemons on `db` with `policy`, drives them as one service (the
/// connections spread over them), stops them, and returns the figures.
async fn measure_daemons(
    args: &BenchArgs,
    db: &str,
    policy: Option<std::path::PathBuf>,
) -> anyhow::Result<Figures> {
    let mut stops = Vec::new();
    let mut daemons = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..args.replicas {
        let port = free_port().await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            db: db.to_string(),
            policy: policy.clone(),
            policy_watch: None,
            ..ServeConfig::default()
        };
        daemons.push(tokio::spawn(server::run(config, async {
            let _ = stopped.await;
        })));
        stops.push(stop);
        let url = format!("http://127.0.0.1:{port}");
        wait_until_serving(&url).await?;
        urls.push(url);
    }
    let agents = args.agents;
    let figures = drive(
        args,
        channels(&urls, args.connections).await?,
        move |channel, i| {
            let mut client = DecisionsClient::new(channel);
            async move { client.evaluate(request(i, agents)).await.map(|_| ()) }
        },
    )
    .await;
    for stop in stops {
        let _ = stop.send(());
    }
    for daemon in daemons {
        daemon.await??;
    }
    Ok(figures)
}

pub(crate) fn print_ratio(name: &str, side: &Figures, base: &Figures) {
    println!(
        "ratio {name}: {:.1}% of throughput; p50 {:.2}x, p99 {:.2}x latency",
        100.0 * side.per_second / base.per_second.max(1e-9),
        side.p50.as_secs_f64() / base.p50.as_secs_f64().max(1e-9),
        side.p99.as_secs_f64() / base.p99.as_secs_f64().max(1e-9),
    );
}

/// Batch size for the store-alone measurement.
const STORE_BATCH: usize = 256;

/// Appends batches of realistic records for `window`; returns (records/s, ms per batch).
async fn store_ceiling(
    store: &crate::store::Store,
    window: Duration,
) -> anyhow::Result<(f64, f64)> {
    use crate::audit::{KIND_EVALUATE, RecordBody};
    use crate::store::NewRecord;
    let body = RecordBody {
        time_us: 1,
        kind: KIND_EVALUATE.into(),
        tenant: "default".into(),
        agent: "bench-agent".into(),
        session: "bench-session-1".into(),
        channel: "exec".into(),
        action: r#"{"tenant":"default","agent":"bench-agent","session":"bench-session-1","channel":"exec","tool":"git","operation":"execute","resource":"","argv":["git","status","--short"],"command_line":"git status --short","cwd":"/workspace/project"}"#.into(),
        verdict: "allow".into(),
        rule_ids: Vec::new(),
        reason: "no rule matched; the policy default is allow".into(),
        policy_version: "0".repeat(64),
        zone: "safe".into(),
        approval_id: String::new(),
        break_glass_id: String::new(),
        result: String::new(),
        decision_seq: 0,
    };
    let batch: Vec<NewRecord> = (0..STORE_BATCH)
        .map(|_| NewRecord {
            json: body.canonical_json(),
            body: body.clone(),
        })
        .collect();
    let start = Instant::now();
    let mut batches = 0u64;
    while start.elapsed() < window {
        store.append_batch(&batch).await?;
        batches += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((
        (batches as usize * STORE_BATCH) as f64 / secs,
        secs * 1e3 / batches.max(1) as f64,
    ))
}

pub(crate) fn print_row(name: &str, f: &Figures) {
    println!(
        "{name:<26} {:>10.0} req/s   p50 {:>8.2} ms   p99 {:>8.2} ms   ({} requests, {} errors)",
        f.per_second,
        f.p50.as_secs_f64() * 1e3,
        f.p99.as_secs_f64() * 1e3,
        f.requests,
        f.errors
    );
}

/// `n` connections, spread round-robin over `urls`.
async fn channels(urls: &[String], n: usize) -> anyhow::Result<Vec<Channel>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let url = &urls[i % urls.len()];
        // One Endpoint per connection: a tonic Channel multiplexes one HTTP/2 connection.
        let channel = Endpoint::from_shared(url.to_string())?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connecting to {url}"))?;
        out.push(channel);
    }
    Ok(out)
}

/// Runs the load and collects figures for the measured window.
async fn drive<F, Fut>(args: &BenchArgs, channels: Vec<Channel>, call: F) -> Figures
where
    F: Fn(Channel, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<(), Status>> + Send,
{
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.duration);
    let mut tasks = Vec::with_capacity(args.concurrency);
    for worker in 0..args.concurrency {
        let channel = channels[worker % channels.len()].clone();
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::with_capacity(4096);
            let mut errors = 0u64;
            let mut i = worker;
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let ok = call(channel.clone(), i).await.is_ok();
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
        if let Ok((l, e)) = task.await {
            all.extend(l);
            errors += e;
        }
    }
    figures(all, errors, Duration::from_secs(args.duration))
}

/// Figures from per-request latencies in microseconds over a measured `window`.
pub(crate) fn figures(mut all: Vec<u32>, errors: u64, window: Duration) -> Figures {
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(Duration::ZERO, |us| Duration::from_micros(u64::from(*us)))
    };
    Figures {
        requests: all.len() as u64,
        errors,
        per_second: all.len() as f64 / window.as_secs_f64().max(1e-9),
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

pub(crate) async fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    Ok(l.local_addr()?.port())
}

pub(crate) async fn wait_until_serving(url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(ch) = Endpoint::from_shared(url.to_string())?.connect().await {
            let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
            if health
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .is_ok()
            {
                return Ok(());
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the daemon under test did not start within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn tempdir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("wardend-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
