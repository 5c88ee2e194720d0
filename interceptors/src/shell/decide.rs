//! One decision per command: the local tamper guard, Evaluate (channel `shell`), the
//! y/N prompt for REQUIRE_APPROVAL at a terminal (its answer reported to the daemon),
//! `--wait-approval` in scripts, and fail-closed / `--fail-open` when there is no answer.

use std::time::Duration;

use tokio::sync::Mutex;
use warden_proto::v1::{Action, Decision, ResultMeta, Verdict};

use crate::client::{DaemonClient, IdentityArgs, NoDecision};
use crate::exec::{refusal, wait_for_approval};
use crate::{EXIT_NO_DECISION, EXIT_REFUSED};

/// Audit tag and action attribute values recording the answer given at the prompt.
const PROMPT_ATTRIBUTE: &str = "warden.shell.prompt";

/// What the hook is told: run the command, or refuse it with this exit status; and what
/// to print on the shell's stderr either way.
pub(crate) struct Outcome {
    /// `None`: run it. `Some(126)`: refused by policy; `Some(125)`: no decision.
    pub(crate) refused: Option<i32>,
    pub(crate) message: String,
}

impl Outcome {
    fn run(message: String) -> Outcome {
        Outcome {
            refused: None,
            message,
        }
    }

    fn refuse(message: String) -> Outcome {
        Outcome::refused(EXIT_REFUSED, message)
    }

    fn refused(status: i32, message: String) -> Outcome {
        Outcome {
            refused: Some(status),
            message,
        }
    }
}

pub(crate) struct Decider {
    identity: IdentityArgs,
    interactive: bool,
    wait_approval: Option<Duration>,
    /// Connected lazily, and again after the daemon was unreachable. Held across a
    /// whole decision so prompts and approvals never interleave.
    client: Mutex<Option<DaemonClient>>,
}

impl Decider {
    pub(crate) fn new(
        identity: IdentityArgs,
        interactive: bool,
        wait_approval: Option<Duration>,
    ) -> Decider {
        Decider {
            identity,
            interactive,
            wait_approval,
            client: Mutex::new(None),
        }
    }

    /// Whether `command` (run in `cwd`) may run, and what to print on stderr.
    pub(crate) async fn check(&self, cwd: &str, command: &str) -> Outcome {
        let shown = one_line(command);
        if tampers(command) {
            return Outcome::refuse(format!(
                "warden: refused `{shown}`: it would change how warden shell checks commands (its hook, BASH_ENV or the DEBUG trap); nothing was run\n"
            ));
        }
        let mut action = Action {
            channel: "shell".into(),
            command_line: command.to_string(),
            cwd: cwd.to_string(),
            ..Default::default()
        };
        action.attributes.insert(
            "interactive".into(),
            if self.interactive { "true" } else { "false" }.into(),
        );
        self.identity.stamp(&mut action);

        let mut slot = self.client.lock().await;
        let decision = match self.evaluate(&mut slot, action.clone()).await {
            Ok(d) => d,
            Err(e) => {
                if e.is_unavailable() {
                    *slot = None;
                }
                return self.no_decision(&shown, &e);
            }
        };
        let Some(client) = slot.as_mut() else {
            return Outcome::refuse(format!(
                "warden: refused `{shown}`: no connection to wardend\n"
            ));
        };
        match decision.verdict() {
            Verdict::Allow => Outcome::run(String::new()),
            Verdict::RequireApproval if self.interactive => {
                prompt(client, &action, &decision, &shown).await
            }
            Verdict::RequireApproval if self.wait_approval.is_some() => {
                let timeout = self.wait_approval.unwrap_or_default();
                match wait_for_approval(client, &action, decision, timeout).await {
                    Ok(d) => verdict_message(&d, &shown),
                    // wait_for_approval has said why on stderr.
                    Err(code) => Outcome::refused(code, String::new()),
                }
            }
            Verdict::RequireApproval => {
                let text = verdict_message(&decision, &shown).message;
                Outcome::refuse(format!(
                    "{text}warden: (not at an interactive prompt; `--wait-approval` waits for an approver)\n"
                ))
            }
            _ => verdict_message(&decision, &shown),
        }
    }

    async fn evaluate(
        &self,
        slot: &mut Option<DaemonClient>,
        action: Action,
    ) -> Result<Decision, NoDecision> {
        if slot.is_none() {
            *slot = Some(DaemonClient::connect(&self.identity).await?);
        }
        match slot.as_mut() {
            Some(client) => client.evaluate(action).await,
            None => Err(NoDecision::Failed("no connection".into())),
        }
    }

    fn no_decision(&self, shown: &str, e: &NoDecision) -> Outcome {
        if self.identity.fail_open && e.is_unavailable() {
            return Outcome::run(format!(
                "warden: WARNING: running `{shown}` WITHOUT a policy decision (--fail-open): {e}\n"
            ));
        }
        let hint = if e.is_unavailable() {
            "; --fail-open overrides this"
        } else {
            ""
        };
        Outcome::refused(
            EXIT_NO_DECISION,
            format!("warden: refused `{shown}`: {e} (fail-closed: nothing was run{hint})\n"),
        )
    }
}

