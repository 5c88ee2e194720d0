//! Lexical path normalization: no file system access, so a path that does not exist yet
//! (a file about to be written) normalizes the same as one that does.

/// True when a resource or argument is meant as a file system path.
pub(crate) fn looks_like_path(s: &str) -> bool {
    s.starts_with('/') || s.starts_with("./") || s.starts_with("../") || s.starts_with('~')
}

/// Makes `p` absolute against `cwd` (when relative and a cwd is known), removes `.`,
/// resolves `..` lexically, collapses repeated slashes and drops a trailing slash.
/// A leading `~` (home) is kept as the first component, since the daemon does not know
/// whose home an agent runs in; policies write `~/.aws/**`.
pub(crate) fn clean(p: &str, cwd: &str) -> String {
    let joined;
    let p = if !p.starts_with('/') && !p.starts_with('~') && !cwd.is_empty() {
        joined = format!("{cwd}/{p}");
        joined.as_str()
    } else {
        p
    };
    let absolute = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts
                    .last()
                    .is_some_and(|last| *last != ".." && *last != "~")
                {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            part => parts.push(part),
        }
    }
    let body = parts.join("/");
    if absolute {
        format!("/{body}")
    } else if body.is_empty() {
        ".".into()
    } else {
        body
    }
}
