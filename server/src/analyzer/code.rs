//! Inline code and encoded text: what a `python -c`, `perl -e`, `awk '…'` or editor
//! command does (starts processes, opens sockets, names files and hosts), and the
//! decoders the analyzer can undo (base64, hex, printf and `$'…'` escapes, `rev`).

use super::Analysis;
use super::walk::Walker;

/// Calls that start a process, across the languages agents inline.
const SPAWNS: &[&str] = &[
    "system(",
    "system (",
    "exec(",
    "execl",
    "execv",
    "execve",
    "execvp",
    "popen",
    "spawn",
    "subprocess",
    "os.system",
    "pty.spawn",
    "runtime.getruntime",
    "processbuilder",
    "child_process",
    "io.popen",
    "os.execute",
    "shell_exec",
    "passthru",
    "proc_open",
    "kernel.exec",
    "%x(",
    "%x{",
    "run(`",
    "system2(",
    "shell.run",
    "do shell script",
    "|getline",
    "| getline",
    "|&",
    ".shell",
    ".system",
    "syscmd(",
    "\\write18",
    "shell-escape",
    "invoke-expression",
    "start-process",
];
/// Calls that open network connections or serve.
const SOCKETS: &[&str] = &[
    "socket",
    "connect(",
    "tcpsocket",
    "tcpserver",
    "net.connect",
    "net.createconnection",
    "createserver",
    "fsockopen",
    "urlopen",
    "urllib",
    "urlretrieve",
    "requests.",
    "http.get",
    "http.request",
    "https.get",
    "fetch(",
    "java.net.url",
    "download(",
    "lwp::",
    "io::socket",
    "net::http",
    "httpserver",
    "simplehttp",
    "/inet/tcp",
    "/inet/udp",
    "websocket",
    "invoke-webrequest",
    "new-object net.",
];
const LISTENS: &[&str] = &[
    "bind(",
    "listen(",
    "accept(",
    "createserver",
    "tcpserver",
    "httpserver",
    "/inet/tcp/0",
    "k.bind",
    "s:bind",
];

/// What inline `code` does, in the words of `what` ("python's -c code").
pub(super) fn scan(w: &mut Walker<'_>, what: &str, code: &str, depth: usize) {
    let lower = code.to_ascii_lowercase();
    w.out.fact("inline_code", "");
    let spawns = SPAWNS.iter().any(|s| lower.contains(s)) || editor_shell_escape(code);
    let literals = literals(code);
    if spawns {
        w.out.fact(
            "code_spawns_process",
            format!("{what} starts other programs"),
        );
        // What it runs is usually a literal: analyze each as a command line.
        for l in &literals {
            if looks_like_command(l) {
                w.script(l, depth + 1);
            }
        }
        for escape in editor_commands(code) {
            w.script(&escape, depth + 1);
        }
    }
    if SOCKETS.iter().any(|s| lower.contains(s)) {
        w.out
            .fact("code_network", format!("{what} opens network connections"));
        w.out.facts.insert("network");
    }
    if LISTENS.iter().any(|s| lower.contains(s)) {
        w.out.fact(
            "listener",
            format!("{what} listens for network connections"),
        );
    }
    if super::command::mentions_shell_path(code) {
        w.out.fact("shell_escape", format!("{what} starts a shell"));
    }
    for l in &literals {
        super::command::literal_in_code(w, what, l);
    }
}

/// Text a program interprets (not inline code it was asked to run): only the calls
/// that start processes or name shells count.
pub(super) fn scan_quietly(w: &mut Walker<'_>, what: &str, text: &str, depth: usize) {
    let lower = text.to_ascii_lowercase();
    if SPAWNS.iter().any(|s| lower.contains(s)) {
        w.out.fact(
            "code_spawns_process",
            format!("{what} asks it to start programs"),
        );
        for l in literals(text) {
            if looks_like_command(&l) {
                w.script(&l, depth + 1);
            }
        }
    }
    let body = if text.trim_start().starts_with("#!") {
        text.trim_start()
            .split_once('\n')
            .map_or("", |(_, rest)| rest)
    } else {
        text
    };
    if super::command::mentions_shell_path(body) {
        w.out
            .fact("shell_escape", format!("{what} names a shell to start"));
    }
    // Configuration that names a program to run (`action = /path`, `script path='/path'`,
    // `PostUp = /path`).
    for line in body.lines().take(512) {
        // `|/path` (pipe to a program: mail aliases, core patterns) and `^/path`
        // (rsyslog's program action).
        if line
            .split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .filter_map(|t| t.strip_prefix('|').or_else(|| t.strip_prefix('^')))
            .any(super::command::is_executable_path)
        {
            w.out.fact(
                "hook_command",
                format!("{what} pipes into a program: {}", line.trim()),
            );
            break;
        }
        let lower = line.to_ascii_lowercase();
        // A server configuration: `listen 80;`, `Listen 8080`.
        let mut words = lower.split_whitespace();
        if words.next() == Some("listen")
            && words.next().is_some_and(|p| {
                p.trim_end_matches(';')
                    .rsplit(':')
                    .next()
                    .is_some_and(|n| n.parse::<u16>().is_ok())
            })
        {
            w.out.fact(
                "listener",
                format!(
                    "{what} sets up a server that listens on the network: {}",
                    line.trim()
                ),
            );
        }
        if [
            "script", "exec", "command", "action", "hook", "postup", "preup", "postdown",
            "predown", "program",
        ]
        .iter()
        .any(|k| lower.contains(k))
            && line
                .split(|c: char| c.is_whitespace() || "='\"<>,".contains(c))
                .any(super::command::is_executable_path)
        {
            w.out.fact(
                "hook_command",
                format!("{what} sets up a program to run: {}", line.trim()),
            );
            break;
        }
    }
}

