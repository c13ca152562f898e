//! CONNECT over HTTP/2 (RFC 9113 §8.5): one TLS connection, many tunnels.
//!
//! Chromium talks HTTP/2 to an HTTPS proxy that offers it and opens every
//! tunnel of a browser profile as a stream of that one connection. Each
//! CONNECT stream goes through the same [`FrontDoor::admit`] as an HTTP/1.1
//! request (authentication per request, same rules, same refusals), then
//! through the same relay. What differs is only the framing: a refusal has
//! no reason phrase in HTTP/2, so the reason travels in a `Proxy-Status`
//! header (RFC 9209) and in the body.
//!
//! Limits: concurrent streams per connection
//! (`gateway.max_streams_per_connection`), header list size
//! (`gateway.max_head_bytes`), refused requests per connection
//! (`gateway.max_requests_per_connection`, then GOAWAY), a connection
//! without any tunnel is closed after `gateway.idle_connection_timeout_secs`,
//! and the handshake plus the first request must come within
//! `gateway.head_timeout_ms`. Flow-control windows bound what one
//! connection can make the gateway buffer.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use h2::server::SendResponse;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, timeout_at, Instant};
use tracing::{field::Empty, Instrument};

use super::h2_stream::H2Stream;
use super::FrontDoor;
use crate::audit;
use crate::connect_head::{parse_proxy_authorization, ProxyAuth, RequestHead};
use crate::refusal::Refusal;

/// Receive window per stream: bytes a partner may send ahead of the site.
const STREAM_WINDOW: u32 = 1 << 20;
/// Receive window of the whole connection.
const CONNECTION_WINDOW: u32 = 8 << 20;
/// Bytes h2 queues per stream towards the partner before writes wait.
const SEND_BUFFER: usize = 256 * 1024;

/// Serves one HTTP/2 connection until the partner closes it, it idles out,
/// or too many of its requests were refused.
pub(super) async fn serve(
    door: Arc<FrontDoor>,
    tls: super::PartnerTls,
    deadline: Instant,
    peer: SocketAddr,
) {
    let limits = &door.limits;
    let handshake = h2::server::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_streams(limits.max_streams_per_connection)
        .max_header_list_size(u32::try_from(limits.max_head_bytes).unwrap_or(u32::MAX))
        .max_send_buffer_size(SEND_BUFFER)
        .handshake::<_, Bytes>(tls);
    let mut conn = match timeout_at(deadline, handshake).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "HTTP/2 handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!("HTTP/2 handshake timed out");
            return;
        }
    };
    let mut tunnels: JoinSet<bool> = JoinSet::new();
    let mut refused = 0u32;
    let mut closing = false;
    // Until the first request, the head timeout applies; later, the idle one.
    let mut idle_deadline = deadline;
    loop {
        tokio::select! {
            next = conn.accept() => match next {
                None => break,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "HTTP/2 connection ended");
                    break;
                }
                Some(Ok((request, respond))) => {
                    let span = tracing::info_span!(
                        "partner",
                        %peer,
                        stream = u32::from(respond.stream_id()),
                        account = Empty,
                        customer = Empty,
                        system = Empty,
                        target = Empty
                    );
                    let door = door.clone();
                    tunnels.spawn(
                        async move { handle_request(&door, request, respond, peer).await }
                            .instrument(span),
                    );
                }
            },
            Some(done) = tunnels.join_next() => {
                if matches!(done, Ok(true)) {
                    refused += 1;
                    if refused >= limits.max_requests_per_connection && !closing {
                        tracing::debug!(refused, "too many refused requests; sending GOAWAY");
                        conn.graceful_shutdown();
                        closing = true;
                    }
                }
                if tunnels.is_empty() {
                    idle_deadline = Instant::now() + limits.idle_connection_timeout();
                }
            }
            _ = sleep_until(idle_deadline), if tunnels.is_empty() && !closing => {
                tracing::debug!("HTTP/2 connection idle; sending GOAWAY");
                conn.graceful_shutdown();
                closing = true;
            }
        }
    }
    // The connection is gone: its streams fail and their tasks finish.
    while tunnels.join_next().await.is_some() {}
}

