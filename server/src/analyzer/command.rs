//! One simple command, judged with what is known about programs: the program behind
//! wrappers, shells and their payloads, interpreters and their inline code, programs
//! that run other commands (`find -exec`, `xargs`, option values that name a command,
//! hook variables such as `PAGER`), files read and written, network destinations,
//! privilege changes and irreversible operations.
//!
//! The knowledge here is about how programs behave (which options run commands, which
//! write files), not about particular command lines.

use super::code;
use super::paths::{self, Class};
use super::walk::{Flow, Walker};

/// Stands in for the output of a `$(…)` that is only known when it runs.
pub(super) const UNKNOWN_OUTPUT: &str = "$(…)";

/// Programs that resolve names, and so send a host name out through DNS.
const DNS_TOOLS: &[&str] = &[
    "nslookup",
    "dig",
    "host",
    "drill",
    "ping",
    "ping6",
    "getent",
    "resolvectl",
    "traceroute",
    "tracepath",
];

/// A simple command after word expansion.
#[derive(Debug, Clone, Default)]
pub(super) struct Simple {
    pub(super) argv: Vec<String>,
    /// `NAME=value` words before the command (its environment).
    pub(super) assigns: Vec<(String, String)>,
    pub(super) redirects: Vec<Redirect>,
}

/// A file redirection.
#[derive(Debug, Clone)]
pub(super) struct Redirect {
    pub(super) path: String,
    pub(super) read: bool,
    pub(super) write: bool,
}

const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "pdksh", "csh", "tcsh", "fish", "ash", "yash",
    "posh", "rbash", "sash", "rc", "es", "elvish", "nu", "xonsh", "oksh", "loksh",
];
/// Interpreters and the options that take inline code.
const INTERPRETERS: &[(&str, &[&str])] = &[
    ("python", &["-c"]),
    ("pypy", &["-c"]),
    ("perl", &["-e", "-E"]),
    ("ruby", &["-e"]),
    ("node", &["-e", "-p", "--eval", "--print"]),
    ("nodejs", &["-e", "-p", "--eval", "--print"]),
    ("deno", &["eval"]),
    ("bun", &["-e", "--eval"]),
    ("php", &["-r"]),
    ("lua", &["-e"]),
    ("luajit", &["-e"]),
    ("tclsh", &[]),
    ("wish", &[]),
    ("expect", &["-c"]),
    ("jjs", &[]),
    ("jrunscript", &["-e"]),
    ("julia", &["-e", "-E"]),
    ("r", &["-e"]),
    ("rscript", &["-e"]),
    ("osascript", &["-e"]),
    ("pwsh", &["-c", "-command"]),
    ("powershell", &["-c", "-command"]),
    ("gdb", &["-ex", "--ex", "-eval-command", "--eval-command"]),
    ("vim", &["-c", "--cmd"]),
    ("vi", &["-c", "--cmd"]),
    ("nvim", &["-c", "--cmd"]),
    ("ex", &["-c", "--cmd"]),
    ("view", &["-c", "--cmd"]),
    ("rvim", &["-c", "--cmd"]),
    ("vimdiff", &["-c", "--cmd"]),
    ("emacs", &["--eval"]),
    ("mysql", &["-e", "--execute"]),
    ("psql", &["-c", "--command"]),
    ("sqlite3", &["-cmd"]),
    ("irb", &[]),
    ("ghci", &["-e"]),
    ("groovy", &["-e"]),
    ("scala", &["-e"]),
    ("sbcl", &["--eval"]),
    ("guile", &["-c"]),
    ("racket", &["-e"]),
    ("erl", &["-eval"]),
    ("elixir", &["-e"]),
    ("busybox", &[]),
];
const AWKS: &[&str] = &["awk", "gawk", "mawk", "nawk", "busybox-awk"];
/// Wrappers that run their operand as a command, with the options that take a value.
const WRAPPERS: &[(&str, &[&str])] = &[
    (
        "sudo",
        &[
            "-u", "-g", "-h", "-p", "-C", "-D", "-R", "-T", "-U", "--user", "--group",
        ],
    ),
    ("doas", &["-u", "-C"]),
    ("pkexec", &["--user"]),
    ("run0", &["--user", "-u"]),
    ("runuser", &["-u", "-g", "-G"]),
    (
        "env",
        &["-u", "-C", "--unset", "--chdir", "-S", "--split-string"],
    ),
    ("nice", &["-n", "--adjustment"]),
    ("ionice", &["-c", "-n", "-p", "-t"]),
    ("nohup", &[]),
    ("setsid", &[]),
    ("stdbuf", &["-i", "-o", "-e"]),
    ("time", &["-f", "-o", "--format", "--output"]),
    ("command", &[]),
    ("builtin", &[]),
    ("exec", &["-a"]),
    ("chrt", &[]),
    ("taskset", &[]),
    ("unbuffer", &[]),
    ("strace", &["-o", "-e", "-p", "-s", "-u", "-E"]),
    ("ltrace", &["-o", "-e", "-p", "-s", "-u"]),
    ("valgrind", &[]),
    ("catchsegv", &[]),
    (
        "xargs",
        &[
            "-a",
            "-d",
            "-E",
            "-I",
            "-L",
            "-n",
            "-P",
            "-s",
            "--arg-file",
            "--delimiter",
            "--max-args",
            "--max-procs",
            "--replace",
        ],
    ),
    ("aa-exec", &["-p", "-n", "--profile", "--namespace"]),
    ("firejail", &[]),
    ("proxychains", &["-f"]),
    ("proxychains4", &["-f"]),
    ("torsocks", &[]),
    (
        "unshare",
        &[
            "--map-user",
            "--map-group",
            "-S",
            "-G",
            "--setuid",
            "--setgid",
        ],
    ),
    ("nsenter", &["-t", "--target", "-S", "-G"]),
    ("chroot", &["--userspec", "--groups"]),
    ("flock", &["-w", "-E", "--timeout", "--conflict-exit-code"]),
    ("timeout", &["-s", "-k", "--signal", "--kill-after"]),
    ("watch", &["-n", "-d", "--interval"]),
    (
        "systemd-run",
        &[
            "-p",
            "-u",
            "--unit",
            "--property",
            "--on-calendar",
            "--on-active",
            "-M",
            "--uid",
            "--gid",
        ],
    ),
    ("sg", &[]),
    ("dbus-launch", &[]),
    ("faketime", &[]),
    ("cgexec", &["-g"]),
    ("tsocks", &[]),
    ("perf", &["-e", "-o", "-p"]),
    (
        "start-stop-daemon",
        &[
            "-u",
            "-c",
            "-n",
            "-p",
            "-d",
            "-N",
            "--chuid",
            "--name",
            "--pidfile",
            "--chdir",
        ],
    ),
    (
        "capsh",
        &[
            "--user", "--uid", "--gid", "--groups", "--caps", "--drop", "--inh", "--addamb",
        ],
    ),
];
const PRIVILEGED_WRAPPERS: &[&str] = &[
    "sudo",
    "doas",
    "pkexec",
    "run0",
    "runuser",
    "su",
    "chroot",
    "nsenter",
    "unshare",
    "capsh",
    "sg",
    "start-stop-daemon",
];
/// Wrappers that start the user's shell when they are given no command.
const SHELL_BY_DEFAULT: &[&str] = &[
    "chroot",
    "sg",
    "newgrp",
    "unshare",
    "nsenter",
    "script",
    "capsh",
    "screen",
    "tmux",
    "byobu",
    "dtach",
    "abduco",
    "systemd-run",
    "machinectl",
    "toolbox",
    "distrobox",
];
/// Runners that start their command outside this shell's process tree (as a service,
/// on another terminal), where nothing checks what it does.
const DETACHED_RUNNERS: &[&str] = &[
    "systemd-run",
    "openvt",
    "start-stop-daemon",
    "daemonize",
    "runcon",
    "nohup",
    "setsid",
];
/// Interactive programs with a built-in command that starts a shell (file managers,
/// serial consoles): once running, what they start is not checked.
const SHELL_COMMAND_PROGRAMS: &[&str] = &[
    "ranger", "nnn", "vifm", "lf", "mc", "ncdu", "minicom", "picocom", "cu", "tio",
];
/// Programs that take files (programs included) as plain operands.
const FILE_TOOLS: &[&str] = &[
    "cp", "mv", "rm", "ln", "install", "chmod", "chown", "chgrp", "touch", "strip", "ldd",
    "objdump", "nm", "readelf", "tar", "zip", "unzip", "rsync", "scp", "patch", "sed", "dd",
    "shred", "truncate", "upx", "patchelf", "setcap", "getcap", "gzip", "xz", "bzip2", "zstd",
];

