//! `warden shell` as a real process in front of a real `wardend` on SQLite: bash
//! semantics and exit codes of scripts and `-c` (compared with plain bash), refused
//! commands inside scripts, approvals, fail-closed and `--fail-open`, secrets kept out of
//! the child, and the interactive shell driven through a real pty (tests/pty/drive.py):
//! prompt, history across runs, Ctrl-C, and the y/N confirmation recorded in the audit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use warden_tests::{Daemon, TestDb, pty, warden, wardend_cli};

/// A policy with a denial and an approval a test can trigger without harm.
const POLICY: &str = "version: 1\ndefault: allow\nrules:\n  - id: no-touch\n    decision: deny\n    reason: touching files is not allowed here\n    match: { tool: touch }\n  - id: ask-first\n    decision: require_approval\n    reason: publishing needs a human\n    match: { command: 'npm publish*' }\n";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `warden shell ARGS` against `daemon`, as agent shell-test in session s-shell.
fn shell(daemon: &str, args: &[&str]) -> Output {
    shell_cmd(daemon, args).output().expect("run warden shell")
}

fn shell_cmd(daemon: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(warden());
    cmd.args(["shell", "--daemon", daemon, "--agent", "shell-test"])
        .args(["--session", "s-shell"])
        .args(args)
        .env_remove("WARDEN_FAIL_OPEN")
        .env_remove("WARDEN_SHELL_HISTORY")
        .stdin(Stdio::null());
    cmd
}

fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A harmless `npm` (prints `ran-ARG2`) in `dir`, for commands that need approval.
fn fake_npm(dir: &Path) -> String {
    write_script(dir, "npm", "#!/bin/sh\necho \"ran-$2\"\n");
    format!("PATH={}:$PATH", dir.display())
}

fn with_policy(dir: &Path) -> Vec<String> {
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    vec!["--policy".into(), policy.display().to_string()]
}

fn audit(db: &TestDb) -> Vec<serde_json::Value> {
    let (code, export, err) = wardend_cli(&["audit", "export", "--db", &db.url]);
    assert_eq!(code, 0, "{err}");
    export
        .lines()
        .map(|l| {
            let mut record: serde_json::Value = serde_json::from_str(l).unwrap();
            for field in ["action", "result"] {
                let raw = record[format!("{field}_json")]
                    .as_str()
                    .unwrap()
                    .to_string();
                record[field] = serde_json::from_str(&raw).unwrap_or_default();
            }
            record
        })
        .collect()
}

