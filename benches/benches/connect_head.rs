//! The CONNECT request head parser of the front door.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gateway::connect_head::parse_head;

const MAX_HEAD: usize = 16 * 1024;

fn bench(c: &mut Criterion) {
    let curl = b"CONNECT 12345-ipo1.maint.example.com:22 HTTP/1.1\r\n\
Host: 12345-ipo1.maint.example.com:22\r\n\
User-Agent: curl/8.5.0\r\n\
Proxy-Authorization: Basic YWNjLWE6cHctQS43ZjNrOVE=\r\n\
Proxy-Connection: Keep-Alive\r\n\r\n"
        .to_vec();
    let mut chrome = b"CONNECT 12345-ipo1-10.0.0.5.maint.example.com:443 HTTP/1.1\r\n\
Host: 12345-ipo1-10.0.0.5.maint.example.com:443\r\n\
Proxy-Connection: keep-alive\r\n"
        .to_vec();
    chrome.extend_from_slice(
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
Chrome/126.0.0.0 Safari/537.36\r\nProxy-Authorization: Basic YWNjLWE6cHctQS43ZjNrOVE=\r\n\r\n",
    );
    let partial = curl[..curl.len() - 2].to_vec();

    let mut g = c.benchmark_group("parse_head");
    for (name, head) in [("curl", &curl), ("chrome", &chrome), ("partial", &partial)] {
        g.throughput(Throughput::Bytes(head.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| parse_head(black_box(head), black_box(MAX_HEAD)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
