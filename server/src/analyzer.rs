//! The command analyzer: a command line parsed as bash, turned into facts.
//!
//! Rules never see raw strings of commands alone: they match what a command *does*.
//! The line is parsed with brush-parser (pipelines, lists, redirections, here-docs,
//! subshells, functions, `$(…)`, process substitution) and walked (`analyzer/walk.rs`);
//! every simple command is judged with what is known about programs
//! (`analyzer/command.rs`): which program really runs behind wrappers, whether a shell
//! is started (directly, through `-c`, or through another program's escape), what
//! inline code does (`analyzer/code.rs`), which files are read, written, deleted or
//! have their permissions changed and what kind of file they are
//! (`analyzer/paths.rs`), where the network goes, and whether privileges change or
//! something irreversible happens. Payloads are followed: `bash -c`, `eval`, `xargs`,
//! `find -exec`, option values that name commands, and decodable obfuscation
//! (`base64 -d`, `xxd -r`, `printf '\x..'`, `$'…'`, `rev`) feeding a shell.
//!
//! Input that does not parse is a fact of its own (`unparseable`), never a crash, and
//! the work per line is bounded (length, nesting depth, commands visited).

mod code;
mod command;
mod paths;
mod walk;

use std::collections::BTreeSet;

/// Every fact name the analyzer can report; policy validation rejects any other.
pub const FACT_NAMES: &[&str] = &[
    // Kept from the first analyzer; rules written against them keep working.
    "privilege_change",
    "network",
    "shell_spawn",
    "inline_code",
    "download_piped_to_interpreter",
    "env_dump",
    "secret_reference",
    "pipeline",
    // Shells and code.
    "shell_escape",
    "interactive_shell",
    "code_spawns_process",
    "code_network",
    "hook_command",
    "decoded_payload",
    "unparseable",
    // Files.
    "reads_secret_file",
    "writes_persistence",
    "writes_system_path",
    "deletes_system_path",
    "permission_change_system",
    "log_tampering",
    // Network.
    "bare_ip",
    "raw_socket",
    "listener",
    "upload",
    "download",
    "reverse_shell",
    "data_in_hostname",
    // Privilege and destruction.
    "privilege_escalation",
    "library_preload",
    "account_change",
    "destructive",
    // SQL in structured arguments (`normalize/arguments.rs`).
    "sql_write",
    "sql_ddl",
];

/// Longest line analyzed; the rest is not looked at, and the line is `unparseable`.
const MAX_LINE_BYTES: usize = 64 * 1024;
/// How deep payloads inside payloads are followed.
const MAX_DEPTH: usize = 8;
/// Most simple commands looked at per line.
const MAX_COMMANDS: usize = 2_000;

/// What the analyzer learned about a command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis {
    /// Fact names (see [`FACT_NAMES`]).
    pub facts: BTreeSet<&'static str>,
    /// Lower-case destination hosts the command reaches.
    pub hosts: BTreeSet<String>,
    /// Programs run, by base name, behind wrappers.
    pub programs: BTreeSet<String>,
    /// One sentence per finding with the fact it explains, in the order found: what a
    /// sysadmin would want to read ("starts a shell through vim (`:!/bin/sh`)").
    pub notes: Vec<(&'static str, String)>,
}

impl Analysis {
    /// Records a fact with its explanation (each explanation once).
    pub(crate) fn fact(&mut self, name: &'static str, note: impl Into<String>) {
        debug_assert!(FACT_NAMES.contains(&name), "{name}");
        self.facts.insert(name);
        let note = note.into();
        if !note.is_empty() && !self.notes.iter().any(|(_, n)| *n == note) && self.notes.len() < 32
        {
            self.notes.push((name, note));
        }
    }
}

/// Analyzes a command line (one line or a whole script).
pub fn analyze(line: &str) -> Analysis {
    let mut out = Analysis::default();
    let text = if line.len() > MAX_LINE_BYTES {
        out.fact(
            "unparseable",
            format!("the command is longer than {MAX_LINE_BYTES} bytes"),
        );
        let mut end = MAX_LINE_BYTES;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        &line[..end]
    } else {
        line
    };
    walk::Walker::new(&mut out).script(text, 0);
    out
}

#[cfg(test)]
mod tests;
