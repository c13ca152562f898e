//! TLS of the site connection (agent to gateway) with a record layer of
//! comgate's own after rustls's handshake.
//!
//! Why: behind tokio-rustls every received byte of the busiest connection
//! was copied three times in user space (from the read-ahead buffer into
//! rustls's, from there into a queue after decryption, from that into the
//! reader's buffer), and rustls keeps a 4 KiB buffer and its connection
//! state for the connection's lifetime, about 6 of an idle site's 13 KiB.
//! Here records are read into one buffer held only while bytes arrive,
//! decrypted in place and copied out once; rustls still does the
//! handshake, the AEAD, the key schedule of key updates and the client's
//! ticket store (`rustls::kernel`). Both ends' records stay standard TLS
//! 1.3, so either end also talks to a peer that uses rustls throughout.

pub mod handshake;
pub mod records;
pub mod stream;

#[cfg(test)]
mod tests;

pub use handshake::{accept, connect, Connected};
pub use stream::SiteTls;