/// One CONNECT stream: admit, answer, relay. Returns whether it was refused.
async fn handle_request(
    door: &FrontDoor,
    request: http::Request<h2::RecvStream>,
    mut respond: SendResponse<Bytes>,
    peer: SocketAddr,
) -> bool {
    let head = request_head(&request);
    if let Ok(h) = &head {
        tracing::Span::current().record("target", h.target.as_str());
    }
    let admitted = match head {
        Ok(ref head) => door.admit(head, peer).await,
        Err(ref refusal) => Err((refusal.clone(), None)),
    };
    match admitted {
        Ok(admitted) => {
            let answer = http::Response::builder()
                .status(http::StatusCode::OK)
                .body(())
                .unwrap_or_default();
            match respond.send_response(answer, false) {
                Ok(send) => {
                    let stream = H2Stream::new(request.into_body(), send);
                    door.tunnel(stream, &[], admitted, peer).await;
                }
                Err(e) => admitted.audit_unused(peer, &format!("error_client: {e}")),
            }
            false
        }
        Err((refusal, account)) => {
            let target = head.as_ref().map(|h| h.target.as_str()).unwrap_or("-");
            audit::refused(
                peer,
                account.as_deref(),
                target,
                refusal.status().0,
                refusal.outcome(),
            );
            send_refusal(&mut respond, &refusal, &door.realm);
            true
        }
    }
}

/// The parts of an HTTP/2 request the admission needs, in the shape an
/// HTTP/1.1 head has. The CONNECT target is `:authority`.
fn request_head<B>(request: &http::Request<B>) -> Result<RequestHead, Refusal> {
    let method = request.method().as_str().to_owned();
    let target = match request.uri().authority() {
        Some(a) => a.as_str().to_owned(),
        None if method == "CONNECT" => {
            return Err(Refusal::BadRequest("CONNECT without :authority".into()))
        }
        None => request.uri().to_string(),
    };
    let mut values = request
        .headers()
        .get_all(http::header::PROXY_AUTHORIZATION)
        .iter();
    let proxy_authorization = match (values.next(), values.next()) {
        (None, _) => None,
        (Some(v), None) => Some(parse_proxy_authorization(v.as_bytes())),
        // Two credentials are ambiguous, as over HTTP/1.1.
        (Some(_), Some(_)) => Some(ProxyAuth::Malformed),
    };
    Ok(RequestHead {
        method,
        target,
        minor_version: 1,
        proxy_authorization,
        connection_close: false,
    })
}

fn send_refusal(respond: &mut SendResponse<Bytes>, refusal: &Refusal, realm: &str) {
    let (code, reason) = refusal.status();
    let body = refusal.body();
    let mut answer = http::Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(http::header::CONTENT_LENGTH, body.len())
        .header("proxy-status", refusal.proxy_status(&reason));
    for (name, value) in refusal.headers(realm) {
        answer = answer.header(name, value);
    }
    let answer = match answer.body(()) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "could not build a refusal");
            respond.send_reset(h2::Reason::INTERNAL_ERROR);
            return;
        }
    };
    match respond.send_response(answer, false) {
        Ok(mut send) => {
            let _ = send.send_data(Bytes::from(body), true);
        }
        Err(e) => tracing::debug!(error = %e, "could not send the refusal"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_target_is_the_authority_and_credentials_are_parsed() {
        let req = http::Request::builder()
            .method("CONNECT")
            .uri("12345-ipo1.maint.example.test:443")
            .header("proxy-authorization", "Basic dTpw")
            .body(())
            .unwrap();
        let head = request_head(&req).unwrap();
        assert!(head.is_connect());
        assert_eq!(head.target, "12345-ipo1.maint.example.test:443");
        match head.proxy_authorization {
            Some(ProxyAuth::Basic(c)) => {
                assert_eq!(c.username, "u");
                assert_eq!(c.password.expose(), "p");
            }
            other => panic!("credentials expected, got {other:?}"),
        }
    }

    #[test]
    fn two_credentials_are_malformed() {
        let req = http::Request::builder()
            .method("CONNECT")
            .uri("a.maint.example.test:22")
            .header("proxy-authorization", "Basic dTpw")
            .header("proxy-authorization", "Basic dTpx")
            .body(())
            .unwrap();
        assert_eq!(
            request_head(&req).unwrap().proxy_authorization,
            Some(ProxyAuth::Malformed)
        );
    }

    #[test]
    fn other_methods_keep_their_name_for_the_405() {
        let req = http::Request::builder()
            .method("GET")
            .uri("https://example.test/x")
            .body(())
            .unwrap();
        let head = request_head(&req).unwrap();
        assert!(!head.is_connect());
        assert_eq!(head.method, "GET");
    }
}
