//! The HTTP/1.1 request head a partner's client sends to the CONNECT front
//! door, parsed from bytes.
//!
//! The front door reads from TLS into a buffer and calls [`parse_head`] after
//! every read until it returns [`HeadParse::Complete`]; everything after the
//! head belongs to the tunnel (a client may send its first tunnel bytes right
//! behind the CONNECT line) and is left untouched. This module only says what
//! the client sent; which methods are allowed, whether the credentials are
//! good and where the target leads are later steps of the pipeline.
//!
//! It is pure (no I/O, no clock) so it is unit-tested, property-tested and
//! fuzzed (`fuzz/fuzz_targets/connect_head.rs`). The tokenising is
//! `httparse`'s; headers live in a stack array and the only allocations are
//! the strings returned.
//!
//! What real clients send (shared/acceptance/CLIENTS.md): proxytunnel
//! `Host: <proxy host>` and `Proxy-Connection: Keep-Alive`; curl and Chromium
//! `Host: <dest>:<port>`; Chromium's first CONNECT carries no credentials.
//! `Host` is therefore ignored: only the request target says where to go.

use std::fmt;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

/// Headers accepted in one request head; more is answered with 431.
pub const MAX_HEADERS: usize = 64;

/// Standard base64 alphabet, padding optional: some clients strip the `=`.
const BASIC_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Result of one parse attempt over the bytes read so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadParse {
    /// The head is not complete yet and the limit is not reached: read more.
    Partial,
    /// The head and its length in bytes, including the blank line that ends
    /// it. Bytes after that length belong to the tunnel.
    Complete(RequestHead, usize),
}

/// The parts of a request head the front door acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method exactly as sent (methods are case-sensitive: `connect` is
    /// not `CONNECT`).
    pub method: String,
    /// The request-target as sent; for CONNECT, `host[:port]`.
    pub target: String,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0 (nothing else parses).
    pub minor_version: u8,
    /// The `Proxy-Authorization` header, if present.
    pub proxy_authorization: Option<ProxyAuth>,
    /// `Connection: close` or `Proxy-Connection: close` was sent: close the
    /// connection after answering (e.g. after a 407).
    pub connection_close: bool,
}

impl RequestHead {
    /// Whether this is a CONNECT request (the only method the front door
    /// serves; the caller refuses the others).
    pub fn is_connect(&self) -> bool {
        self.method == "CONNECT"
    }
}

/// What the `Proxy-Authorization` header held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyAuth {
    /// `Basic <base64(user:password)>`, decoded.
    Basic(Credentials),
    /// A well-formed header with a scheme other than Basic (Digest, NTLM,
    /// Negotiate, ...), which comgate does not support.
    Other,
    /// Basic with a payload that is not base64 of UTF-8 `user:password`, an
    /// empty header, or more than one Proxy-Authorization header.
    Malformed,
}

/// A user name and password from Basic proxy authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Everything before the first ':' of the decoded payload.
    pub username: String,
    /// Everything after it (may itself contain ':').
    pub password: Password,
}

/// A password that does not print: `Debug` shows `********`, so it cannot
/// leak through logs, errors or panics by accident. Equality is
/// constant-time in the contents.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// The password itself, for verification only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

impl PartialEq for Password {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq as _;
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for Password {}

/// Why a request head is refused outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// The head did not end within the limit (answer 431).
    #[error("request head not complete within the size limit")]
    TooLarge,
    /// More than [`MAX_HEADERS`] header fields (answer 431).
    #[error("more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    /// Not an HTTP/1.x request head (answer 400).
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
}

