use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{duplex, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::{Message, Role};
use tokio_tungstenite::WebSocketStream;

use super::*;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 7) as u8).collect()
}

const SIZES: [usize; 8] = [0, 1, 125, 126, 65_535, 65_536, 16_393, 1 << 20];

#[tokio::test]
async fn our_client_to_tungstenite_server() {
    let (a, b) = duplex(1 << 16);
    let mut ours = WsConn::new(a, Side::Client);
    let mut theirs = WebSocketStream::from_raw_socket(b, Role::Server, None).await;
    let sender = tokio::spawn(async move {
        for len in SIZES {
            ours.writer
                .send_binary(Bytes::from(pattern(len)))
                .await
                .unwrap();
        }
        ours.send_text("héllo".into()).await.unwrap();
        ours.writer.flush().await.unwrap();
        ours
    });
    for len in SIZES {
        match theirs.next().await.unwrap().unwrap() {
            Message::Binary(b) => assert_eq!(b, pattern(len), "binary of {len} bytes"),
            other => panic!("expected binary, got {other:?}"),
        }
    }
    assert_eq!(
        theirs.next().await.unwrap().unwrap(),
        Message::text("héllo")
    );
    let mut ours = sender.await.unwrap();
    // tungstenite answers our close with its own.
    ours.close().await.unwrap();
    assert!(matches!(theirs.next().await, Some(Ok(Message::Close(_)))));
}

#[tokio::test]
async fn tungstenite_client_to_our_server() {
    let (a, b) = duplex(1 << 16);
    let mut theirs = WebSocketStream::from_raw_socket(a, Role::Client, None).await;
    let mut ours = WsConn::new(b, Side::Server);
    let sender = tokio::spawn(async move {
        for len in SIZES {
            theirs.send(Message::binary(pattern(len))).await.unwrap();
        }
        theirs
            .send(Message::Ping(Bytes::from_static(b"are you there")))
            .await
            .unwrap();
        theirs.send(Message::text("done")).await.unwrap();
        // Our pong comes back before the reply to "done" is needed.
        let pong = theirs.next().await.unwrap().unwrap();
        assert_eq!(pong, Message::Pong(Bytes::from_static(b"are you there")));
        theirs.close(None).await.unwrap();
    });
    for len in SIZES {
        match ours.next_data().await.unwrap() {
            Some(WsMessage::Binary(b)) => assert_eq!(b, pattern(len), "binary of {len} bytes"),
            other => panic!("expected binary, got {other:?}"),
        }
    }
    assert_eq!(
        ours.next_data().await.unwrap(),
        Some(WsMessage::Text("done".into()))
    );
    assert_eq!(
        ours.next_data().await.unwrap(),
        None,
        "close ends the stream"
    );
    sender.await.unwrap();
}

/// Builds one frame by hand (server to client: unmasked).
fn raw(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![(if fin { 0x80 } else { 0 }) | opcode];
    assert!(payload.len() < 126);
    v.push(payload.len() as u8);
    v.extend_from_slice(payload);
    v
}

#[tokio::test]
async fn fragments_are_joined_around_a_ping() {
    let (mut a, b) = duplex(1 << 16);
    let mut reader = WsReader::new(b, Side::Client);
    let mut wire = raw(false, OP_TEXT, b"hel");
    wire.extend(raw(true, OP_PING, b"p"));
    wire.extend(raw(false, OP_CONTINUATION, b"l"));
    wire.extend(raw(true, OP_PONG, b""));
    wire.extend(raw(true, OP_CONTINUATION, b"o"));
    a.write_all(&wire).await.unwrap();
    assert_eq!(
        reader.next().await.unwrap(),
        Some(WsMessage::Ping(Bytes::from_static(b"p")))
    );
    assert_eq!(
        reader.next().await.unwrap(),
        Some(WsMessage::Text("hello".into()))
    );
}