/// Editor and tool commands that run a shell: vim's `:!cmd` and `:sh`, gdb's `!cmd` and
/// `shell cmd`, ed's `!cmd`, mysql's `\! cmd`.
fn editor_shell_escape(code: &str) -> bool {
    !editor_commands(code).is_empty()
        || code
            .split(['\n', '|'])
            .any(|c| matches!(c.trim().trim_start_matches(':'), "sh" | "shell"))
}

fn editor_commands(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in code.split('\n') {
        let t = part.trim().trim_start_matches(':').trim_start();
        let cmd = t
            .strip_prefix("\\!")
            .or_else(|| t.strip_prefix('!'))
            .or_else(|| t.strip_prefix("shell "))
            .or_else(|| t.strip_prefix("call system("));
        if let Some(c) = cmd {
            let c = c
                .trim()
                .trim_matches(|ch| ch == '\'' || ch == '"' || ch == ')');
            if !c.is_empty() {
                out.push(c.to_string());
            }
        }
    }
    out
}

/// String literals in code: '…', "…" and `…`.
fn literals(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = code.chars();
    while let Some(c) = chars.next() {
        if matches!(c, '\'' | '"' | '`') {
            let mut s = String::new();
            let mut escaped = false;
            for n in chars.by_ref() {
                if escaped {
                    s.push(n);
                    escaped = false;
                } else if n == '\\' {
                    escaped = true;
                } else if n == c {
                    break;
                } else {
                    s.push(n);
                }
            }
            if !s.is_empty() && out.len() < 64 {
                out.push(s);
            }
        }
    }
    out
}

/// A literal that reads like a command line rather than data.
fn looks_like_command(s: &str) -> bool {
    let first = s.split_whitespace().next().unwrap_or_default();
    !first.is_empty()
        && first.len() < 64
        && first
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
}

/// Decodes bash's `$'…'` escapes: `\n`, `\t`, `\xHH`, `\NNN`, `\uHHHH`, `\'`, `\\`.
pub(super) fn ansi_c(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('e') | Some('E') => out.push('\u{1b}'),
            Some('a') => out.push('\u{7}'),
            Some('x') => {
                let hex: String = std::iter::from_fn(|| chars.next_if(char::is_ascii_hexdigit))
                    .take(2)
                    .collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(b) => out.push(char::from(b)),
                    Err(_) => out.push_str("\\x"),
                }
            }
            Some('u') | Some('U') => {
                let hex: String = std::iter::from_fn(|| chars.next_if(char::is_ascii_hexdigit))
                    .take(8)
                    .collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => out.push_str("\\u"),
                }
            }
            Some(d @ '0'..='7') => {
                let mut n = d.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.peek().and_then(|c| c.to_digit(8)) {
                        Some(v) => {
                            n = n * 8 + v;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from(u8::try_from(n & 0xff).unwrap_or(0)));
            }
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

/// The escapes `printf FORMAT` expands (the same as `$'…'`, plus `%%`).
pub(super) fn printf(format: &str) -> String {
    ansi_c(format).replace("%%", "%")
}

/// Standard or URL-safe base64, padding optional, whitespace ignored.
pub(super) fn base64(text: &str) -> Option<String> {
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        let v = match c {
            'A'..='Z' => c as u32 - 'A' as u32,
            'a'..='z' => c as u32 - 'a' as u32 + 26,
            '0'..='9' => c as u32 - '0' as u32 + 52,
            '+' | '-' => 62,
            '/' | '_' => 63,
            '=' => break,
            _ => return None,
        };
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push(u8::try_from((bits >> nbits) & 0xff).unwrap_or(0));
        }
    }
    String::from_utf8(out).ok()
}

/// Hex digits (as `xxd -r -p` reads them), whitespace ignored.
pub(super) fn hex(text: &str) -> Option<String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() / 2);
    for pair in digits.chunks(2) {
        let s = std::str::from_utf8(pair).ok()?;
        out.push(u8::from_str_radix(s, 16).ok()?);
    }
    String::from_utf8(out).ok()
}

/// Records that decoded text is about to run.
pub(super) fn decoded(out: &mut Analysis, how: &str) {
    out.fact(
        "decoded_payload",
        format!("runs text hidden with {how} and decoded on the fly"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders() {
        assert_eq!(base64("cm0gLXJmIC8=").as_deref(), Some("rm -rf /"));
        assert_eq!(base64("cm0gLXJmIC8").as_deref(), Some("rm -rf /"));
        assert_eq!(base64("not base64!"), None);
        assert_eq!(hex("726d202d7266202f").as_deref(), Some("rm -rf /"));
        assert_eq!(ansi_c(r"\x72\x6d \055rf /"), "rm -rf /");
        assert_eq!(printf(r"\162\155 100%%"), "rm 100%");
    }

    #[test]
    fn editor_escapes() {
        assert_eq!(editor_commands(":!/bin/sh"), ["/bin/sh"]);
        assert!(editor_shell_escape(":shell"));
        assert!(!editor_shell_escape(":wq"));
    }
}
