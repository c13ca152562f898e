//! Tunnel frame encode/decode and websocket masking: the per-record work of
//! the gateway <-> agent protocol.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tunnel_proto::frame::{encode_data, MAX_DATA_LEN};
use tunnel_proto::{decode, encode, Frame, Target};

fn bench_encode(c: &mut Criterion) {
    let payload = vec![0x5au8; MAX_DATA_LEN];
    let mut g = c.benchmark_group("encode");
    for len in [64usize, 1400, MAX_DATA_LEN] {
        g.throughput(Throughput::Bytes(len as u64));
        let mut dst = BytesMut::with_capacity(MAX_DATA_LEN + 64);
        g.bench_function(format!("encode_data/{len}"), |b| {
            b.iter(|| {
                dst.clear();
                encode_data(black_box(1), black_box(&payload[..len]), &mut dst).unwrap();
                black_box(dst.len())
            })
        });
        let frame = Frame::Data {
            stream: 1,
            payload: Bytes::copy_from_slice(&payload[..len]),
        };
        g.bench_function(format!("encode_frame_data/{len}"), |b| {
            b.iter(|| {
                dst.clear();
                encode(black_box(&frame), &mut dst).unwrap();
                black_box(dst.len())
            })
        });
    }
    g.throughput(Throughput::Elements(1));
    let mut dst = BytesMut::with_capacity(64);
    let small = [
        (
            "open",
            Frame::Open {
                stream: 7,
                target: Target::Colocated {
                    ip: [10, 0, 0, 5].into(),
                    port: 3389,
                },
                access: tunnel_proto::Access::Remote,
            },
        ),
        (
            "window",
            Frame::Window {
                stream: 7,
                increment: 65536,
            },
        ),
    ];
    for (name, frame) in &small {
        g.bench_function(*name, |b| {
            b.iter(|| {
                dst.clear();
                encode(black_box(frame), &mut dst).unwrap();
                black_box(dst.len())
            })
        });
    }
    g.finish();
}

fn bench_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    for len in [64usize, 1400, MAX_DATA_LEN] {
        let mut buf = BytesMut::new();
        encode_data(1, &vec![0xa5u8; len], &mut buf).unwrap();
        let msg = buf.freeze();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(format!("data/{len}"), |b| {
            b.iter_batched(
                || msg.clone(),
                |mut src| {
                    let f = decode(&mut src).unwrap();
                    black_box(f)
                },
                BatchSize::SmallInput,
            )
        });
    }
    // One websocket message holding many small frames back to back.
    let mut buf = BytesMut::new();
    for i in 0..64u32 {
        encode_data(2 * i + 1, &[0u8; 64], &mut buf).unwrap();
        encode(
            &Frame::Window {
                stream: 2 * i + 1,
                increment: 4096,
            },
            &mut buf,
        )
        .unwrap();
    }
    let msg = buf.freeze();
    g.throughput(Throughput::Elements(128));
    g.bench_function("message/64_data+64_window", |b| {
        b.iter_batched(
            || msg.clone(),
            |mut src| {
                let mut n = 0;
                while let Some(f) = decode(&mut src).unwrap() {
                    black_box(&f);
                    n += 1;
                }
                n
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Websocket masking of a full-sized DATA message: the agent masks every byte
/// it sends and the gateway unmasks it.
fn bench_mask(c: &mut Criterion) {
    let mut g = c.benchmark_group("websocket");
    let mut buf = vec![0x5au8; tunnel_proto::frame::LARGE_DATA_LEN + 9];
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.bench_function("mask/65528", |b| {
        b.iter(|| tunnel_proto::ws::apply_mask(black_box(&mut buf), black_box([1, 2, 3, 4])))
    });
    g.finish();
}

criterion_group!(benches, bench_encode, bench_decode, bench_mask);
criterion_main!(benches);
