//! The cost of a capability check (target: a cached check <= 50 ns).
//!
//! Run with `cargo bench -p airssys-wasm --bench security`.

use std::net::SocketAddr;
use std::time::Duration;

use airssys_wasm::security::capability::CapabilityKind;
use airssys_wasm::security::pattern::NamePatterns;
use airssys_wasm::Capabilities;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn benches(c: &mut Criterion) {
    let mut caps = Capabilities::default()
        .with_outbound("*.example.com:443")
        .unwrap()
        .with_outbound("10.0.0.*:8000-8100")
        .unwrap()
        .with_outbound("127.0.0.1:8080")
        .unwrap();
    caps.send = NamePatterns::new(&["worker-*", "db.**"]).unwrap();
    let allowed: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let denied: SocketAddr = "127.0.0.1:22".parse().unwrap();
    assert!(caps.check_connect(allowed).allowed);
    assert!(!caps.check_connect(denied).allowed);

    let mut g = c.benchmark_group("grant-check");
    g.bench_function("connect-cached-allow", |b| {
        b.iter(|| caps.check_connect(black_box(allowed)).allowed)
    });
    g.bench_function("connect-cached-deny", |b| {
        b.iter(|| caps.check_connect(black_box(denied)).allowed)
    });
    g.bench_function("service", |b| {
        b.iter(|| {
            caps.check_service(black_box(CapabilityKind::Config))
                .allowed
        })
    });
    g.bench_function("send-pattern-uncached", |b| {
        b.iter(|| caps.check_send(black_box("worker-17")).allowed)
    });
    g.finish();
}

criterion_group! {
    name = security_benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = benches
}
criterion_main!(security_benches);
