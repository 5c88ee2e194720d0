//! Walks a bash parse tree: lists, pipelines, compound commands, functions,
//! redirections, here-docs and here-strings, and expands words as far as it can without
//! running anything (quotes removed, `$'…'` decoded, variables assigned earlier in the
//! line substituted, `$(…)` analyzed in turn and replaced by its output when that
//! output is known, e.g. `$(echo … | base64 -d)`).

use std::collections::HashMap;

use brush_parser::ast::{
    self, Command, CommandPrefixOrSuffixItem as Item, CompoundCommand, IoFileRedirectKind,
    IoFileRedirectTarget, IoRedirect,
};
use brush_parser::word::{self, Parameter, ParameterExpr, WordPiece, WordPieceWithSource};
use brush_parser::{ParserOptions, parse_tokens, uncached_tokenize_str};

use super::command::{self, Redirect, Simple};
use super::{Analysis, MAX_COMMANDS, MAX_DEPTH};

/// What a command writes to its standard output, as far as the analyzer knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Flow {
    /// The exact text, when it is known (`echo`, `printf`, a decoder fed known text).
    pub(super) text: Option<String>,
    /// The text came out of a decoder (base64, xxd, printf escapes, rev).
    pub(super) decoded: bool,
    /// The output is something downloaded.
    pub(super) downloaded: bool,
}

impl Flow {
    pub(super) fn text(text: String) -> Flow {
        Flow {
            text: Some(text),
            ..Flow::default()
        }
    }
}

/// Deepest bracket nesting handed to the parser, which recurses once per level.
const MAX_NESTING: usize = 48;
/// Deepest nesting of `(` handed to the parser: each level is tried both as a subshell
/// and as arithmetic, so the work doubles per level (the fuzzer found 30 levels taking
/// seconds).
const MAX_PAREN_NESTING: usize = 12;

/// Input the tokenizer must not see: control characters no shell command contains
/// (NUL cannot even reach a program's argv), and here-docs without a delimiter word,
/// on which the fuzzer made brush-parser 0.4's tokenizer allocate without bound.
fn hostile_to_parser(text: &str) -> Option<&'static str> {
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Some("the command contains control characters");
    }
    const MAX_HEREDOCS: usize = 32;
    let bytes = text.as_bytes();
    let mut heredocs = 0;
    let mut i = 0;
    while let Some(at) = text[i..].find("<<") {
        let start = i + at + 2;
        i = start;
        if bytes.get(start) == Some(&b'<') {
            i += 1; // `<<<`: a here-string.
            continue;
        }
        let rest = text[start..]
            .trim_start_matches('-')
            .trim_start_matches([' ', '\t']);
        let ok = rest
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || "_'\"\\".contains(c))
            // An empty quoted delimiter (`<< ''`) made the tokenizer spin (fuzzer).
            && !rest.starts_with("''")
            && !rest.starts_with("\"\"");
        if !ok {
            return Some("a here-document has no delimiter word");
        }
        heredocs += 1;
        if heredocs > MAX_HEREDOCS {
            return Some("the command opens too many here-documents");
        }
    }
    None
}

/// `99999999999>file`: brush-parser 0.4 panics on a descriptor number that overflows.
fn huge_fd_number(text: &str) -> bool {
    let mut run = 0;
    for c in text.chars() {
        if c.is_ascii_digit() {
            run += 1;
        } else {
            if run >= 10 && (c == '<' || c == '>') {
                return true;
            }
            run = 0;
        }
    }
    false
}