#[tokio::test]
async fn a_frame_arriving_byte_by_byte_survives_cancelled_reads() {
    let (mut a, b) = duplex(1);
    let mut reader = WsReader::new(b, Side::Client);
    let payload = pattern(300);
    let mut wire = vec![0x82, 126];
    wire.extend_from_slice(&300u16.to_be_bytes());
    wire.extend_from_slice(&payload);
    let writer = tokio::spawn(async move {
        for byte in wire {
            a.write_all(&[byte]).await.unwrap();
            tokio::task::yield_now().await;
        }
        a
    });
    // Each `next()` that finds no whole message is dropped unfinished.
    let got = loop {
        if let Some(result) = reader.next().now_or_never() {
            break result.unwrap();
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(got, Some(WsMessage::Binary(Bytes::from(payload))));
    drop(writer.await.unwrap());
    assert_eq!(
        reader.next().await.unwrap(),
        None,
        "clean EOF between messages"
    );
}

async fn read_error(side: Side, wire: &[u8]) -> WsError {
    let (mut a, b) = duplex(1 << 16);
    a.write_all(wire).await.unwrap();
    drop(a);
    WsReader::new(b, side).next().await.unwrap_err()
}

#[tokio::test]
async fn protocol_violations_are_errors() {
    let unmasked = raw(true, OP_BINARY, b"x");
    assert!(
        matches!(read_error(Side::Server, &unmasked).await, WsError::Protocol(m) if m.contains("unmasked"))
    );
    let mut masked = vec![0x82, 0x81, 1, 2, 3, 4, b'x' ^ 1];
    assert!(
        matches!(read_error(Side::Client, &masked).await, WsError::Protocol(m) if m.contains("masked frame"))
    );
    masked[0] = 0xC2; // RSV1
    assert!(
        matches!(read_error(Side::Server, &masked).await, WsError::Protocol(m) if m.contains("reserved"))
    );
    let long_ping = [&[0x89u8, 126, 0, 200][..], &[0u8; 200][..]].concat();
    assert!(
        matches!(read_error(Side::Client, &long_ping).await, WsError::Protocol(m) if m.contains("125"))
    );
    let mut huge = vec![0x82, 127];
    huge.extend_from_slice(&((MAX_MESSAGE as u64) + 1).to_be_bytes());
    assert!(
        matches!(read_error(Side::Client, &huge).await, WsError::TooLarge(n) if n == MAX_MESSAGE as u64 + 1)
    );
    let stray = raw(true, OP_CONTINUATION, b"x");
    assert!(
        matches!(read_error(Side::Client, &stray).await, WsError::Protocol(m) if m.contains("continuation"))
    );
    let bad_text = raw(true, OP_TEXT, &[0xff, 0xfe]);
    assert!(matches!(
        read_error(Side::Client, &bad_text).await,
        WsError::NotUtf8
    ));
    let cut = [0x82u8, 10, 1, 2, 3];
    assert!(
        matches!(read_error(Side::Client, &cut).await, WsError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof)
    );
}

#[test]
fn masking_matches_the_bytewise_definition() {
    let key = [0x12, 0x34, 0x56, 0x78];
    for len in [0, 1, 7, 8, 9, 31, 32, 33, 63, 1000, 65_519] {
        // Also from an address that is not 8-byte aligned.
        for skew in [0, 3] {
            let data = pattern(len + skew);
            let slow: Vec<u8> = data[skew..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            // The dispatch (AVX2 where the CPU has it) and the baseline loop.
            let mut fast = data.clone();
            apply_mask(&mut fast[skew..], key);
            assert_eq!(fast[skew..], slow[..], "length {len}, skew {skew}");
            let mut words = data.clone();
            apply_mask_words(&mut words[skew..], key);
            assert_eq!(words[skew..], slow[..], "length {len}, skew {skew}");
        }
    }
}

#[tokio::test]
async fn a_claimed_large_message_costs_memory_only_as_it_arrives() {
    let (mut a, b) = duplex(1 << 16);
    let mut reader = WsReader::new(b, Side::Client);
    let mut head = vec![0x82, 127];
    head.extend_from_slice(&(3u64 << 20).to_be_bytes());
    a.write_all(&head).await.unwrap();
    a.write_all(&[7u8; 10]).await.unwrap();
    assert!(reader.next().now_or_never().is_none());
    let frame = reader.frame.as_ref().expect("a frame in progress");
    assert!(frame.payload.capacity() <= FIRST_PAYLOAD_CAPACITY);
    // The rest arrives: the message is whole and intact.
    let writer = tokio::spawn(async move {
        a.write_all(&vec![7u8; (3 << 20) - 10]).await.unwrap();
        a
    });
    match reader.next().await.unwrap() {
        Some(WsMessage::Binary(b)) => {
            assert_eq!(b.len(), 3 << 20);
            assert!(b.iter().all(|&x| x == 7));
        }
        other => panic!("{other:?}"),
    }
    drop(writer.await.unwrap());
}

proptest::proptest! {
    /// Whatever arrives, the reader answers with messages or an error, never
    /// a panic, and stops at the end of the input.
    #[test]
    fn arbitrary_input_never_panics(wire in proptest::collection::vec(proptest::num::u8::ANY, 0..512), server in proptest::bool::ANY) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let (mut a, b) = duplex(1 << 12);
            a.write_all(&wire).await.unwrap();
            drop(a);
            let side = if server { Side::Server } else { Side::Client };
            let mut reader = WsReader::new(b, side);
            for _ in 0..=wire.len() {
                match reader.next().await {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => return,
                }
            }
            panic!("more messages than bytes");
        });
    }
}

