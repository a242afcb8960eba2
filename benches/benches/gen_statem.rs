//! gen_statem against gen_server in the same run: the same counter as a
//! `trellis::gen_server` and as a `trellis::gen_statem` (a statem runs as a
//! gen_server, so this measures what the state machine layer adds: the
//! event value, the transition, the reply through `ReplyTo`, the queue
//! checks).
//!
//! - `statem_call_round_trip_{current,multi}_thread`: one caller task makes
//!   calls one after another (`INFINITY` timeout).
//! - `statem_event_throughput`: one sender task casts 10k events, then makes
//!   one call so that every event has been handled before the clock stops.
//!   `gen_statem_state_change` moves to the other state on every event
//!   (a state change each time: postponed-list and state-timeout checks).
//!
//! Run: `cargo bench -p trellis-benches --bench gen_statem -- --warm-up-time 1 --measurement-time 3`

use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use tokio::runtime::Runtime;
use trellis::BoxError;
use trellis::gen_server::{self, GenServer, Response};
use trellis::gen_statem::{self, Event, GenStatem, Transition};
use trellis::{Nursery, NurseryError};

const EVENTS: u64 = 10_000;

/// The counter as a gen_server.
struct ServerCounter(u64);

impl GenServer for ServerCounter {
    type Arg = ();
    type Call = ();
    type Reply = u64;
    type Cast = u64;
    type Info = ();

    async fn init(
        &mut self,
        (): (),
        _: &mut gen_server::Context<Self>,
    ) -> Result<gen_server::Init, BoxError> {
        Ok(gen_server::Init::Ready)
    }

    async fn handle_call(
        &mut self,
        (): (),
        _: &mut gen_server::Context<Self>,
    ) -> Result<Response<u64>, BoxError> {
        Ok(Response::Reply(self.0))
    }

    async fn handle_cast(
        &mut self,
        n: u64,
        _: &mut gen_server::Context<Self>,
    ) -> Result<gen_server::Flow, BoxError> {
        self.0 += n;
        Ok(gen_server::Flow::Continue)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// The counter as a gen_statem; `TOGGLE` changes state on every cast.
struct StatemCounter<const TOGGLE: bool>;

impl<const TOGGLE: bool> GenStatem for StatemCounter<TOGGLE> {
    type Arg = ();
    type State = Side;
    type Data = u64;
    type Call = ();
    type Reply = u64;
    type Cast = u64;
    type Info = ();
    type Internal = ();

    async fn init(
        &mut self,
        (): (),
        _: &mut gen_statem::Context<'_, Self>,
    ) -> Result<gen_statem::Init<Side, u64>, BoxError> {
        Ok(gen_statem::Init::Ready(Side::Left, 0))
    }

    async fn handle_event(
        &mut self,
        event: Event<Self>,
        side: &Side,
        count: &mut u64,
        ctx: &mut gen_statem::Context<'_, Self>,
    ) -> Result<Transition<Side>, BoxError> {
        Ok(match event {
            Event::Call((), from) => {
                ctx.reply(from, *count);
                Transition::Keep
            }
            Event::Cast(n) => {
                *count += n;
                if TOGGLE {
                    Transition::Next(match side {
                        Side::Left => Side::Right,
                        Side::Right => Side::Left,
                    })
                } else {
                    Transition::Keep
                }
            }
            _ => Transition::Keep,
        })
    }
}

/// What the workloads need of a contender.
trait Contender: Send + Sync + Clone + 'static {
    fn start(n: &Nursery) -> impl Future<Output = Self> + Send;
    fn call(&self) -> impl Future<Output = u64> + Send;
    fn cast(&self, n: u64) -> impl Future<Output = ()> + Send;
}

impl Contender for gen_server::Server<ServerCounter> {
    async fn start(n: &Nursery) -> Self {
        gen_server::start(n, ServerCounter(0)).await.unwrap()
    }
    async fn call(&self) -> u64 {
        gen_server::Server::call(self, (), gen_server::INFINITY)
            .await
            .unwrap()
    }
    async fn cast(&self, n: u64) {
        gen_server::Server::cast(self, n).await.unwrap();
    }
}

impl<const TOGGLE: bool> Contender for gen_statem::Statem<StatemCounter<TOGGLE>> {
    async fn start(n: &Nursery) -> Self {
        gen_statem::start(n, StatemCounter::<TOGGLE>).await.unwrap()
    }
    async fn call(&self) -> u64 {
        gen_statem::Statem::call(self, (), gen_statem::INFINITY)
            .await
            .unwrap()
    }
    async fn cast(&self, n: u64) {
        gen_statem::Statem::cast(self, n).await.unwrap();
    }
}

async fn in_nursery<T: Send + 'static, Fut: Future<Output = T>>(
    body: impl FnOnce(Nursery) -> Fut,
) -> T {
    trellis::nursery(|n| async move {
        let value = body(n.clone()).await;
        n.cancel();
        Ok::<T, NurseryError>(value)
    })
    .await
    .expect("benchmark nursery failed")
}

