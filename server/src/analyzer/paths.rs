//! What kind of file a path names: the classes of sensitive paths rules care about.
//!
//! Paths are matched as written, after the home directory is recognised in its usual
//! spellings (`~`, `$HOME`, `/home/NAME`, `/root`), so `~/.ssh/id_rsa` and
//! `/home/dev/.ssh/id_rsa` are one class.

/// A class of sensitive path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// Credentials and keys: password hashes, private keys, cloud, cluster, registry and
    /// git credentials, browser password stores, a process's environment.
    Secret,
    /// Files that make something run later or grant access: cron, systemd, init
    /// scripts, shell startup files, `ld.so.preload`, sudoers, accounts,
    /// `authorized_keys`, autostart entries, git hooks, PAM, udev, apt hooks.
    Persistence,
    /// Logs and shell history.
    Log,
    /// Block devices and raw memory.
    Device,
    /// Anything else the system owns: `/etc`, `/usr`, `/bin`, `/lib`, `/boot`, `/var`
    /// (but `/var/tmp`), `/opt`, `/root`, `/sys`, `/proc/sys`.
    System,
}

impl Class {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Class::Secret => "a credential or key file",
            Class::Persistence => "a file that runs commands later or grants access",
            Class::Log => "a log or shell history",
            Class::Device => "a raw disk or memory device",
            Class::System => "a system path",
        }
    }
}

/// The path relative to the home directory, if it is in one.
fn in_home(p: &str) -> Option<&str> {
    for prefix in ["~/", "$HOME/", "${HOME}/", "/root/"] {
        if let Some(rest) = p.strip_prefix(prefix) {
            return Some(rest);
        }
    }
    if let Some(rest) = p.strip_prefix("/home/") {
        return rest.split_once('/').map(|(_, r)| r);
    }
    if let Some(rest) = p.strip_prefix('~')
        && let Some((_, r)) = rest.split_once('/')
    {
        return Some(r);
    }
    None
}

const HOME_SECRETS: &[&str] = &[
    ".aws/credentials",
    ".aws/config",
    ".kube/config",
    ".docker/config.json",
    ".git-credentials",
    ".netrc",
    ".pgpass",
    ".my.cnf",
    ".pypirc",
    ".vault-token",
    ".config/gh/hosts.yml",
    ".config/hub",
    ".terraform.d/credentials.tfrc.json",
];
/// Directories that, taken whole (archived, copied, sent), carry keys or credentials.
const HOME_SECRET_WHOLE_DIRS: &[&str] = &[
    ".ssh",
    ".aws",
    ".kube",
    ".docker",
    ".gnupg",
    ".azure",
    ".config/gcloud",
    ".password-store",
];
const HOME_SECRET_DIRS: &[&str] = &[
    ".gnupg/",
    ".password-store/",
    ".config/gcloud/",
    ".azure/",
    ".mozilla/firefox/",
    ".config/google-chrome/",
    ".config/chromium/",
    ".config/BraveSoftware/",
    "Library/Keychains/",
    ".local/share/keyrings/",
];
const HOME_PERSISTENCE: &[&str] = &[
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zprofile",
    ".zshenv",
    ".zlogin",
    ".cshrc",
    ".tcshrc",
    ".kshrc",
    ".xinitrc",
    ".xprofile",
    ".xsession",
    ".lessfilter",
    ".lesskey",
    ".ssh/authorized_keys",
    ".ssh/authorized_keys2",
    ".ssh/rc",
    ".config/fish/config.fish",
];
const HOME_PERSISTENCE_DIRS: &[&str] = &[
    ".config/systemd/",
    ".config/autostart/",
    ".local/share/systemd/",
];
const HOME_LOGS: &[&str] = &[
    ".bash_history",
    ".zsh_history",
    ".history",
    ".sh_history",
    ".python_history",
    ".mysql_history",
    ".psql_history",
    ".lesshst",
    ".viminfo",
];

const SYSTEM_SECRETS: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/security/opasswd",
    "/etc/master.passwd",
    "/etc/sudoers",
];
const SYSTEM_PERSISTENCE: &[&str] = &[
    "/etc/cron",
    "/var/spool/cron",
    "/etc/anacrontab",
    "/etc/systemd/",
    "/lib/systemd/",
    "/usr/lib/systemd/",
    "/run/systemd/",
    "/etc/init.d/",
    "/etc/init/",
    "/etc/rc.local",
    "/etc/rc",
    "/etc/profile",
    "/etc/bash.bashrc",
    "/etc/bashrc",
    "/etc/zsh/",
    "/etc/environment",
    "/etc/ld.so.preload",
    "/etc/ld.so.conf",
    "/etc/sudoers",
    "/etc/passwd",
    "/etc/group",
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/pam.d/",
    "/etc/security/",
    "/etc/xdg/autostart/",
    "/etc/update-motd.d/",
    "/etc/udev/rules.d/",
    "/etc/modprobe.d/",
    "/etc/modules",
    "/etc/apt/apt.conf.d/",
    "/etc/ssh/sshd_config",
    "/etc/hosts",
    "/etc/resolv.conf",
];
const DEVICES: &[&str] = &[
    "/dev/sd",
    "/dev/hd",
    "/dev/vd",
    "/dev/xvd",
    "/dev/nvme",
    "/dev/mmcblk",
    "/dev/md",
    "/dev/dm-",
    "/dev/mapper/",
    "/dev/disk/",
    "/dev/mem",
    "/dev/kmem",
    "/dev/port",
];
const SYSTEM_DIRS: &[&str] = &[
    "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/var",
    "/opt", "/root", "/sys", "/srv",
];

