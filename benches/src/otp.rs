//! One server, four ways: the contenders of the OTP-layer benchmarks
//! (`benches/gen_server.rs`, `benches/registry.rs`,
//! `examples/memory_per_process.rs`).
//!
//! Every contender runs the same counter process: a cast adds to it, a call
//! reads it. Mailboxes are unbounded everywhere (Trellis's and ractor's
//! default, Erlang's only kind; kameo is given `mailbox::unbounded()`), so no
//! contender pays for back-pressure the others skip.
//!
//! | contender | process | start handshake | call | cast |
//! |---|---|---|---|---|
//! | `trellis` | `gen_server::start` in a nursery | `init` has run | `Server::call` with `INFINITY` (no timer) | `Server::cast` |
//! | `trellis_with_timeout` | the same | the same | `Server::call` with the default 5 s timeout | the same |
//! | `tokio` | a task looping on an unbounded `mpsc` receiver | a `oneshot` sent before the loop | `mpsc` send + `oneshot` reply | `mpsc` send |
//! | `tokio_with_timeout` | the same | the same | the same, inside `tokio::time::timeout(5 s)` | the same |
//! | `ractor` | `Actor::spawn` | `pre_start` has run | `ActorRef::call` (no timeout) | `ActorRef::cast` |
//! | `kameo` | `Spawn::spawn_with_mailbox` | `wait_for_startup` | `ask` | `tell` |

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use trellis::gen_server::{self, Context, GenServer, Init, Response, Server};
use trellis::{BoxError, Nursery};

/// One way to run the counter process.
pub trait Contender: 'static {
    /// The `BenchmarkId` of this contender.
    const NAME: &'static str;
    /// What callers hold to reach one process.
    type Handle: Clone + Send + Sync + 'static;

    /// Starts one process and returns once its start handshake is done.
    /// Trellis starts it in `nursery`; the others ignore it.
    fn start(nursery: &Nursery) -> impl Future<Output = Self::Handle> + Send;

    /// Round trip: the process answers with its counter.
    fn call(handle: &Self::Handle) -> impl Future<Output = u64> + Send;

    /// One-way: the process adds `value` to its counter.
    fn cast(handle: &Self::Handle, value: u64) -> impl Future<Output = ()> + Send;

    /// Asks the process to stop and waits until it has.
    fn stop(handle: Self::Handle) -> impl Future<Output = ()> + Send;

    /// Starts one process registered under `name`.
    fn start_named(nursery: &Nursery, name: &str) -> impl Future<Output = Self::Handle> + Send;

    /// Looks `name` up in the contender's registry (typed where it can be).
    fn lookup(name: &str) -> Option<Self::Handle>;
}

/// The timeout of the `*_with_timeout` contenders: Trellis's default
/// (OTP's 5 s).
pub const CALL_TIMEOUT: Duration = gen_server::DEFAULT_TIMEOUT;

// ---------------------------------------------------------------- trellis

/// The Trellis counter.
#[derive(Debug, Default)]
pub struct TrellisCounter(u64);

impl GenServer for TrellisCounter {
    type Arg = u64;
    type Call = ();
    type Reply = u64;
    type Cast = u64;
    type Info = ();

    async fn init(&mut self, start: u64, _: &mut Context<Self>) -> Result<Init, trellis::BoxError> {
        self.0 = start;
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        (): (),
        _: &mut Context<Self>,
    ) -> Result<Response<u64>, BoxError> {
        Ok(Response::Reply(self.0))
    }

    async fn handle_cast(
        &mut self,
        add: u64,
        _: &mut Context<Self>,
    ) -> Result<gen_server::Flow, BoxError> {
        self.0 += add;
        Ok(gen_server::Flow::Continue)
    }
}

/// `trellis::gen_server`.
#[derive(Debug)]
pub struct Trellis;

