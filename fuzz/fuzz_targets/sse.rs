//! `warden llm`'s stream reader on arbitrary bytes: parsing server-sent events and
//! assembling chat-completion chunks must never panic, and a stream it synthesizes
//! from what it assembled must read back as the same completion (what the client gets
//! after a rewrite says exactly what was judged).
#![no_main]

// The module itself, compiled here: it needs only `bytes` and `serde_json`, and the
// interceptor crate keeps it private.
#[path = "../../interceptors/src/llm/stream.rs"]
#[allow(dead_code, unreachable_pub)]
mod stream;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(events) = stream::events(data) else {
        return;
    };
    let Ok(completion) = stream::assemble(&events) else {
        return;
    };
    let again = stream::synthesize(&completion);
    let events = stream::events(&again).expect("a synthesized stream parses");
    let back = stream::assemble(&events).expect("a synthesized stream assembles");
    assert_eq!(back["choices"], completion["choices"]);
    assert_eq!(back.get("usage"), completion.get("usage"));
});
