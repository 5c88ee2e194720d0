//! The gateway's configuration: a YAML file (`--config`) and flag shortcuts
//! (`--upstream NAME=CMD…`, `--upstream NAME=http://…`), merged and checked once at
//! start. A bad file fails with file:line:column and the reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_saphyr::Spanned;

/// Separator between an upstream's name and its tool or prompt names: `files__read`.
/// MCP tool names may use letters, digits, `_`, `-` and `.`; upstream names may not
/// contain `_`, so the first `__` always splits a name unambiguously.
pub(crate) const SEPARATOR: &str = "__";

/// The configuration file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// Upstream MCP servers by name.
    #[serde(default)]
    upstreams: BTreeMap<String, Spanned<UpstreamFile>>,
    /// Streamable HTTP address for the agent (host:port); stdio when absent.
    #[serde(default)]
    listen: Option<Spanned<String>>,
    /// How long to hold a call that needs approval (e.g. `2m`); absent: return the
    /// approval id at once.
    #[serde(default)]
    wait_approval: Option<Spanned<String>>,
    /// Redact every detected secret and PII from results, whatever the decision.
    #[serde(default)]
    redact_detected: bool,
}

/// One upstream as written: exactly one of `command` and `url`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamFile {
    /// Program to spawn; it speaks MCP on its stdin/stdout.
    #[serde(default)]
    command: Option<String>,
    /// Its arguments.
    #[serde(default)]
    args: Vec<String>,
    /// Extra environment for the program.
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Working directory for the program.
    #[serde(default)]
    cwd: Option<PathBuf>,
    /// Streamable HTTP endpoint of a running server (http:// or https://).
    #[serde(default)]
    url: Option<String>,
}

/// How to reach one upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Spawn `program args…` and talk over its stdio.
    Stdio {
        program: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
    },
    /// Streamable HTTP at this URL.
    Http { url: String },
}

/// One upstream MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upstream {
    /// Prefix of its tools and prompts (`NAME__tool`).
    pub(crate) name: String,
    pub(crate) transport: Transport,
}

/// The merged configuration.
#[derive(Debug, Clone, Default)]
pub(crate) struct Config {
    /// In name order.
    pub(crate) upstreams: Vec<Upstream>,
    /// Streamable HTTP address for the agent, or `None` for stdio.
    pub(crate) listen: Option<String>,
    /// How long to wait for an approval before answering; `None`: answer at once
    /// with the approval id.
    pub(crate) wait_approval: Option<Duration>,
    /// Redact every detected secret and PII from results.
    pub(crate) redact_detected: bool,
}

/// Checks an upstream name: 1–32 letters, digits and `-`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 32
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(format!(
            "upstream name {name:?} must be 1 to 32 letters, digits or '-' (no '_': tools are named NAME{SEPARATOR}TOOL)"
        ));
    }
    Ok(())
}

/// Parses `NAME=http://…` or `NAME=PROGRAM ARGS…` (split at whitespace; use the file
/// for arguments with spaces).
pub(crate) fn parse_shortcut(s: &str) -> Result<Upstream, String> {
    let (name, target) = s
        .split_once('=')
        .ok_or_else(|| format!("--upstream {s:?}: expected NAME=COMMAND or NAME=URL"))?;
    let name = name.trim();
    check_name(name)?;
    let target = target.trim();
    let transport = if target.starts_with("http://") || target.starts_with("https://") {
        Transport::Http {
            url: target.to_string(),
        }
    } else {
        let mut words = target.split_whitespace().map(str::to_string);
        let program = words
            .next()
            .ok_or_else(|| format!("--upstream {s:?}: the command is empty"))?;
        Transport::Stdio {
            program,
            args: words.collect(),
            env: BTreeMap::new(),
            cwd: None,
        }
    };
    Ok(Upstream {
        name: name.to_string(),
        transport,
    })
}

/// Reads and checks a configuration file.
pub(crate) fn load(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --config {}", path.display()))?;
    parse(&path.display().to_string(), &text)
}

