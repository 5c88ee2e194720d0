//! `warden llm`'s stream readers on arbitrary bytes: parsing server-sent events and
//! assembling them — as chat-completion chunks and as Responses API events — must never
//! panic, and a stream synthesized from what was assembled must read back as the same
//! answer (what the client gets after a rewrite says exactly what was judged).
#![no_main]

// The modules themselves, compiled here: they need only `bytes` and `serde_json`, and
// the interceptor crate keeps them private.
#[path = "../../interceptors/src/llm/stream.rs"]
#[allow(dead_code, unreachable_pub)]
mod stream;
#[path = "../../interceptors/src/llm/responses_stream.rs"]
#[allow(dead_code, unreachable_pub)]
mod responses_stream;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(events) = stream::events(data) else {
        return;
    };
    if let Ok(completion) = stream::assemble(&events) {
        let again = stream::synthesize(&completion);
        let events = stream::events(&again).expect("a synthesized stream parses");
        let back = stream::assemble(&events).expect("a synthesized stream assembles");
        assert_eq!(back["choices"], completion["choices"]);
        assert_eq!(back.get("usage"), completion.get("usage"));
    }
    if let Ok(response) = responses_stream::assemble(&events) {
        let again = responses_stream::synthesize(&response);
        let events = stream::events(&again).expect("a synthesized Responses stream parses");
        let back = responses_stream::assemble(&events)
            .expect("a synthesized Responses stream assembles");
        assert_eq!(back, response);
    }
});
