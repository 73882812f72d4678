//! Durable storage from guest actors, against redb used directly from Rust in
//! the same run:
//!
//! - `storage/durable-set`: acknowledged durable writes per second from 64
//!   concurrent guest writers (`kv-counter` instances; each `set` returns once
//!   fsynced; writers share commits) vs 64 Rust threads each committing its own
//!   `Durability::Immediate` transaction on redb, and one Rust thread (the
//!   fsync cost of this disk). p50/p99 of a guest's durable `set` are printed.
//! - `storage/get-hot`: `get` of one hot key from a guest (`get-loop`, many
//!   gets per call) vs redb directly (a read transaction per get, and a held
//!   table).
//! - `storage/list-10k`: listing 10,000 keys from a guest (pages of 100) vs a
//!   redb range scan.
//!
//! Run with `cargo bench -p airssys-wasm --bench storage`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use airssys_wasm::storage::{Namespace, Quota, Storage, StorageLimits};
use airssys_wasm::{Component, Engine, EngineConfig, ExecutionContext, Instance, Message};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use redb::{ReadableDatabase, TableDefinition};

const WRITERS: usize = 64;
const BARE: TableDefinition<&str, &[u8]> = TableDefinition::new("bare");

async fn instance(component: &Component, id: &str, storage: &Storage) -> Instance {
    let ctx = ExecutionContext::new(id)
        .with_limits(airssys_wasm::ResourceLimits::default().with_storage_quota(Quota::unlimited()))
        .with_storage(storage.clone());
    let mut i = component.instantiate(&ctx).await.unwrap();
    i.initialize().await.unwrap();
    i
}