impl Contender for Trellis {
    const NAME: &'static str = "trellis";
    type Handle = Server<TrellisCounter>;

    async fn start(nursery: &Nursery) -> Self::Handle {
        gen_server::Builder::new(TrellisCounter::default())
            .arg(0)
            .start(nursery)
            .await
            .expect("start trellis server")
    }

    async fn call(handle: &Self::Handle) -> u64 {
        handle
            .call((), gen_server::INFINITY)
            .await
            .expect("trellis call")
    }

    async fn cast(handle: &Self::Handle, value: u64) {
        handle.cast(value).await.expect("trellis cast");
    }

    async fn stop(handle: Self::Handle) {
        handle.stop().await.expect("trellis stop");
    }

    async fn start_named(nursery: &Nursery, name: &str) -> Self::Handle {
        gen_server::Builder::new(TrellisCounter::default())
            .arg(0)
            .options(name)
            .start(nursery)
            .await
            .expect("start named trellis server")
    }

    fn lookup(name: &str) -> Option<Self::Handle> {
        trellis::registry::lookup::<Server<TrellisCounter>>(name).ok()
    }
}

/// `trellis::gen_server` calls with the default 5 s timeout (a tokio timer
/// per call); call groups only.
#[derive(Debug)]
pub struct TrellisTimeout;

impl Contender for TrellisTimeout {
    const NAME: &'static str = "trellis_with_timeout";
    type Handle = Server<TrellisCounter>;

    async fn start(nursery: &Nursery) -> Self::Handle {
        Trellis::start(nursery).await
    }

    async fn call(handle: &Self::Handle) -> u64 {
        handle.call((), CALL_TIMEOUT).await.expect("trellis call")
    }

    async fn cast(handle: &Self::Handle, value: u64) {
        Trellis::cast(handle, value).await;
    }

    async fn stop(handle: Self::Handle) {
        Trellis::stop(handle).await;
    }

    async fn start_named(nursery: &Nursery, name: &str) -> Self::Handle {
        Trellis::start_named(nursery, name).await
    }

    fn lookup(name: &str) -> Option<Self::Handle> {
        Trellis::lookup(name)
    }
}

// ---------------------------------------------------------------- raw tokio

/// What the raw tokio task receives.
#[derive(Debug)]
pub enum TokioMsg {
    /// Add to the counter.
    Add(u64),
    /// Answer with the counter.
    Get(oneshot::Sender<u64>),
    /// Stop; the sender is dropped once the task has ended its loop.
    Stop(oneshot::Sender<()>),
}

/// A tokio task looping on an unbounded `mpsc` receiver: the floor.
#[derive(Debug)]
pub struct Tokio;

/// Raw tokio has no registry: the one a user would write, a `RwLock`ed map.
fn tokio_registry() -> &'static RwLock<HashMap<Arc<str>, mpsc::UnboundedSender<TokioMsg>>> {
    static NAMES: OnceLock<RwLock<HashMap<Arc<str>, mpsc::UnboundedSender<TokioMsg>>>> =
        OnceLock::new();
    NAMES.get_or_init(Default::default)
}

impl Contender for Tokio {
    const NAME: &'static str = "tokio";
    type Handle = mpsc::UnboundedSender<TokioMsg>;

    async fn start(_: &Nursery) -> Self::Handle {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::spawn(async move {
            let mut count = 0u64;
            let _ = ready_tx.send(());
            while let Some(message) = rx.recv().await {
                match message {
                    TokioMsg::Add(value) => count += value,
                    TokioMsg::Get(reply) => {
                        let _ = reply.send(count);
                    }
                    TokioMsg::Stop(done) => {
                        drop(rx);
                        drop(done);
                        return;
                    }
                }
            }
        });
        ready_rx.await.expect("tokio task started");
        tx
    }

    async fn call(handle: &Self::Handle) -> u64 {
        let (tx, rx) = oneshot::channel();
        handle.send(TokioMsg::Get(tx)).expect("tokio send");
        rx.await.expect("tokio reply")
    }