#[tokio::test]
async fn many_messages_in_one_vectored_write_arrive_in_order() {
    for side in [Side::Client, Side::Server] {
        // A small pipe: the vectored write is taken in many partial writes.
        let (a, b) = duplex(1000);
        let mut ours = WsWriter::new(a, side);
        let role = if side == Side::Client {
            Role::Server
        } else {
            Role::Client
        };
        let mut theirs = WebSocketStream::from_raw_socket(b, role, None).await;
        let sizes = [5usize, 0, 16_384, 125, 126, 70_000, 3];
        let mut batch: Vec<Bytes> = sizes.iter().map(|&n| Bytes::from(pattern(n))).collect();
        let sender = tokio::spawn(async move {
            ours.send_binaries(&mut batch).await.unwrap();
            assert!(batch.is_empty());
            ours.flush().await.unwrap();
            ours
        });
        for len in sizes {
            match theirs.next().await.unwrap().unwrap() {
                Message::Binary(b) => assert_eq!(b, pattern(len), "{side:?}: {len} bytes"),
                other => panic!("{other:?}"),
            }
        }
        drop(sender.await.unwrap());
    }
}

/// serve takes a site's stream out of its websocket to move it to the
/// site's thread: between messages the stream comes back whole and the
/// rewrapped connection reads on where the first stopped; with part of a
/// message read, the connection is kept as it is.
#[tokio::test]
async fn the_stream_comes_back_only_between_messages() {
    let (mut a, b) = duplex(1 << 16);
    let mut conn = WsConn::new(b, Side::Client);
    a.write_all(&raw(true, OP_TEXT, b"hello")).await.unwrap();
    a.write_all(&raw(true, OP_BINARY, b"after the move"))
        .await
        .unwrap();
    assert_eq!(
        conn.next_data().await.unwrap(),
        Some(WsMessage::Text("hello".into()))
    );
    let stream = conn.into_stream().ok().expect("between messages");
    let mut conn = WsConn::new(stream, Side::Client);
    assert_eq!(
        conn.next_data().await.unwrap(),
        Some(WsMessage::Binary(Bytes::from_static(b"after the move")))
    );

    // Half a header, then the read is given up: the reader holds that byte.
    a.write_all(&raw(true, OP_TEXT, b"split")[..1])
        .await
        .unwrap();
    let waited = tokio::time::timeout(std::time::Duration::from_millis(20), conn.next_data()).await;
    assert!(waited.is_err(), "no whole message yet");
    let mut conn = match conn.into_stream() {
        Ok(_) => panic!("a partly read message must not be dropped"),
        Err(conn) => *conn,
    };
    a.write_all(&raw(true, OP_TEXT, b"split")[1..])
        .await
        .unwrap();
    assert_eq!(
        conn.next_data().await.unwrap(),
        Some(WsMessage::Text("split".into()))
    );
}

/// A DATA frame of the large size, in its websocket message, is exactly
/// four full TLS records of plaintext from the agent (masked) and fits in
/// four from the gateway: no fifth, tiny record per frame.
#[tokio::test]
async fn a_large_data_frame_fills_four_tls_records_and_no_more() {
    use crate::frame::{HEADER_LEN, LARGE_DATA_LEN};
    for (side, expected) in [(Side::Client, 4 * 16384), (Side::Server, 4 * 16384 - 4)] {
        let mut writer = WsWriter::new(Vec::new(), side);
        let message = Bytes::from(vec![7u8; HEADER_LEN + LARGE_DATA_LEN]);
        writer.send_binary(message).await.unwrap();
        writer.flush().await.unwrap();
        assert_eq!(writer.io.len(), expected, "{side:?}");
    }
}