/// Programs that look at names and sizes, not contents.
const METADATA_READERS: &[&str] = &[
    "ls", "du", "df", "find", "cd", "pushd", "stat", "tree", "file", "readlink", "realpath",
    "basename", "dirname", "test", "[", "namei", "lsattr", "getfacl", "findmnt", "lsblk", "mount",
    "locate", "whereis", "which", "type", "popd",
];
/// Directories whose whole contents include password hashes and keys.
const SECRET_TREES: &[&str] = &["/etc", "/etc/", "/root", "/root/", "/home", "/home/"];
/// Package files whose install scripts run with full privileges.
const PACKAGE_FILES: &[&str] = &[
    ".deb",
    ".rpm",
    ".snap",
    ".txz",
    ".tbz",
    ".apk",
    ".pkg.tar.zst",
    ".pkg.tar.xz",
    ".ipk",
    ".msi",
    ".pkg",
];
/// Directories programs are run from.
const EXEC_DIRS: &[&str] = &[
    "/bin/",
    "/sbin/",
    "/usr/bin/",
    "/usr/sbin/",
    "/usr/local/bin/",
    "/usr/local/sbin/",
    "/usr/libexec/",
    "/tmp/",
    "/dev/shm/",
    "/var/tmp/",
];

/// Programs that move data over the network and take a host operand.
const NETWORK_TOOLS: &[&str] = &[
    "curl",
    "wget",
    "aria2c",
    "lftp",
    "ftp",
    "tftp",
    "sftp",
    "scp",
    "ssh",
    "rsync",
    "nc",
    "ncat",
    "netcat",
    "socat",
    "telnet",
    "smbclient",
    "hping3",
    "ab",
    "http",
    "https",
    "xh",
    "lwp-download",
    "lwp-request",
    "fetch",
    "axel",
    "httpie",
    "openssl",
    "sshpass",
    "ssh-copy-id",
    "rcp",
    "rsh",
    "rlogin",
    "finger",
    "whois",
    "mosquitto_pub",
    "kcat",
    "redis-cli",
    "irssi",
    "links",
    "lynx",
    "w3m",
    "elinks",
];
/// Programs that only read the files they are given.
const READERS: &[&str] = &[
    "cat",
    "less",
    "more",
    "head",
    "tail",
    "ls",
    "stat",
    "file",
    "grep",
    "egrep",
    "fgrep",
    "rg",
    "wc",
    "diff",
    "cmp",
    "md5sum",
    "sha1sum",
    "sha256sum",
    "sha512sum",
    "du",
    "df",
    "find",
    "tree",
    "readlink",
    "realpath",
    "basename",
    "dirname",
    "test",
    "[",
    "source",
    ".",
    "bat",
    "view",
    "strings",
    "od",
    "hexdump",
    "xxd",
    "jq",
    "yq",
    "nl",
    "sort",
    "uniq",
    "cut",
    "column",
    "zcat",
    "zless",
    "bzcat",
    "xzcat",
    "lsattr",
    "getfacl",
    "namei",
    "which",
    "type",
    "cd",
    "pushd",
    "popd",
    "mount",
    "findmnt",
    "lsblk",
    "locate",
    "whereis",
];
/// Options whose value is a command that the program runs (`--checkpoint-action=exec=…`,
/// `-o ProxyCommand=…`, `git -c core.pager=…`): recognised by these words in the name.
const COMMAND_OPTION_WORDS: &[&str] = &[
    "exec",
    "command",
    "cmd",
    "script",
    "program",
    "pager",
    "editor",
    "shell",
    "hook",
    "proxy",
    "rsh",
    "askpass",
    "filter",
    "action",
    "compress",
    "pre-invoke",
    "post-invoke",
    "plugin",
    "helper",
    "sshcommand",
    "on-download",
    "on-bt-download",
    "launcher",
    "interpreter",
];
/// Environment variables whose value is a command something runs later.
const HOOK_VARIABLES: &[&str] = &[
    "PAGER",
    "EDITOR",
    "VISUAL",
    "LESSOPEN",
    "LESSCLOSE",
    "BROWSER",
    "PROMPT_COMMAND",
    "BASH_ENV",
    "ENV",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_EXTERNAL_DIFF",
    "GIT_PAGER",
    "GIT_EDITOR",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
    "SUDO_ASKPASS",
    "MANPAGER",
    "SYSTEMD_PAGER",
    "SYSTEMD_EDITOR",
    "TERMINAL",
    "SHELL",
    "CRASHPAGER",
    "PSQL_PAGER",
    "MYSQL_PS1",
    "NODE_OPTIONS",
    "PERL5OPT",
    "PYTHONSTARTUP",
    "RUBYOPT",
    "LD_PRELOAD",
    "LD_AUDIT",
    "PERL5DB",
];

/// A program as invoked: its base name, lower-cased, without a version suffix.
fn base(program: &str) -> String {
    let name = program.rsplit('/').next().unwrap_or(program);
    name.to_ascii_lowercase()
}

/// `python3.11` → `python`; `gawk` stays.
fn family(name: &str) -> &str {
    name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.')
}

fn is_shell(name: &str) -> bool {
    SHELLS.contains(&name) || SHELLS.contains(&family(name))
}

/// Whether text names a shell by path (`/bin/sh`, `/usr/bin/bash`, …).
pub(super) fn mentions_shell_path(text: &str) -> bool {
    let mut rest = text;
    while let Some(i) = rest.find("bin/") {
        let after = &rest[i + 4..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        let before_ok = rest[..i].ends_with('/');
        if before_ok && !name.is_empty() && is_shell(&name) {
            return true;
        }
        rest = after;
    }
    false
}

/// Splits `-xc` style flag clusters into single letters.
fn has_flag(args: &[String], letter: char, long: &str) -> bool {
    args.iter().any(|a| {
        a == long
            || (a.starts_with('-')
                && !a.starts_with("--")
                && a.len() > 1
                && a[1..].contains(letter))
    })
}

/// The program behind wrappers and its arguments, plus the wrappers looked through.
struct Resolved<'a> {
    program: String,
    args: &'a [String],
    wrappers: Vec<String>,
}

fn resolve(argv: &[String]) -> Option<Resolved<'_>> {
    let mut i = 0;
    let mut wrappers = Vec::new();
    while i < argv.len() {
        let name = base(&argv[i]);
        let Some((_, valued)) = WRAPPERS.iter().find(|(w, _)| *w == name) else {
            break;
        };
        // `command -v x` and `exec` without a command look things up; they run nothing.
        if name == "command" && argv.get(i + 1).is_some_and(|a| a == "-v" || a == "-V") {
            return None;
        }
        wrappers.push(name.clone());
        i += 1;
        if matches!(
            name.as_str(),
            "timeout" | "chrt" | "taskset" | "chroot" | "flock" | "sg"
        ) {
            // One positional operand (duration, priority, mask, directory, lock file,
            // group) before the command.
            while i < argv.len() && argv[i].starts_with('-') {
                i += 1 + usize::from(valued.contains(&argv[i].as_str()));
            }
            i += 1;
            continue;
        }
        while i < argv.len() {
            let a = &argv[i];
            if a == "--" {
                i += 1;
                break;
            }
            if name == "env" && a.contains('=') && !a.starts_with('-') {
                i += 1;
                continue;
            }
            if !a.starts_with('-') || a == "-" {
                break;
            }
            i += 1 + usize::from(valued.contains(&a.as_str()));
        }
    }
    match argv.get(i) {
        Some(program) => Some(Resolved {
            program: base(program),
            args: &argv[i + 1..],
            wrappers,
        }),
        // A wrapper with nothing to run is the program itself (`env` prints the
        // environment, `sudo -s` starts a shell).
        None => {
            let program = wrappers.pop()?;
            let at = argv.iter().rposition(|a| base(a) == program)?;
            Some(Resolved {
                program,
                args: &argv[at + 1..],
                wrappers,
            })
        }
    }
}