/// The outcome of a final decision: run it, or why not.
fn verdict_message(d: &Decision, shown: &str) -> Outcome {
    if d.verdict() == Verdict::AllowWithRedaction {
        let seq = d.id.as_ref().map_or(0, |id| id.seq);
        return Outcome::refuse(format!(
            "warden: refused `{shown}`: the policy allows this only with output redaction, which warden shell cannot apply to a command's output [{}] (decision #{seq})\n",
            d.matched_rules.join(", ")
        ));
    }
    match refusal(d) {
        None => Outcome::run(String::new()),
        Some(text) => Outcome::refuse(format!("warden: `{shown}`: {text}\n")),
    }
}

/// Asks the person at the terminal (Enter or Ctrl-C mean no), reports the answer, and
/// returns the outcome.
async fn prompt(
    client: &mut DaemonClient,
    action: &Action,
    decision: &Decision,
    shown: &str,
) -> Outcome {
    let rules = if decision.matched_rules.is_empty() {
        "policy default".to_string()
    } else {
        decision.matched_rules.join(", ")
    };
    super::interactive::arm_interrupt();
    eprint!(
        "warden: approval required for `{shown}`: {} [{rules}]\nProceed? [y/N] ",
        decision.reason
    );
    let answer = tokio::task::spawn_blocking(super::interactive::read_answer)
        .await
        .ok()
        .flatten();
    if answer.is_none() {
        eprintln!();
    }
    let approved =
        answer.is_some_and(|a| matches!(a.trim().to_ascii_lowercase().as_str(), "y" | "yes"));
    let answer = if approved { "approved" } else { "declined" };
    let mut reported = action.clone();
    reported
        .attributes
        .insert(PROMPT_ATTRIBUTE.into(), answer.into());
    let meta = ResultMeta {
        tags: vec![format!("shell-prompt-{answer}")],
        ..Default::default()
    };
    let seq = decision.id.as_ref().map_or(0, |id| id.seq);
    let mut message = String::new();
    if let Err(e) = client.report(reported, seq, meta).await {
        message.push_str(&format!(
            "warden: warning: could not record the answer with wardend: {e}\n"
        ));
    }
    if !approved {
        message.push_str(&format!(
            "warden: `{shown}` declined at the prompt; nothing was run\n"
        ));
    }
    if approved {
        Outcome::run(message)
    } else {
        Outcome::refuse(message)
    }
}

/// Commands that would switch the checking off: the hook's names and files, BASH_ENV,
/// the DEBUG trap, functrace, and starting a program with a cleared environment
/// (`env -i`, `exec -c`). A text test, so it stops the plain forms only (see docs/SHELL.md).
fn tampers(command: &str) -> bool {
    let lower = command.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let has = |w: &str| words.contains(&w);
    // The hook's names, its variables and its files (written read-only, but the same
    // user could make them writable again).
    [
        "__warden",
        "bash_env",
        "warden-shell-",
        "hook.bash",
        "loop.bash",
        "functrace",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
        || (has("trap") && lower.contains("debug"))
        || words
            .windows(2)
            .any(|w| w[0] == "set" && w[1].starts_with('+') && w[1].contains('t'))
        || words
            .iter()
            .enumerate()
            .any(|(i, w)| *w == "env" && env_drops_hook(&words[i + 1..]))
        || words
            .windows(2)
            .any(|w| w[0] == "exec" && w[1].starts_with('-') && w[1].contains('c'))
}

/// Whether `env`'s options (the words after it) clear the environment or BASH_ENV.
fn env_drops_hook(after: &[&str]) -> bool {
    let mut words = after.iter();
    while let Some(w) = words.next() {
        match *w {
            "-i" | "-" | "--ignore-environment" => return true,
            "-u" | "--unset" => {
                if words.next().is_some_and(|v| *v == "bash_env") {
                    return true;
                }
            }
            w if w.contains("bash_env") => return true,
            w if w.starts_with('-') || w.contains('=') => {}
            _ => return false,
        }
    }
    false
}

/// The command as shown in messages: its first line, shortened.
fn one_line(command: &str) -> String {
    let first = command.lines().next().unwrap_or("");
    let mut shown: String = first.chars().take(120).collect();
    if shown.len() < command.len() {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::tampers;

    #[test]
    fn switching_the_hook_off_is_refused() {
        assert!(tampers("trap - DEBUG"));
        assert!(tampers("env -u BASH_ENV bash x.sh"));
        assert!(tampers("env -i bash x.sh"));
        assert!(tampers("exec -c bash"));
        assert!(tampers("echo 'trap - DEBUG' >> $BASH_ENV"));
        assert!(tampers("chmod u+w /tmp/warden-shell-1-ab/hook.bash"));
        assert!(!tampers("env | grep -i path"));
        assert!(!tampers("sh -c 'exec sleep 1'"));
        assert!(tampers("set +T"));
        assert!(tampers("set +o functrace"));
        assert!(tampers("__warden_pending=rm"));
        assert!(!tampers("trap 'rm -f $tmp' EXIT"));
        assert!(!tampers("set -e"));
        assert!(!tampers("ls -la"));
    }
}
