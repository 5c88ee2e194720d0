//! The policy loader on arbitrary YAML: it must never panic, an invalid file must come
//! back as an error naming the file and a position inside it, and a valid one must
//! load to the same version twice (the version is the hash of the canonical form).
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden_server::policy::Policy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Policy::from_yaml("fuzz.yaml", text) {
        Ok(policy) => {
            let again = Policy::from_yaml("fuzz.yaml", text).expect("loads twice");
            assert_eq!(policy.version(), again.version());
        }
        Err(e) => {
            assert_eq!(e.file, "fuzz.yaml");
            assert!(!e.message.is_empty());
            // YAML breaks lines at \n, \r\n and a lone \r alike.
            let lines = text
                .replace("\r\n", "\n")
                .replace('\r', "\n")
                .lines()
                .count() as u64
                + 1;
            assert!(e.line <= lines, "line {} of {lines}: {}", e.line, e.message);
        }
    }
});
