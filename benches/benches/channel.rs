//! Channel throughput and round-trip latency: `trellis::channel` (its own
//! mutex-and-FIFO-queues channel, with Trio's hand-off to waiting receivers)
//! against tokio's `mpsc`, `flume` and `async-channel`, on a 2-worker
//! multi-thread runtime, all in one run.
//!
//! - `channel_throughput`: one producer task sends 100k `u64`s to one
//!   consumer task through a channel of capacity 1024.
//! - `channel_throughput_4_to_1`: four producers send 25k each to one
//!   consumer (capacity 1024).
//! - `channel_throughput_4_to_4`: four producers, four consumers sharing the
//!   receiving side (capacity 1024). tokio's `mpsc` has one consumer only and
//!   sits this one out.
//! - `channel_ping_pong`: two tasks bounce a value 10k times over two
//!   channels of capacity 1.
//!
//! Run: `cargo bench -p trellis-benches --bench channel`
//! (add `-- --quick` for a fast, rougher run).

use std::future::Future;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const MESSAGES: u64 = 100_000;
const CAPACITY: usize = 1024;
const ROUNDS: u64 = 10_000;

/// One contender: how to open a channel, send and receive. `send` returns
/// `false` and `recv` `None` once the other side is gone.
trait Contender {
    const NAME: &'static str;
    type Tx: Send + Sync + 'static;
    type Rx: Send + 'static;
    fn open(capacity: usize) -> (Self::Tx, Self::Rx);
    /// Another handle on the receiving side, if the channel has several
    /// consumers.
    fn clone_rx(rx: &Self::Rx) -> Option<Self::Rx>;
    fn send(tx: &Self::Tx, value: u64) -> impl Future<Output = bool> + Send;
    fn recv(rx: &mut Self::Rx) -> impl Future<Output = Option<u64>> + Send;
}

struct Trellis;

impl Contender for Trellis {
    const NAME: &'static str = "trellis";
    type Tx = trellis::Sender<u64>;
    type Rx = trellis::Receiver<u64>;
    fn open(capacity: usize) -> (Self::Tx, Self::Rx) {
        trellis::channel(capacity)
    }
    fn clone_rx(rx: &Self::Rx) -> Option<Self::Rx> {
        Some(rx.clone())
    }
    async fn send(tx: &Self::Tx, value: u64) -> bool {
        tx.send(value).await.is_ok()
    }
    async fn recv(rx: &mut Self::Rx) -> Option<u64> {
        rx.recv().await.ok()
    }
}

struct TokioMpsc;

impl Contender for TokioMpsc {
    const NAME: &'static str = "tokio_mpsc";
    type Tx = tokio::sync::mpsc::Sender<u64>;
    type Rx = tokio::sync::mpsc::Receiver<u64>;
    fn open(capacity: usize) -> (Self::Tx, Self::Rx) {
        tokio::sync::mpsc::channel(capacity)
    }
    fn clone_rx(rx: &Self::Rx) -> Option<Self::Rx> {
        let _ = rx;
        None
    }
    async fn send(tx: &Self::Tx, value: u64) -> bool {
        tx.send(value).await.is_ok()
    }
    async fn recv(rx: &mut Self::Rx) -> Option<u64> {
        rx.recv().await
    }
}

struct Flume;

impl Contender for Flume {
    const NAME: &'static str = "flume";
    type Tx = flume::Sender<u64>;
    type Rx = flume::Receiver<u64>;
    fn open(capacity: usize) -> (Self::Tx, Self::Rx) {
        flume::bounded(capacity)
    }
    fn clone_rx(rx: &Self::Rx) -> Option<Self::Rx> {
        Some(rx.clone())
    }
    async fn send(tx: &Self::Tx, value: u64) -> bool {
        tx.send_async(value).await.is_ok()
    }
    async fn recv(rx: &mut Self::Rx) -> Option<u64> {
        rx.recv_async().await.ok()
    }
}

struct AsyncChannel;

impl Contender for AsyncChannel {
    const NAME: &'static str = "async_channel";
    type Tx = async_channel::Sender<u64>;
    type Rx = async_channel::Receiver<u64>;
    fn open(capacity: usize) -> (Self::Tx, Self::Rx) {
        async_channel::bounded(capacity)
    }
    fn clone_rx(rx: &Self::Rx) -> Option<Self::Rx> {
        Some(rx.clone())
    }
    async fn send(tx: &Self::Tx, value: u64) -> bool {
        tx.send(value).await.is_ok()
    }
    async fn recv(rx: &mut Self::Rx) -> Option<u64> {
        rx.recv().await.ok()
    }
}

/// One producer, one consumer, `MESSAGES` values.
async fn throughput<C: Contender>() {
    let (tx, mut rx) = C::open(CAPACITY);
    let producer = tokio::spawn(async move {
        for i in 0..MESSAGES {
            assert!(C::send(&tx, i).await, "consumer gone");
        }
    });
    let consumer = tokio::spawn(async move {
        let mut sum = 0u64;
        while let Some(v) = C::recv(&mut rx).await {
            sum += v;
        }
        sum
    });
    producer.await.expect("producer panicked");
    let sum = consumer.await.expect("consumer panicked");
    assert_eq!(sum, MESSAGES * (MESSAGES - 1) / 2);
}

