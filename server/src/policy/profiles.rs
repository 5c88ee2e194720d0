//! Built-in profiles: policy files compiled into the binary, included by name
//! (`profiles: [coding-agent]`). Each is a file under `policies/profiles/`, documented
//! in docs/POLICY.md; a test loads every one.

/// A built-in profile.
#[derive(Debug, Clone, Copy)]
pub struct ProfileInfo {
    pub name: &'static str,
    pub yaml: &'static str,
}

/// Every built-in profile.
pub const PROFILES: &[ProfileInfo] = &[
    ProfileInfo {
        name: "baseline",
        yaml: include_str!("../../../policies/profiles/baseline.yaml"),
    },
    ProfileInfo {
        name: "coding-agent",
        yaml: include_str!("../../../policies/profiles/coding-agent.yaml"),
    },
    ProfileInfo {
        name: "research-agent",
        yaml: include_str!("../../../policies/profiles/research-agent.yaml"),
    },
    ProfileInfo {
        name: "customer-support",
        yaml: include_str!("../../../policies/profiles/customer-support.yaml"),
    },
    ProfileInfo {
        name: "data-analyst",
        yaml: include_str!("../../../policies/profiles/data-analyst.yaml"),
    },
    ProfileInfo {
        name: "enterprise-safe",
        yaml: include_str!("../../../policies/profiles/enterprise-safe.yaml"),
    },
];

pub(super) fn text(name: &str) -> Option<&'static str> {
    PROFILES.iter().find(|p| p.name == name).map(|p| p.yaml)
}

pub(super) fn names() -> Vec<&'static str> {
    PROFILES.iter().map(|p| p.name).collect()
}