/// The class of a path, if it has one. A path with a glob or a variable left in it is
/// classed by what can be read of it.
pub(super) fn classify(path: &str) -> Option<Class> {
    let p = path.trim();
    if p.is_empty() {
        return None;
    }
    if let Some(rest) = in_home(p) {
        let rest = rest.trim_start_matches("./");
        let whole = rest.trim_end_matches('/');
        if is_private_key(rest)
            || HOME_SECRETS.contains(&rest)
            || HOME_SECRET_WHOLE_DIRS.contains(&whole)
        {
            return Some(Class::Secret);
        }
        if HOME_SECRET_DIRS
            .iter()
            .any(|d| rest.starts_with(d) || rest == d.trim_end_matches('/'))
        {
            return Some(Class::Secret);
        }
        if HOME_PERSISTENCE.contains(&rest)
            || HOME_PERSISTENCE_DIRS
                .iter()
                .any(|d| rest.starts_with(d) || rest == d.trim_end_matches('/'))
        {
            return Some(Class::Persistence);
        }
        if HOME_LOGS.contains(&rest) {
            return Some(Class::Log);
        }
        return p.starts_with("/root").then_some(Class::System);
    }
    if !p.starts_with('/') {
        // Relative paths: only the repository hooks directory stands out.
        return (p.contains(".git/hooks/")).then_some(Class::Persistence);
    }
    if p.starts_with("/proc/") && (p.ends_with("/environ") || p.ends_with("/mem")) {
        return Some(Class::Secret);
    }
    if p.starts_with("/etc/ssh/ssh_host_") && !p.ends_with(".pub") {
        return Some(Class::Secret);
    }
    if SYSTEM_SECRETS
        .iter()
        .any(|s| p == *s || p.starts_with(&format!("{s}.")))
    {
        return Some(Class::Secret);
    }
    if p.contains("/.git/hooks/") {
        return Some(Class::Persistence);
    }
    if SYSTEM_PERSISTENCE.iter().any(|s| p.starts_with(s)) {
        return Some(Class::Persistence);
    }
    if p.starts_with("/var/log") || p.starts_with("/var/adm") || p.ends_with("/wtmp") {
        return Some(Class::Log);
    }
    if DEVICES.iter().any(|d| p.starts_with(d)) {
        return Some(Class::Device);
    }
    if p.starts_with("/var/tmp") || p.starts_with("/proc/self/fd") {
        return None;
    }
    if p.starts_with("/proc/sys/") {
        return Some(Class::System);
    }
    let top = p.split('/').nth(1).unwrap_or_default();
    SYSTEM_DIRS
        .iter()
        .any(|d| &d[1..] == top)
        .then_some(Class::System)
}

/// `.ssh/id_rsa` and other private keys under `.ssh` (public halves excluded).
fn is_private_key(rest: &str) -> bool {
    let Some(name) = rest.strip_prefix(".ssh/") else {
        return false;
    };
    !name.ends_with(".pub")
        && (name.starts_with("id_") || name.contains("_key") || name.ends_with(".pem"))
}

/// Paths that may be hidden inside an argument: `@file` (curl), `file://…`,
/// `key=value`, `host:path`, `-Ofile`, and `--opt=value`.
pub(super) fn in_argument(arg: &str) -> Vec<&str> {
    fn push<'a>(out: &mut Vec<&'a str>, s: &'a str) {
        let s = s.trim_matches(|c| c == '"' || c == '\'' || c == ',' || c == ';');
        let s = s.strip_prefix('@').unwrap_or(s);
        if s.starts_with('/')
            || s.starts_with('~')
            || s.starts_with("$HOME")
            || s.starts_with("${HOME}")
        {
            out.push(s);
        }
    }
    let mut out = Vec::new();
    if let Some(i) = arg.find("file://") {
        push(&mut out, &arg[i + 7..]);
    }
    push(&mut out, arg);
    if let Some((_, v)) = arg.split_once('=') {
        push(&mut out, v);
    }
    for piece in arg.split([
        ' ', ':', ',', '(', ')', '<', '>', '"', '\'', '=', ';', '\n', '{', '}', '@', '|', '\t',
    ]) {
        push(&mut out, piece);
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_common_paths() {
        for (path, class) in [
            ("/etc/shadow", Some(Class::Secret)),
            ("~/.ssh/id_ed25519", Some(Class::Secret)),
            ("/home/dev/.aws/credentials", Some(Class::Secret)),
            ("/proc/1/environ", Some(Class::Secret)),
            ("~/.ssh/id_rsa.pub", None),
            ("/etc/cron.d/job", Some(Class::Persistence)),
            ("~/.bashrc", Some(Class::Persistence)),
            ("/etc/ld.so.preload", Some(Class::Persistence)),
            ("repo/.git/hooks/pre-commit", Some(Class::Persistence)),
            ("/var/log/auth.log", Some(Class::Log)),
            ("~/.bash_history", Some(Class::Log)),
            ("/dev/sda", Some(Class::Device)),
            ("/usr/local/bin/tool", Some(Class::System)),
            ("/var/tmp/x", None),
            ("/tmp/x", None),
            ("./build/out", None),
            ("/home/dev/project/src/main.rs", None),
        ] {
            assert_eq!(classify(path), class, "{path}");
        }
    }

    #[test]
    fn paths_hidden_in_arguments() {
        assert_eq!(in_argument("@/etc/shadow"), ["/etc/shadow"]);
        assert!(in_argument("--data-binary=@/etc/shadow").contains(&"/etc/shadow"));
        assert!(in_argument("file:///etc/passwd").contains(&"/etc/passwd"));
        assert!(in_argument("Include /etc/shadow").contains(&"/etc/shadow"));
        assert!(in_argument("plain-word").is_empty());
    }
}
