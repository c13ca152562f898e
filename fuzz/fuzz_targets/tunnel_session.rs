//! Fuzzes the sans-IO multiplexer (`tunnel-proto`'s `Session`): arbitrary
//! bytes from a hostile peer must never panic it or break its flow-control
//! accounting; `fuzz_session` checks the invariants itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tunnel_proto::fuzz_session(data);
});
