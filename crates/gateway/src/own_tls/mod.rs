//! TLS with a record layer of comgate's own after rustls's handshake, on
//! the site connection (agent to gateway, TLS 1.3) and on the partners'
//! connections to the front door (TLS 1.3 or 1.2).
//!
//! Why: behind tokio-rustls every received byte of a busy connection
//! was copied three times in user space (from the read-ahead buffer into
//! rustls's, from there into a queue after decryption, from that into the
//! reader's buffer), and rustls keeps a 4 KiB buffer and its connection
//! state for the connection's lifetime, about 6 of an idle site's 13 KiB
//! (and of every idle tunnel's front-door connection).
//! Here records are read into one buffer held only while bytes arrive,
//! decrypted in place and copied out once; rustls still does the
//! handshake, the AEAD, the key schedule of key updates and the client's
//! ticket store (`rustls::kernel`). The records stay standard TLS, so
//! either end also talks to a peer that uses rustls or OpenSSL throughout.

pub mod handshake;
pub mod records;
pub mod stream;

#[cfg(test)]
mod tests;

pub use handshake::{accept, connect, Accepted, Connected};
pub use stream::OwnTls;