/// `producers` tasks send `MESSAGES` values in all to `consumers` tasks.
async fn fan_in_out<C: Contender>(producers: u64, consumers: usize) {
    let (tx, rx) = C::open(CAPACITY);
    let tx = std::sync::Arc::new(tx);
    let per_producer = MESSAGES / producers;
    let producer_tasks: Vec<_> = (0..producers)
        .map(|p| {
            let tx = std::sync::Arc::clone(&tx);
            tokio::spawn(async move {
                for i in 0..per_producer {
                    assert!(C::send(&tx, p * per_producer + i).await, "consumers gone");
                }
            })
        })
        .collect();
    drop(tx);
    let mut receivers: Vec<C::Rx> = (1..consumers)
        .map(|_| C::clone_rx(&rx).expect("several consumers"))
        .collect();
    receivers.push(rx);
    let consumer_tasks: Vec<_> = receivers
        .into_iter()
        .map(|mut rx| {
            tokio::spawn(async move {
                let mut sum = 0u64;
                while let Some(v) = C::recv(&mut rx).await {
                    sum += v;
                }
                sum
            })
        })
        .collect();
    for p in producer_tasks {
        p.await.expect("producer panicked");
    }
    let mut sum = 0;
    for c in consumer_tasks {
        sum += c.await.expect("consumer panicked");
    }
    let total = per_producer * producers;
    assert_eq!(sum, total * (total - 1) / 2);
}

/// Two tasks bounce a counter `ROUNDS` times over two capacity-1 channels.
async fn ping_pong<C: Contender>() {
    let (ping_tx, mut ping_rx) = C::open(1);
    let (pong_tx, mut pong_rx) = C::open(1);
    let echo = tokio::spawn(async move {
        while let Some(v) = C::recv(&mut ping_rx).await {
            if !C::send(&pong_tx, v + 1).await {
                break;
            }
        }
    });
    let pinger = tokio::spawn(async move {
        let mut v = 0;
        for _ in 0..ROUNDS {
            assert!(C::send(&ping_tx, v).await, "echo gone");
            v = C::recv(&mut pong_rx).await.expect("echo gone");
        }
        v // dropping `ping_tx` here ends the echo task
    });
    assert_eq!(pinger.await.expect("pinger panicked"), ROUNDS);
    echo.await.expect("echo panicked");
}

fn bench_one<C: Contender, F: Future<Output = ()>>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    workload: fn() -> F,
) {
    group.bench_function(BenchmarkId::from_parameter(C::NAME), |b| {
        b.to_async(rt).iter(workload);
    });
}

fn channel_throughput(c: &mut Criterion) {
    let rt = trellis_benches::runtime();
    let mut group = c.benchmark_group("channel_throughput");
    group.throughput(Throughput::Elements(MESSAGES));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    bench_one::<Trellis, _>(&mut group, &rt, throughput::<Trellis>);
    bench_one::<TokioMpsc, _>(&mut group, &rt, throughput::<TokioMpsc>);
    bench_one::<Flume, _>(&mut group, &rt, throughput::<Flume>);
    bench_one::<AsyncChannel, _>(&mut group, &rt, throughput::<AsyncChannel>);
    group.finish();
}

fn channel_throughput_4_to_1(c: &mut Criterion) {
    let rt = trellis_benches::runtime();
    let mut group = c.benchmark_group("channel_throughput_4_to_1");
    group.throughput(Throughput::Elements(MESSAGES));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    bench_one::<Trellis, _>(&mut group, &rt, || fan_in_out::<Trellis>(4, 1));
    bench_one::<TokioMpsc, _>(&mut group, &rt, || fan_in_out::<TokioMpsc>(4, 1));
    bench_one::<Flume, _>(&mut group, &rt, || fan_in_out::<Flume>(4, 1));
    bench_one::<AsyncChannel, _>(&mut group, &rt, || fan_in_out::<AsyncChannel>(4, 1));
    group.finish();
}

fn channel_throughput_4_to_4(c: &mut Criterion) {
    let rt = trellis_benches::runtime();
    let mut group = c.benchmark_group("channel_throughput_4_to_4");
    group.throughput(Throughput::Elements(MESSAGES));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    bench_one::<Trellis, _>(&mut group, &rt, || fan_in_out::<Trellis>(4, 4));
    bench_one::<Flume, _>(&mut group, &rt, || fan_in_out::<Flume>(4, 4));
    bench_one::<AsyncChannel, _>(&mut group, &rt, || fan_in_out::<AsyncChannel>(4, 4));
    group.finish();
}

fn channel_ping_pong(c: &mut Criterion) {
    let rt = trellis_benches::runtime();
    let mut group = c.benchmark_group("channel_ping_pong");
    group.throughput(Throughput::Elements(ROUNDS));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    bench_one::<Trellis, _>(&mut group, &rt, ping_pong::<Trellis>);
    bench_one::<TokioMpsc, _>(&mut group, &rt, ping_pong::<TokioMpsc>);
    bench_one::<Flume, _>(&mut group, &rt, ping_pong::<Flume>);
    bench_one::<AsyncChannel, _>(&mut group, &rt, ping_pong::<AsyncChannel>);
    group.finish();
}

criterion_group!(
    benches,
    channel_throughput,
    channel_throughput_4_to_1,
    channel_throughput_4_to_4,
    channel_ping_pong
);
criterion_main!(benches);
