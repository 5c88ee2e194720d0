//! `warden exec -- CMD ARGS…`: evaluate a command, then run it exactly as given.
//!
//! Allowed: the program runs with the same argv, environment and stdin; stdout and
//! stderr are inherited when they are terminals and otherwise copied through (so their
//! bytes can be counted); `warden` exits with the program's exit code, or 128+N when the
//! program was killed by signal N (the shell's convention). Refused: nothing is started,
//! the reason goes to stderr, exit code 126. No decision: exit code 125 (fail-closed)
//! unless `--fail-open`. After the program ends, the result is reported to the daemon.

use std::io::IsTerminal;
use std::process::Stdio;
use std::time::Instant;

use clap::Args;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::process::Command;
use tokio::signal::unix::{SignalKind, signal};
use warden_proto::v1::{Action, Decision, ResultMeta, Verdict};

use crate::client::{DaemonClient, IdentityArgs, Waited};
use crate::{EXIT_CANNOT_RUN, EXIT_NO_DECISION, EXIT_REFUSED};

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    identity: IdentityArgs,
    #[command(flatten)]
    approval: crate::client::ApprovalWait,
    /// The command and its arguments (after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    command: Vec<String>,
}

pub(crate) async fn run(args: ExecArgs) -> i32 {
    let mut action = Action {
        channel: "exec".into(),
        argv: args.command.clone(),
        cwd: std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        ..Default::default()
    };
    args.identity.stamp(&mut action);

    let (mut client, decision) = match decide(&args.identity, action.clone()).await {
        Ok(pair) => pair,
        Err(message) => {
            if args.identity.fail_open && message.unavailable {
                eprintln!(
                    "warden: WARNING: running {:?} WITHOUT a policy decision (--fail-open): {}",
                    args.command[0], message.text
                );
                return spawn_and_wait(&args.command).await.exit_code;
            }
            eprintln!(
                "warden: refused {:?}: {} (fail-closed: nothing was run{})",
                args.command[0],
                message.text,
                if message.unavailable {
                    "; --fail-open overrides this"
                } else {
                    ""
                }
            );
            return EXIT_NO_DECISION;
        }
    };

    let decision = match args.approval.wait_approval {
        Some(timeout) if decision.verdict() == Verdict::RequireApproval => {
            match wait_for_approval(&mut client, &action, decision, timeout).await {
                Ok(d) => d,
                Err(code) => return code,
            }
        }
        _ => decision,
    };
    if let Some(refusal) = refusal(&decision) {
        eprintln!("warden: {refusal}");
        return EXIT_REFUSED;
    }

    let outcome = spawn_and_wait(&args.command).await;
    let seq = decision.id.as_ref().map_or(0, |id| id.seq);
    if let Err(e) = client.report(action, seq, outcome.meta.clone()).await {
        eprintln!("warden: warning: could not report the result to wardend: {e}");
    }
    outcome.exit_code
}

struct NoDecisionMessage {
    text: String,
    unavailable: bool,
}

async fn decide(
    identity: &IdentityArgs,
    action: Action,
) -> Result<(DaemonClient, Decision), NoDecisionMessage> {
    let to_message = |e: crate::client::NoDecision| NoDecisionMessage {
        unavailable: e.is_unavailable(),
        text: e.to_string(),
    };
    let mut client = DaemonClient::connect(identity).await.map_err(to_message)?;
    let decision = client.evaluate(action).await.map_err(to_message)?;
    Ok((client, decision))
}

/// Waits on the approval a decision created; once granted, asks again and returns the
/// new decision. Refusals and failures are reported here and returned as the exit code.
pub(crate) async fn wait_for_approval(
    client: &mut DaemonClient,
    action: &Action,
    decision: Decision,
    timeout: std::time::Duration,
) -> Result<Decision, i32> {
    if !decision.approval_id.is_empty() {
        let id = &decision.approval_id;
        eprintln!(
            "warden: approval required: {} — waiting up to {}s for approval {id} (`warden approvals approve {id}`)",
            decision.reason,
            timeout.as_secs()
        );
    }
    match client.await_approval(action, decision, timeout).await {
        Waited::Decided(d) => Ok(d),
        Waited::NotGranted(why) => {
            eprintln!("warden: refused: {why}; nothing was run");
            Err(EXIT_REFUSED)
        }
        Waited::Failed(why) => {
            eprintln!("warden: refused: {why}; nothing was run");
            Err(EXIT_NO_DECISION)
        }
    }
}

