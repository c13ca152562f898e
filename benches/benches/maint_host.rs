//! The maint host-name router: `<customer>[-<system>][-<ipv4>].maint.<domain>[:port]`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use gateway::maint_host::parse_maint_authority;

const DOMAIN: &str = "example.com";

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_maint_authority");
    for (name, authority) in [
        ("primary", "12345.maint.example.com:22"),
        ("system", "12345-sec1.maint.example.com:22"),
        ("colocated", "12345-ipo-main-10.0.0.5.maint.example.com:443"),
        ("no_port_upper_dot", "12345-SEC1.MAINT.EXAMPLE.COM."),
        ("foreign_refused", "www.example.org:443"),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| parse_maint_authority(black_box(authority), black_box(DOMAIN)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