/// The deepest nesting of brackets (`(`, `{`, `[`) and compound commands (`if`, `for`,
/// `while`, `until`, `case`, `select` … `fi`/`done`/`esac`) outside single quotes.
fn nesting(text: &str) -> (usize, usize) {
    let (mut depth, mut max, mut quoted, mut escaped) = (0usize, 0usize, false, false);
    let (mut parens, mut max_parens) = (0usize, 0usize);
    let mut word = String::new();
    let close_word = |word: &mut String, depth: &mut usize, max: &mut usize| {
        match word.as_str() {
            "if" | "for" | "while" | "until" | "case" | "select" => {
                *depth += 1;
                *max = (*max).max(*depth);
            }
            "fi" | "done" | "esac" => *depth = depth.saturating_sub(1),
            _ => {}
        }
        word.clear();
    };
    for c in text.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if !quoted => escaped = true,
            '\'' => quoted = !quoted,
            _ if quoted => {}
            '(' | '{' | '[' => {
                close_word(&mut word, &mut depth, &mut max);
                depth += 1;
                max = max.max(depth);
                if c == '(' {
                    parens += 1;
                    max_parens = max_parens.max(parens);
                }
            }
            ')' | '}' | ']' => {
                close_word(&mut word, &mut depth, &mut max);
                depth = depth.saturating_sub(1);
                if c == ')' {
                    parens = parens.saturating_sub(1);
                }
            }
            c if c.is_whitespace() || c == ';' || c == '&' || c == '|' => {
                close_word(&mut word, &mut depth, &mut max);
            }
            c if word.len() < 8 => word.push(c),
            _ => {}
        }
    }
    close_word(&mut word, &mut depth, &mut max);
    (max, max_parens)
}

pub(crate) struct Walker<'a> {
    pub(super) out: &'a mut Analysis,
    /// Simple commands visited so far (bounded by [`MAX_COMMANDS`]).
    commands: usize,
    /// Variables assigned earlier in the line (`X=…` on its own).
    vars: HashMap<String, String>,
    /// Files made executable earlier in the line (`chmod +x FILE`).
    executables: Vec<String>,
    options: ParserOptions,
}