/// The message for a decision that does not let the command run, or `None` to run it.
pub(crate) fn refusal(d: &Decision) -> Option<String> {
    let rules = if d.matched_rules.is_empty() {
        "policy default".to_string()
    } else {
        d.matched_rules.join(", ")
    };
    let seq = d.id.as_ref().map_or(0, |id| id.seq);
    match d.verdict() {
        Verdict::Allow => None,
        Verdict::Deny => Some(format!("denied: {} [{rules}] (decision #{seq})", d.reason)),
        Verdict::RequireApproval => Some(format!(
            "approval required: {} [{rules}] (decision #{seq}{}); nothing was run",
            d.reason,
            if d.approval_id.is_empty() {
                String::new()
            } else {
                format!(", approval {}", d.approval_id)
            }
        )),
        Verdict::AllowWithRedaction => Some(format!(
            "refused: the policy allows this only with output redaction, which `warden exec` cannot apply to a process's output [{rules}] (decision #{seq})"
        )),
        Verdict::Unspecified => Some(format!(
            "refused: wardend returned no verdict (decision #{seq})"
        )),
    }
}

struct Outcome {
    exit_code: i32,
    meta: ResultMeta,
}

/// Starts the program and waits for it, forwarding signals and counting output.
async fn spawn_and_wait(argv: &[String]) -> Outcome {
    let started = Instant::now();
    let count_stdout = !std::io::stdout().is_terminal();
    let count_stderr = !std::io::stderr().is_terminal();
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .stdin(Stdio::inherit())
        .stdout(if count_stdout {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
        .stderr(if count_stderr {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let what = if e.kind() == std::io::ErrorKind::NotFound {
                "command not found".to_string()
            } else {
                e.to_string()
            };
            eprintln!("warden: {}: {what}", argv[0]);
            return Outcome {
                exit_code: EXIT_CANNOT_RUN,
                meta: ResultMeta {
                    error: format!("{}: {what}", argv[0]),
                    duration_ms: started.elapsed().as_millis() as u64,
                    ..Default::default()
                },
            };
        }
    };
    let pid = child.id().map(|id| Pid::from_raw(id as i32));
    let forwarder = tokio::spawn(forward_signals(pid));
    let stdout = child
        .stdout
        .take()
        .map(|s| tokio::spawn(pump(s, tokio::io::stdout())));
    let stderr = child
        .stderr
        .take()
        .map(|s| tokio::spawn(pump(s, tokio::io::stderr())));
    let status = child.wait().await;
    let stdout_bytes = join_count(stdout).await;
    let stderr_bytes = join_count(stderr).await;
    forwarder.abort();

    let mut meta = ResultMeta {
        duration_ms: started.elapsed().as_millis() as u64,
        stdout_bytes,
        stderr_bytes,
        bytes: stdout_bytes + stderr_bytes,
        ..Default::default()
    };
    let exit_code = match status {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            if let Some(code) = status.code() {
                meta.exit_code = Some(code);
                code
            } else if let Some(sig) = status.signal() {
                meta.signal = Some(sig);
                128 + sig
            } else {
                1
            }
        }
        Err(e) => {
            meta.error = format!("waiting for {}: {e}", argv[0]);
            eprintln!("warden: {}", meta.error);
            1
        }
    };
    Outcome { exit_code, meta }
}

async fn pump<R, W>(mut from: R, mut to: W) -> u64
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    tokio::io::copy(&mut from, &mut to).await.unwrap_or(0)
}

async fn join_count(task: Option<tokio::task::JoinHandle<u64>>) -> u64 {
    match task {
        Some(t) => t.await.unwrap_or(0),
        None => 0,
    }
}

/// Passes SIGTERM, SIGHUP, SIGINT and SIGQUIT on to the child. When stdin is a terminal,
/// the terminal already delivers SIGINT and SIGQUIT to the child (same process group),
/// so only the others are forwarded; `warden` itself never dies of them while the child
/// runs, and exits with the child's status.
async fn forward_signals(pid: Option<Pid>) {
    let Some(pid) = pid else { return };
    let interactive = std::io::stdin().is_terminal();
    // (signal, forward it?). Listening for a signal also stops it killing warden.
    let table = [
        (SignalKind::terminate(), Signal::SIGTERM, true),
        (SignalKind::hangup(), Signal::SIGHUP, true),
        (SignalKind::interrupt(), Signal::SIGINT, !interactive),
        (SignalKind::quit(), Signal::SIGQUIT, !interactive),
    ];
    let mut streams = Vec::new();
    for (kind, sig, forward) in table {
        if let Ok(stream) = signal(kind) {
            streams.push((stream, sig, forward));
        }
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (mut stream, sig, forward) in streams {
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if forward && tx.send(sig).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    while let Some(sig) = rx.recv().await {
        let _ = kill(pid, sig);
    }
}