/// Parses configuration text; `source` names it in errors.
pub(crate) fn parse(source: &str, text: &str) -> anyhow::Result<Config> {
    let file: File = if text.trim().is_empty() {
        File::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| {
            let at = e.location();
            let message = e.without_snippet().to_string();
            let mut message = message.lines().next().unwrap_or_default().to_string();
            // The position is given once, in front.
            if let Some(i) = message.rfind(" at line ") {
                message.truncate(i);
            }
            anyhow::anyhow!(
                "{source}:{}:{}: {message}",
                at.map_or(0, |l| l.line()),
                at.map_or(0, |l| l.column())
            )
        })?
    };
    let at = |loc: serde_saphyr::Location| format!("{source}:{}:{}", loc.line(), loc.column());
    let mut config = Config {
        redact_detected: file.redact_detected,
        ..Config::default()
    };
    for (name, upstream) in file.upstreams {
        check_name(&name).map_err(|e| anyhow::anyhow!("{}: {e}", at(upstream.referenced)))?;
        let u = upstream.value;
        let transport = match (u.command, u.url) {
            (Some(program), None) if !program.trim().is_empty() => Transport::Stdio {
                program,
                args: u.args,
                env: u.env,
                cwd: u.cwd,
            },
            (None, Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {
                if !u.args.is_empty() || !u.env.is_empty() || u.cwd.is_some() {
                    bail!(
                        "{}: upstream {:?}: args, env and cwd are for `command` upstreams",
                        at(upstream.referenced),
                        name
                    );
                }
                Transport::Http { url }
            }
            (None, Some(url)) => bail!(
                "{}: upstream {:?}: url {url:?} must start with http:// or https://",
                at(upstream.referenced),
                name
            ),
            _ => bail!(
                "{}: upstream {:?} needs exactly one of `command` and `url`",
                at(upstream.referenced),
                name
            ),
        };
        config.upstreams.push(Upstream { name, transport });
    }
    if let Some(listen) = file.listen {
        config.listen = Some(listen.value);
    }
    if let Some(wait) = file.wait_approval {
        let d = crate::admin::parse_duration(&wait.value)
            .map_err(|e| anyhow::anyhow!("{}: wait_approval: {e}", at(wait.referenced)))?;
        config.wait_approval = Some(d);
    }
    Ok(config)
}

impl Config {
    /// Adds upstreams given as flags; a name given twice is an error.
    pub(crate) fn add(&mut self, upstream: Upstream) -> anyhow::Result<()> {
        if self.upstreams.iter().any(|u| u.name == upstream.name) {
            bail!("upstream {:?} is configured twice", upstream.name);
        }
        self.upstreams.push(upstream);
        self.upstreams.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_both_kinds_of_upstream() {
        let c = parse(
            "gw.yaml",
            "upstreams:\n  files:\n    command: npx\n    args: [-y, server]\n    env: {A: b}\n  search:\n    url: http://127.0.0.1:9/mcp\nwait_approval: 2m\nredact_detected: true\n",
        )
        .expect("valid");
        assert_eq!(c.upstreams.len(), 2);
        assert_eq!(c.upstreams[0].name, "files");
        assert!(
            matches!(&c.upstreams[0].transport, Transport::Stdio { program, args, .. } if program == "npx" && args.len() == 2)
        );
        assert_eq!(
            c.upstreams[1].transport,
            Transport::Http {
                url: "http://127.0.0.1:9/mcp".into()
            }
        );
        assert_eq!(c.wait_approval, Some(Duration::from_secs(120)));
        assert!(c.redact_detected);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = parse("gw.yaml", "upstreams:\n  files:\n    comand: npx\n")
            .expect_err("unknown key")
            .to_string();
        assert!(e.starts_with("gw.yaml:3:"), "{e}");
        assert!(e.contains("comand"), "{e}");
        let e = parse("gw.yaml", "upstreams:\n  bad_name:\n    command: x\n")
            .expect_err("bad name")
            .to_string();
        assert!(e.starts_with("gw.yaml:3:"), "{e}");
        assert!(e.contains("bad_name"), "{e}");
        let e = parse(
            "gw.yaml",
            "upstreams:\n  a:\n    command: x\n    url: http://h/\n",
        )
        .expect_err("both")
        .to_string();
        assert!(e.contains("exactly one"), "{e}");
    }

    #[test]
    fn shortcuts() {
        let u = parse_shortcut("fs=python3 server.py --root /tmp").expect("valid");
        assert_eq!(u.name, "fs");
        assert!(
            matches!(u.transport, Transport::Stdio { ref program, ref args, .. } if program == "python3" && args.len() == 3)
        );
        let u = parse_shortcut("web=https://mcp.example.com/mcp").expect("valid");
        assert!(matches!(u.transport, Transport::Http { .. }));
        assert!(parse_shortcut("a_b=x").is_err());
        assert!(parse_shortcut("nothing").is_err());
    }
}
