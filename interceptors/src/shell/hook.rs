//! The bash side: a private directory holding the generated hook files, the child's
//! scrubbed environment, the loopback listener the `DEBUG` trap talks to, and the bash
//! process itself. The wire format (bash writes with `printf '%s\0'`, so fields are
//! NUL-terminated; the answer is one verdict line, then a message until EOF):
//!
//! ```text
//! check\0TOKEN\0PWD\0COMMAND\0   →  "allow\n" | "deny STATUS\n", then text for stderr
//! next\0TOKEN\0PWD\0STATUS\0     →  "line\n" LINE | "eof\n"
//! ```

use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

use super::Mode;
use super::decide::Decider;
use super::interactive::LineReader;

const HOOK: &str = include_str!("hook.bash");
const LOOP: &str = include_str!("loop.bash");
/// Largest request accepted from the hook (a command text can be long, not unbounded).
const MAX_REQUEST: usize = 1 << 20;
/// Identity variables that are not secrets and that a nested `warden exec` may use. Every
/// other `WARDEN_*` variable (admin token file, fail-open, …) stays out of the child.
const PASSED_WARDEN_VARS: [&str; 5] = [
    "WARDEN_DAEMON",
    "WARDEN_TENANT",
    "WARDEN_AGENT",
    "WARDEN_SESSION",
    "WARDEN_TIMEOUT_MS",
];

#[derive(Debug, thiserror::Error)]
pub(crate) enum ShellError {
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ShellError {
    let what = what.into();
    move |source| ShellError::Io { what, source }
}

/// The private directory with the hook files; removed when dropped.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn create(token: &str) -> Result<PrivateDir, ShellError> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!(
            "warden-shell-{}-{}",
            std::process::id(),
            &token[..8]
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io(format!("create {}", dir.display())))?;
        let dir = PrivateDir(dir);
        dir.write("hook.bash", HOOK)?;
        dir.write("loop.bash", LOOP)?;
        // Read-only from here on: a command that wants to change the hook must first
        // make it writable again, which the tamper guard and policy see.
        set_mode(&dir.0, 0o500)?;
        Ok(dir)
    }

    fn write(&self, name: &str, text: &str) -> Result<(), ShellError> {
        use std::io::Write;
        let path = self.0.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(io(format!("write {}", path.display())))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = set_mode(&self.0, 0o700);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), ShellError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io(format!("chmod {}", path.display())))
}

/// A random hex token from the kernel's generator.
fn random_token() -> Result<String, ShellError> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io("read /dev/urandom"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether an environment variable may reach the child.
fn passes(key: &str) -> bool {
    if key.starts_with("__WARDEN") || key == "BASH_ENV" {
        return false;
    }
    !key.starts_with("WARDEN_") || PASSED_WARDEN_VARS.contains(&key)
}

/// Starts bash in `mode` under the hook, answers its requests until it exits, and
/// returns its exit status the way bash reports it (128+N for a signal).
pub(crate) async fn run_bash(bash: &Path, mode: Mode, decider: Decider) -> Result<i32, ShellError> {
    let token = random_token()?;
    let dir = PrivateDir::create(&token)?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(io("listen on 127.0.0.1"))?;
    let port = listener
        .local_addr()
        .map_err(io("read the listen address"))?
        .port();

    let mut command = Command::new(bash);
    command.env_clear();
    command.envs(std::env::vars_os().filter(|(k, _)| k.to_str().is_some_and(passes)));
    command
        .env("BASH_ENV", dir.path("hook.bash"))
        .env("__WARDEN_SHELL_HOOK", format!("127.0.0.1:{port}:{token}"))
        .env("__WARDEN_SHELL_LOOP", dir.path("loop.bash"));
    let lines = match mode {
        Mode::Interactive { history } => {
            command.arg(dir.path("loop.bash"));
            Some(LineReader::start(history))
        }
        Mode::Command { command: c, args } => {
            command.arg("-c").arg(c).args(args);
            None
        }
        Mode::Script { args } => {
            command.args(args);
            None
        }
        Mode::Stdin => {
            command.arg("-s");
            None
        }
    };
    let mut child = command
        .spawn()
        .map_err(io(format!("start {}", bash.display())))?;
    let pid = child.id();
    let signals = super::interactive::guard_signals(pid);

    let server = Arc::new(Server {
        token,
        decider,
        lines,
    });
    let acceptor = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of descriptors, say: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let server = server.clone();
            tokio::spawn(async move { server.serve(stream).await });
        }
    });
    let status = child.wait().await.map_err(io("wait for bash"));
    acceptor.abort();
    signals.abort();
    drop(dir);
    Ok(exit_code(status?))
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Answers the hook's requests.
struct Server {
    token: String,
    decider: Decider,
    /// The line editor, in interactive mode.
    lines: Option<LineReader>,
}

impl Server {
    async fn serve(&self, mut stream: TcpStream) {
        let Some(fields) = read_fields(&mut stream).await else {
            return;
        };
        // Only the bash this process started knows the token (it is in its environment,
        // which other users cannot read); anything else on the loopback is ignored.
        if fields[1] != self.token {
            return;
        }
        let reply = match fields[0].as_str() {
            "check" => {
                let outcome = self.decider.check(&fields[2], &fields[3]).await;
                match outcome.refused {
                    None => format!("allow\n{}", outcome.message),
                    Some(status) => format!("deny {status}\n{}", outcome.message),
                }
            }
            "next" => {
                let status = fields[3].parse().unwrap_or(0);
                match &self.lines {
                    Some(lines) => match lines.next(fields[2].clone(), status).await {
                        Some(line) => format!("line\n{line}"),
                        None => "eof\n".to_string(),
                    },
                    None => "eof\n".to_string(),
                }
            }
            _ => return,
        };
        let _ = stream.write_all(reply.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}

/// Reads the four NUL-terminated fields of one request.
async fn read_fields(stream: &mut TcpStream) -> Option<Vec<String>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while buf.iter().filter(|&&b| b == 0).count() < 4 {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() + n > MAX_REQUEST {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let fields: Vec<String> = buf
        .split(|&b| b == 0)
        .take(4)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::passes;

    #[test]
    fn secrets_do_not_reach_the_child() {
        assert!(!passes("WARDEN_ADMIN_TOKEN_FILE"));
        assert!(!passes("WARDEN_ADMIN_TOKEN"));
        assert!(!passes("WARDEN_FAIL_OPEN"));
        assert!(!passes("BASH_ENV"));
        assert!(passes("WARDEN_AGENT"));
        assert!(passes("PATH"));
    }
}
