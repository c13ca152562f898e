//! Fuzzes the CONNECT front door's request-head parser
//! (`gateway::connect_head`): never a panic, never a head longer than the
//! input or the limit, and the same answer however the bytes were split.
#![no_main]

use gateway::connect_head::{parse_head, HeadParse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose the limit, so small limits are exercised too.
    let (limit, buf) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => (8192, data),
    };
    let whole = parse_head(buf, limit);
    if let Ok(HeadParse::Complete(_, head_len)) = &whole {
        assert!(
            *head_len <= buf.len(),
            "head_len {head_len} > input {}",
            buf.len()
        );
        assert!(*head_len <= limit, "head_len {head_len} > limit {limit}");
        // Everything up to the head is still incomplete; the head alone is the same answer.
        if *head_len > 0 {
            assert_eq!(
                parse_head(&buf[..head_len - 1], limit),
                Ok(HeadParse::Partial)
            );
        }
        assert_eq!(parse_head(&buf[..*head_len], limit), whole);
    }
    // A prefix is either Partial or the same answer as the whole buffer.
    let half = &buf[..buf.len() / 2];
    let part = parse_head(half, limit);
    assert!(
        part == Ok(HeadParse::Partial) || part == whole,
        "prefix {part:?} vs whole {whole:?}"
    );
});