/// Judges one simple command; returns what it prints, when known.
pub(super) fn simple(w: &mut Walker<'_>, cmd: &Simple, depth: usize, stdin: &Flow) -> Flow {
    redirects(w, &cmd.redirects);
    for (name, value) in &cmd.assigns {
        assignment(w, name, value, depth);
    }
    let Some(r) = resolve(&cmd.argv) else {
        return Flow::default();
    };
    let words_before = cmd.argv.len() - r.args.len() - 1;
    for (name, value) in cmd.argv[..words_before]
        .iter()
        .filter(|a| a.contains('=') && !a.starts_with('-'))
        .filter_map(|a| a.split_once('='))
    {
        assignment(w, name, value, depth);
    }
    privilege_wrappers(w, &r, &cmd.argv[..words_before]);
    // A wrapper's own options can write files (`strace -o FILE`, `time -o FILE`).
    if let Some(wrapper) = r.wrappers.first() {
        for (i, a) in cmd.argv[1..words_before].iter().enumerate() {
            argument(w, wrapper, a, cmd.argv.get(i + 2), depth);
        }
    }
    for wrapper in &r.wrappers {
        if DETACHED_RUNNERS.contains(&wrapper.as_str()) {
            w.out.fact(
                "hook_command",
                format!(
                    "{wrapper} runs {} outside this shell, where it is not checked",
                    r.program
                ),
            );
        }
    }
    // `watch CMD…` runs its words as one shell command line.
    if r.wrappers.last().is_some_and(|x| x == "watch") {
        let line = cmd.argv[words_before..].join(" ");
        w.out
            .fact("shell_spawn", "watch runs a command line through sh -c");
        return w.script(&line, depth + 1);
    }
    let name = r.program.clone();
    w.out.programs.insert(name.clone());
    let args = r.args;
    // Behind xargs, a command's input is the terminal or /dev/null, not the pipe.
    let xargs_stdin = Flow::default();
    let stdin = if r.wrappers.iter().any(|x| x == "xargs") {
        &xargs_stdin
    } else {
        stdin
    };

    // Generic: what any argument reveals.
    for (i, a) in args.iter().enumerate() {
        argument(w, &name, a, args.get(i + 1), depth);
    }
    // `-o FILE`, `--output FILE`, `--output=FILE`: most programs write there.
    for (i, a) in args.iter().enumerate() {
        const OUTPUT: &[&str] = &[
            "--output",
            "--outfile",
            "--out",
            "--output-file",
            "--log-file",
        ];
        let out = match a.split_once('=') {
            Some((k, v)) if OUTPUT.contains(&k) => Some(v),
            _ if a == "-o" || OUTPUT.contains(&a.as_str()) => args.get(i + 1).map(String::as_str),
            _ => None,
        };
        if let Some(out) = out {
            written(w, &name, out, paths::classify(out));
        }
    }
    if args.first().is_some_and(|a| a == "tunnel") {
        w.out.fact(
            "listener",
            format!("{name} tunnel exposes this machine to the network"),
        );
    }
    if args
        .iter()
        .any(|a| PACKAGE_FILES.iter().any(|ext| a.ends_with(ext)) && !a.starts_with('-'))
        && matches!(
            name.as_str(),
            "dpkg"
                | "rpm"
                | "dnf"
                | "yum"
                | "zypper"
                | "apt"
                | "apt-get"
                | "opkg"
                | "snap"
                | "pkg"
                | "apk"
                | "pacman"
                | "installer"
                | "gdebi"
        )
    {
        w.out.fact(
            "hook_command",
            format!("{name} installs a local package file, whose install scripts run with full privileges"),
        );
    }
    container_host_access(w, &name, args);
    // Text written to a file (`cat > x.conf <<EOF`): a file that names a shell or a
    // command to run is set up to run it.
    if let (Some(text), Some(target)) = (&stdin.text, cmd.redirects.iter().find(|r| r.write)) {
        code::scan_quietly(
            w,
            &format!("the text written to {}", target.path),
            text,
            depth,
        );
    }
    let socket_redirect = cmd.redirects.iter().any(|r| is_dev_socket(&r.path));
    let flow = behaviour(w, &name, args, depth, stdin);
    if socket_redirect && is_shell(&name) {
        w.out.fact(
            "reverse_shell",
            format!("connects a {name} shell's input and output to a network socket"),
        );
    }
    flow
}

fn privilege_wrappers(w: &mut Walker<'_>, r: &Resolved<'_>, before: &[String]) {
    for wrapper in &r.wrappers {
        if PRIVILEGED_WRAPPERS.contains(&wrapper.as_str()) {
            w.out.fact(
                "privilege_change",
                format!("runs {} with other privileges through {wrapper}", r.program),
            );
        }
    }
    if r.wrappers.iter().any(|w| w == "sudo")
        && before
            .iter()
            .any(|a| a == "-s" || a == "-i" || a == "--shell" || a == "--login")
    {
        w.out
            .fact("interactive_shell", "starts a root shell through sudo");
    }
}

/// Facts any argument can reveal: files by class, URLs and hosts, shells named by path,
/// option values that are commands.
fn argument(w: &mut Walker<'_>, program: &str, a: &str, next: Option<&String>, depth: usize) {
    for p in paths::in_argument(a) {
        mentioned_path(w, program, p);
    }
    if let Some(host) = url_host(a) {
        destination(w, program, &host);
    }
    if is_dev_socket(a) {
        dev_socket(w, a);
    }
    let key = a.split('=').next().unwrap_or(a).trim_start_matches('-');
    if a.starts_with("--") && (key == "listen" || key.ends_with("-listen")) {
        w.out.fact(
            "listener",
            format!("{program} listens for network connections ({a})"),
        );
    }
    // `kernel.core_pattern=|/path`: a value that pipes into a program.
    if let Some(i) = a.find("=|") {
        command_value(w, program, "pipe", &a[i + 2..], depth);
    }
    // An executable given as an option's value (`tcpdump -z /path`, `zic -y /path`), or
    // after a word that says it is a command (`set x actionban /path`).
    let says_command = {
        let k = a.trim_start_matches('-').to_ascii_lowercase();
        !a.starts_with('-') && COMMAND_OPTION_WORDS.iter().any(|w| k.contains(w))
    };
    if (a.starts_with('-') || says_command)
        && !a.contains('=')
        && let Some(value) = next
        && (is_bin_path(value)
            || (says_command && is_executable_path(value))
            || w.made_executable(value))
        && !READERS.contains(&program)
        && !FILE_TOOLS.contains(&program)
    {
        command_value(w, program, a.trim_start_matches('-'), value, depth);
    }
    if !METADATA_READERS.contains(&program) && SECRET_TREES.contains(&a) {
        w.out.fact(
            "reads_secret_file",
            format!("gives {program} all of {a}, where password hashes and keys live"),
        );
    }
    if !READERS.contains(&program) && a == "/" {
        w.out.fact(
            "writes_system_path",
            format!("gives {program} the whole file system (/)"),
        );
    }
    if a.contains("0.0.0.0") || a.contains("[::]") {
        w.out.fact(
            "listener",
            format!("{program} binds to every network interface"),
        );
    }
    if !is_shell(program) && mentions_shell_path(a) {
        w.out.fact(
            "shell_escape",
            format!("starts a shell through {program} (`{}`)", clip(a)),
        );
    }
    // `--opt=value` / `key=value` where the name says the value is a command.
    // Text a program only prints is data; it matters if it flows into a shell, which
    // the pipeline follows.
    let prints = matches!(program, "echo" | "printf");
    if let Some((key, value)) = a.split_once('=')
        && !prints
        && is_option_name(key)
    {
        let key = key.trim_start_matches('-').to_ascii_lowercase();
        if COMMAND_OPTION_WORDS.iter().any(|k| key.contains(k)) && !value.is_empty() {
            command_value(w, program, &key, value, depth);
        }
    } else if a.starts_with('-')
        && !prints
        && !READERS.contains(&program)
        && let Some(value) = next
        && runs_a_shell(value)
    {
        // `zip -TT 'sh #'`, `rsync -e 'sh -c …'`: a short option given a shell to run.
        command_value(w, program, a.trim_start_matches('-'), value, depth);
    } else if a.starts_with("--")
        && !prints
        && let Some(value) = next
    {
        let key = a.trim_start_matches('-').to_ascii_lowercase();
        if COMMAND_OPTION_WORDS.iter().any(|k| key.contains(k)) && !value.starts_with('-') {
            command_value(w, program, &key, value, depth);
        }
    }
}

