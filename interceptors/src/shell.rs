//! `warden shell`: an interactive shell and script runner with bash's semantics that asks
//! `wardend` before every command runs.
//!
//! Bash is not re-implemented: a real `bash` executes everything. Every bash started
//! under `warden shell` sources a generated hook file through `BASH_ENV` that installs a
//! `DEBUG` trap (with `extdebug` and `functrace`); before each simple command the trap
//! sends the command text and `$PWD` to this process over a loopback connection
//! authenticated by a random token, and runs the command only when told to. This process
//! asks the daemon (channel `shell`), prompts for REQUIRE_APPROVAL at a terminal, waits
//! for an approver with `--wait-approval`, and fails closed. Interactive lines are read
//! here with reedline and handed to one long-lived bash, so `cd`, `export`, functions and
//! aliases persist. See docs/SHELL.md for the mechanism and its limits.

mod decide;
mod hook;
mod interactive;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;

use crate::EXIT_NO_DECISION;
use crate::client::IdentityArgs;

#[derive(Debug, Args)]
pub struct ShellArgs {
    #[command(flatten)]
    identity: IdentityArgs,
    #[command(flatten)]
    approval: crate::client::ApprovalWait,
    /// History file of the interactive shell (default
    /// $XDG_STATE_HOME/warden/shell_history, or ~/.local/state/warden/shell_history).
    #[arg(long, env = "WARDEN_SHELL_HISTORY", value_name = "FILE")]
    history: Option<PathBuf>,
    /// The bash that executes commands.
    #[arg(
        long,
        env = "WARDEN_SHELL_BASH",
        default_value = "bash",
        value_name = "PATH"
    )]
    bash: PathBuf,
    /// Run CMD (bash syntax) and exit with its status; further arguments become $0, $1, ….
    #[arg(short = 'c', value_name = "CMD")]
    command: Option<String>,
    /// Accepted for compatibility with login(1) and `$SHELL -l`; no effect.
    #[arg(short = 'l', long = "login")]
    _login: bool,
    /// SCRIPT [ARGS…]: run a bash script with these arguments (unchanged) and exit with
    /// its status.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "SCRIPT"
    )]
    args: Vec<String>,
}

/// What the bash child runs.
pub(crate) enum Mode {
    /// The interactive loop: lines typed at the prompt.
    Interactive { history: PathBuf },
    /// `bash -c CMD [ARG0 ARGS…]`.
    Command { command: String, args: Vec<String> },
    /// `bash SCRIPT ARGS…`.
    Script { args: Vec<String> },
    /// `bash -s`: a script read from stdin.
    Stdin,
}

/// Runs `warden shell` and returns its exit status (that of bash, as bash would).
pub(crate) async fn run(args: ShellArgs) -> i32 {
    let mode = match (args.command, args.args.is_empty()) {
        (Some(command), _) => Mode::Command {
            command,
            args: args.args,
        },
        (None, false) => Mode::Script { args: args.args },
        (None, true) if std::io::stdin().is_terminal() => Mode::Interactive {
            history: args.history.unwrap_or_else(interactive::default_history),
        },
        (None, true) => Mode::Stdin,
    };
    let interactive = matches!(mode, Mode::Interactive { .. });
    let decider = decide::Decider::new(args.identity, interactive, args.approval.wait_approval);
    match hook::run_bash(&args.bash, mode, decider).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warden: shell: {e}; nothing was run");
            EXIT_NO_DECISION
        }
    }
}
