//! The command analyzer on arbitrary input: it must never panic, and it must answer
//! with bounded output however the input nests, quotes or encodes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let analysis = warden_server::analyzer::analyze(&line);
    assert!(analysis.notes.len() <= 32);
    assert!(analysis.hosts.len() <= 64);
});
