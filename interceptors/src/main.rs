//! `warden`: the interceptors. Parse flags, start a small runtime, hand over.

use clap::Parser;
use warden_interceptors::{Cli, run};

fn main() {
    let cli = Cli::parse_from(login_shell_args(std::env::args_os().collect()));
    init_logging();
    // One thread for the one-shot commands and (by default) the sidecars; see
    // `RuntimeArgs::worker_threads`.
    let mut builder = match cli.worker_threads() {
        None | Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(0) => tokio::runtime::Builder::new_multi_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    let runtime = builder.enable_all().build();
    let code = match runtime {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => {
            eprintln!("warden: cannot start the async runtime: {e}");
            warden_interceptors::EXIT_NO_DECISION
        }
    };
    std::process::exit(code);
}

/// Logs go to stderr, filtered by `WARDEN_LOG` (default `warn`); `WARDEN_LOG_FORMAT=json`
/// writes one JSON object per line (for log collectors next to a sidecar).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARDEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A closed log pipe must not take the process down: by default a failed log
        // write is reported with eprintln!, which panics when stderr is the problem.
        .log_internal_errors(false);
    if std::env::var("WARDEN_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().with_current_span(false).init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

/// Started as `warden-shell` (a symlink, for /etc/shells and chsh; login(1) prefixes a
/// `-`), `warden` is `warden shell`: `-warden-shell`, `warden-shell -c CMD`, ….
fn login_shell_args(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let name = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .map(|n| n.trim_start_matches('-').to_string());
    if name.as_deref() == Some("warden-shell") {
        args.insert(1, "shell".into());
    }
    args
}
