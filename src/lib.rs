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
//! | Trio | Trellis |
//! |---|---|
//! | `trio.run(main)` | [`run(main)`](run), or any `#[tokio::main]` |
//! | `async with open_nursery() as n` | [`nursery(\|n\| async move { … })`](nursery) |
//! | `n.start_soon(f)` / `await n.start(f)` + `task_status.started(v)` | [`Nursery::spawn`] / [`Nursery::start`] + [`TaskStatus::started`] |
//! | traio `spawn(bubble=, master=, awaited=)`, `fork()`, `Scope(timeout=)` | [`SpawnOptions`], [`Nursery::fork`], [`NurseryOptions`] |
//! | `MultiError` | [`NurseryError::Failed`] with every [`TaskFailure`] |
//! | `move_on_after`, `move_on_at`, `fail_after`, `fail_at` | [`move_on_after`], [`move_on_at`], [`fail_after`], [`fail_at`] |
//! | `CancelScope` (`cancel`, `deadline`, `shield`, `cancelled_caught`) | [`CancelScope`] |
//! | `trio.sleep(0)` / `checkpoint()` | [`checkpoint`] |
//! | `current_effective_deadline()` | [`current_deadline`] |
//! | `open_memory_channel(n)` | [`channel(n)`](channel()) |
//! | `Event`, `Lock`, `Semaphore`, `CapacityLimiter`, `Condition` | [`sync`] |
//! | `serve_tcp`, `open_tcp_stream` | [`net`] |
//! | trio-util: `wait_any`, `AsyncValue`, `periodic`, `azip`, `TaskStats`… | [`util`] |
//! | trio-protocol / asyncio `Protocol`, `Transport`, `create_server`, `create_connection`, `Loop` | [`protocol`] |
//!
//! | Erlang/OTP, triotp | Trellis |
//! |---|---|
//! | pid, `self()`, `is_process_alive/1` | [`process::Pid`], [`process::is_alive`] |
//! | `monitor/2`, `link/1`, `trap_exit` | [`mailbox::Mailbox::monitor`], [`gen_server::Context::link`], … ([`process`]) |
//! | `register/2`, `whereis/1`, Elixir `Registry` | [`registry`] |
//! | triotp `mailbox.create/open/send/receive` | [`mailbox`] |
//! | `gen_server:start/call/cast/reply`, `handle_*`, `terminate` | [`gen_server`] |
//! | triotp `supervisor`, `dynamic_supervisor`, `application`, `node.run` | [`supervisor`], [`dynamic_supervisor`], [`application`], [`node::run`] |
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

pub mod supervisor;

pub mod dynamic_supervisor;

pub mod application;

pub mod logging;

pub mod node;

// I/O.
pub mod net;

pub mod protocol;

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