/// The same script under plain bash and under `warden shell` gives the same stdout and
/// exit status: functions, cd/export persistence, pipes, redirects, $?, set -e, args.
#[tokio::test]
async fn scripts_behave_as_under_bash() {
    let db = TestDb::sqlite().await;
    let daemon = Daemon::start(&db.url, &[]);
    let addr = daemon.addr.to_string();
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        dir.path(),
        "semantics.sh",
        r#"#!/bin/bash
printf '[%s]' "$@"; echo
greet() { echo "hello $1"; return 3; }
greet "big world"; echo "greet=$?"
cd "$(dirname "$0")" && export STEP=exported
bash -c 'echo "child sees $STEP in ${PWD##*/}"'
printf 'b\na\nc\n' | sort | tr a-z A-Z > sorted.txt
cat < sorted.txt; wc -l < sorted.txt 2>/dev/null
false; echo "false=$?"; true && echo and-ran; false || echo or-ran
alias ll='echo aliases are off in scripts'; shopt -q expand_aliases || echo no-alias
( exit 4 ); echo "subshell=$?"
x=$(echo inner; exit 5); echo "subst=$? $x"
exit 9
"#,
    );
    let args = ["a b", "c'd", "", "*", "--flag"];
    let under_bash = Command::new("bash")
        .arg(&script)
        .args(args)
        .output()
        .unwrap();
    let s = script.to_str().unwrap();
    let mut with_args = vec![s];
    with_args.extend(args);
    let under_warden = shell(&addr, &with_args);
    assert_eq!(
        text(&under_warden.stderr),
        "",
        "nothing refused, nothing said"
    );
    assert_eq!(under_warden.status.code(), Some(9));
    assert_eq!(text(&under_warden.stdout), text(&under_bash.stdout));
    assert_eq!(under_bash.status.code(), Some(9));
    let out = text(&under_warden.stdout);
    assert!(
        out.starts_with("[a b][c'd][][*][--flag]\nhello big world\ngreet=3\n"),
        "{out}"
    );
    assert!(out.contains("child sees exported in"), "{out}");
    assert!(
        out.contains("A\nB\nC\n3\nfalse=1\nand-ran\nor-ran\nno-alias\nsubshell=4\nsubst=5 inner\n"),
        "{out}"
    );

    // set -e stops at the first failure, with its status, as bash does.
    let strict = "set -e; echo one; false; echo never";
    let out = shell(&addr, &["-c", strict]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "one\n");
    let strict = "set -e; false || echo handled; if false; then :; fi; echo end";
    assert_eq!(
        text(&shell(&addr, &["-c", strict]).stdout),
        "handled\nend\n"
    );

    // -c takes $0 and positional arguments as bash -c does.
    let out = shell(
        &addr,
        &["-c", r#"echo "$0|$1|$#"; exit 3"#, "zero", "one two"],
    );
    assert_eq!(text(&out.stdout), "zero|one two|1\n");
    assert_eq!(out.status.code(), Some(3));

    daemon.stop();
    // Every command was its own Evaluate, channel shell, with cwd and identity.
    let records = audit(&db);
    let greet = records
        .iter()
        .find(|r| r["action"]["command_line"] == "greet \"big world\"")
        .expect("the function call was evaluated");
    assert_eq!(greet["channel"], "shell");
    assert_eq!(greet["agent"], "shell-test");
    assert_eq!(greet["session"], "s-shell");
    assert!(
        records
            .iter()
            .any(|r| r["action"]["command_line"] == "echo \"hello $1\""),
        "commands inside functions are evaluated"
    );
    let sort = records
        .iter()
        .find(|r| r["action"]["command_line"] == "sort")
        .expect("each part of a pipeline is evaluated");
    assert_eq!(sort["action"]["cwd"], dir.path().display().to_string());
}