    async fn cast(handle: &Self::Handle, value: u64) {
        handle.send(TokioMsg::Add(value)).expect("tokio send");
    }

    async fn stop(handle: Self::Handle) {
        let (tx, rx) = oneshot::channel();
        if handle.send(TokioMsg::Stop(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    async fn start_named(nursery: &Nursery, name: &str) -> Self::Handle {
        let handle = Self::start(nursery).await;
        tokio_registry()
            .write()
            .expect("registry lock")
            .insert(name.into(), handle.clone());
        handle
    }

    fn lookup(name: &str) -> Option<Self::Handle> {
        tokio_registry()
            .read()
            .expect("registry lock")
            .get(name)
            .cloned()
    }
}

/// Raw tokio with the same 5 s timeout around each call as Trellis: how
/// much of a Trellis call is the timer (call groups only).
#[derive(Debug)]
pub struct TokioTimeout;

impl Contender for TokioTimeout {
    const NAME: &'static str = "tokio_with_timeout";
    type Handle = mpsc::UnboundedSender<TokioMsg>;

    async fn start(nursery: &Nursery) -> Self::Handle {
        Tokio::start(nursery).await
    }

    async fn call(handle: &Self::Handle) -> u64 {
        tokio::time::timeout(CALL_TIMEOUT, Tokio::call(handle))
            .await
            .expect("tokio call timed out")
    }

    async fn cast(handle: &Self::Handle, value: u64) {
        Tokio::cast(handle, value).await;
    }

    async fn stop(handle: Self::Handle) {
        Tokio::stop(handle).await;
    }

    async fn start_named(nursery: &Nursery, name: &str) -> Self::Handle {
        Tokio::start_named(nursery, name).await
    }

    fn lookup(name: &str) -> Option<Self::Handle> {
        Tokio::lookup(name)
    }
}

// ---------------------------------------------------------------- ractor

/// What the ractor actor receives.
#[derive(Debug)]
pub enum RactorMsg {
    /// Add to the counter.
    Add(u64),
    /// Answer with the counter.
    Get(ractor::RpcReplyPort<u64>),
}

/// The ractor counter.
#[derive(Debug)]
pub struct RactorCounter;

impl ractor::Actor for RactorCounter {
    type Msg = RactorMsg;
    type State = u64;
    type Arguments = u64;

    async fn pre_start(
        &self,
        _: ractor::ActorRef<RactorMsg>,
        start: u64,
    ) -> Result<u64, ractor::ActorProcessingErr> {
        Ok(start)
    }

    async fn handle(
        &self,
        _: ractor::ActorRef<RactorMsg>,
        message: RactorMsg,
        count: &mut u64,
    ) -> Result<(), ractor::ActorProcessingErr> {
        match message {
            RactorMsg::Add(value) => *count += value,
            RactorMsg::Get(reply) => {
                let _ = reply.send(*count);
            }
        }
        Ok(())
    }
}

/// `ractor` (call without a timeout, its default).
#[derive(Debug)]
pub struct Ractor;

impl Contender for Ractor {
    const NAME: &'static str = "ractor";
    type Handle = ractor::ActorRef<RactorMsg>;

    async fn start(_: &Nursery) -> Self::Handle {
        let (actor, _join) = ractor::Actor::spawn(None, RactorCounter, 0)
            .await
            .expect("spawn ractor actor");
        actor
    }

    async fn call(handle: &Self::Handle) -> u64 {
        match handle
            .call(RactorMsg::Get, None)
            .await
            .expect("ractor call")
        {
            ractor::rpc::CallResult::Success(count) => count,
            other => panic!("ractor call failed: {other:?}"),
        }
    }

    async fn cast(handle: &Self::Handle, value: u64) {
        handle.cast(RactorMsg::Add(value)).expect("ractor cast");
    }

    async fn stop(handle: Self::Handle) {
        let _ = handle.stop_and_wait(None, None).await;
    }

    async fn start_named(_: &Nursery, name: &str) -> Self::Handle {
        let (actor, _join) = ractor::Actor::spawn(Some(name.to_string()), RactorCounter, 0)
            .await
            .expect("spawn named ractor actor");
        actor
    }

    fn lookup(name: &str) -> Option<Self::Handle> {
        ractor::ActorRef::<RactorMsg>::where_is(name)
    }
}

// ---------------------------------------------------------------- kameo

/// The kameo counter.
#[derive(Debug)]
pub struct KameoCounter(u64);

impl kameo::Actor for KameoCounter {
    type Args = u64;
    type Error = kameo::error::Infallible;

    async fn on_start(
        start: u64,
        _: kameo::actor::ActorRef<Self>,
    ) -> Result<Self, kameo::error::Infallible> {
        Ok(KameoCounter(start))
    }
}

/// Kameo's `ask` message.
#[derive(Debug)]
pub struct Get;

/// Kameo's `tell` message.
#[derive(Debug)]
pub struct Add(pub u64);

impl kameo::message::Message<Get> for KameoCounter {
    type Reply = u64;

    async fn handle(&mut self, _: Get, _: &mut kameo::message::Context<Self, u64>) -> u64 {
        self.0
    }
}

impl kameo::message::Message<Add> for KameoCounter {
    type Reply = ();

    async fn handle(&mut self, Add(value): Add, _: &mut kameo::message::Context<Self, ()>) {
        self.0 += value;
    }
}

/// `kameo` with an unbounded mailbox.
#[derive(Debug)]
pub struct Kameo;

impl Contender for Kameo {
    const NAME: &'static str = "kameo";
    type Handle = kameo::actor::ActorRef<KameoCounter>;

    async fn start(_: &Nursery) -> Self::Handle {
        use kameo::actor::Spawn as _;
        let actor = KameoCounter::spawn_with_mailbox(0, kameo::mailbox::unbounded());
        actor.wait_for_startup().await;
        actor
    }

    async fn call(handle: &Self::Handle) -> u64 {
        handle.ask(Get).await.expect("kameo ask")
    }

    async fn cast(handle: &Self::Handle, value: u64) {
        handle.tell(Add(value)).await.expect("kameo tell");
    }

    async fn stop(handle: Self::Handle) {
        let _ = handle.stop_gracefully().await;
        handle.wait_for_shutdown().await;
    }

    async fn start_named(nursery: &Nursery, name: &str) -> Self::Handle {
        let actor = Self::start(nursery).await;
        actor
            .register(name.to_string())
            .expect("register kameo actor");
        actor
    }

    fn lookup(name: &str) -> Option<Self::Handle> {
        kameo::actor::ActorRef::<KameoCounter>::lookup(name)
            .ok()
            .flatten()
    }
}

/// Runs `body` inside a Trellis nursery (the one Trellis servers start in),
/// returning its value. Everything still running in the nursery when `body`
/// returns is cancelled.
pub async fn in_nursery<T, F, Fut>(body: F) -> T
where
    T: Send + 'static,
    F: FnOnce(Nursery) -> Fut,
    Fut: Future<Output = T>,
{
    trellis::nursery(|n| async move {
        let value = body(n.clone()).await;
        n.cancel();
        Ok::<T, trellis::NurseryError>(value)
    })
    .await
    .expect("benchmark nursery failed")
}

/// A gen_server that does nothing but exist: the children of the
/// supervisor start-up workloads.
pub struct Idle;

impl GenServer for Idle {
    type Arg = ();
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = ();

    async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, trellis::BoxError> {
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        (): (),
        _: &mut Context<Self>,
    ) -> Result<Response<()>, trellis::BoxError> {
        Ok(Response::Reply(()))
    }
}