fn msg(text: String) -> Message {
    Message::new("host", text.into_bytes())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let engine = Engine::new(EngineConfig::default().cache_dir(None)).unwrap();
    let kv = engine.load_file(common::component("kv-counter")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path().join("airssys"), StorageLimits::default()).unwrap();
    let bare_dir = tempfile::tempdir().unwrap();
    let bare = Arc::new(redb::Database::create(bare_dir.path().join("bare.redb")).unwrap());
    {
        let tx = bare.begin_write().unwrap();
        tx.open_table(BARE).unwrap();
        tx.commit().unwrap();
    }

    // --- durable set ---
    let writers: Vec<Instance> = rt.block_on(async {
        let mut v = Vec::new();
        for w in 0..WRITERS {
            v.push(instance(&kv, &format!("w{w}"), &storage).await);
        }
        v
    });
    let writers = Arc::new(tokio::sync::Mutex::new(writers));
    let mut group = c.benchmark_group("storage/durable-set");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<Duration>::new()));
    group.bench_function("guest-actors-64", |b| {
        b.iter_custom(|iters| {
            let per = (iters as usize).div_ceil(WRITERS);
            let writers = writers.clone();
            let latencies = latencies.clone();
            rt.block_on(async move {
                let mut all = writers.lock().await;
                let taken: Vec<Instance> = all.drain(..).collect();
                let start = Instant::now();
                let tasks: Vec<_> = taken
                    .into_iter()
                    .map(|mut i| {
                        let latencies = latencies.clone();
                        tokio::spawn(async move {
                            let mut mine = Vec::with_capacity(per);
                            for n in 0..per {
                                let t = Instant::now();
                                i.handle_message(&msg(format!("set k{} v{n}", n % 1000)))
                                    .await
                                    .unwrap();
                                mine.push(t.elapsed());
                            }
                            latencies.lock().unwrap().extend(mine);
                            i
                        })
                    })
                    .collect();
                for t in tasks {
                    all.push(t.await.unwrap());
                }
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per * WRITERS) as f64)
            })
        })
    });
    group.bench_function("redb-direct-64-threads", |b| {
        b.iter_custom(|iters| {
            let per = (iters as usize).div_ceil(WRITERS);
            let start = Instant::now();
            std::thread::scope(|s| {
                for w in 0..WRITERS {
                    let bare = &bare;
                    s.spawn(move || {
                        for n in 0..per {
                            let tx = bare.begin_write().unwrap();
                            {
                                let mut t = tx.open_table(BARE).unwrap();
                                let key = format!("w{w}/k{}", n % 1000);
                                t.insert(key.as_str(), format!("v{n}").as_bytes()).unwrap();
                            }
                            tx.commit().unwrap();
                        }
                    });
                }
            });
            start
                .elapsed()
                .mul_f64(iters as f64 / (per * WRITERS) as f64)
        })
    });
    group.bench_function("redb-direct-1-thread (fsync cost)", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            let tx = bare.begin_write().unwrap();
            {
                let mut t = tx.open_table(BARE).unwrap();
                t.insert("one", n.to_string().as_bytes()).unwrap();
            }
            tx.commit().unwrap();
        })
    });
    group.finish();
    let mut l = std::mem::take(&mut *latencies.lock().unwrap());
    if !l.is_empty() {
        l.sort();
        let stats = storage.commit_stats();
        eprintln!(
            "durable set from 64 guest writers: p50 {:?}, p99 {:?} over {} writes; {} commits ({:.1} writes per commit)",
            percentile(&l, 0.5),
            percentile(&l, 0.99),
            l.len(),
            stats.commits,
            stats.writes as f64 / stats.commits.max(1) as f64
        );
    }

    // --- hot get ---
    let mut reader = rt.block_on(instance(&kv, "reader", &storage));
    rt.block_on(reader.handle_message(&msg("set hot value-of-the-hot-key".into())))
        .unwrap();
    storage
        .set_blocking(
            &Namespace::actor("x"),
            "warm",
            b"1".to_vec(),
            Quota::default(),
        )
        .unwrap();
    {
        let tx = bare.begin_write().unwrap();
        tx.open_table(BARE)
            .unwrap()
            .insert("hot", &b"value-of-the-hot-key"[..])
            .unwrap();
        tx.commit().unwrap();
    }
    let mut group = c.benchmark_group("storage/get-hot");
    group.throughput(Throughput::Elements(1));
    group.bench_function("guest", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let r = rt
                .block_on(reader.handle_message(&msg(format!("get-loop {iters} hot"))))
                .unwrap();
            assert_eq!(r.unwrap(), iters.to_string().into_bytes());
            start.elapsed()
        })
    });
    group.bench_function("redb-direct-txn-per-get", |b| {
        b.iter(|| {
            let tx = bare.begin_read().unwrap();
            let t = tx.open_table(BARE).unwrap();
            t.get("hot").unwrap().unwrap().value().len()
        })
    });
    group.bench_function("redb-direct-held-table", |b| {
        let tx = bare.begin_read().unwrap();
        let t = tx.open_table(BARE).unwrap();
        b.iter(|| t.get("hot").unwrap().unwrap().value().len())
    });
    group.finish();

    // --- list 10k keys ---
    let mut lister = rt.block_on(instance(&kv, "lister", &storage));
    // Setup in batches (10 commits, not 10,000 fsyncs): a busy machine must
    // not make it run into the call timeout.
    rt.block_on(lister.handle_message(&msg("fill-batch 10000 16".into())))
        .unwrap();
    {
        let tx = bare.begin_write().unwrap();
        {
            let mut t = tx.open_table(BARE).unwrap();
            for i in 0..10_000 {
                t.insert(format!("fill/{i:06}").as_str(), &[b'x'; 16][..])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let mut group = c.benchmark_group("storage/list-10k");
    group.sample_size(10);
    group.bench_function("guest-pages-of-100", |b| {
        b.iter(|| {
            let r = rt
                .block_on(lister.handle_message(&msg("list fill/".into())))
                .unwrap()
                .unwrap();
            assert_eq!(r.iter().filter(|c| **c == b',').count(), 9_999);
        })
    });
    group.bench_function("redb-direct-range", |b| {
        b.iter(|| {
            let tx = bare.begin_read().unwrap();
            let t = tx.open_table(BARE).unwrap();
            let keys: Vec<String> = t
                .range("fill/".."fill0")
                .unwrap()
                .map(|e| e.unwrap().0.value().to_string())
                .collect();
            assert_eq!(keys.len(), 10_000);
        })
    });
    group.finish();
}

criterion_group! {
    name = storage;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(storage);