/// `--opt`, `key`, `core.pager`, `Dpkg::Pre-Invoke`: a name, not a phrase.
fn is_option_name(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

/// A value that is a shell, or a shell with options (`sh`, `bash -c '…'`, `sh #`).
fn runs_a_shell(value: &str) -> bool {
    let mut words = value.split_whitespace();
    let Some(first) = words.next() else {
        return false;
    };
    is_shell(&base(first))
        && words
            .next()
            .is_none_or(|w| w.starts_with('-') || w.starts_with('#'))
}

/// A value some option or variable will run as a command.
fn command_value(w: &mut Walker<'_>, program: &str, key: &str, value: &str, depth: usize) {
    // `exec=cmd` inside `--checkpoint-action=exec=cmd`; git aliases `!cmd`.
    let value = value
        .strip_prefix("exec=")
        .or_else(|| value.strip_prefix("exec:"))
        .or_else(|| value.strip_prefix('!'))
        .unwrap_or(value);
    let before = w.out.programs.len();
    let runs = runs_something(value);
    w.script(value, depth + 1);
    if runs || w.out.programs.len() > before {
        w.out.fact(
            "hook_command",
            format!("{program} runs `{}` through its {key} option", clip(value)),
        );
    }
}

/// An absolute path in a system directory of programs (not a scratch directory).
fn is_bin_path(p: &str) -> bool {
    is_executable_path(p)
        && !["/tmp/", "/dev/shm/", "/var/tmp/"]
            .iter()
            .any(|d| p.starts_with(d))
}

/// An absolute path in a directory programs are run from.
pub(super) fn is_executable_path(p: &str) -> bool {
    EXEC_DIRS.iter().any(|d| p.starts_with(d)) && !p.ends_with('/') && !p.contains(' ')
}

/// Whether a value reads like a program to run: an absolute path to an executable
/// location, or a shell.
fn runs_something(value: &str) -> bool {
    let first = value.split_whitespace().next().unwrap_or_default();
    is_shell(&base(first))
        || (first.starts_with('/')
            && [
                "/bin/",
                "/sbin/",
                "/usr/",
                "/opt/",
                "/tmp/",
                "/dev/shm/",
                "/var/tmp/",
            ]
            .iter()
            .any(|d| first.starts_with(d))
            && !first.ends_with('/'))
        || first.starts_with("./")
}

fn clip(s: &str) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() > 60 {
        format!("{}…", one_line.chars().take(60).collect::<String>())
    } else {
        one_line
    }
}

/// A path named as an argument; how it is used depends on the program.
fn mentioned_path(w: &mut Walker<'_>, program: &str, p: &str) {
    let Some(class) = paths::classify(p) else {
        return;
    };
    if p.starts_with("/proc/") && p.ends_with("/environ") {
        w.out.fact(
            "env_dump",
            format!("{program} reads a process's environment ({p}), secrets included"),
        );
    }
    match class {
        // Listing a key's name or size reads nothing secret.
        Class::Secret if METADATA_READERS.contains(&program) => {}
        Class::Secret => w.out.fact(
            "reads_secret_file",
            format!("{program} reads {p}, {}", class.describe()),
        ),
        Class::Persistence | Class::System | Class::Log | Class::Device
            if READERS.contains(&program) => {}
        Class::Persistence => w.out.fact(
            "writes_persistence",
            format!("{program} may change {p}, {}", class.describe()),
        ),
        Class::Log => w.out.fact(
            "log_tampering",
            format!("{program} may change {p}, {}", class.describe()),
        ),
        Class::Device | Class::System => {}
    }
}

/// Redirections: reads and writes of files, and `/dev/tcp` sockets.
pub(super) fn redirects(w: &mut Walker<'_>, redirects: &[Redirect]) {
    for r in redirects {
        if is_dev_socket(&r.path) {
            dev_socket(w, &r.path);
            continue;
        }
        let class = paths::classify(&r.path);
        if r.write {
            written(w, "a redirection", &r.path, class);
        } else if r.read && class == Some(Class::Secret) {
            w.out.fact(
                "reads_secret_file",
                format!("reads {}, {}", r.path, Class::Secret.describe()),
            );
        }
    }
}

/// A file written (by a redirection, `tee`, `cp`'s destination, `-o FILE`, …).
fn written(w: &mut Walker<'_>, by: &str, path: &str, class: Option<Class>) {
    match class {
        Some(Class::Persistence) => w.out.fact(
            "writes_persistence",
            format!("{by} writes {path}, {}", Class::Persistence.describe()),
        ),
        Some(Class::Secret) => w.out.fact(
            "writes_persistence",
            format!("{by} writes {path}, {}", Class::Secret.describe()),
        ),
        Some(Class::Log) => w.out.fact(
            "log_tampering",
            format!("{by} overwrites {path}, {}", Class::Log.describe()),
        ),
        Some(Class::Device) => w.out.fact(
            "destructive",
            format!(
                "{by} writes straight to {path}, {}",
                Class::Device.describe()
            ),
        ),
        Some(Class::System) => w.out.fact(
            "writes_system_path",
            format!("{by} writes {path}, {}", Class::System.describe()),
        ),
        None => {}
    }
}

fn is_dev_socket(p: &str) -> bool {
    p.contains("/dev/tcp/") || p.contains("/dev/udp/")
}

fn dev_socket(w: &mut Walker<'_>, p: &str) {
    let i = p.find("/dev/").unwrap_or(0);
    let mut parts = p[i..].split('/').skip(3);
    if let Some(host) = parts.next() {
        destination(w, "bash", host);
    }
    w.out.fact(
        "raw_socket",
        format!("opens a network connection through {}", clip(&p[i..])),
    );
}

/// A network destination.
fn destination(w: &mut Walker<'_>, program: &str, host: &str) {
    let host = host
        .trim_matches(|c| c == '[' || c == ']')
        .to_ascii_lowercase();
    if host.is_empty() {
        return;
    }
    w.out.facts.insert("network");
    if host.contains(UNKNOWN_OUTPUT) {
        w.out.fact(
            "data_in_hostname",
            format!(
                "{program} sends the output of a command to the network inside a host name ({host})"
            ),
        );
    }
    if is_ip(&host) && !is_loopback(&host) {
        w.out.fact(
            "bare_ip",
            format!("{program} talks to the bare IP address {host}"),
        );
    }
    if w.out.hosts.len() < 64 {
        w.out.hosts.insert(host);
    }
}

fn is_ip(h: &str) -> bool {
    h.parse::<std::net::IpAddr>().is_ok()
}

