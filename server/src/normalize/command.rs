//! Command lines: splitting a line into words, quoting argv back into a line, and the
//! facts the first policy engine matches on (the program behind wrappers such as `sudo`,
//! its arguments, and the forms an argument may be matched in).
//!
//! This is deliberately small: it reads one simple command. Pipelines, subshells and
//! `bash -c` payloads are the command analyzer's job (see docs/ARCHITECTURE.md); until it
//! lands, policies match such lines with `command` globs over the whole line.

use serde::Serialize;

use super::path;

/// What a command action runs, after looking through wrappers.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ExecFacts {
    /// Basename of the program that actually runs (`rm` for `sudo /bin/rm -rf /`).
    pub program: String,
    /// Its arguments, as given.
    pub args: Vec<String>,
    /// Every form an argument can be matched in: the argument itself, each letter of a
    /// short-flag cluster (`-rf` ⇒ `-r`, `-f`), the flag of `--flag=value`, and the
    /// lexically cleaned form of path-like arguments (`//` ⇒ `/`).
    pub arg_forms: Vec<String>,
    /// Wrappers looked through, in order (`sudo`, `env`, `nice`, ...).
    pub wrappers: Vec<String>,
}

/// Splits a command line into words with POSIX shell quoting rules (single quotes,
/// double quotes with backslash escapes, backslash outside quotes). Operators such as
/// `|` and `;` stay inside words; this is a word splitter, not a parser.
pub(crate) fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => word.push(c),
                    None => word.push('\\'),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Quotes argv into a line that [`split`] turns back into the same argv.
pub(crate) fn join(argv: &[String]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

fn quote(arg: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Looks through wrappers to the program that runs, and lists argument forms.
pub(crate) fn facts(argv: &[String], cwd: &str) -> ExecFacts {
    let mut rest = argv;
    let mut wrappers = Vec::new();
    while let Some((first, tail)) = rest.split_first() {
        let name = basename(first);
        let Some(skip) = wrapper_arity(name, tail) else {
            break;
        };
        wrappers.push(name.to_string());
        rest = &tail[skip.min(tail.len())..];
    }
    let (program, args) = match rest.split_first() {
        Some((first, tail)) => (basename(first).to_string(), tail.to_vec()),
        // Only wrappers (`sudo` alone): the last wrapper is the program.
        None => (wrappers.pop().unwrap_or_default(), Vec::new()),
    };
    let mut arg_forms = Vec::with_capacity(args.len() * 2);
    for arg in &args {
        push_forms(arg, cwd, &mut arg_forms);
    }
    ExecFacts {
        program,
        args,
        arg_forms,
        wrappers,
    }
}

fn push_forms(arg: &str, cwd: &str, out: &mut Vec<String>) {
    out.push(arg.to_string());
    if let Some(long) = arg.strip_prefix("--") {
        if let Some((flag, _)) = long.split_once('=') {
            out.push(format!("--{flag}"));
        }
    } else if let Some(cluster) = arg.strip_prefix('-') {
        if cluster.len() > 1 && cluster.chars().all(|c| c.is_ascii_alphabetic()) {
            out.extend(cluster.chars().map(|c| format!("-{c}")));
        }
    } else if path::looks_like_path(arg) {
        let clean = path::clean(arg, cwd);
        if clean != arg {
            out.push(clean);
        }
    }
}

fn basename(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

/// For a wrapper program, how many of the following words belong to the wrapper (its
/// options and their values). `None` when `name` is not a wrapper.
fn wrapper_arity(name: &str, tail: &[String]) -> Option<usize> {
    // Options of each wrapper that take a separate value.
    let valued: &[&str] = match name {
        "sudo" => &["-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-U", "-T"],
        "doas" => &["-u", "-C"],
        "nice" => &["-n"],
        "ionice" => &["-c", "-n", "-p"],
        "stdbuf" => &["-i", "-o", "-e"],
        "env" => &["-u", "-C", "-S"],
        "timeout" => &["-s", "-k"],
        "xargs" => &["-n", "-I", "-L", "-P", "-s", "-d", "-E", "-a"],
        "nohup" | "time" | "command" | "exec" | "builtin" | "unbuffer" => &[],
        _ => return None,
    };
    let mut i = 0;
    while let Some(word) = tail.get(i) {
        if word == "--" {
            i += 1;
            break;
        }
        if valued.contains(&word.as_str()) {
            i += 2;
        } else if (word.starts_with('-') && word.len() > 1) || (name == "env" && word.contains('='))
        {
            i += 1;
        } else {
            break;
        }
    }
    // `timeout DURATION cmd`: the duration is positional.
    if name == "timeout" && i < tail.len() {
        i += 1;
    }
    Some(i)
}
