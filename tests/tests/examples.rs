//! Every example configuration ships working: each policy under `policies/` compiles,
//! each YAML under `deploy/` parses, and each Warden policy embedded in a deploy
//! ConfigMap (a data key ending in `.yaml` that has `rules:`) compiles too.

use std::path::{Path, PathBuf};

use warden_server::policy::Policy;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(yaml_files(&path));
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn every_policy_file_compiles() {
    // Scenario files are not policies; `sessions.rs` runs them through `wardend check`,
    // and the certify suites' unit tests run every case under policies/certify.
    let files: Vec<_> = yaml_files(&repo().join("policies"))
        .into_iter()
        .filter(|f| !f.starts_with(repo().join("policies/scenarios")))
        .filter(|f| !f.starts_with(repo().join("policies/certify")))
        .collect();
    assert!(
        files.iter().any(|f| f.ends_with("default.yaml")),
        "{files:?}"
    );
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("profiles/enterprise-safe.yaml")),
        "{files:?}"
    );
    for file in files {
        let policy = Policy::from_file(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(policy.rule_count() > 0, "{} has no rules", file.display());
    }
}

#[test]
fn every_built_in_profile_is_its_file_in_policies() {
    for profile in warden_server::policy::PROFILES {
        let path = repo().join(format!("policies/profiles/{}.yaml", profile.name));
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert_eq!(on_disk, profile.yaml, "{}", path.display());
    }
}

#[test]
fn the_embedded_default_is_the_file_in_policies() {
    let on_disk = std::fs::read_to_string(repo().join("policies/default.yaml")).unwrap();
    assert_eq!(on_disk, warden_server::policy::DEFAULT_POLICY_YAML);
}

#[test]
fn every_deploy_manifest_parses_and_embedded_policies_compile() {
    let files = yaml_files(&repo().join("deploy"));
    assert!(!files.is_empty(), "deploy/ has no manifests");
    let mut policies = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let docs: Vec<serde_json::Value> = serde_saphyr::from_str_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(!docs.is_empty(), "{} is empty", file.display());
        for doc in docs {
            if doc["kind"] != "ConfigMap" {
                continue;
            }
            let Some(data) = doc["data"].as_object() else {
                continue;
            };
            for (key, value) in data {
                let Some(text) = value.as_str() else { continue };
                if key.ends_with(".yaml") && text.contains("rules:") {
                    let name = format!("{}#{key}", file.display());
                    Policy::from_yaml(&name, text).unwrap_or_else(|e| panic!("{e}"));
                    policies += 1;
                }
            }
        }
    }
    assert!(policies > 0, "no Warden policy found in deploy/ ConfigMaps");
}