fn is_loopback(h: &str) -> bool {
    h.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

fn url_host(arg: &str) -> Option<String> {
    let start = arg.find("://")?;
    let scheme_start = arg[..start]
        .char_indices()
        .rev()
        .find(|(_, c)| !c.is_ascii_alphanumeric() && !"+-.".contains(*c))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let scheme = arg[scheme_start..start].to_ascii_lowercase();
    if scheme.is_empty() || scheme == "file" {
        return None;
    }
    let rest = &arg[start + 3..];
    let authority = rest.split(['/', '?', '#', '"', '\'', ' ', ')']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port.split(']').next()?.trim_start_matches('[')
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// A variable assignment (for a command, or for the rest of the line).
pub(super) fn assignment(w: &mut Walker<'_>, name: &str, value: &str, depth: usize) {
    let upper = name.to_ascii_uppercase();
    if matches!(
        upper.as_str(),
        "LD_PRELOAD" | "LD_AUDIT" | "LD_LIBRARY_PATH"
    ) && !value.is_empty()
    {
        w.out.fact(
            "library_preload",
            format!("loads {value} into programs through {upper}"),
        );
    }
    if matches!(upper.as_str(), "HISTFILE" | "HISTSIZE" | "HISTFILESIZE")
        && (value.is_empty() || value == "0" || value == "/dev/null")
    {
        w.out.fact(
            "log_tampering",
            format!("turns shell history off ({upper}={value})"),
        );
    }
    if upper == "HISTIGNORE" || upper == "HISTCONTROL" && value.contains("ignorespace") {
        w.out.fact(
            "log_tampering",
            format!("hides commands from history ({upper})"),
        );
    }
    if (HOOK_VARIABLES.contains(&upper.as_str())
        || upper.ends_with("PAGER")
        || upper.ends_with("_COMMAND"))
        && !value.is_empty()
        && upper != "LD_LIBRARY_PATH"
    {
        let before = w.out.programs.len();
        w.script(value, depth + 1);
        if w.out.programs.len() > before || runs_something(value) {
            w.out.fact(
                "hook_command",
                format!("sets {upper} so that `{}` runs later", clip(value)),
            );
        }
    }
    for p in paths::in_argument(value) {
        if paths::classify(p) == Some(Class::Secret) {
            w.out.fact(
                "reads_secret_file",
                format!("names {p}, {}", Class::Secret.describe()),
            );
        }
    }
}

/// A variable used in a word: secret-looking names are a fact.
pub(super) fn variable_used(w: &mut Walker<'_>, name: &str) {
    const SECRET_NAMES: &[&str] = &[
        "KEY",
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "AUTH",
    ];
    let upper = name.to_ascii_uppercase();
    if SECRET_NAMES.iter().any(|s| upper.contains(s)) {
        w.out
            .fact("secret_reference", format!("uses the variable ${name}"));
    }
}

/// A function definition: a function that calls itself into the background through a
/// pipe is a fork bomb.
pub(super) fn function_defined(w: &mut Walker<'_>, name: &str, body: &str) {
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let piped_self = compact.contains(&format!("{name}|{name}"));
    if piped_self && compact.contains('&') {
        w.out.fact(
            "destructive",
            format!("defines {name}, a function that multiplies itself until the machine stalls (a fork bomb)"),
        );
    }
}

/// A string literal in inline code: paths and hosts it names.
pub(super) fn literal_in_code(w: &mut Walker<'_>, what: &str, literal: &str) {
    for p in paths::in_argument(literal) {
        match paths::classify(p) {
            Some(Class::Secret) => w.out.fact(
                "reads_secret_file",
                format!("{what} names {p}, {}", Class::Secret.describe()),
            ),
            Some(Class::Persistence) => w.out.fact(
                "writes_persistence",
                format!("{what} names {p}, {}", Class::Persistence.describe()),
            ),
            _ => {}
        }
    }
    if let Some(h) = url_host(literal) {
        destination(w, what, &h);
    }
    if is_dev_socket(literal) {
        dev_socket(w, literal);
    }
}

/// What the program itself does with its arguments.
fn behaviour(w: &mut Walker<'_>, name: &str, args: &[String], depth: usize, stdin: &Flow) -> Flow {
    if is_shell(name) {
        return shell(w, name, args, depth, stdin);
    }
    if AWKS.contains(&name) {
        awk(w, name, args, depth);
        return Flow::default();
    }
    if let Some((_, inline)) = INTERPRETERS
        .iter()
        .find(|(i, _)| *i == name || *i == family(name))
    {
        interpreter(w, name, inline, args, depth, stdin);
        return Flow::default();
    }
    if DNS_TOOLS.contains(&name)
        && let Some(h) = args
            .iter()
            .find(|a| !a.starts_with('-') && a.contains(UNKNOWN_OUTPUT))
    {
        destination(w, name, h);
    }
    if NETWORK_TOOLS.contains(&name) {
        network_tool(w, name, args, depth);
        // A downloader that writes to its standard output feeds the next stage.
        let to_file = args.iter().any(|a| {
            matches!(
                a.as_str(),
                "-o" | "--output" | "-O" | "--remote-name" | "--output-document"
            ) && !(name == "wget" && a == "-O")
        }) || (name == "wget"
            && !args
                .iter()
                .any(|a| a == "-O-" || a == "-qO-" || a == "-O" || a.ends_with("O-")));
        if matches!(
            name,
            "curl" | "wget" | "fetch" | "http" | "https" | "xh" | "lwp-request" | "httpie"
        ) && !to_file
        {
            return Flow {
                downloaded: true,
                ..Flow::default()
            };
        }
    }
    match name {
        "echo" => {
            let text: Vec<&str> = args
                .iter()
                .skip_while(|a| a.starts_with('-') && a.len() <= 3)
                .map(String::as_str)
                .collect();
            let e = args.iter().any(|a| a == "-e" || a == "-ne" || a == "-en");
            let joined = text.join(" ");
            return Flow::text(if e { code::ansi_c(&joined) } else { joined } + "\n");
        }
        "printf" => {
            let format = args
                .iter()
                .find(|a| !a.starts_with('-'))
                .cloned()
                .unwrap_or_default();
            let text = code::printf(&format);
            let decoded =
                format.contains("\\x") || format.contains("\\0") || format.contains("\\1");
            return Flow {
                text: Some(text),
                decoded,
                ..Flow::default()
            };
        }
        "base64" | "basenc" | "base32" if has_flag(args, 'd', "--decode") => {
            let input = args
                .iter()
                .find(|a| !a.starts_with('-'))
                .map(|_| None)
                .unwrap_or_else(|| stdin.text.clone());
            return decoder(input.and_then(|t| code::base64(&t)), stdin);
        }
        "rev" => {
            return decoder(
                stdin.text.as_ref().map(|t| {
                    t.lines()
                        .map(|l| l.chars().rev().collect::<String>())
                        .collect::<Vec<_>>()
                        .join("\n")
                }),
                stdin,
            );
        }
        n if SHELL_BY_DEFAULT.contains(&n) && starts_default_shell(n, args) => {
            w.out.fact(
                "interactive_shell",
                format!("{n} starts an interactive shell"),
            );
        }
        "script" if has_flag(args, 'c', "--command") => {
            if let Some(payload) = args
                .iter()
                .position(|a| a == "-c" || a == "--command")
                .and_then(|i| args.get(i + 1))
            {
                w.out
                    .fact("shell_spawn", "script runs a command line through a shell");
                return w.script(payload, depth + 1);
            }
        }
        n if SHELL_COMMAND_PROGRAMS.contains(&n) => {
            w.out.fact(
                "interactive_shell",
                format!(
                    "{n} is interactive and has a command that starts a shell, which is not checked"
                ),
            );
        }
        _ if args.first().is_some_and(|a| a == "shell") => {
            w.out.fact(
                "interactive_shell",
                format!("{name} shell starts an interactive shell"),
            );
        }
        "run-parts"
            if args
                .iter()
                .any(|a| is_executable_path(&format!("{}/x", a.trim_end_matches('/')))) =>
        {
            w.out.fact(
                "hook_command",
                "run-parts runs programs from a system directory",
            );
        }
        "gcore" | "gdbserver" => {
            w.out.fact(
                "reads_secret_file",
                format!("{name} dumps another process's memory, secrets included"),
            );
        }
        "sed" if sed_executes(args) => {
            w.out.fact(
                "code_spawns_process",
                "sed's e command runs text as shell commands",
            );
        }
        "xxd" if has_flag(args, 'r', "--revert") => {
            if let Some(out) = args
                .iter()
                .filter(|a| !a.starts_with('-') || *a == "-")
                .nth(1)
            {
                written(w, "xxd", out, paths::classify(out));
            }
            return decoder(stdin.text.as_deref().and_then(code::hex), stdin);
        }
        "eval" => {
            let text = args.join(" ");
            w.out
                .fact("shell_spawn", "evaluates a string as shell code (eval)");
            w.script(&text, depth + 1);
        }
        "find" => find(w, args, depth),
        "tee" => {
            for a in args.iter().filter(|a| !a.starts_with('-')) {
                written(w, "tee", a, paths::classify(a));
            }
        }
        "cp" | "mv" | "install" | "ln" | "rsync" | "scp" | "dd" | "truncate" | "touch" | "sed"
        | "chattr" => {
            file_writer(w, name, args);
        }
        "rm" | "shred" | "unlink" | "rmdir" | "srm" | "wipe" => remove(w, name, args),
        "chmod" | "chown" | "chgrp" | "setfacl" => permissions(w, name, args),
        "setcap" => w.out.fact(
            "privilege_escalation",
            "gives a program Linux capabilities (setcap)",
        ),
        "mkfs" | "mke2fs" | "mkswap" | "wipefs" | "blkdiscard" | "sfdisk" | "sgdisk" | "parted"
        | "fdisk" => {
            w.out.fact(
                "destructive",
                format!("{name} rewrites a disk or filesystem"),
            );
        }
        n if n.starts_with("mkfs.") => {
            w.out
                .fact("destructive", format!("{name} formats a filesystem"));
        }
        "iptables" | "ip6tables" | "nft" | "ufw" | "firewall-cmd" => firewall(w, name, args),
        "history"
            if has_flag(args, 'c', "") || has_flag(args, 'w', "") || has_flag(args, 'd', "") =>
        {
            w.out
                .fact("log_tampering", "clears or rewrites the shell history");
        }
        "unset" if args.iter().any(|a| a.starts_with("HIST")) => {
            w.out
                .fact("log_tampering", "turns shell history off (unset HISTFILE)");
        }
        "set" if args.iter().any(|a| a == "+o") && args.iter().any(|a| a == "history") => {
            w.out
                .fact("log_tampering", "turns shell history off (set +o history)");
        }
        "journalctl"
            if args
                .iter()
                .any(|a| a.starts_with("--vacuum") || a == "--rotate") =>
        {
            w.out.fact("log_tampering", "deletes the system journal");
        }
        "kill" | "pkill" | "killall" | "killall5" => kill(w, name, args),
        "shutdown" | "reboot" | "halt" | "poweroff" => {
            w.out
                .fact("destructive", format!("{name} stops the machine"));
        }
        "systemctl" => systemctl(w, args),
        "crontab" => {
            if args.iter().any(|a| a == "-r") {
                w.out.fact("destructive", "deletes the user's crontab");
            } else if !args.iter().any(|a| a == "-l") {
                w.out.fact(
                    "writes_persistence",
                    "installs a crontab: commands that run on a schedule",
                );
            }
        }
        "at" | "batch" => {
            w.out.fact(
                "writes_persistence",
                format!("{name} schedules commands to run later"),
            );
            if let Some(text) = &stdin.text {
                w.script(text, depth + 1);
            }
        }
        "useradd" | "adduser" | "usermod" | "userdel" | "deluser" | "groupadd" | "groupmod"
        | "gpasswd" | "passwd" | "chpasswd" | "chage" | "visudo" | "newusers" | "vipw" => {
            w.out.fact(
                "account_change",
                format!("{name} changes user accounts or their rights"),
            );
        }
        "su" => su(w, args, depth),
        "printenv" | "env" if args.iter().all(|a| a.starts_with('-')) => {
            w.out
                .fact("env_dump", "prints the whole environment, secrets included");
        }
        "export" | "declare" | "typeset" => {
            if args.is_empty() || args.iter().any(|a| a == "-p") {
                w.out
                    .fact("env_dump", "prints the whole environment, secrets included");
            }
            for (n, v) in args.iter().filter_map(|a| a.split_once('=')) {
                assignment(w, n, v, depth);
            }
        }
        "mkfifo" | "mknod" => {
            w.out.facts.insert("pipeline");
        }
        _ => {}
    }
    // Text fed to a program that interprets it (m4, bc, a config reader): look for
    // the calls that run commands.
    if let Some(text) = &stdin.text
        && !READERS.contains(&name)
        && !matches!(
            name,
            "echo" | "printf" | "tr" | "cut" | "sort" | "uniq" | "tee"
        )
    {
        code::scan_quietly(w, &format!("the text fed to {name}"), text, depth);
    }
    Flow::default()
}

/// Containers given the host's root, devices or namespaces.
fn container_host_access(w: &mut Walker<'_>, name: &str, args: &[String]) {
    if !matches!(
        name,
        "docker" | "podman" | "nerdctl" | "ctr" | "crictl" | "lxc" | "systemd-nspawn"
    ) {
        return;
    }
    let host_root = args.iter().any(|a| {
        a.starts_with("/:")
            || a.contains("src=/,")
            || a.contains("source=/,")
            || a.ends_with("src=/")
            || a == "--privileged"
            || a.starts_with("--pid=host")
            || a.starts_with("--net=host") && args.iter().any(|b| b == "--privileged")
            || a == "/"
    });
    if host_root {
        w.out.fact(
            "privilege_escalation",
            format!("{name} gives a container the host's root file system or full privileges"),
        );
    }
}

/// Whether a shell-by-default wrapper was given no command to run instead.
fn starts_default_shell(name: &str, args: &[String]) -> bool {
    let operands: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    match name {
        // `chroot DIR`, `sg GROUP`: one operand, then the command.
        "chroot" | "sg" => operands.len() <= 1,
        "script" => !has_flag(args, 'c', "--command"),
        "systemd-run" => args.iter().any(|a| a == "-S" || a == "--shell"),
        "capsh" => args.iter().any(|a| a == "--"),
        "machinectl" => operands.first().is_some_and(|o| *o == "shell"),
        "toolbox" | "distrobox" => operands.first().is_some_and(|o| *o == "enter"),
        "screen" | "tmux" | "byobu" => {
            // Options that take a value (socket, config, session name).
            const VALUED: &[&str] = &["-S", "-L", "-f", "-T", "-c", "-s", "-t", "-p", "-e", "-h"];
            let mut subcommand = None;
            let mut i = 0;
            while i < args.len() {
                if VALUED.contains(&args[i].as_str()) {
                    i += 2;
                } else if args[i].starts_with('-') {
                    i += 1;
                } else {
                    subcommand = Some(args[i].as_str());
                    break;
                }
            }
            subcommand.is_none_or(|s| matches!(s, "new" | "new-session" | "attach" | "a"))
        }
        _ => operands.is_empty(),
    }
}

/// GNU sed's `e` command, or the `e` flag of `s///e`, runs shell commands.
fn sed_executes(args: &[String]) -> bool {
    let scripts: Vec<&str> = args
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            if a == "-e" || a == "--expression" {
                args.get(i + 1).map(String::as_str)
            } else {
                None
            }
        })
        .chain(
            args.iter()
                .find(|a| !a.starts_with('-'))
                .map(String::as_str),
        )
        .collect();
    scripts.iter().any(|s| {
        s.split([';', '\n']).any(|c| {
            let c = c.trim();
            c == "e"
                || c.starts_with("e ")
                || (c.starts_with('s') && c.len() > 3 && c.ends_with('e') && {
                    let d = c.chars().nth(1).unwrap_or('/');
                    c.matches(d).count() >= 3 && c.rsplit(d).next().is_some_and(|f| f.contains('e'))
                })
        })
    })
}

/// The output of a decoder fed known text.
fn decoder(decoded: Option<String>, stdin: &Flow) -> Flow {
    match decoded {
        Some(text) => Flow {
            text: Some(text),
            decoded: true,
            downloaded: stdin.downloaded,
        },
        None => Flow {
            downloaded: stdin.downloaded,
            ..Flow::default()
        },
    }
}

fn shell(w: &mut Walker<'_>, name: &str, args: &[String], depth: usize, stdin: &Flow) -> Flow {
    let c_at = args.iter().position(|a| {
        a == "-c"
            || (a.starts_with('-') && !a.starts_with("--") && a.len() > 1 && a[1..].contains('c'))
    });
    if let Some(i) = c_at {
        w.out
            .fact("shell_spawn", format!("runs a command line with {name} -c"));
        if let Some(payload) = args.get(i + 1) {
            return w.script(payload, depth + 1);
        }
        return Flow::default();
    }
    let operand = args
        .iter()
        .find(|a| !a.starts_with('-') && !a.starts_with('+'));
    if let Some(script) = operand {
        // `bash script.sh`: runs a script file; what it holds is judged when it runs.
        if mentions_shell_path(script) || paths::classify(script).is_some() {
            mentioned_path(w, name, script);
        }
        return Flow::default();
    }
    if stdin.downloaded {
        w.out.fact(
            "download_piped_to_interpreter",
            format!("runs something downloaded by piping it into {name}"),
        );
    }
    if let Some(text) = &stdin.text {
        if stdin.decoded {
            code::decoded(w.out, "an encoding");
        }
        w.out.fact(
            "shell_spawn",
            format!("feeds commands to {name} on its input"),
        );
        return w.script(text, depth + 1);
    }
    if !stdin.downloaded {
        w.out.fact(
            "interactive_shell",
            format!("starts an interactive {name} shell"),
        );
    }
    Flow::default()
}

fn interpreter(
    w: &mut Walker<'_>,
    name: &str,
    inline: &[&str],
    args: &[String],
    depth: usize,
    stdin: &Flow,
) {
    let what = format!("{name}'s inline code");
    let mut found = false;
    for (i, a) in args.iter().enumerate() {
        let lower = a.to_ascii_lowercase();
        // `-c CODE`, `-eCODE`, `--eval=CODE`, vim's `+CMD`.
        if let Some(flag) = inline.iter().find(|f| lower == **f) {
            if let Some(code) = args.get(i + 1) {
                let _: &str = flag;
                code::scan(w, &what, code, depth);
                found = true;
            }
        } else if let Some(code) = inline
            .iter()
            .filter(|f| f.starts_with("--"))
            .find_map(|f| a.strip_prefix(&format!("{f}=")))
        {
            code::scan(w, &what, code, depth);
            found = true;
        } else if name.contains("vi") && a.starts_with('+') && a.len() > 1 {
            code::scan(w, &what, &a[1..], depth);
            found = true;
        }
    }
    // `python -m http.server`, `ruby -run -e httpd`, `php -S host:port`.
    let module = args
        .iter()
        .position(|a| a == "-m")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    if matches!(
        module,
        Some("http.server" | "SimpleHTTPServer" | "pyftpdlib" | "smtpd")
    ) || (name == "php" && args.iter().any(|a| a == "-S"))
        || args.iter().any(|a| a == "httpd" || a == "-run")
    {
        w.out.fact(
            "listener",
            format!("{name} starts a server that listens on the network"),
        );
    }
    if module == Some("pty") {
        w.out.fact(
            "interactive_shell",
            format!("{name} starts a pseudo-terminal shell"),
        );
    }
    if !found {
        if let Some(text) = &stdin.text {
            code::scan(w, &format!("the code fed to {name}"), text, depth);
        } else if stdin.downloaded {
            w.out.fact(
                "download_piped_to_interpreter",
                format!("runs something downloaded by piping it into {name}"),
            );
        } else if args.iter().all(|a| a.starts_with('-'))
            && !args.iter().any(|a| {
                matches!(
                    a.as_str(),
                    "-V" | "--version" | "-v" | "-h" | "--help" | "-version" | "-help"
                )
            })
        {
            w.out.fact(
                "interactive_shell",
                format!("starts an interactive {name} session, whose commands are not checked"),
            );
        }
    }
}

fn awk(w: &mut Walker<'_>, name: &str, args: &[String], depth: usize) {
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "-f" || a == "--file" {
            return;
        }
        if matches!(a.as_str(), "-F" | "-v" | "--assign" | "--field-separator") {
            i += 2;
            continue;
        }
        if a.starts_with('-') {
            i += 1;
            continue;
        }
        code::scan(w, &format!("{name}'s program"), a, depth);
        return;
    }
}

