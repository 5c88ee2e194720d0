//! Built-in profiles: policy files compiled into the binary, included by name
//! (`profiles: [coding-agent]`). Each is a file under `policies/profiles/`, documented
//! in docs/POLICY.md; a test loads every one.

/// A built-in profile.
#[derive(Debug, Clone, Copy)]
pub struct ProfileInfo {
    pub name: &'static str,
    pub yaml: &'static str,
}

/// A profile named `$name`, read from `policies/profiles/$name.yaml`.
macro_rules! profile {
    ($name:literal) => {
        ProfileInfo {
            name: $name,
            yaml: include_str!(concat!("../../../policies/profiles/", $name, ".yaml")),
        }
    };
}

/// Every built-in profile.
pub const PROFILES: &[ProfileInfo] = &[
    profile!("baseline"),
    profile!("coding-agent"),
    profile!("research-agent"),
    profile!("customer-support"),
    profile!("data-analyst"),
    profile!("enterprise-safe"),
];

pub(super) fn text(name: &str) -> Option<&'static str> {
    PROFILES.iter().find(|p| p.name == name).map(|p| p.yaml)
}

pub(super) fn names() -> Vec<&'static str> {
    PROFILES.iter().map(|p| p.name).collect()
}