fn call_round_trip<C: Contender>(rt: &Runtime, iters: u64) -> Duration {
    rt.block_on(in_nursery(|n| async move {
        let server = C::start(&n).await;
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(server.call().await);
            }
            start.elapsed()
        })
        .await
        .expect("caller panicked")
    }))
}

fn event_throughput<C: Contender>(rt: &Runtime, iters: u64) -> Duration {
    rt.block_on(in_nursery(|n| async move {
        let server = C::start(&n).await;
        let sender = server.clone();
        let elapsed = tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                for i in 0..EVENTS {
                    sender.cast(i).await;
                }
                black_box(sender.call().await);
            }
            start.elapsed()
        })
        .await
        .expect("sender panicked");
        assert_eq!(
            server.call().await,
            iters * EVENTS * (EVENTS - 1) / 2,
            "events lost"
        );
        elapsed
    }))
}

type Workload = fn(&Runtime, u64) -> Duration;

fn group(
    c: &mut Criterion,
    name: &str,
    rt: &Runtime,
    elements: u64,
    workloads: &[(&str, Workload)],
) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(elements));
    group.sample_size(30);
    for &(contender, workload) in workloads {
        group.bench_function(BenchmarkId::from_parameter(contender), |b| {
            b.iter_custom(|iters| workload(rt, iters));
        });
    }
    group.finish();
}

type Server = gen_server::Server<ServerCounter>;
type Statem = gen_statem::Statem<StatemCounter<false>>;
type Toggle = gen_statem::Statem<StatemCounter<true>>;

fn calls(c: &mut Criterion) {
    let contenders: [(&str, Workload); 2] = [
        ("gen_server", call_round_trip::<Server>),
        ("gen_statem", call_round_trip::<Statem>),
    ];
    let single = trellis_benches::current_thread_runtime();
    group(
        c,
        "statem_call_round_trip_current_thread",
        &single,
        1,
        &contenders,
    );
    let multi = trellis_benches::runtime();
    group(
        c,
        "statem_call_round_trip_multi_thread",
        &multi,
        1,
        &contenders,
    );
}

fn events(c: &mut Criterion) {
    let rt = trellis_benches::runtime();
    group(
        c,
        "statem_event_throughput",
        &rt,
        EVENTS,
        &[
            ("gen_server", event_throughput::<Server> as Workload),
            ("gen_statem", event_throughput::<Statem>),
            ("gen_statem_state_change", event_throughput::<Toggle>),
        ],
    );
}

criterion_group!(benches, calls, events);

/// `STATEM_COUNT=<contender>:<call|event>:<n>` runs that workload `n` times
/// on a current-thread runtime and exits, without criterion: for counting
/// instructions (`perf stat -e instructions:u`), which a busy machine
/// does not disturb as it does timings.
fn main() {
    if let Ok(spec) = std::env::var("STATEM_COUNT") {
        let mut parts = spec.split(':');
        let (contender, workload, n) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().and_then(|n| n.parse().ok()).unwrap_or(1),
        );
        let rt = trellis_benches::current_thread_runtime();
        let run: Workload = match (contender, workload) {
            ("gen_server", "call") => call_round_trip::<Server>,
            ("gen_statem", "call") => call_round_trip::<Statem>,
            ("gen_server", "event") => event_throughput::<Server>,
            ("gen_statem", "event") => event_throughput::<Statem>,
            ("gen_statem_state_change", "event") => event_throughput::<Toggle>,
            _ => panic!("STATEM_COUNT: unknown {spec:?}"),
        };
        black_box(run(&rt, n));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