/// `rm -rf /` under the default policy, inside a script: not run, 126 as its status,
/// and the script goes on or stops exactly as bash would for a command that failed so.
#[tokio::test]
async fn denied_commands_in_scripts_do_not_run_and_fail_with_126() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite().await;
    let daemon = Daemon::start(
        &db.url,
        &with_policy(dir.path())
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let addr = daemon.addr.to_string();
    let marker = dir.path().join("marker");
    let m = marker.display().to_string();

    let script = write_script(
        dir.path(),
        "goes-on.sh",
        &format!(
            "#!/bin/bash\necho before\ntouch {m}\necho \"after=$?\"\ntouch {m} || echo handled\n"
        ),
    );
    let out = shell(&addr, &[script.to_str().unwrap()]);
    assert_eq!(text(&out.stdout), "before\nafter=126\nhandled\n");
    assert_eq!(out.status.code(), Some(0));
    assert!(!marker.exists(), "a denied command ran");
    let err = text(&out.stderr);
    assert!(
        err.contains("denied: touching files is not allowed here [no-touch]"),
        "{err}"
    );

    let strict = write_script(
        dir.path(),
        "stops.sh",
        &format!("#!/bin/bash\nset -e\necho before\ntouch {m}\necho never\n"),
    );
    let out = shell(&addr, &[strict.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(126));
    assert_eq!(text(&out.stdout), "before\n");
    assert!(!marker.exists());

    // Scripts started from the shell, by `bash x.sh` and by `./x.sh`, are checked too,
    // and so are subshells and command substitutions.
    let line = format!(
        "cd {}; bash goes-on.sh; ./goes-on.sh; (touch {m}; echo \"sub=$?\"); echo \"$(touch {m}; echo subst=$?)\"",
        dir.path().display()
    );
    let out = shell(&addr, &["-c", &line]);
    assert_eq!(
        text(&out.stdout),
        "before\nafter=126\nhandled\nbefore\nafter=126\nhandled\nsub=126\nsubst=126\n"
    );
    assert!(!marker.exists());

    // The default policy's own denial.
    let db2 = TestDb::sqlite().await;
    let daemon2 = Daemon::start(&db2.url, &[]);
    let out = shell(
        &daemon2.addr.to_string(),
        &[
            "-c",
            "rm -rf /; echo \"rm=$?\"; set -e; rm -rf /; echo never",
        ],
    );
    assert_eq!(text(&out.stdout), "rm=126\n");
    assert_eq!(out.status.code(), Some(126));
    assert!(
        text(&out.stderr).contains("deny-recursive-delete-of-root-or-home"),
        "{}",
        text(&out.stderr)
    );

    // Redirections: fd duplications, /dev/null and input keep the 126; an output file
    // is never created for a refused command (it is skipped; see docs/SHELL.md).
    let out_file = dir.path().join("out");
    let line = format!(
        "touch {m} 2>&1 >/dev/null; echo \"a=$?\"; touch {m} </dev/null; echo \"b=$?\"; touch {m} > {}",
        out_file.display()
    );
    let out = shell(&addr, &["-c", &line]);
    assert_eq!(text(&out.stdout), "a=126\nb=126\n");
    // A refused call of a user function does not run it either.
    let out = shell(
        &addr,
        &["-c", "touch() { echo function-ran; }; touch x; echo done"],
    );
    assert_eq!(text(&out.stdout), "done\n");
    assert!(!marker.exists());
    assert!(
        !out_file.exists(),
        "a refused command's redirection created a file"
    );
}

/// REQUIRE_APPROVAL outside a terminal is refused (126) unless `--wait-approval`.
#[tokio::test]
async fn approval_in_a_script_is_refused_without_wait_approval() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite().await;
    let daemon = Daemon::start(
        &db.url,
        &with_policy(dir.path())
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let line = format!("{}; npm publish now; echo \"st=$?\"", fake_npm(dir.path()));
    let out = shell(&daemon.addr.to_string(), &["-c", &line]);
    assert_eq!(text(&out.stdout), "st=126\n");
    let err = text(&out.stderr);
    assert!(
        err.contains("approval required: publishing needs a human [ask-first]")
            && err.contains("--wait-approval"),
        "{err}"
    );
}

/// `--wait-approval`: the script waits for `warden approvals approve`, then the command
/// runs; `warden approvals deny` makes it fail with 126 and the script goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_approval_runs_the_command_once_approved() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "shell-test-admin-token-0123456789\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut args = with_policy(dir.path());
    args.extend(["--admin-token-file".into(), token.display().to_string()]);
    let db = TestDb::sqlite().await;
    let daemon = Daemon::start(
        &db.url,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let addr = daemon.addr.to_string();
    let operator = |args: &[&str]| {
        let out = Command::new(warden())
            .arg("approvals")
            .args(args)
            .args(["--daemon", &addr])
            .env("WARDEN_ADMIN_TOKEN_FILE", &token)
            .env("USER", "alice")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let pending = || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let list = operator(&["list"]);
            if let Some(id) = list.split_whitespace().find(|w| w.starts_with("apr-")) {
                return id.to_string();
            }
            assert!(std::time::Instant::now() < deadline, "no approval appeared");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let line = format!(
        "{}; npm publish \"$0\"; echo \"st=$?\"",
        fake_npm(dir.path())
    );
    let spawn = |name: &str| {
        shell_cmd(&addr, &["--wait-approval=30s", "-c", &line, name])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    let child = spawn("first");
    let id = pending();
    operator(&["approve", &id]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        text(&out.stdout),
        "ran-first\nst=0\n",
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains(&id));

    let child = spawn("second");
    let id = pending();
    operator(&["deny", &id]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "st=126\n", "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("denied by alice"),
        "{}",
        text(&out.stderr)
    );
}

/// No daemon: every command is refused (125, nothing runs) unless `--fail-open`, which
/// runs them and warns once per command.
#[tokio::test]
async fn no_daemon_means_no_command_runs_unless_fail_open() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let line = format!("touch {}; echo \"st=$?\"", marker.display());

    let out = shell(&addr, &["-c", &line]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(text(&out.stdout), "", "the echo was refused too");
    assert!(!marker.exists(), "ran without a decision");
    let err = text(&out.stderr);
    assert_eq!(
        err.matches("fail-closed: nothing was run").count(),
        2,
        "{err}"
    );
    assert!(err.contains("cannot reach wardend"), "{err}");

    let out = shell(&addr, &["--fail-open", "-c", &line]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "st=0\n");
    assert!(marker.exists());
    let err = text(&out.stderr);
    assert_eq!(
        err.matches("WITHOUT a policy decision (--fail-open)")
            .count(),
        2,
        "{err}"
    );
}

/// Warden's own credentials never reach the commands, nor the output.
#[tokio::test]
async fn warden_secrets_stay_out_of_the_child_environment() {
    let db = TestDb::sqlite().await;
    let daemon = Daemon::start(&db.url, &[]);
    let out = shell_cmd(&daemon.addr.to_string(), &["-c", "env"])
        .env("WARDEN_ADMIN_TOKEN_FILE", "/secret/admin.token")
        .env("WARDEN_ADMIN_TOKEN", "s3cr3t-admin-token")
        .env("WARDEN_WEBHOOK_SECRET", "s3cr3t-hmac")
        .env("WARDEN_AGENT", "kept")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for secret in [
        "/secret/admin.token",
        "s3cr3t-admin-token",
        "s3cr3t-hmac",
        "WARDEN_ADMIN",
    ] {
        assert!(!all.contains(secret), "{secret} leaked:\n{all}");
    }
    assert!(text(&out.stdout).contains("WARDEN_AGENT=kept"));
    assert!(text(&out.stdout).contains("PATH="));
}

/// Under the name `warden-shell` (a symlink, for /etc/shells) and as a login shell
/// (`-warden-shell`, as login(1) starts it), `warden` is `warden shell`, configured from
/// the environment: `ssh host CMD` runs `$SHELL -c CMD`, a login reads stdin.
#[tokio::test]
async fn works_as_a_login_shell() {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    let db = TestDb::sqlite().await;
    let daemon = Daemon::start(&db.url, &[]);
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("warden-shell");
    std::os::unix::fs::symlink(warden(), &link).unwrap();
    let line = "echo \"login $0\"; rm -rf /; echo \"rm=$?\"";
    let out = Command::new(&link)
        .args(["-c", line, "sh0"])
        .env("WARDEN_DAEMON", daemon.url())
        .env_remove("WARDEN_FAIL_OPEN")
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stdout),
        "login sh0\nrm=126\n",
        "{}",
        text(&out.stderr)
    );

    let mut child = Command::new(&link)
        .arg0("-warden-shell")
        .env("WARDEN_DAEMON", daemon.url())
        .env_remove("WARDEN_FAIL_OPEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(line.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        text(&out.stdout).ends_with("rm=126\n"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
}

/// The prompt, cd/export persisting between lines, Ctrl-C dropping a typed line and
/// interrupting a running command (and the rest of its line), `$?`, Ctrl-D, and the history kept across two runs.
#[tokio::test]
async fn interactive_shell_on_a_terminal() {
    let db = TestDb::sqlite().await;
    let daemon = Daemon::start(&db.url, &[]);
    let addr = daemon.addr.to_string();
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    let marker = dir.path().join("marker");
    let h = history.to_str().unwrap();
    let d = dir.path().display().to_string();

    let run = pty::shell(
        &addr,
        &["--history", h],
        serde_json::json!([
            ["expect", "$ "],
            ["send", format!("cd {d} && export GREETING=hi\r")],
            ["expect", "$ "],
            ["send", "echo \"[$GREETING in ${PWD##*/}]\"\r"],
            ["expect", "[hi in "],
            ["expect", "$ "],
            ["send", format!("touch {}\x03", marker.display())],
            ["expect", "$ "],
            [
                "send",
                "sh -c 'echo sl''eeping; exec sleep 60'; echo \"rest-$((6*7))\"\r"
            ],
            ["expect", "sleeping"],
            ["send", "\x03"],
            ["expect", "[130] warden:"],
            ["send", "echo \"int=$?\"\r"],
            ["expect", "int=130"],
            ["expect", "$ "],
            ["send", "echo hist-$((40+2)); false\r"],
            ["expect", "[1] warden:"],
            ["send", "\x04"],
        ]),
    );
    assert!(run.ok, "{}\n{}", run.error, run.output);
    assert_eq!(run.status, Some(1), "Ctrl-D exits with the last status");
    assert!(
        run.output.contains(&format!("warden:{d}$ ")),
        "{}",
        run.output
    );
    assert!(!marker.exists(), "a line cancelled with Ctrl-C ran");
    assert!(
        !run.output.contains("rest-42"),
        "Ctrl-C kept the rest of the line"
    );
    let kept = std::fs::read_to_string(&history).unwrap();
    assert!(kept.contains("echo hist-$((40+2)); false"), "{kept}");
    assert!(
        !kept.contains("touch"),
        "a cancelled line went into history: {kept}"
    );

    // A second run finds the line in history (Up, Enter) and runs it again.
    let run = pty::shell(
        &addr,
        &["--history", h],
        serde_json::json!([
            ["expect", "$ "],
            ["send", "\x1b[A"],
            ["expect", "hist-$((40+2))"],
            ["send", "\r"],
            ["expect", "hist-42"],
            ["expect", "$ "],
            ["send", "exit 7\r"],
        ]),
    );
    assert!(run.ok, "{}\n{}", run.error, run.output);
    assert_eq!(run.status, Some(7));
}

/// REQUIRE_APPROVAL at the prompt asks "Proceed? [y/N]": y runs the command, Ctrl-C and
/// Enter (no) do not and give 126; both answers are reported to the daemon with the decision.
#[tokio::test]
async fn approval_at_the_prompt_asks_and_records_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite().await;
    let daemon = Daemon::start(
        &db.url,
        &with_policy(dir.path())
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let history = dir.path().join("history");
    let run = pty::shell(
        &daemon.addr.to_string(),
        &["--history", history.to_str().unwrap()],
        serde_json::json!([
            ["expect", "$ "],
            ["send", format!("export {}\r", fake_npm(dir.path()))],
            ["expect", "$ "],
            ["send", "npm publish yes\r"],
            ["expect", "Proceed? [y/N] "],
            ["send", "y\r"],
            ["expect", "ran-yes"],
            ["expect", "$ "],
            ["send", "npm publish interrupted; echo \"rest-$((6*7))\"\r"],
            ["expect", "Proceed? [y/N] "],
            ["send", "\x03"],
            ["expect", "[130] warden:"],
            ["send", "npm publish no\r"],
            ["expect", "Proceed? [y/N] "],
            ["send", "\r"],
            ["expect", "[126] warden:"],
            ["send", "exit\r"],
        ]),
    );
    assert!(run.ok, "{}\n{}", run.error, run.output);
    assert!(
        run.output.contains("publishing needs a human [ask-first]"),
        "{}",
        run.output
    );
    assert!(!run.output.contains("ran-no"), "{}", run.output);
    // Ctrl-C declines, and drops the rest of the line as bash does.
    assert!(!run.output.contains("ran-interrupted"), "{}", run.output);
    assert!(!run.output.contains("rest-42"), "{}", run.output);
    assert!(
        run.output.contains("declined at the prompt"),
        "{}",
        run.output
    );
    // `exit` right after the refused command: bash exits with its $?, 126.
    assert_eq!(run.status, Some(126));

    daemon.stop();
    let records = audit(&db);
    let answers: Vec<(String, String, u64)> = records
        .iter()
        .filter(|r| r["kind"] == "report")
        .map(|r| {
            (
                r["action"]["command_line"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                r["result"]["tags"][0]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                r["decision_seq"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert_eq!(answers[0].0, "npm publish yes");
    assert_eq!(answers[0].1, "shell-prompt-approved");
    assert_eq!(answers[1].0, "npm publish interrupted");
    assert_eq!(answers[1].1, "shell-prompt-declined");
    assert_eq!(answers[2].0, "npm publish no");
    assert_eq!(answers[2].1, "shell-prompt-declined");
    for (command, _, seq) in &answers {
        let decision = records
            .iter()
            .find(|r| r["seq"].as_u64() == Some(*seq))
            .expect("the reported decision exists");
        assert_eq!(decision["verdict"], "require_approval");
        assert_eq!(decision["action"]["command_line"], command.as_str());
    }
}
