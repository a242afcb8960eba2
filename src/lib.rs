//! Trellis: structured concurrency and supervision trees for async Rust, on tokio.
//!
//! `tokio::spawn` is a `go` statement: the task escapes its caller, its
//! errors wait in a handle nobody may read, and timeouts and cancellation do
//! not compose. Trellis brings two proven ideas to tokio instead:
//!
//! - **Trio's structured concurrency**: every task lives in a [`nursery`]
//!   that outlives it; a failure cancels its siblings and is reported, never
//!   lost; [cancel scopes](CancelScope) nest and deadlines compose.
//! - **Erlang/OTP's fault tolerance**: processes with typed mailboxes and
//!   names, generic servers answering `call`/`cast`, links and monitors.
//!
//! # Layers
//!
//! Modules build on each other from the bottom up; a layer uses only the ones
//! below it.
//!
//! 1. **Structured concurrency**, flat at the crate root: [`run`],
//!    [`nursery`], [`CancelScope`] and [`move_on_after`] & co., [`channel`],
//!    and [`sync`] (events, limiters, conditions).
//! 2. **Utilities**: [`util`], trio-util's helpers ([`wait_any`](util::wait_any),
//!    [`AsyncValue`](util::AsyncValue), [`periodic`](util::periodic), [`TaskStats`](util::TaskStats)…).
//! 3. **OTP**, as public modules read qualified like Erlang's: [`process`]
//!    (pids, exit reasons, links and monitors), [`registry`] (names → typed
//!    handles), [`mailbox`] (typed mailboxes, `send`/`receive`) and
//!    [`gen_server`] (`call`, `cast`, `handle_info`, `terminate`); on top,
//!    [`supervisor`], [`dynamic_supervisor`], [`application`] and [`node`]
//!    restart what fails, and [`logging`] prints it.
//! 4. **I/O**: [`net`] serves TCP with one task per connection, inside a
//!    nursery; [`protocol`] runs `asyncio.Protocol`-style callbacks over TCP
//!    and Unix sockets: servers, clients, flow control, the loop facade.
//! 5. **Testing**: [`testing`], helpers for deterministic tests.
//!
//! # Reference → Trellis
//!
//! ## Trio → Trellis
//!
//! Every Trio API a user reaches for, its Trellis name, and each deliberate
//! difference with the reason. Where this table is silent, Trellis behaves
//! as Trio does.
//!
//! | Trio | Trellis | deliberate difference, and why |
//! |---|---|---|
//! | `trio.run(main)` | [`run(main)`](run), or any `#[tokio::main]` | Trellis runs on tokio; no runtime of its own |
//! | `async with open_nursery() as n` | [`nursery(\|n\| async move { … })`](nursery) | the body is a closure; its value (`()` or a `Result`'s `Ok`, see [`TaskOutput`]) is the nursery's |
//! | `n.start_soon(f)` | [`Nursery::spawn`] → [`TaskHandle`] | returns a handle to await the task's value or cancel it (traio's task); spawning into a finished nursery panics, as Trio raises ([`Nursery::try_spawn`] returns the error) |
//! | `await n.start(f)` + `task_status.started(v)` | [`Nursery::start`] + [`TaskStatus::started`] | `started` takes the status by value: a second call does not compile, instead of raising |
//! | `task_status=TASK_STATUS_IGNORED` | [`TaskStatus::ignored`] | |
//! | `nursery.cancel_scope.cancel()` | [`Nursery::cancel`] | the nursery returns `Ok` for a unit body; a body with a value it never produced returns [`NurseryError::Cancelled`] (Rust has no `None` for every type) |
//! | `nursery.child_tasks` | [`Nursery::child_tasks`] | a task is listed from its first wait on (listing at spawn would cost every spawn a lock) |
//! | a task runs to its first checkpoint even in a cancelled nursery | the same | |
//! | `MultiError` / `ExceptionGroup` | [`NurseryError::Failed`] with every [`TaskFailure`] (error or panic, with the task's name) | a panic is a failure value, never an abort of the process |
//! | `Cancelled` | the future is dropped at its `.await` | Rust's form of an exception that cannot be caught by accident: cleanup runs in `Drop`; async cleanup uses [`wait_shutdown`] and a grace period |
//! | `CancelScope()`, `cancel()`, `cancelled_caught`, `deadline` | [`CancelScope`], [`CancelScope::run`] | a scope wraps a future (`run`) instead of a `with` block; running it twice panics, as Trio raises ([`CancelScope::try_run`] returns [`ScopeError`]) |
//! | the outermost cancelled scope catches | the same | |
//! | `cancel_scope.shield = True/False` | [`CancelScope::shielded`], [`CancelScope::set_shield`] | a cancellation that already reached the scope is not taken back by turning the shield on; a shield cannot outlive a drop from outside Trellis (`select!`, `abort`) — see [`CancelScope`] |
//! | `relative_deadline` | [`CancelScope::with_timeout`], [`CancelScope::relative_deadline`] | |
//! | `move_on_after`, `move_on_at`, `fail_after`, `fail_at` | [`move_on_after`], [`move_on_at`], [`fail_after`], [`fail_at`] | wrap a future and return `Option` / `Result`; relative ones count from the first poll |
//! | `trio.sleep(0)` / `checkpoint()` | [`checkpoint`] | only an `.await` that yields is a cancellation point; every Trellis async operation yields |
//! | `current_effective_deadline()` | [`current_deadline`] | `None` for "no deadline" instead of `+inf`; an instant already passed inside a cancelled scope (Trio's `-inf`) |
//! | `open_memory_channel(n)` | [`channel(n)`](channel()) | |
//! | `Event`, `Lock`, `Semaphore`, `CapacityLimiter`, `Condition` | [`sync`] | tokio's `Mutex` and `Semaphore` where the semantics match |
//! | `serve_tcp`, `open_tcp_stream` | [`net`] | |
//! | `trio.testing` (`Sequencer`, `wait_all_tasks_blocked`, `assert_checkpoints`, autojump clock) | [`testing`] | tokio's paused clock is the autojump clock |
//! | trio-util: `wait_any`, `AsyncValue`, `periodic`, `azip`, `TaskStats`… | [`util`] | |
//! | traio: `Scope(timeout=)`, `spawn(bubble=, master=, awaited=, cancel_timeout=)`, `fork()`, `cancel(exc)` | [`NurseryOptions`], [`SpawnOptions`], [`Nursery::fork`] / [`ForkOptions`] / [`Nursery::join`], [`Nursery::cancel_with`] | see [`nursery`]'s traio table |
//! | trio-protocol / asyncio `Protocol`, `Transport`, `create_server`, `create_connection`, `Loop` | [`protocol`] | |
//!
//! | Erlang/OTP, triotp | Trellis |
//! |---|---|
//! | pid, `self()`, `is_process_alive/1` | [`process::Pid`], [`process::is_alive`] |
//! | `monitor/2`, `link/1`, `trap_exit` | [`mailbox::Mailbox::monitor`], [`gen_server::Context::link`], … ([`process`]) |
//! | `register/2`, `whereis/1`, Elixir `Registry` | [`registry`] |
//! | triotp `mailbox.create/open/send/receive` | [`mailbox`] |
//! | `gen_server:start/call/cast/reply`, `handle_*`, `terminate` | [`gen_server`] |
//! | triotp `supervisor`, `dynamic_supervisor`, `application`, `node.run` | [`supervisor`], [`dynamic_supervisor`], [`application`], [`node::run`] |
//! | `gen_statem`, `pg` | [`gen_statem`], [`pg`] |
//! | Erlang distribution (EPMD, handshake, external term format, `net_kernel`, `inet_tls`) | `trellis::dist` (cargo feature `dist`): a hidden node in an Erlang/Elixir cluster |
//! | `observer`, Prometheus exporters | `trellis::observer` (cargo feature `observer`): the live tree in a browser, a JSON API, `/metrics` |
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use trellis::{channel, move_on_after, nursery};
//!
//! let fastest = trellis::run(async {
//!     let (tx, rx) = channel(2);
//!     let mut first = None;
//!     let slot = &mut first;
//!     nursery(|n| async move {
//!         for (name, delay) in [("slow", 50), ("fast", 10)] {
//!             let tx = tx.clone();
//!             n.spawn(async move {
//!                 tokio::time::sleep(Duration::from_millis(delay)).await;
//!                 let _ = tx.send(name).await;
//!             });
//!         }
//!         // Take the first answer, then stop the others.
//!         *slot = move_on_after(Duration::from_secs(5), rx.recv()).await.and_then(Result::ok);
//!         n.cancel();
//!     })
//!     .await
//!     .unwrap();
//!     first
//! });
//! assert_eq!(fastest, Some("fast"));
//! ```
#![doc(test(attr(deny(warnings))))]

