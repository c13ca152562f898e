//! Fuzzes the gateway <-> site agent frame codec (`tunnel-proto`): every
//! frame decoded from arbitrary bytes must survive encode-then-decode
//! unchanged; `fuzz_decode` asserts that itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tunnel_proto::fuzz_decode(data);
});
