//! The interactive side: a reedline line editor on its own thread (it blocks on the
//! terminal), a prompt showing the working directory and a failed last status, the
//! persistent history file, and signal handling so that Ctrl-C interrupts the running
//! command and never `warden shell` itself.

use std::borrow::Cow;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use reedline::{
    FileBackedHistory, Prompt, PromptEditMode, PromptHistorySearch, PromptHistorySearchStatus,
    Reedline, Signal,
};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

/// Set by SIGINT (Ctrl-C at the terminal), cleared when a y/N question is asked.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Forgets earlier Ctrl-Cs; call before showing a y/N question, so that a Ctrl-C
/// pressed as soon as it appears counts.
pub(crate) fn arm_interrupt() {
    INTERRUPTED.store(false, Ordering::SeqCst);
}

/// Reads the answer to a y/N question from the terminal: `None` when Ctrl-C was pressed
/// (since [`arm_interrupt`]) or stdin failed before a line came. Blocking; call from a
/// blocking thread.
pub(crate) fn read_answer() -> Option<String> {
    use nix::poll::{PollFd, PollFlags, poll};
    let stdin = std::io::stdin();
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return None;
        }
        let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, 100u16) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => break,
            Err(_) => return None,
        }
    }
    // A terminal in canonical mode hands over one whole line per read.
    let mut buf = [0u8; 256];
    let n = stdin.lock().read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

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
/// killing `warden shell` (SIGINT answers a pending y/N question with no), and passes
/// SIGTERM and SIGHUP on to bash. Dropping the handle
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
                _ = int.recv() => {
                    INTERRUPTED.store(true, Ordering::SeqCst);
                    None
                }
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
