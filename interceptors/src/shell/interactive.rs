//! The interactive side: a reedline line editor on its own thread (it blocks on the
//! terminal), a prompt showing the working directory and a failed last status, the
//! persistent history file, and signal handling so that Ctrl-C interrupts the running
//! command and never `warden shell` itself.

use std::borrow::Cow;
use std::path::PathBuf;

use reedline::{
    FileBackedHistory, Prompt, PromptEditMode, PromptHistorySearch, PromptHistorySearchStatus,
    Reedline, Signal,
};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

/// Entries kept in the history file.
const HISTORY_SIZE: usize = 10_000;

/// `$XDG_STATE_HOME/warden/shell_history`, else `~/.local/state/warden/shell_history`.
pub(crate) fn default_history() -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    state.join("warden").join("shell_history")
}

/// A request for the next line: bash's working directory and last exit status.
struct Want {
    cwd: String,
    status: i32,
    reply: oneshot::Sender<Option<String>>,
}

/// Hands out typed lines; `None` once the user pressed Ctrl-D.
pub(crate) struct LineReader {
    requests: mpsc::UnboundedSender<Want>,
}

impl LineReader {
    /// Starts the editor thread. History problems are reported and the shell runs
    /// without a history file.
    pub(crate) fn start(history: PathBuf) -> LineReader {
        let (requests, mut rx) = mpsc::unbounded_channel::<Want>();
        std::thread::spawn(move || {
            let mut editor = Reedline::create();
            match FileBackedHistory::with_file(HISTORY_SIZE, history.clone()) {
                Ok(h) => editor = editor.with_history(Box::new(h)),
                Err(e) => eprintln!(
                    "warden: warning: history file {}: {e}; history is not kept",
                    history.display()
                ),
            }
            while let Some(want) = rx.blocking_recv() {
                let prompt = ShellPrompt {
                    cwd: tilde(&want.cwd),
                    status: want.status,
                };
                let line = loop {
                    match editor.read_line(&prompt) {
                        Ok(Signal::Success(line)) => {
                            let _ = editor.sync_history();
                            break Some(line);
                        }
                        // Ctrl-C: the line is dropped, a fresh prompt follows.
                        Ok(Signal::CtrlC) => continue,
                        Ok(Signal::CtrlD) | Err(_) => break None,
                        Ok(_) => continue,
                    }
                };
                let _ = want.reply.send(line);
            }
        });
        LineReader { requests }
    }

    pub(crate) async fn next(&self, cwd: String, status: i32) -> Option<String> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(Want { cwd, status, reply }).ok()?;
        answer.await.ok().flatten()
    }
}

fn tilde(cwd: &str) -> String {
    match std::env::var("HOME") {
        Ok(home) if !home.is_empty() && home != "/" && cwd.starts_with(&home) => {
            format!("~{}", &cwd[home.len()..])
        }
        _ => cwd.to_string(),
    }
}

/// `warden:~/src$ `, with `[N] ` in front after a failed command.
struct ShellPrompt {
    cwd: String,
    status: i32,
}

impl Prompt for ShellPrompt {
    fn render_prompt_left(&self) -> Cow<'_, str> {
        if self.status == 0 {
            Cow::Owned(format!("warden:{}", self.cwd))
        } else {
            Cow::Owned(format!("[{}] warden:{}", self.status, self.cwd))
        }
    }

    fn render_prompt_right(&self) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn render_prompt_indicator(&self, _mode: PromptEditMode) -> Cow<'_, str> {
        Cow::Borrowed("$ ")
    }

    fn render_prompt_multiline_indicator(&self) -> Cow<'_, str> {
        Cow::Borrowed("> ")
    }

    fn render_prompt_history_search_indicator(&self, search: PromptHistorySearch) -> Cow<'_, str> {
        let failing = match search.status {
            PromptHistorySearchStatus::Passing => "",
            PromptHistorySearchStatus::Failing => "failing ",
        };
        Cow::Owned(format!("({failing}reverse-search: {}) ", search.term))
    }
}

/// Keeps SIGINT and SIGQUIT (sent by the terminal to the whole foreground group) from
/// killing `warden shell`, and passes SIGTERM and SIGHUP on to bash. Dropping the handle
/// stops the forwarding.
pub(crate) fn guard_signals(bash: Option<u32>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut quit), Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        loop {
            let forward = tokio::select! {
                _ = int.recv() => None,
                _ = quit.recv() => None,
                _ = term.recv() => Some(nix::sys::signal::Signal::SIGTERM),
                _ = hup.recv() => Some(nix::sys::signal::Signal::SIGHUP),
            };
            if let (Some(sig), Some(pid)) = (forward, bash) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
            }
        }
    })
}
