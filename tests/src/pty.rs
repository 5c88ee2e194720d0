//! A program on a real pseudo-terminal: `warden shell` driven by tests/pty/drive.py
//! (Python's standard `pty` module), which types input and waits for output.

use std::path::Path;
use std::process::Command;

use crate::warden;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The result of tests/pty/drive.py.
pub struct PtyRun {
    /// Every expectation was met and the program exited.
    pub ok: bool,
    /// Which expectation timed out, when one did.
    pub error: String,
    /// Exit status (`None`: killed after the deadline).
    pub status: Option<i64>,
    /// What the terminal showed, escape sequences removed.
    pub output: String,
}

/// Runs `warden shell --daemon D --agent pty-test ARGS` on a pty and plays `steps`
/// (`["expect"|"send", text]`, see tests/pty/drive.py).
pub fn shell(daemon: &str, args: &[&str], steps: serde_json::Value) -> PtyRun {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("pty/drive.py");
    let out = Command::new("python3")
        .arg(driver)
        .arg(steps.to_string())
        .arg("--")
        .arg(warden())
        .args(["shell", "--daemon", daemon, "--agent", "pty-test"])
        .args(args)
        .env_remove("WARDEN_FAIL_OPEN")
        .env("TERM", "xterm")
        .output()
        .expect("python3 runs the pty driver");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("driver output: {e}: {}", text(&out.stderr)));
    let raw = result["output"].as_str().unwrap_or_default();
    PtyRun {
        ok: result["ok"].as_bool().unwrap_or(false),
        error: result["error"].as_str().unwrap_or_default().to_string(),
        status: result["status"].as_i64(),
        output: strip_escapes(raw),
    }
}

/// Drops ANSI escape sequences (the line editor's colours and cursor moves).
pub fn strip_escapes(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            while let Some(&n) = chars.peek() {
                chars.next();
                if n.is_ascii_alphabetic() || n == '~' {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}
