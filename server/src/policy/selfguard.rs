//! Self-protection: recognizing actions that touch Warden itself (its binaries, policy,
//! database, credentials, or the running daemon), which rules match with
//! `warden_self: true`.
//!
//! The built-in guard knows the conventional locations; a running daemon adds the exact
//! paths it was started with and its own process id.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::normalize::NormalizedAction;

/// Conventional locations of Warden's files, as path globs.
const BUILTIN_PATHS: &[&str] = &[
    "**/bin/wardend",
    "**/bin/warden",
    "**/warden.db",
    "**/warden.db-wal",
    "**/warden.db-shm",
    "**/warden.db-journal",
    "/etc/warden",
    "/etc/warden/**",
    "/var/lib/warden",
    "/var/lib/warden/**",
    "**/.config/warden",
    "**/.config/warden/**",
    "**/warden-admin.token",
];

/// Programs that stop or signal processes and services.
const PROCESS_CONTROL: &[&str] = &[
    "kill",
    "pkill",
    "killall",
    "skill",
    "systemctl",
    "service",
    "launchctl",
    "supervisorctl",
];

/// Recognizes actions that touch Warden.
#[derive(Debug, Clone)]
pub struct SelfGuard {
    paths: GlobSet,
    /// The daemon's process id, when running as one.
    pid: Option<u32>,
}

impl SelfGuard {
    /// Only the conventional locations (offline tools, tests); built once.
    pub fn builtin() -> &'static SelfGuard {
        static BUILTIN: LazyLock<SelfGuard> = LazyLock::new(|| SelfGuard::with_paths(&[], None));
        &BUILTIN
    }

    /// The conventional locations plus the daemon's own files and process id.
    pub fn for_daemon(files: &[PathBuf]) -> SelfGuard {
        SelfGuard::with_paths(files, Some(std::process::id()))
    }

    fn with_paths(files: &[PathBuf], pid: Option<u32>) -> SelfGuard {
        let mut set = GlobSetBuilder::new();
        for pattern in BUILTIN_PATHS {
            if let Ok(glob) = GlobBuilder::new(pattern).literal_separator(true).build() {
                set.add(glob);
            }
        }
        for file in files {
            for variant in variants(file) {
                if let Ok(glob) = Glob::new(&globset::escape(&variant)) {
                    set.add(glob);
                }
            }
        }
        SelfGuard {
            paths: set.build().unwrap_or_else(|_| GlobSet::empty()),
            pid,
        }
    }

    /// Whether the action reads, writes or signals Warden.
    pub fn touches(&self, a: &NormalizedAction) -> bool {
        if !a.resource.is_empty() && self.paths.is_match(&a.resource) {
            return true;
        }
        if a.arg_paths.iter().any(|p| self.paths.is_match(p)) {
            return true;
        }
        let Some(exec) = &a.exec else {
            return false;
        };
        if exec.arg_forms.iter().any(|f| self.paths.is_match(f)) {
            return true;
        }
        if PROCESS_CONTROL.contains(&exec.program.as_str()) {
            let pid = self.pid.map(|p| p.to_string());
            return a.command_line.contains("warden")
                || exec.args.iter().any(|arg| Some(arg) == pid.as_ref());
        }
        false
    }
}

/// A file and the companions that hold the same data (SQLite's WAL and journal).
fn variants(file: &Path) -> Vec<String> {
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let base = absolute.display().to_string();
    let mut out = vec![base.clone()];
    for suffix in ["-wal", "-shm", "-journal"] {
        out.push(format!("{base}{suffix}"));
    }
    out
}