// Structured concurrency, flat at the root.
mod cancel;
mod channel;
mod deadline;
mod loom;
mod nursery;
mod runtime;
pub mod sync;

// Utilities on top of it.
pub mod util;

// OTP, lowest layer first.
pub mod process;

pub mod registry;

pub mod mailbox;

pub mod gen_server;

pub mod gen_statem;

pub mod pg;

pub mod supervisor;

pub mod dynamic_supervisor;

pub mod application;

pub mod logging;

pub mod node;

#[cfg(feature = "dist")]
pub mod dist;

// I/O.
pub mod net;

pub mod protocol;

// Observation: the hooks are always built (lower layers call them); the
// public module, with its HTTP server, only with the `observer` feature.
#[cfg(feature = "observer")]
pub mod observer;
#[cfg(not(feature = "observer"))]
#[allow(unreachable_pub, dead_code, missing_docs)]
mod observer;

// The test kit.
pub mod testing;

pub use cancel::{
    CancelScope, ScopeError, Scoped, TooSlow, WaitShutdown, checkpoint, current_deadline,
    fail_after, fail_at, move_on_after, move_on_at, wait_shutdown,
};
pub use channel::{
    ChannelStats, Receiver, RecvError, SendError, Sender, TryRecvError, TrySendError, channel,
};
pub use nursery::{
    BoxError, ForkOptions, Nursery, NurseryError, NurseryFuture, NurseryOptions, SpawnOptions,
    StartError, TaskError, TaskFailure, TaskHandle, TaskInfo, TaskOutput, TaskState, TaskStatus,
    nursery, nursery_with,
};
pub use runtime::{RunOptions, run};
