//! The benchmark's 100-rule policy, written once as data and rendered twice: as a
//! Warden policy (YAML) and as the equivalent Cedar policy set.
//!
//! The rules are what a platform team would write for coding, data and support agents:
//! tool globs, argument groups, command globs and regexes, file and URL resources,
//! hosts, operations, egress, declared tags and sensitivity, session tags, zones,
//! agents, tenants and command facts. Conditions are limited to what both languages can
//! say alike, so the two policies decide the same on every action:
//!
//! - globs use only `*`, which is Cedar's `like` wildcard;
//! - a regex is given together with the `like` patterns that match the same strings;
//! - resource globs appear only in rules for non-command channels (for exec and shell,
//!   Warden also matches every argument form, a set Cedar cannot glob over);
//! - host globs appear only in http rules (one destination host); exact host lists
//!   work on any channel (`containsAny` over the host set).
//!
//! The benchmark checks the equivalence on every workload action before it times
//! anything.

use std::fmt::Write as _;

use crate::policy::Verdict;

/// One condition of a rule.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cond {
    /// Channels; in Cedar the request's action (`Action::"exec"`).
    Channel(&'static [&'static str]),
    /// Tool globs (the tool as sent, or the program behind wrappers).
    Tool(&'static [&'static str]),
    /// Exact operations.
    Operation(&'static [&'static str]),
    /// Path globs over the resource; only in rules without exec and shell.
    Resource(&'static [&'static str]),
    /// A regex over the resource and the `like` patterns matching the same strings.
    ResourceRegex(&'static str, &'static [&'static str]),
    /// Globs over the whole command line.
    Command(&'static [&'static str]),
    /// A regex over the command line and its `like` equivalent.
    CommandRegex(&'static str, &'static [&'static str]),
    /// Exact destination hosts (any of the action's hosts).
    Hosts(&'static [&'static str]),
    /// Destination host globs; only in http rules.
    HostGlob(&'static [&'static str]),
    Egress(&'static str),
    Sensitivity(&'static [&'static str]),
    /// Exact declared tags.
    Tags(&'static [&'static str]),
    /// Exact tags the session's results carried.
    SessionTags(&'static [&'static str]),
    Zone(&'static [&'static str]),
    ZoneAtLeast(&'static str),
    /// Agent globs.
    Agent(&'static [&'static str]),
    /// Exact tenants.
    Tenant(&'static [&'static str]),
    Facts(&'static [&'static str]),
    /// Groups of exact arguments; every group must be satisfied.
    Args(&'static [&'static [&'static str]]),
}

/// One rule of the benchmark policy.
#[derive(Debug, Clone)]
pub(crate) struct BenchRule {
    pub(crate) id: &'static str,
    pub(crate) verdict: Verdict,
    pub(crate) conds: Vec<Cond>,
}

use Cond::*;
use Verdict::{Allow, AllowWithRedaction, Deny, RequireApproval};

const CMD: &[&str] = &["exec", "shell"];
const HTTP: &[&str] = &["http"];
const FILE: &[&str] = &["file"];
const TOOLS: &[&str] = &["mcp", "sdk"];

fn rule(id: &'static str, verdict: Verdict, conds: &[Cond]) -> BenchRule {
    BenchRule {
        id,
        verdict,
        conds: conds.to_vec(),
    }
}

/// The 100 rules, in policy order. One rule per line: the table reads better than
/// rustfmt's layout of it.
#[rustfmt::skip]
pub(crate) fn rules() -> Vec<BenchRule> {
    vec![
        // --- Commands: tools (20) ---
        rule("deny-disk-format", Deny, &[Channel(CMD), Tool(&["mkfs", "mkfs.*", "mkswap", "wipefs"])]),
        rule("deny-partitioning", Deny, &[Channel(CMD), Tool(&["fdisk", "parted", "sfdisk", "gdisk"])]),
        rule("deny-firewall-change", Deny, &[Channel(CMD), Tool(&["iptables", "ip6tables", "nft", "ufw"])]),
        rule("deny-kernel-modules", Deny, &[Channel(CMD), Tool(&["insmod", "rmmod", "modprobe"])]),
        rule("deny-power", Deny, &[Channel(CMD), Tool(&["shutdown", "reboot", "halt", "poweroff"])]),
        rule("deny-mount", Deny, &[Channel(CMD), Tool(&["mount", "umount"])]),
        rule("deny-raw-sockets", Deny, &[Channel(CMD), Tool(&["nc", "ncat", "netcat", "socat"])]),
        rule("deny-shred", Deny, &[Channel(CMD), Tool(&["shred", "srm"])]),
        rule("approve-remote-shell", RequireApproval, &[Channel(CMD), Tool(&["ssh", "telnet", "mosh"])]),
        rule("approve-user-management", RequireApproval, &[Channel(CMD), Tool(&["useradd", "userdel", "usermod", "passwd", "chpasswd"])]),
        rule("approve-scheduling", RequireApproval, &[Channel(CMD), Tool(&["crontab", "at"])]),
        rule("approve-service-control", RequireApproval, &[Channel(CMD), Tool(&["systemctl", "service"])]),
        rule("approve-cloud-cli", RequireApproval, &[Channel(CMD), Tool(&["aws", "gcloud", "az"])]),
        rule("approve-infra-tools", RequireApproval, &[Channel(CMD), Tool(&["terraform", "pulumi", "ansible*"])]),
        rule("approve-db-clients", RequireApproval, &[Channel(CMD), Tool(&["psql", "mysql", "mongosh", "redis-cli"])]),
        rule("approve-admin-tools", RequireApproval, &[Channel(CMD), Tool(&["*-admin", "*ctl-admin"])]),
        rule("allow-read-only-tools", Allow, &[Channel(CMD), Tool(&["ls", "cat", "grep", "rg", "find", "head", "tail", "wc"])]),
        rule("allow-build-tools", Allow, &[Channel(CMD), Tool(&["cargo", "make", "go", "npm", "pytest"])]),
        rule("allow-python", Allow, &[Channel(CMD), Tool(&["python*"])]),
        rule("allow-git", Allow, &[Channel(CMD), Tool(&["git"])]),
        // --- Commands: tools with arguments (16) ---
        rule("approve-force-push", RequireApproval, &[Channel(CMD), Tool(&["git"]), Args(&[&["push"], &["--force", "-f", "--force-with-lease"]])]),
        rule("approve-hard-reset", RequireApproval, &[Channel(CMD), Tool(&["git"]), Args(&[&["reset"], &["--hard"]])]),
        rule("approve-git-clean", RequireApproval, &[Channel(CMD), Tool(&["git"]), Args(&[&["clean"], &["-f", "-x"]])]),
        rule("approve-global-git-config", RequireApproval, &[Channel(CMD), Tool(&["git"]), Args(&[&["config"], &["--global", "--system"]])]),
        rule("deny-recursive-delete-of-system-dirs", Deny, &[Channel(CMD), Tool(&["rm"]), Args(&[&["-r", "-R", "--recursive"], &["/", "/etc", "/usr", "/var", "/home", "/boot"]])]),
        rule("deny-world-writable", Deny, &[Channel(CMD), Tool(&["chmod"]), Args(&[&["777", "a+rwx", "o+w"]])]),
        rule("deny-privileged-containers", Deny, &[Channel(CMD), Tool(&["docker", "podman"]), Args(&[&["run"], &["--privileged", "--pid=host", "--network=host"]])]),
        rule("deny-image-push", Deny, &[Channel(CMD), Tool(&["docker", "podman"]), Args(&[&["push"]])]),
        rule("deny-npm-publish", Deny, &[Channel(CMD), Tool(&["npm", "pnpm", "yarn"]), Args(&[&["publish"]])]),
        rule("deny-cargo-publish", Deny, &[Channel(CMD), Tool(&["cargo"]), Args(&[&["publish", "yank", "owner"]])]),
        rule("approve-kubectl-delete", RequireApproval, &[Channel(CMD), Tool(&["kubectl"]), Args(&[&["delete", "drain", "cordon"]])]),
        rule("deny-kubectl-prod-apply", Deny, &[Channel(CMD), Tool(&["kubectl", "helm"]), Args(&[&["apply", "upgrade", "install"], &["--context=prod", "prod"]])]),
        rule("approve-terraform-apply", RequireApproval, &[Channel(CMD), Tool(&["terraform"]), Args(&[&["apply", "destroy", "import"]])]),
        rule("approve-package-install", RequireApproval, &[Channel(CMD), Tool(&["pip", "pip3", "npm", "gem"]), Args(&[&["install", "i", "add"]])]),
        rule("approve-curl-upload", RequireApproval, &[Channel(CMD), Tool(&["curl"]), Args(&[&["-X", "--request"], &["POST", "PUT", "DELETE", "PATCH"]])]),
        rule("approve-sed-in-place-etc", RequireApproval, &[Channel(CMD), Tool(&["sed"]), Args(&[&["-i"], &["/etc/hosts", "/etc/resolv.conf", "/etc/fstab"]])]),
        // --- Commands: globs and regexes over the line (10) ---
        rule("deny-redirect-to-block-device", Deny, &[Channel(CMD), Command(&["*> /dev/sd*", "*> /dev/nvme*"])]),
        rule("deny-history-wipe", Deny, &[Channel(CMD), Command(&["*history -c*", "*> ~/.bash_history*"])]),
        rule("deny-destructive-sql", Deny, &[Channel(CMD), CommandRegex("DROP TABLE|TRUNCATE TABLE|DROP DATABASE", &["*DROP TABLE*", "*TRUNCATE TABLE*", "*DROP DATABASE*"])]),
        rule("approve-psql-command", RequireApproval, &[Channel(CMD), CommandRegex("^psql .*-c", &["psql *-c*"])]),
        rule("deny-pipe-to-shell", Deny, &[Channel(CMD), CommandRegex(r"\| (sh|bash)( |$)", &["*| sh", "*| sh *", "*| bash", "*| bash *"])]),
        rule("approve-base64-decode", RequireApproval, &[Channel(CMD), Command(&["*base64 -d*", "*base64 --decode*"])]),
        rule("deny-sudoers-edit", Deny, &[Channel(CMD), Command(&["*/etc/sudoers*"])]),
        rule("approve-no-verify", RequireApproval, &[Channel(CMD), Command(&["*--no-verify*"])]),
        rule("deny-ld-preload", Deny, &[Channel(CMD), Command(&["*LD_PRELOAD=*"])]),
        rule("approve-eval", RequireApproval, &[Channel(CMD), CommandRegex("^eval |; eval ", &["eval *", "*; eval *"])]),
        // --- Commands: analyzer facts (8) ---
        rule("deny-download-piped-to-interpreter", Deny, &[Channel(CMD), Facts(&["download_piped_to_interpreter"])]),
        rule("approve-privilege-change", RequireApproval, &[Channel(CMD), Facts(&["privilege_change"])]),
        rule("approve-shell-spawn-when-sensitive", RequireApproval, &[Channel(CMD), Facts(&["shell_spawn"]), ZoneAtLeast("sensitive")]),
        rule("approve-inline-code-external", RequireApproval, &[Channel(CMD), Facts(&["inline_code"]), Egress("external")]),
        rule("deny-env-dump-when-sensitive", Deny, &[Channel(CMD), Facts(&["env_dump"]), ZoneAtLeast("sensitive")]),
        rule("deny-secret-to-network", Deny, &[Channel(CMD), Facts(&["secret_reference"]), Egress("external")]),
        rule("approve-sandbox-network", RequireApproval, &[Channel(CMD), Facts(&["network"]), Agent(&["sandbox-*"])]),
        rule("redact-env-dump", AllowWithRedaction, &[Channel(CMD), Facts(&["env_dump"])]),
        // --- Files (15) ---
        rule("deny-credential-files", Deny, &[Channel(FILE), Resource(&["**/.aws/credentials", "**/.ssh/id_*", "**/.netrc", "**/.pgpass"])]),
        rule("deny-password-hashes", Deny, &[Channel(FILE), Resource(&["/etc/shadow", "/etc/gshadow"])]),
        rule("approve-etc-write", RequireApproval, &[Channel(FILE), Operation(&["write", "delete"]), Resource(&["/etc/**"])]),
        rule("deny-boot-write", Deny, &[Channel(FILE), Operation(&["write", "delete"]), Resource(&["/boot/**"])]),
        rule("approve-shell-profile-write", RequireApproval, &[Channel(FILE), Operation(&["write"]), Resource(&["**/.bashrc", "**/.profile", "**/.zshrc"])]),
        rule("deny-git-hooks-write", Deny, &[Channel(FILE), Operation(&["write"]), Resource(&["**/.git/hooks/*"])]),
        rule("deny-authorized-keys-write", Deny, &[Channel(FILE), Operation(&["write", "delete"]), Resource(&["**/.ssh/authorized_keys"])]),
        rule("deny-systemd-units", Deny, &[Channel(FILE), Operation(&["write"]), Resource(&["/etc/systemd/**", "/lib/systemd/**"])]),
        rule("approve-log-delete", RequireApproval, &[Channel(FILE), Operation(&["delete"]), Resource(&["/var/log/**"])]),
        rule("approve-secrets-dir", RequireApproval, &[Channel(FILE), Resource(&["**/secrets/**"])]),
        rule("deny-key-material", Deny, &[Channel(FILE), ResourceRegex(r"\.(pem|key|p12)$", &["*.pem", "*.key", "*.p12"])]),
        rule("approve-prod-config", RequireApproval, &[Channel(FILE), Operation(&["write", "delete"]), ResourceRegex("/(prod|production)/", &["*/prod/*", "*/production/*"])]),
        rule("redact-dotenv-read", AllowWithRedaction, &[Channel(FILE), Operation(&["read"]), Resource(&["**/.env", "**/.env.*"])]),
        rule("allow-workspace-files", Allow, &[Channel(FILE), Resource(&["/workspace/**"])]),
        rule("allow-tmp-files", Allow, &[Channel(FILE), Resource(&["/tmp/**"])]),
        // --- HTTP (15) ---
        rule("deny-paste-sites", Deny, &[Channel(HTTP), HostGlob(&["pastebin.com", "*.pastebin.com", "paste.ee", "transfer.sh"])]),
        rule("deny-file-sharing", Deny, &[Channel(HTTP), Operation(&["send"]), HostGlob(&["*.dropbox.com", "wetransfer.com", "*.wetransfer.com"])]),
        rule("deny-mining-pools", Deny, &[Channel(HTTP), HostGlob(&["*.nanopool.org", "*.minergate.com"])]),
        rule("deny-metadata-endpoint", Deny, &[Hosts(&["169.254.169.254", "metadata.google.internal"])]),
        rule("approve-payment", RequireApproval, &[Channel(HTTP), ResourceRegex(r"^https://api\.(stripe|paypal)\.com/", &["https://api.stripe.com/*", "https://api.paypal.com/*"])]),
        rule("deny-account-takeover", Deny, &[Channel(HTTP), ResourceRegex("/oauth/token|/api-keys", &["*/oauth/token*", "*/api-keys*"])]),
        rule("approve-external-send", RequireApproval, &[Channel(HTTP), Egress("external"), Operation(&["send"])]),
        rule("approve-github-write", RequireApproval, &[Channel(HTTP), Hosts(&["api.github.com", "uploads.github.com"]), Operation(&["send"])]),
        rule("approve-admin-paths", RequireApproval, &[Channel(HTTP), ResourceRegex("/(admin|internal)/", &["*/admin/*", "*/internal/*"])]),
        rule("approve-http-delete", RequireApproval, &[Channel(HTTP), Tool(&["DELETE"])]),
        rule("approve-webhooks", RequireApproval, &[Channel(HTTP), Resource(&["https://hooks.slack.com/**", "https://discord.com/api/webhooks/**"])]),
        rule("redact-model-api", AllowWithRedaction, &[Channel(HTTP), Hosts(&["api.openai.com", "api.anthropic.com"])]),
        rule("allow-internal-reads", Allow, &[Channel(HTTP), Egress("internal"), Operation(&["read"])]),
        rule("allow-docs", Allow, &[Channel(HTTP), Hosts(&["docs.rs", "doc.rust-lang.org", "developer.mozilla.org"])]),
        rule("allow-package-registries", Allow, &[Channel(HTTP), Operation(&["read"]), HostGlob(&["crates.io", "*.crates.io", "registry.npmjs.org", "pypi.org"])]),
        // --- MCP and SDK tools (10) ---
        rule("approve-refund-tools", RequireApproval, &[Channel(TOOLS), Tool(&["*refund*", "*credit*"])]),
        rule("approve-messaging-tools", RequireApproval, &[Channel(TOOLS), Tool(&["*send_email*", "*send_message*", "*post_message*"])]),
        rule("deny-destructive-tools", Deny, &[Channel(TOOLS), Tool(&["*delete*", "*drop*", "*purge*"]), Operation(&["delete", "write"])]),
        rule("approve-tool-writes", RequireApproval, &[Channel(TOOLS), Operation(&["send", "write", "delete"])]),
        rule("approve-hr-tables", RequireApproval, &[Channel(TOOLS), Resource(&["warehouse.hr.*", "warehouse.payroll.*"])]),
        rule("deny-pii-tables-when-sensitive", Deny, &[Channel(TOOLS), Resource(&["warehouse.pii.*"]), ZoneAtLeast("sensitive")]),
        rule("redact-customer-queries", AllowWithRedaction, &[Channel(TOOLS), Tool(&["query", "search"]), Resource(&["warehouse.customers*"])]),
        rule("allow-tool-reads", Allow, &[Channel(TOOLS), Operation(&["read"])]),
        rule("approve-high-sensitivity", RequireApproval, &[Sensitivity(&["high"])]),
        rule("approve-regulated-tags", RequireApproval, &[Tags(&["pii", "phi", "pci"])]),
        // --- Zones, session, identity (6) ---
        rule("deny-egress-from-sensitive-session", Deny, &[ZoneAtLeast("sensitive"), Egress("external")]),
        rule("approve-anything-irreversible", RequireApproval, &[Zone(&["irreversible"])]),
        rule("deny-send-after-pii", Deny, &[SessionTags(&["pii", "phi"]), Operation(&["send"])]),
        rule("approve-writes-in-commitment", RequireApproval, &[Zone(&["commitment"]), Operation(&["write", "delete"])]),
        rule("deny-intern-writes", Deny, &[Tenant(&["interns"]), Operation(&["write", "delete", "send"])]),
        rule("approve-prod-agents-exec", RequireApproval, &[Agent(&["*-prod"]), Channel(CMD), Tags(&["deploy", "release"])]),
    ]
}

/// Redaction of `allow_with_redaction` rules (the same for all).
const REDACT_PATTERN: &str = "AKIA[0-9A-Z]{16}";

/// The Warden policy: `default: allow` and the rules, as YAML.
pub(crate) fn warden_yaml(rules: &[BenchRule]) -> String {
    let mut out = String::from(
        "# Generated by `wardend bench engine` (server/src/bench/engine/rules.rs).\nversion: 1\nname: bench-100\ndefault: allow\nrules:\n",
    );
    for r in rules {
        let _ = writeln!(out, "  - id: {}", r.id);
        let _ = writeln!(out, "    decision: {}", r.verdict.as_str());
        let _ = writeln!(out, "    reason: 'bench rule {}'", r.id);
        if r.verdict == AllowWithRedaction {
            let _ = writeln!(
                out,
                "    redact: [{{ pattern: {} }}]",
                quote(REDACT_PATTERN)
            );
        }
        let _ = writeln!(out, "    match:");
        for c in &r.conds {
            let (key, value) = match c {
                Channel(v) => ("channel", list(v)),
                Tool(v) => ("tool", list(v)),
                Operation(v) => ("operation", list(v)),
                Resource(v) => ("resource", list(v)),
                ResourceRegex(re, _) => ("resource_regex", list(&[re])),
                Command(v) => ("command", list(v)),
                CommandRegex(re, _) => ("command_regex", list(&[re])),
                Hosts(v) | HostGlob(v) => ("host", list(v)),
                Egress(e) => ("egress", quote(e)),
                Sensitivity(v) => ("sensitivity", list(v)),
                Tags(v) => ("tags", list(v)),
                SessionTags(v) => ("session_tags", list(v)),
                Zone(v) => ("zone", list(v)),
                ZoneAtLeast(z) => ("zone_at_least", quote(z)),
                Agent(v) => ("agent", list(v)),
                Tenant(v) => ("tenant", list(v)),
                Facts(v) => ("facts", list(v)),
                Args(groups) => (
                    "args",
                    format!(
                        "[{}]",
                        groups
                            .iter()
                            .map(|g| list(g))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            };
            let _ = writeln!(out, "      {key}: {value}");
        }
    }
    out
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn list(items: &[&str]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| quote(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The Cedar policy set, one policy per rule (ids are the rule ids) plus `default`, a
/// catch-all permit for Warden's `default: allow`. Deny and require_approval rules
/// are `forbid`s, allow and allow_with_redaction rules `permit`s; the Warden verdict is
/// recovered from which policies determined Cedar's decision.
pub(crate) fn cedar_policies(rules: &[BenchRule]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = rules
        .iter()
        .map(|r| (r.id.to_string(), cedar_policy(r)))
        .collect();
    out.push((
        DEFAULT_POLICY_ID.to_string(),
        "permit (principal, action, resource);".to_string(),
    ));
    out
}

/// Id of the Cedar policy standing for Warden's `default: allow`.
pub(crate) const DEFAULT_POLICY_ID: &str = "default";

fn cedar_policy(r: &BenchRule) -> String {
    let effect = match r.verdict {
        Deny | RequireApproval => "forbid",
        Allow | AllowWithRedaction => "permit",
    };
    let mut scope = "action".to_string();
    let mut when = Vec::new();
    for c in &r.conds {
        match c {
            Channel(v) => {
                scope = match v {
                    [one] => format!("action == Action::\"{one}\""),
                    many => format!(
                        "action in [{}]",
                        many.iter()
                            .map(|c| format!("Action::\"{c}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
            }
            Tool(v) => when.push(matching(&["context.tool", "context.program"], v)),
            Operation(v) => when.push(one_of("context.operation", v)),
            Resource(v) => {
                let likes: Vec<String> = v.iter().map(|p| path_glob_to_like(p)).collect();
                let likes: Vec<&str> = likes.iter().map(String::as_str).collect();
                when.push(matching(&["context.resource"], &likes))
            }
            ResourceRegex(_, likes) => when.push(matching(&["context.resource"], likes)),
            Command(v) | CommandRegex(_, v) => when.push(matching(&["context.command"], v)),
            Hosts(v) => when.push(format!("context.hosts.containsAny({})", set(v))),
            HostGlob(v) => when.push(matching(&["context.host"], v)),
            Egress(e) => when.push(format!("context.egress == \"{e}\"")),
            Sensitivity(v) => when.push(one_of("context.sensitivity", v)),
            Tags(v) => when.push(format!("context.tags.containsAny({})", set(v))),
            SessionTags(v) => when.push(format!("context.session_tags.containsAny({})", set(v))),
            Zone(v) => when.push(one_of("context.zone", v)),
            ZoneAtLeast(z) => when.push(format!("context.zone_level >= {}", zone_level(z))),
            Agent(v) => when.push(matching(&["context.agent"], v)),
            Tenant(v) => when.push(one_of("context.tenant", v)),
            Facts(v) => when.push(format!("context.facts.containsAny({})", set(v))),
            Args(groups) => {
                for g in *groups {
                    when.push(format!("context.args.containsAny({})", set(g)));
                }
            }
        }
    }
    let mut text = format!("{effect} (principal, {scope}, resource)");
    if !when.is_empty() {
        let _ = write!(text, "\nwhen {{ {} }}", when.join(" && "));
    }
    text.push(';');
    text
}

/// Any of `fields` matches any of `patterns`, written as a Cedar author would: exact
/// values as `==` or one set's `contains`, wildcard patterns as `like`.
fn matching(fields: &[&str], patterns: &[&str]) -> String {
    let (likes, exact): (Vec<&str>, Vec<&str>) = patterns.iter().partition(|p| p.contains('*'));
    let mut parts = Vec::new();
    for field in fields {
        if !exact.is_empty() {
            parts.push(one_of(field, &exact));
        }
        parts.extend(likes.iter().map(|p| format!("{field} like \"{p}\"")));
    }
    match parts.as_slice() {
        [one] => one.clone(),
        _ => format!("({})", parts.join(" || ")),
    }
}

fn one_of(field: &str, values: &[&str]) -> String {
    match values {
        [one] => format!("{field} == \"{one}\""),
        many => format!("{}.contains({field})", set(many)),
    }
}

fn set(values: &[&str]) -> String {
    format!(
        "[{}]",
        values
            .iter()
            .map(|v| format!("\"{v}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A path glob as a `like` pattern: `**` and `*` both become `*` (Cedar's wildcard
/// crosses `/`; the workload has no path where that makes a difference, and the
/// agreement check would show one).
fn path_glob_to_like(glob: &str) -> String {
    let mut out = glob.replace("**", "*");
    while out.contains("**") {
        out = out.replace("**", "*");
    }
    out
}

/// Zone rank as Cedar compares it (`context.zone_level`).
pub(crate) fn zone_level(zone: &str) -> i64 {
    match zone {
        "sensitive" => 1,
        "commitment" => 2,
        "irreversible" => 3,
        _ => 0,
    }
}