/// Parses the request head at the start of `buf`.
///
/// Returns [`HeadParse::Partial`] while the head is incomplete and fewer than
/// `max_head_bytes` bytes have been given, [`HeadError::TooLarge`] once
/// `max_head_bytes` bytes hold no complete head. A head of exactly
/// `max_head_bytes` bytes is accepted. The result for a given head does not
/// depend on how it was split across reads.
pub fn parse_head(buf: &[u8], max_head_bytes: usize) -> Result<HeadParse, HeadError> {
    // Never look past the limit, so a flood of bytes costs at most one limit's worth.
    let window = buf.get(..max_head_bytes).unwrap_or(buf);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(window) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if window.len() >= max_head_bytes => {
            return Err(HeadError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(HeadParse::Partial),
        Err(e) => return Err(map_httparse_error(e)),
    };
    // httparse fills method, path and version whenever it returns Complete.
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return Err(HeadError::Malformed("incomplete request line"));
    };

    let mut proxy_authorization = None;
    let mut connection_close = false;
    for header in req.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("proxy-authorization") {
            proxy_authorization = Some(match proxy_authorization {
                // Two credentials are ambiguous; which one a proxy in front
                // of us checked is unknown. Refuse both.
                Some(_) => ProxyAuth::Malformed,
                None => parse_proxy_authorization(header.value),
            });
        } else if name.eq_ignore_ascii_case("connection")
            || name.eq_ignore_ascii_case("proxy-connection")
        {
            connection_close |= has_close_token(header.value);
        }
    }

    Ok(HeadParse::Complete(
        RequestHead {
            method: method.to_owned(),
            target: target.to_owned(),
            minor_version,
            proxy_authorization,
            connection_close,
        },
        head_len,
    ))
}

fn map_httparse_error(e: httparse::Error) -> HeadError {
    use httparse::Error as E;
    match e {
        E::TooManyHeaders => HeadError::TooManyHeaders,
        E::HeaderName => HeadError::Malformed("invalid header name"),
        E::HeaderValue => HeadError::Malformed("invalid header value"),
        E::NewLine => HeadError::Malformed("invalid line ending"),
        E::Token => HeadError::Malformed("invalid method or request-target"),
        E::Version => HeadError::Malformed("not HTTP/1.0 or HTTP/1.1"),
        E::Status => HeadError::Malformed("invalid status"),
    }
}

/// `Connection`/`Proxy-Connection` hold a comma-separated list of options;
/// `close` anywhere in it (any case) means close.
fn has_close_token(value: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
}

