//! `warden`: the interceptors that sit between an agent and the world and ask `wardend`
//! before anything happens. All of them share [`client::DaemonClient`] (deadlines,
//! fail-closed) and [`client::IdentityArgs`] (daemon address, tenant, agent, session).

mod admin;
mod client;
mod detect;
mod exec;
mod listen;
mod llm;
mod mcp;
mod proxy;
mod shell;

use clap::{Parser, Subcommand};

pub use client::{DaemonClient, IdentityArgs};

/// Exit code when policy refused the action (deny, approval required): nothing ran.
pub const EXIT_REFUSED: i32 = 126;
/// Exit code when no decision could be had (daemon unreachable, timed out, rejected the
/// request) and `--fail-open` was not given: nothing ran.
pub const EXIT_NO_DECISION: i32 = 125;
/// Exit code when the command was allowed but could not be started (not found, not
/// executable).
pub const EXIT_CANNOT_RUN: i32 = 127;

#[derive(Debug, Parser)]
#[command(
    name = "warden",
    version,
    about = "Warden interceptors: ask wardend before an agent acts"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Evaluate a command, then run it with the same argv, stdio and environment.
    Exec(exec::ExecArgs),
    /// An interactive shell and script runner (bash semantics) that asks wardend before
    /// every command: `warden shell`, `warden shell -c CMD`, `warden shell SCRIPT ARGS…`.
    Shell(shell::ShellArgs),
    /// An HTTP/1.1 forward proxy (plain HTTP and CONNECT) that asks wardend before every
    /// request and tunnel and reports the bytes each way.
    Proxy(proxy::ProxyArgs),
    /// An OpenAI-compatible proxy in front of a model provider: every model call and
    /// every tool call the model proposes is evaluated; refused calls are removed.
    Llm(llm::LlmArgs),
    /// An MCP gateway in front of upstream MCP servers (stdio or streamable HTTP on
    /// both sides): hides tools the policy never allows, asks wardend before every
    /// tool call, resource read and prompt, reports and redacts results.
    Mcp(mcp::McpArgs),
    /// List, approve or deny approval requests.
    #[command(subcommand)]
    Approvals(admin::ApprovalsCommand),
    /// Issue a time-limited, audited override of breakable refusals (`--reason`,
    /// `--ttl`, and `--agent`, `--session` or `--tenant-wide`); `revoke ID`, `list`.
    BreakGlass(admin::BreakGlassArgs),
    /// Show budgets, their usage and the usage history.
    #[command(subcommand)]
    Budgets(admin::BudgetsCommand),
}

impl Cli {
    /// Worker threads for the runtime: `None` for the one-shot commands (they run on
    /// one thread), the sidecars' `--worker-threads` otherwise.
    pub fn worker_threads(&self) -> Option<usize> {
        match &self.command {
            Command::Proxy(a) => Some(a.runtime.worker_threads),
            Command::Llm(a) => Some(a.runtime.worker_threads),
            Command::Mcp(a) => Some(a.runtime.worker_threads),
            _ => None,
        }
    }
}

/// How a sidecar (`proxy`, `llm`, `mcp`) runs.
#[derive(Debug, Clone, clap::Args)]
pub struct RuntimeArgs {
    /// Threads to run on. 1 (the default) runs every connection on one thread: a
    /// sidecar's work is waiting on sockets, and one thread saves the cross-thread
    /// wake-ups a multi-threaded runtime pays on every hop (measured in
    /// docs/BENCHMARKS.md: ~0.2 ms per `warden llm` call, the same throughput). More
    /// spreads connections over that many threads; 0 means one per CPU.
    #[arg(long, env = "WARDEN_WORKER_THREADS", default_value_t = 1)]
    pub worker_threads: usize,
}

/// Runs a parsed command and returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Exec(args) => exec::run(args).await,
        Command::Shell(args) => shell::run(args).await,
        Command::Proxy(args) => proxy::run(args).await,
        Command::Llm(args) => llm::run(args).await,
        Command::Mcp(args) => mcp::run(args).await,
        Command::Approvals(cmd) => admin::approvals(cmd).await,
        Command::BreakGlass(args) => admin::break_glass(args).await,
        Command::Budgets(cmd) => admin::budgets(cmd).await,
    }
}