impl<'a> Walker<'a> {
    pub(crate) fn new(out: &'a mut Analysis) -> Walker<'a> {
        Walker {
            out,
            commands: 0,
            vars: HashMap::new(),
            executables: Vec::new(),
            options: ParserOptions::default(),
        }
    }

    /// Remembers a file made executable (`chmod +x`).
    pub(super) fn mark_executable(&mut self, path: &str) {
        if self.executables.len() < 64 {
            self.executables.push(path.to_string());
        }
    }

    /// Whether the line made `path` executable earlier.
    pub(super) fn made_executable(&self, path: &str) -> bool {
        self.executables.iter().any(|p| p == path)
    }

    /// Parses and walks a script; returns what it prints, when known.
    pub(super) fn script(&mut self, text: &str, depth: usize) -> Flow {
        if depth > MAX_DEPTH {
            self.out.fact(
                "unparseable",
                format!("commands are nested more than {MAX_DEPTH} deep"),
            );
            return Flow::default();
        }
        let (all, parens) = nesting(text);
        if all > MAX_NESTING || parens > MAX_PAREN_NESTING {
            self.out.fact(
                "unparseable",
                format!(
                    "the command nests brackets more than {MAX_NESTING} deep (or parentheses more than {MAX_PAREN_NESTING})"
                ),
            );
            self.fallback(text, depth);
            return Flow::default();
        }
        if let Some(why) = hostile_to_parser(text) {
            self.out.fact("unparseable", why);
            self.fallback(text, depth);
            return Flow::default();
        }
        if huge_fd_number(text) {
            self.out.fact(
                "unparseable",
                "the command redirects a file descriptor number too large to exist",
            );
            self.fallback(text, depth);
            return Flow::default();
        }
        // The parser is third-party code: a panic inside it (the fuzzer found one) is a
        // line that cannot be parsed, not a failed request.
        let options = &self.options;
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            uncached_tokenize_str(text, &options.tokenizer_options())
                .map_err(|e| e.to_string())
                .and_then(|tokens| parse_tokens(&tokens, options).map_err(|e| e.to_string()))
        }))
        .unwrap_or_else(|_| Err("the parser failed on this input".into()));
        match parsed {
            Ok(program) => {
                let mut last = Flow::default();
                for list in &program.complete_commands {
                    last = self.list(list, depth);
                }
                last
            }
            Err(e) => {
                self.out
                    .fact("unparseable", format!("bash cannot parse the command: {e}"));
                self.fallback(text, depth);
                Flow::default()
            }
        }
    }

    /// Input bash cannot parse is still looked at, split into words line by line and
    /// at `;`, `|` and `&`, so what it plainly names (programs, paths, hosts) counts.
    fn fallback(&mut self, text: &str, depth: usize) {
        for piece in text.split(['\n', ';', '|', '&']) {
            let argv: Vec<String> = crate::normalize::command::split(piece)
                .unwrap_or_else(|_| piece.split_whitespace().map(str::to_string).collect());
            if argv.is_empty() || !self.count() {
                continue;
            }
            let simple = Simple {
                argv,
                ..Simple::default()
            };
            command::simple(self, &simple, depth, &Flow::default());
        }
    }

    /// Counts one simple command; false once the budget is spent.
    fn count(&mut self) -> bool {
        self.commands += 1;
        if self.commands == MAX_COMMANDS + 1 {
            self.out.fact(
                "unparseable",
                format!("the command has more than {MAX_COMMANDS} simple commands"),
            );
        }
        self.commands <= MAX_COMMANDS
    }

    fn list(&mut self, l: &ast::CompoundList, depth: usize) -> Flow {
        let mut last = Flow::default();
        for item in &l.0 {
            last = self.and_or(&item.0, depth);
        }
        last
    }

    fn and_or(&mut self, a: &ast::AndOrList, depth: usize) -> Flow {
        let mut last = self.pipeline(&a.first, depth);
        for next in &a.additional {
            let (ast::AndOr::And(p) | ast::AndOr::Or(p)) = next;
            last = self.pipeline(p, depth);
        }
        last
    }

    fn pipeline(&mut self, p: &ast::Pipeline, depth: usize) -> Flow {
        if p.seq.len() > 1 {
            self.out.fact("pipeline", "");
        }
        let mut input = Flow::default();
        for c in &p.seq {
            input = self.command(c, depth, &input);
        }
        input
    }

    fn command(&mut self, c: &Command, depth: usize, input: &Flow) -> Flow {
        match c {
            Command::Simple(s) => self.simple(s, depth, input),
            Command::Compound(cc, redirects) => {
                let mut stdin = input.clone();
                if let Some(list) = redirects {
                    let mut r = Vec::new();
                    for redirect in &list.0 {
                        self.redirect(redirect, depth, &mut r, &mut stdin);
                    }
                    command::redirects(self, &r);
                }
                self.compound(cc, depth, &stdin)
            }
            Command::Function(f) => {
                let name = f.fname.value.clone();
                let text = f.body.to_string();
                self.compound(&f.body.0, depth, &Flow::default());
                command::function_defined(self, &name, &text);
                Flow::default()
            }
            Command::ExtendedTest(..) => Flow::default(),
        }
    }

    fn compound(&mut self, cc: &CompoundCommand, depth: usize, input: &Flow) -> Flow {
        match cc {
            CompoundCommand::BraceGroup(b) => self.list_with_input(&b.list, depth, input),
            CompoundCommand::Subshell(s) => self.list_with_input(&s.list, depth, input),
            CompoundCommand::ForClause(f) => {
                for w in f.values.iter().flatten() {
                    self.expand(&w.value, depth);
                }
                self.list(&f.body.list, depth)
            }
            CompoundCommand::ArithmeticForClause(f) => self.list(&f.body.list, depth),
            CompoundCommand::CaseClause(c) => {
                self.expand(&c.value.value, depth);
                let mut last = Flow::default();
                for item in &c.cases {
                    if let Some(cmd) = &item.cmd {
                        last = self.list(cmd, depth);
                    }
                }
                last
            }
            CompoundCommand::IfClause(i) => {
                self.list(&i.condition, depth);
                let mut last = self.list(&i.then, depth);
                for e in i.elses.iter().flatten() {
                    if let Some(c) = &e.condition {
                        self.list(c, depth);
                    }
                    last = self.list(&e.body, depth);
                }
                last
            }
            CompoundCommand::WhileClause(w) | CompoundCommand::UntilClause(w) => {
                self.list(&w.0, depth);
                self.list(&w.1.list, depth)
            }
            CompoundCommand::Coprocess(c) => self.command(&c.body, depth, input),
            CompoundCommand::Arithmetic(_) => Flow::default(),
        }
    }

    /// A group's first command reads the group's input.
    fn list_with_input(&mut self, l: &ast::CompoundList, depth: usize, input: &Flow) -> Flow {
        let mut last = Flow::default();
        for (i, item) in l.0.iter().enumerate() {
            if i == 0 {
                let a = &item.0;
                let mut flow = self.pipeline_with_input(&a.first, depth, input);
                for next in &a.additional {
                    let (ast::AndOr::And(p) | ast::AndOr::Or(p)) = next;
                    flow = self.pipeline(p, depth);
                }
                last = flow;
            } else {
                last = self.and_or(&item.0, depth);
            }
        }
        last
    }

    fn pipeline_with_input(&mut self, p: &ast::Pipeline, depth: usize, input: &Flow) -> Flow {
        if p.seq.len() > 1 {
            self.out.fact("pipeline", "");
        }
        let mut flow = input.clone();
        for c in &p.seq {
            flow = self.command(c, depth, &flow);
        }
        flow
    }

    fn simple(&mut self, s: &ast::SimpleCommand, depth: usize, input: &Flow) -> Flow {
        if !self.count() {
            return Flow::default();
        }
        let mut cmd = Simple::default();
        let mut stdin = input.clone();
        let mut items: Vec<(&Item, bool)> = Vec::new();
        if let Some(prefix) = &s.prefix {
            items.extend(prefix.0.iter().map(|i| (i, true)));
        }
        let name = s.word_or_name.as_ref().map(|w| Item::Word(w.clone()));
        if let Some(n) = &name {
            items.push((n, false));
        }
        if let Some(suffix) = &s.suffix {
            items.extend(suffix.0.iter().map(|i| (i, false)));
        }
        for (item, in_prefix) in items {
            match item {
                Item::Word(w) => {
                    let text = self.expand(&w.value, depth);
                    cmd.argv.push(text);
                }
                // After the command name, `name=value` is an argument (`dd of=…`).
                Item::AssignmentWord(_, w) if !in_prefix => {
                    let text = self.expand(&w.value, depth);
                    cmd.argv.push(text);
                }
                Item::AssignmentWord(a, _) => {
                    let name = match &a.name {
                        ast::AssignmentName::VariableName(n) => n.clone(),
                        ast::AssignmentName::ArrayElementName(n, _) => n.clone(),
                    };
                    let value = match &a.value {
                        ast::AssignmentValue::Scalar(w) => self.expand(&w.value, depth),
                        ast::AssignmentValue::Array(items) => items
                            .iter()
                            .map(|(_, w)| self.expand(&w.value, depth))
                            .collect::<Vec<_>>()
                            .join(" "),
                    };
                    cmd.assigns.push((name, value));
                }
                Item::IoRedirect(r) => self.redirect(r, depth, &mut cmd.redirects, &mut stdin),
                Item::ProcessSubstitution(_, sub) => {
                    self.list(&sub.list, depth + 1);
                    cmd.argv.push("/dev/fd/63".into());
                }
            }
        }
        if cmd.argv.is_empty() {
            command::redirects(self, &cmd.redirects);
            for (name, value) in &cmd.assigns {
                command::assignment(self, name, value, depth);
                self.vars.insert(name.clone(), value.clone());
            }
            return Flow::default();
        }
        command::simple(self, &cmd, depth, &stdin)
    }

    fn redirect(
        &mut self,
        r: &IoRedirect,
        depth: usize,
        out: &mut Vec<Redirect>,
        stdin: &mut Flow,
    ) {
        match r {
            IoRedirect::File(fd, kind, target) => {
                let path = match target {
                    IoFileRedirectTarget::Filename(w) => self.expand(&w.value, depth),
                    IoFileRedirectTarget::ProcessSubstitution(_, sub) => {
                        self.list(&sub.list, depth + 1);
                        return;
                    }
                    IoFileRedirectTarget::Fd(_) => return,
                    // `>&WORD`: a file descriptor, `-`, or (bash) a file for both streams.
                    IoFileRedirectTarget::Duplicate(w) => {
                        let text = self.expand(&w.value, depth);
                        if text.chars().all(|c| c.is_ascii_digit() || c == '-') {
                            return;
                        }
                        text
                    }
                };
                let write = match kind {
                    IoFileRedirectKind::Read => false,
                    IoFileRedirectKind::Write
                    | IoFileRedirectKind::Append
                    | IoFileRedirectKind::Clobber => true,
                    IoFileRedirectKind::ReadAndWrite => true,
                    IoFileRedirectKind::DuplicateInput | IoFileRedirectKind::DuplicateOutput => {
                        // `>&file` with a file name writes both streams to it.
                        !path.chars().all(|c| c.is_ascii_digit() || c == '-')
                    }
                };
                let read = matches!(
                    kind,
                    IoFileRedirectKind::Read | IoFileRedirectKind::ReadAndWrite
                );
                if read && fd.is_none_or(|f| f == 0) {
                    *stdin = Flow::default();
                }
                out.push(Redirect { path, read, write });
            }
            IoRedirect::HereDocument(_, doc) => {
                let text = if doc.requires_expansion {
                    self.expand_heredoc(&doc.doc.value, depth)
                } else {
                    doc.doc.value.clone()
                };
                *stdin = Flow::text(text);
            }
            IoRedirect::HereString(_, w) => {
                let mut text = self.expand(&w.value, depth);
                text.push('\n');
                *stdin = Flow::text(text);
            }
            IoRedirect::OutputAndError(w, _) => {
                let path = self.expand(&w.value, depth);
                out.push(Redirect {
                    path,
                    read: false,
                    write: true,
                });
            }
        }
    }

    /// A here-doc body with expansion: `$(…)` and variables inside are looked at, the
    /// text is kept as written otherwise.
    fn expand_heredoc(&mut self, body: &str, depth: usize) -> String {
        if body.contains('$') || body.contains('`') {
            let quoted = format!("\"{}\"", body.replace('\\', "\\\\").replace('"', "\\\""));
            let _ = self.expand(&quoted, depth);
        }
        body.to_string()
    }

    /// Expands one word as far as is possible without running anything.
    pub(super) fn expand(&mut self, w: &str, depth: usize) -> String {
        let options = &self.options;
        let parsed =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| word::parse(w, options)));
        match parsed {
            Ok(Ok(pieces)) => self.pieces(&pieces, depth),
            _ => brush_parser::unquote_str(w),
        }
    }

    fn pieces(&mut self, pieces: &[WordPieceWithSource], depth: usize) -> String {
        let mut out = String::new();
        for p in pieces {
            match &p.piece {
                WordPiece::Text(s) | WordPiece::SingleQuotedText(s) => out.push_str(s),
                WordPiece::AnsiCQuotedText(s) => {
                    let decoded = super::code::ansi_c(s);
                    if decoded != *s && s.contains("\\x") {
                        self.out.facts.insert("decoded_payload");
                    }
                    out.push_str(&decoded);
                }
                WordPiece::DoubleQuotedSequence(inner)
                | WordPiece::GettextDoubleQuotedSequence(inner) => {
                    let text = self.pieces(inner, depth);
                    out.push_str(&text);
                }
                WordPiece::TildeExpansion(_) => out.push('~'),
                WordPiece::ParameterExpansion(e) => {
                    let text = self.parameter(e);
                    out.push_str(&text);
                }
                WordPiece::CommandSubstitution(s) | WordPiece::BackquotedCommandSubstitution(s) => {
                    let flow = self.script(s, depth + 1);
                    match flow.text {
                        Some(text) => out.push_str(text.trim_end_matches('\n')),
                        // Output not known until it runs: a marker, so that where it
                        // goes (a host name, a file name) can still be seen.
                        None => out.push_str(super::command::UNKNOWN_OUTPUT),
                    }
                }
                WordPiece::EscapeSequence(s) => out.push_str(s.strip_prefix('\\').unwrap_or(s)),
                WordPiece::ArithmeticExpression(_) => out.push('0'),
            }
        }
        out
    }

    fn parameter(&mut self, e: &ParameterExpr) -> String {
        let parameter = match e {
            ParameterExpr::Parameter { parameter, .. }
            | ParameterExpr::UseDefaultValues { parameter, .. }
            | ParameterExpr::AssignDefaultValues { parameter, .. } => parameter,
            _ => return String::new(),
        };
        match parameter {
            Parameter::Named(name) => {
                command::variable_used(self, name);
                match self.vars.get(name) {
                    Some(v) => v.clone(),
                    None => format!("${name}"),
                }
            }
            Parameter::NamedWithIndex { name, .. }
            | Parameter::NamedWithAllIndices { name, .. } => {
                command::variable_used(self, name);
                self.vars.get(name).cloned().unwrap_or_default()
            }
            _ => String::new(),
        }
    }
}
