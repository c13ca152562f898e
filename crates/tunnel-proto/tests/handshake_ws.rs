//! The handshake over a real websocket: welcome, then the mux works;
//! rejection reaches the agent with its code and reason.

mod common;

use std::net::Ipv4Addr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tunnel_proto::handshake::{self, reject_code, HandshakeError, Reject, Welcome};
use tunnel_proto::{
    Hello, IncomingEvent, MuxConfig, Role, SiteSettings, Target, TunnelSpec, PROTOCOL_VERSION,
};

fn hello(secret: &str) -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        customer: "12345".into(),
        system: "ipo1".into(),
        secret: secret.into(),
        settings: SiteSettings {
            remote_access: true,
            colocated_servers: true,
            centralized_management: true,
            own_ports: vec![22],
            tunnels: vec![TunnelSpec {
                application: "rdp".into(),
                server_ip: Ipv4Addr::new(127, 0, 0, 5),
                server_port: 3389,
            }],
        },
        agent_version: "test".into(),
        features: Vec::new(),
        quick_lane: None,
    }
}

#[tokio::test]
async fn welcome_then_the_mux_carries_streams() {
    let (mut server, mut client) = common::ws_pair().await;
    let gateway = tokio::spawn(async move {
        let hello = handshake::read_hello(&mut server).await.unwrap();
        assert_eq!(hello.secret, "right");
        handshake::check_version(&hello).unwrap();
        handshake::send_welcome(
            &mut server,
            &Welcome {
                version: PROTOCOL_VERSION,
                heartbeat_ms: 15_000,
                features: Vec::new(),
                quick_lane: None,
            },
        )
        .await
        .unwrap();
        let (handle, incoming) = tunnel_proto::start(server, Role::Gateway, MuxConfig::default());
        let mut stream = handle
            .open(Target::Colocated {
                ip: Ipv4Addr::new(127, 0, 0, 5),
                port: 3389,
            })
            .await
            .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        drop(incoming);
        reply
    });

    let welcome = handshake::agent_handshake(&mut client, &hello("right"))
        .await
        .unwrap();
    assert_eq!(welcome.heartbeat_ms, 15_000);
    let settings = hello("right").settings;
    let (_agent, mut incoming) = tunnel_proto::start(client, Role::Agent, MuxConfig::default());
    let Some(IncomingEvent::Stream(stream)) = incoming.next().await else {
        panic!("no stream")
    };
    assert_eq!(settings.allows(stream.target()), Ok(()));
    let mut stream = stream.accept();
    stream.write_all(b"hello partner").await.unwrap();
    stream.shutdown().await.unwrap();
    assert_eq!(gateway.await.unwrap(), "hello partner");
}

#[tokio::test]
async fn rejection_reaches_the_agent() {
    let (mut server, mut client) = common::ws_pair().await;
    let gateway = tokio::spawn(async move {
        let _hello = handshake::read_hello(&mut server).await.unwrap();
        let reject = Reject {
            code: reject_code::AUTHENTICATION_FAILED.into(),
            reason: "unknown system or wrong secret".into(),
        };
        handshake::send_reject(&mut server, &reject).await.unwrap();
    });
    let err = handshake::agent_handshake(&mut client, &hello("wrong"))
        .await
        .unwrap_err();
    match err {
        HandshakeError::Rejected { code, reason } => {
            assert_eq!(code, reject_code::AUTHENTICATION_FAILED);
            assert_eq!(reason, "unknown system or wrong secret");
        }
        other => panic!("unexpected {other:?}"),
    }
    gateway.await.unwrap();
}

#[tokio::test]
async fn a_binary_message_instead_of_hello_is_refused() {
    let (mut server, mut client) = common::ws_pair().await;
    client
        .writer
        .send_binary(bytes::Bytes::from_static(&[1, 2, 3]))
        .await
        .unwrap();
    client.writer.flush().await.unwrap();
    let err = handshake::read_hello(&mut server).await.unwrap_err();
    assert!(
        matches!(err, HandshakeError::Unexpected("binary")),
        "{err:?}"
    );
}