/// `credentials = auth-scheme [ 1*SP token68 ]` (RFC 9110 11.4); only Basic
/// (RFC 7617) is decoded.
pub fn parse_proxy_authorization(value: &[u8]) -> ProxyAuth {
    let value = value.trim_ascii();
    let (scheme, rest) = match value.iter().position(|&b| b == b' ' || b == b'\t') {
        Some(i) => (&value[..i], value[i..].trim_ascii_start()),
        None => (value, &b""[..]),
    };
    if scheme.is_empty() {
        return ProxyAuth::Malformed;
    }
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return ProxyAuth::Other;
    }
    if rest.is_empty() {
        return ProxyAuth::Malformed;
    }
    let Ok(decoded) = BASIC_B64.decode(rest) else {
        return ProxyAuth::Malformed;
    };
    let Ok(mut user_pass) = String::from_utf8(decoded) else {
        return ProxyAuth::Malformed;
    };
    let Some(colon) = user_pass.find(':') else {
        return ProxyAuth::Malformed;
    };
    // Reuse the decoded buffer for the user name; only the password is copied.
    let password = user_pass.split_off(colon + 1);
    user_pass.truncate(colon);
    ProxyAuth::Basic(Credentials {
        username: user_pass,
        password: Password(password),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    const LIMIT: usize = 8192;

    fn complete(buf: &[u8]) -> (RequestHead, usize) {
        match parse_head(buf, LIMIT) {
            Ok(HeadParse::Complete(head, len)) => (head, len),
            other => panic!("expected a complete head, got {other:?}"),
        }
    }

    fn basic(user: &str, pass: &str) -> ProxyAuth {
        ProxyAuth::Basic(Credentials {
            username: user.into(),
            password: Password::new(pass),
        })
    }

    fn auth_header(payload: &[u8]) -> Vec<u8> {
        let mut req =
            b"CONNECT 1.maint.example.com:22 HTTP/1.1\r\nProxy-Authorization: Basic ".to_vec();
        req.extend_from_slice(STANDARD.encode(payload).as_bytes());
        req.extend_from_slice(b"\r\n\r\n");
        req
    }

    // What proxytunnel 1.10 sends (Host is the proxy, not the destination).
    const PROXYTUNNEL: &[u8] = b"CONNECT cust1-sys1.maint.example.test:22 HTTP/1.1\r\n\
Host: maint.example.test\r\n\
Proxy-Authorization: Basic YWNjOnNlY3JldA==\r\n\
Proxy-Connection: Keep-Alive\r\n\r\n";

    // What curl 7.88 sends with --proxy-user.
    const CURL: &[u8] = b"CONNECT cust1-sys1.maint.example.test:7071 HTTP/1.1\r\n\
Host: cust1-sys1.maint.example.test:7071\r\n\
Proxy-Authorization: Basic YWNjOnNlY3JldA==\r\n\
User-Agent: curl/7.88.1\r\n\
Proxy-Connection: Keep-Alive\r\n\r\n";

    // Chromium's first CONNECT: no credentials.
    const CHROMIUM_FIRST: &[u8] = b"CONNECT cust1-sys1.maint.example.test:7071 HTTP/1.1\r\n\
Host: cust1-sys1.maint.example.test:7071\r\n\
Proxy-Connection: keep-alive\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36\r\n\r\n";

    // Chromium's retry after the 407.
    const CHROMIUM_RETRY: &[u8] = b"CONNECT cust1-sys1.maint.example.test:7071 HTTP/1.1\r\n\
Host: cust1-sys1.maint.example.test:7071\r\n\
Proxy-Connection: keep-alive\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36\r\n\
Proxy-Authorization: Basic YWNjOnNlY3JldA==\r\n\r\n";

    #[test]
    fn proxytunnel_connect_routes_on_target_not_host() {
        let (head, len) = complete(PROXYTUNNEL);
        assert_eq!(len, PROXYTUNNEL.len());
        assert!(head.is_connect());
        assert_eq!(head.method, "CONNECT");
        assert_eq!(head.target, "cust1-sys1.maint.example.test:22");
        assert_eq!(head.minor_version, 1);
        assert_eq!(head.proxy_authorization, Some(basic("acc", "secret")));
        assert!(!head.connection_close);
    }

    #[test]
    fn putty_recipe_target_without_port_is_passed_through() {
        let (head, _) = complete(
            b"CONNECT 12345-sys.maint.example.com HTTP/1.1\r\nHost: maint.example.com\r\n\r\n",
        );
        assert_eq!(head.target, "12345-sys.maint.example.com");
    }

    #[test]
    fn curl_connect() {
        let (head, len) = complete(CURL);
        assert_eq!(len, CURL.len());
        assert_eq!(head.target, "cust1-sys1.maint.example.test:7071");
        assert_eq!(head.proxy_authorization, Some(basic("acc", "secret")));
        assert!(!head.connection_close);
    }

    #[test]
    fn chromium_first_connect_has_no_credentials() {
        let (head, _) = complete(CHROMIUM_FIRST);
        assert!(head.is_connect());
        assert_eq!(head.proxy_authorization, None);
        let (head, _) = complete(CHROMIUM_RETRY);
        assert_eq!(head.proxy_authorization, Some(basic("acc", "secret")));
    }

    #[test]
    fn chromium_background_post_is_parsed_but_not_connect() {
        let req = b"POST http://update.googleapis.com/service/update2/json HTTP/1.1\r\n\
Host: update.googleapis.com\r\nContent-Length: 5\r\n\r\nhello";
        let (head, len) = complete(req);
        assert!(!head.is_connect());
        assert_eq!(head.method, "POST");
        assert_eq!(
            head.target,
            "http://update.googleapis.com/service/update2/json"
        );
        assert_eq!(&req[len..], b"hello");
    }

    #[test]
    fn lowercase_method_is_not_connect() {
        let (head, _) = complete(b"connect 1.maint.example.com:22 HTTP/1.1\r\n\r\n");
        assert_eq!(head.method, "connect");
        assert!(!head.is_connect());
    }

    #[test]
    fn http_1_0_is_reported() {
        let (head, _) = complete(b"CONNECT 1.maint.example.com:22 HTTP/1.0\r\n\r\n");
        assert_eq!(head.minor_version, 0);
    }

    #[test]
    fn bytes_after_the_head_belong_to_the_tunnel() {
        let mut buf = PROXYTUNNEL.to_vec();
        buf.extend_from_slice(b"SSH-2.0-OpenSSH_9.2p1\r\n");
        let (_, len) = complete(&buf);
        assert_eq!(len, PROXYTUNNEL.len());
        assert_eq!(&buf[len..], b"SSH-2.0-OpenSSH_9.2p1\r\n");
        // Even if they look like another request.
        let mut buf = CURL.to_vec();
        buf.extend_from_slice(CURL);
        assert_eq!(complete(&buf).1, CURL.len());
    }

    #[test]
    fn every_split_point_gives_partial_then_the_same_complete() {
        for req in [PROXYTUNNEL, CURL, CHROMIUM_FIRST, CHROMIUM_RETRY] {
            let whole = parse_head(req, LIMIT);
            for cut in 0..req.len() {
                assert_eq!(
                    parse_head(&req[..cut], LIMIT),
                    Ok(HeadParse::Partial),
                    "cut at {cut}"
                );
            }
            assert_eq!(parse_head(req, LIMIT), whole);
            let mut more = req.to_vec();
            more.extend_from_slice(b"\x00\xfftunnel bytes");
            assert_eq!(parse_head(&more, LIMIT), whole);
        }
    }

    #[test]
    fn head_not_complete_within_limit_is_too_large() {
        let mut req = b"CONNECT 1.maint.example.com:22 HTTP/1.1\r\n".to_vec();
        while req.len() < 100 {
            req.extend_from_slice(b"X-Pad: aaaaaaaaaa\r\n");
        }
        assert_eq!(parse_head(&req, 100), Err(HeadError::TooLarge));
        assert_eq!(parse_head(&req[..99], 100), Ok(HeadParse::Partial));
        // An endless request line is cut off at the limit too.
        let endless = vec![b'A'; 1 << 20];
        assert_eq!(parse_head(&endless, LIMIT), Err(HeadError::TooLarge));
    }

    #[test]
    fn head_of_exactly_the_limit_is_accepted() {
        let (_, len) = complete(CURL);
        assert!(matches!(parse_head(CURL, len), Ok(HeadParse::Complete(_, l)) if l == len));
        assert_eq!(parse_head(CURL, len - 1), Err(HeadError::TooLarge));
        assert_eq!(parse_head(b"", 0), Err(HeadError::TooLarge));
    }

    #[test]
    fn too_many_headers() {
        let mut req = b"CONNECT 1.maint.example.com:22 HTTP/1.1\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            req.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        let mut ok = req.clone();
        ok.extend_from_slice(b"\r\n");
        assert!(matches!(
            parse_head(&ok, LIMIT),
            Ok(HeadParse::Complete(..))
        ));
        req.extend_from_slice(b"X-One-Too-Many: v\r\n\r\n");
        assert_eq!(parse_head(&req, LIMIT), Err(HeadError::TooManyHeaders));
    }

    #[test]
    fn garbage_is_malformed() {
        for garbage in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..], // a TLS ClientHello in the tunnel by mistake
            b"CONNECT 1.maint.example.com:22 HTTP/2.0\r\n\r\n",
            b"CONNECT 1.maint.example.com:22 FTP/1.1\r\n\r\n",
            b"CONNECT  HTTP/1.1\r\n\r\n",
            b"CONNECT 1.maint.example.com:22 HTTP/1.1\r\nBad Header: x\r\n\r\n",
            b"CONNECT 1.maint.example.com:22 HTTP/1.1\r\nX: a\x00b\r\n\r\n",
            b"CONNECT 1.maint.example.com:22 HTTP/1.1\r\n continued: x\r\n\r\n",
            b"CONNECT 1.maint.example.com:22 HTTP/1.1\rX",
            b"SSH-2.0-OpenSSH_9.2p1\r\n",
            b"\x00\x00\x00\x00",
        ] {
            assert!(
                matches!(parse_head(garbage, LIMIT), Err(HeadError::Malformed(_))),
                "{garbage:?} -> {:?}",
                parse_head(garbage, LIMIT)
            );
        }
    }

    #[test]
    fn header_names_are_case_insensitive() {
        for name in [
            "proxy-authorization",
            "PROXY-AUTHORIZATION",
            "pRoXy-AuThOrIzAtIoN",
        ] {
            let req = format!("CONNECT t:1 HTTP/1.1\r\n{name}: basic YWNjOnNlY3JldA==\r\nproxy-connection: CLOSE\r\n\r\n");
            let (head, _) = complete(req.as_bytes());
            assert_eq!(
                head.proxy_authorization,
                Some(basic("acc", "secret")),
                "{name}"
            );
            assert!(head.connection_close);
        }
        let (head, _) = complete(b"CONNECT t:1 HTTP/1.1\r\nCONNECTION: keep-alive, Close\r\n\r\n");
        assert!(head.connection_close);
    }

    #[test]
    fn connection_close_from_either_header() {
        let (head, _) = complete(b"CONNECT t:1 HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(head.connection_close);
        let (head, _) = complete(b"CONNECT t:1 HTTP/1.1\r\nProxy-Connection: close\r\n\r\n");
        assert!(head.connection_close);
        let (head, _) =
            complete(b"CONNECT t:1 HTTP/1.1\r\nConnection: keep-alive\r\nX-Close: close\r\n\r\n");
        assert!(!head.connection_close);
        let (head, _) = complete(b"CONNECT t:1 HTTP/1.1\r\nConnection: closed\r\n\r\n");
        assert!(!head.connection_close);
    }

    #[test]
    fn host_header_is_ignored() {
        let (a, _) =
            complete(b"CONNECT 1.maint.example.com:22 HTTP/1.1\r\nHost: evil.example:22\r\n\r\n");
        let (b, _) = complete(b"CONNECT 1.maint.example.com:22 HTTP/1.1\r\n\r\n");
        assert_eq!(a, b);
    }

    #[test]
    fn password_may_contain_colons() {
        let (head, _) = complete(&auth_header(b"acc:pa:ss::"));
        assert_eq!(head.proxy_authorization, Some(basic("acc", "pa:ss::")));
        let (head, _) = complete(&auth_header(b"acc:"));
        assert_eq!(head.proxy_authorization, Some(basic("acc", "")));
        let (head, _) = complete(&auth_header("ü:pässwörd €".as_bytes()));
        assert_eq!(head.proxy_authorization, Some(basic("ü", "pässwörd €")));
    }

    #[test]
    fn unpadded_base64_is_tolerated() {
        // base64("acc:secret") is "YWNjOnNlY3JldA==".
        let (head, _) =
            complete(b"CONNECT t:1 HTTP/1.1\r\nProxy-Authorization: Basic YWNjOnNlY3JldA\r\n\r\n");
        assert_eq!(head.proxy_authorization, Some(basic("acc", "secret")));
        let (head, _) = complete(
            b"CONNECT t:1 HTTP/1.1\r\nProxy-Authorization:   Basic    YWNjOnNlY3JldA==  \r\n\r\n",
        );
        assert_eq!(head.proxy_authorization, Some(basic("acc", "secret")));
        // Short padding is tolerated as well.
        let (head, _) =
            complete(b"CONNECT t:1 HTTP/1.1\r\nProxy-Authorization: Basic YWNjOnNlY3JldA=\r\n\r\n");
        assert_eq!(head.proxy_authorization, Some(basic("acc", "secret")));
    }

    #[test]
    fn undecodable_credentials_are_malformed() {
        for value in [
            &b"Basic"[..],
            b"Basic ",
            b"",
            b"Basic !!!!",
            b"Basic YWNjOnNlY3JldA===", // too much padding
            b"Basic YWNjOnNlY3JldA=A",  // padding inside
            b"Basic YWNj OnNlY3JldA==", // space inside the token
            b"Basic YWNjOnNlY3JldA==,Basic YWNjOnNlY3JldA==",
            b"Basic YWNjLXNlY3JldA==", // "acc-secret": no ':'
            b"Basic YWNj_nNlY3JldA==", // URL-safe alphabet
        ] {
            assert_eq!(
                parse_proxy_authorization(value),
                ProxyAuth::Malformed,
                "{value:?}"
            );
        }
    }

    #[test]
    fn non_utf8_credentials_are_malformed() {
        let (head, _) = complete(&auth_header(b"acc:\xff\xfe secret"));
        assert_eq!(head.proxy_authorization, Some(ProxyAuth::Malformed));
        let (head, _) = complete(&auth_header(b"\xc3(:pw"));
        assert_eq!(head.proxy_authorization, Some(ProxyAuth::Malformed));
    }

    #[test]
    fn non_utf8_header_value_is_not_fatal() {
        // httparse accepts obs-text in values; only our decoding decides.
        let (head, _) = complete(
            b"CONNECT t:1 HTTP/1.1\r\nProxy-Authorization: Basic \xff\xff\r\nX: \xe9\r\n\r\n",
        );
        assert_eq!(head.proxy_authorization, Some(ProxyAuth::Malformed));
    }

    #[test]
    fn other_schemes_are_reported_as_other() {
        for value in [
            &b"Digest username=\"acc\", realm=\"x\""[..],
            b"NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw==",
            b"Negotiate",
        ] {
            assert_eq!(
                parse_proxy_authorization(value),
                ProxyAuth::Other,
                "{value:?}"
            );
        }
    }

    #[test]
    fn two_proxy_authorization_headers_are_malformed() {
        let req = b"CONNECT t:1 HTTP/1.1\r\nProxy-Authorization: Basic YWNjOnNlY3JldA==\r\n\
Proxy-Authorization: Basic YWNjOm90aGVy\r\n\r\n";
        assert_eq!(
            complete(req).0.proxy_authorization,
            Some(ProxyAuth::Malformed)
        );
    }

    #[test]
    fn password_never_prints() {
        let (head, _) = complete(PROXYTUNNEL);
        let debug = format!("{head:?} {:#?}", HeadParse::Complete(head.clone(), 1));
        assert!(!debug.contains("secret"), "{debug}");
        assert!(debug.contains("********"));
        match head.proxy_authorization {
            Some(ProxyAuth::Basic(c)) => assert_eq!(c.password.expose(), "secret"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bare_lf_line_endings_are_accepted() {
        // httparse follows RFC 9112 2.2 (a recipient MAY accept a bare LF).
        let buf = b"CONNECT t:1 HTTP/1.1\nHost: x\n\nrest";
        let (head, len) = complete(buf);
        assert_eq!(head.target, "t:1");
        assert_eq!(&buf[len..], b"rest");
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(buf in proptest::collection::vec(any::<u8>(), 0..2048), limit in 0usize..4096) {
            if let Ok(HeadParse::Complete(_, len)) = parse_head(&buf, limit) {
                prop_assert!(len <= buf.len());
                prop_assert!(len <= limit);
            }
        }

        #[test]
        fn never_panics_on_request_like_bytes(
            line in "(CONNECT|GET|connect) [ -~]{0,40} HTTP/1\\.[01]\r\n",
            headers in proptest::collection::vec("[!-~]{0,20}:[ -~\\x80-\\xff]{0,40}\r\n", 0..80),
            tail in proptest::collection::vec(any::<u8>(), 0..20),
        ) {
            let mut buf = line.into_bytes();
            for h in headers {
                buf.extend_from_slice(h.as_bytes());
            }
            buf.extend_from_slice(b"\r\n");
            buf.extend_from_slice(&tail);
            let _ = parse_head(&buf, LIMIT);
        }

        #[test]
        fn split_point_invariance(
            user in "[ -9;-~]{0,20}",
            pass in "[ -~]{0,30}",
            target in "[!-~]{1,60}",
            extra in proptest::collection::vec("X-[A-Za-z-]{1,12}: [ -~]{0,30}", 0..6),
            close in any::<bool>(),
            tail in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: maint.example.test\r\n");
            for h in &extra {
                req.push_str(h);
                req.push_str("\r\n");
            }
            req.push_str(&format!("Proxy-Authorization: Basic {}\r\n", STANDARD.encode(format!("{user}:{pass}"))));
            if close {
                req.push_str("Proxy-Connection: close\r\n");
            }
            req.push_str("\r\n");
            let head_len = req.len();
            let mut buf = req.into_bytes();
            buf.extend_from_slice(&tail);

            let whole = parse_head(&buf, LIMIT);
            let Ok(HeadParse::Complete(head, len)) = &whole else {
                return Err(TestCaseError::fail(format!("{whole:?}")));
            };
            prop_assert_eq!(*len, head_len);
            prop_assert_eq!(&head.target, &target);
            prop_assert_eq!(head.connection_close, close);
            prop_assert_eq!(head.proxy_authorization.clone(), Some(basic(&user, &pass)));
            for cut in 0..head_len {
                prop_assert_eq!(parse_head(&buf[..cut], LIMIT), Ok(HeadParse::Partial));
            }
            for cut in head_len..=buf.len() {
                prop_assert_eq!(&parse_head(&buf[..cut], LIMIT), &whole);
            }
        }

        #[test]
        fn prefixes_of_arbitrary_bytes_agree(buf in proptest::collection::vec(any::<u8>(), 0..256)) {
            // A prefix is either Partial, or gives the same answer as the whole.
            let whole = parse_head(&buf, LIMIT);
            for cut in 0..=buf.len() {
                let part = parse_head(&buf[..cut], LIMIT);
                prop_assert!(part == Ok(HeadParse::Partial) || part == whole, "cut {}: {:?} vs {:?}", cut, part, whole);
            }
        }
    }
}