fn find(w: &mut Walker<'_>, args: &[String], depth: usize) {
    let roots: Vec<&String> = args
        .iter()
        .take_while(|a| !a.starts_with('-') && *a != "(" && *a != "!")
        .collect();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-exec" | "-execdir" | "-ok" | "-okdir" => {
                let end = args[i + 1..]
                    .iter()
                    .position(|x| x == ";" || x == "+" || x == "\\;")
                    .map_or(args.len(), |p| i + 1 + p);
                let argv: Vec<String> = args[i + 1..end].to_vec();
                if !argv.is_empty() {
                    let nested = Simple {
                        argv,
                        ..Simple::default()
                    };
                    simple(w, &nested, depth + 1, &Flow::default());
                }
                i = end + 1;
            }
            "-fprint" | "-fprint0" | "-fprintf" | "-fls" => {
                if let Some(f) = args.get(i + 1) {
                    written(w, "find", f, paths::classify(f));
                }
                i += 2;
            }
            "-delete" => {
                for r in &roots {
                    remove_target(w, "find -delete", r, true);
                }
                i += 1;
            }
            "-perm" => {
                if args.get(i + 1).is_some_and(|m| {
                    m.contains("4000")
                        || m.contains("u=s")
                        || m.contains("2000")
                        || m.contains("g=s")
                }) {
                    w.out.fact(
                        "privilege_escalation",
                        "searches for setuid programs, the usual first step of a privilege escalation",
                    );
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
}

fn network_tool(w: &mut Walker<'_>, name: &str, args: &[String], depth: usize) {
    w.out.facts.insert("network");
    let listens = match name {
        "nc" | "ncat" | "netcat" => has_flag(args, 'l', "--listen"),
        "socat" => args
            .iter()
            .any(|a| a.to_ascii_uppercase().contains("LISTEN")),
        _ => args
            .iter()
            .any(|a| a == "--listen" || a.starts_with("--listen=")),
    };
    if listens {
        w.out.fact(
            "listener",
            format!("{name} listens for incoming network connections"),
        );
    }
    // Host operands of the connection tools: the first word that is not an option.
    if matches!(
        name,
        "nc" | "ncat"
            | "netcat"
            | "telnet"
            | "ftp"
            | "tftp"
            | "ssh"
            | "hping3"
            | "lftp"
            | "smbclient"
            | "sshpass"
            | "rlogin"
            | "rsh"
            | "rcp"
            | "finger"
            | "whois"
            | "redis-cli"
            | "mosquitto_pub"
    ) {
        const VALUED: &[&str] = &[
            "-p", "-i", "-l", "-o", "-F", "-J", "-L", "-R", "-D", "-b", "-c", "-E", "-e", "-m",
            "-O", "-Q", "-S", "-W", "-w", "-s", "-q", "-x", "-u", "--file", "--data", "-d",
        ];
        let operand = args.iter().enumerate().find(|(i, a)| {
            let value_of_option = *i > 0 && VALUED.contains(&args[i - 1].as_str());
            !a.starts_with('-') && !value_of_option
        });
        if let Some((_, h)) = operand {
            let host = h.rsplit_once('@').map_or(h.as_str(), |(_, h)| h);
            let host = host.split(':').next().unwrap_or(host);
            if !host.is_empty() && !host.contains('/') {
                destination(w, name, host);
            }
        }
    }
    if matches!(name, "scp" | "rsync" | "sftp" | "rcp") {
        for a in args.iter().filter(|a| !a.starts_with('-')) {
            if let Some((left, _)) = a.split_once(':')
                && !left.contains('/')
                && !left.is_empty()
                && !a.contains("://")
            {
                let host = left.rsplit_once('@').map_or(left, |(_, h)| h);
                destination(w, name, host);
            }
        }
    }
    // `nc -e /bin/sh`, `ncat --exec`, `socat … EXEC:cmd`: a program wired to a socket.
    let exec_value = args
        .iter()
        .enumerate()
        .find(|(_, a)| {
            matches!(
                a.as_str(),
                "-e" | "-c" | "--exec" | "--sh-exec" | "--lua-exec"
            )
        })
        .and_then(|(i, _)| args.get(i + 1))
        .filter(|_| matches!(name, "nc" | "ncat" | "netcat"));
    let socat_exec = args.iter().find_map(|a| {
        let upper = a.to_ascii_uppercase();
        ["EXEC:", "SYSTEM:"]
            .iter()
            .find(|p| upper.starts_with(**p))
            .map(|p| {
                a[p.len()..]
                    .split(',')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
    });
    for program in exec_value.cloned().into_iter().chain(socat_exec) {
        let before = w.out.facts.contains("interactive_shell");
        w.script(&program, depth + 1);
        let first = base(program.split_whitespace().next().unwrap_or_default());
        if is_shell(&first) || mentions_shell_path(&program) {
            w.out.fact(
                "reverse_shell",
                format!(
                    "{name} connects a shell ({}) to a network socket",
                    clip(&program)
                ),
            );
        } else {
            w.out.fact(
                "hook_command",
                format!("{name} runs `{}` for a network peer", clip(&program)),
            );
        }
        if !before {
            w.out.facts.remove("interactive_shell");
        }
    }
    // Uploads of local files and downloads into files.
    for (i, a) in args.iter().enumerate() {
        let next = args.get(i + 1).map(String::as_str).unwrap_or_default();
        let uploads = match name {
            "curl" => {
                matches!(a.as_str(), "-T" | "--upload-file")
                    || ((a.starts_with("-d")
                        || a.starts_with("--data")
                        || a == "-F"
                        || a == "--form")
                        && (next.contains('@') || next.contains('<') || a.contains('@')))
            }
            "wget" => a.starts_with("--post-file") || a.starts_with("--body-file"),
            _ => false,
        };
        if uploads {
            w.out.fact(
                "upload",
                format!("{name} sends a local file over the network"),
            );
        }
        let output = match (name, a.as_str()) {
            ("curl", "-o" | "--output")
            | ("wget", "-O" | "--output-document")
            | ("aria2c", "-o" | "-d" | "--dir" | "--out") => Some(next),
            _ => None,
        };
        if let Some(out) = output {
            w.out.fact(
                "download",
                format!("{name} saves what it downloads to {out}"),
            );
            written(w, name, out, paths::classify(out));
        }
    }
    if name == "wget" || name == "lwp-download" {
        w.out.fact("download", format!("{name} downloads files"));
    }
}

/// Writers: the destination (last operand, or `of=`, `-i` for sed) is written.
fn file_writer(w: &mut Walker<'_>, name: &str, args: &[String]) {
    let operands: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let targets: Vec<&str> = match name {
        "dd" => args.iter().filter_map(|a| a.strip_prefix("of=")).collect(),
        "sed" => {
            if args
                .iter()
                .any(|a| a.starts_with("-i") || a == "--in-place")
            {
                operands.iter().skip(1).map(|s| s.as_str()).collect()
            } else {
                Vec::new()
            }
        }
        "truncate" | "touch" | "chattr" => operands.iter().map(|s| s.as_str()).collect(),
        _ => operands.last().map(|s| s.as_str()).into_iter().collect(),
    };
    for t in targets {
        written(w, name, t, paths::classify(t));
        if name == "truncate" && paths::classify(t) == Some(Class::Log) {
            w.out.fact(
                "log_tampering",
                format!("truncates {t}, {}", Class::Log.describe()),
            );
        }
    }
}

fn remove(w: &mut Walker<'_>, name: &str, args: &[String]) {
    let recursive = has_flag(args, 'r', "--recursive") || has_flag(args, 'R', "--recursive");
    if args.iter().any(|a| a == "--no-preserve-root") {
        w.out.fact(
            "destructive",
            format!("{name} --no-preserve-root deletes the whole file system"),
        );
    }
    for t in args.iter().filter(|a| !a.starts_with('-')) {
        remove_target(w, name, t, recursive || name == "shred");
    }
}

fn remove_target(w: &mut Walker<'_>, by: &str, t: &str, recursive: bool) {
    let t = t.trim_end_matches('/');
    let top = t.is_empty()
        || t == "/*"
        || matches!(
            t,
            "~" | "~/*"
                | "$HOME"
                | "${HOME}"
                | "$HOME/*"
                | "*"
                | "/home"
                | "/home/*"
                | "/root"
                | "."
                | ".."
        )
        || (t.starts_with('/') && t.matches('/').count() == 1 && paths::classify(t).is_some());
    if recursive && top {
        w.out.fact(
            "destructive",
            format!(
                "{by} deletes {} and everything under it",
                if t.is_empty() { "/" } else { t }
            ),
        );
        return;
    }
    match paths::classify(t) {
        Some(Class::Log) => w.out.fact(
            "log_tampering",
            format!("{by} deletes {t}, {}", Class::Log.describe()),
        ),
        Some(Class::Device) => w.out.fact("destructive", format!("{by} destroys {t}")),
        Some(class @ (Class::System | Class::Persistence | Class::Secret)) => w.out.fact(
            "deletes_system_path",
            format!("{by} deletes {t}, {}", class.describe()),
        ),
        None => {}
    }
}

fn permissions(w: &mut Walker<'_>, name: &str, args: &[String]) {
    let recursive = has_flag(args, 'R', "--recursive");
    let operands: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let mode = operands.first().map(|s| s.as_str()).unwrap_or_default();
    if name == "chmod"
        && (mode.contains('x') && mode.contains('+')
            || mode.chars().all(|c| c.is_ascii_digit()) && mode.ends_with(['5', '7', '1', '3']))
    {
        for t in operands.iter().skip(1) {
            w.mark_executable(t);
        }
    }
    if name == "chmod" {
        let setuid = mode.contains('s') && (mode.contains('+') || mode.contains('='))
            || (mode.len() == 4
                && mode.chars().all(|c| c.is_ascii_digit())
                && matches!(mode.as_bytes()[0], b'2' | b'4' | b'6' | b'7'));
        if setuid {
            w.out.fact(
                "privilege_escalation",
                format!("chmod {mode} makes a program run with its owner's privileges"),
            );
        }
    }
    let owner_root =
        name == "chown" && (mode.starts_with("root") || mode.starts_with("0:") || mode == "0");
    for t in operands.iter().skip(1) {
        let t = t.as_str();
        let trimmed = t.trim_end_matches('/');
        if recursive
            && (trimmed.is_empty()
                || (trimmed.starts_with('/')
                    && trimmed.matches('/').count() == 1
                    && paths::classify(trimmed).is_some()))
        {
            w.out.fact(
                "destructive",
                format!("{name} -R {mode} {t} changes the permissions of the whole system"),
            );
        } else if let Some(class) = paths::classify(t) {
            w.out.fact(
                "permission_change_system",
                format!("{name} changes who may use {t}, {}", class.describe()),
            );
        } else if owner_root {
            w.out.fact(
                "privilege_escalation",
                format!("chown {mode} hands {t} to root"),
            );
        }
    }
}

fn firewall(w: &mut Walker<'_>, name: &str, args: &[String]) {
    let flush = args.iter().any(|a| {
        matches!(
            a.as_str(),
            "-F" | "--flush"
                | "-X"
                | "--delete-chain"
                | "flush"
                | "disable"
                | "reset"
                | "--panic-off"
        )
    }) || (name == "iptables"
        && args.windows(2).any(|p| p[0] == "-P" && p[1] == "INPUT")
        && args.iter().any(|a| a == "ACCEPT"));
    if flush {
        w.out
            .fact("destructive", format!("{name} removes the firewall rules"));
    }
}

fn kill(w: &mut Walker<'_>, name: &str, args: &[String]) {
    // `kill -9 -1`, `kill -1`: every process the user may signal.
    let all = name == "kill" && args.last().is_some_and(|a| a == "-1");
    if all || name == "killall5" {
        w.out.fact(
            "destructive",
            format!("{name} kills every process the user may signal"),
        );
    }
}

fn systemctl(w: &mut Walker<'_>, args: &[String]) {
    let verb = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .map(String::as_str);
    match verb {
        Some("enable" | "link" | "preset" | "edit" | "set-property") => {
            w.out.fact(
                "writes_persistence",
                "systemctl makes a service start on its own",
            );
        }
        Some("poweroff" | "reboot" | "halt" | "kexec" | "rescue" | "emergency") => {
            w.out.fact("destructive", "systemctl stops the machine");
        }
        Some("stop" | "disable" | "mask")
            if args.iter().any(|a| {
                a.contains("firewall")
                    || a.contains("ufw")
                    || a.contains("auditd")
                    || a.contains("rsyslog")
                    || a.contains("journald")
            }) =>
        {
            w.out
                .fact("destructive", "systemctl stops the firewall or the logs");
        }
        _ => {}
    }
}

fn su(w: &mut Walker<'_>, args: &[String], depth: usize) {
    w.out.fact("privilege_change", "switches user with su");
    if let Some(i) = args.iter().position(|a| a == "-c" || a == "--command") {
        if let Some(payload) = args.get(i + 1) {
            w.script(payload, depth + 1);
        }
    } else {
        w.out.fact(
            "interactive_shell",
            "starts a shell as another user with su",
        );
    }
}
