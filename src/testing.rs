//! The test kit: helpers that make tests of concurrent code deterministic.
//!
//! Tests of concurrent code go wrong in two ways: they sleep and hope the
//! other task got there first, or they wait for real time to pass. This
//! module replaces both habits, as `trio.testing` does for Trio:
//!
//! | if you want to… | use |
//! |---|---|
//! | make steps of several tasks happen in a fixed order | [`Sequencer`] |
//! | check that an async operation really yields (is a cancellation point) | [`assert_checkpoint`] |
//! | check that one does not | [`assert_no_checkpoint`] |
//! | run a test on a paused clock, where sleeps finish at once and exactly | `run_paused` (cargo feature `test-util`; see [the paused clock](#the-paused-clock)), or `#[tokio::test(start_paused = true)]` |
//! | let background tasks run until they are all blocked, without counting `yield_now()` calls | [`wait_all_tasks_blocked`] (paused clock) |
//! | … and until they have been blocked for a while | [`wait_all_tasks_blocked_for`] (paused clock) |
//! | hand one value or signal from one task to another | a [`tokio::sync::oneshot`] channel: no helper needed |
//!
//! Everything here is also used by Trellis's own tests.
//!
//! # The paused clock
//!
//! On tokio's paused clock, time stands still while any task can run, and
//! jumps straight to the next timer when every task is waiting: a test that
//! sleeps an hour finishes at once, and `Instant::now()` differences are
//! exact. `run_paused(future)` runs a future on that clock; it needs tokio's
//! `test-util` feature, so it is behind this crate's `test-util` feature
//! (enable it in `[dev-dependencies]`). Within `#[tokio::test]`, write
//! `#[tokio::test(start_paused = true)]` instead.
//!
//! Beware of real I/O on a paused clock: while a task waits for a socket the
//! runtime may look idle, and the clock then jumps to the next timer even
//! though the bytes were about to arrive. Test timeouts against in-memory
//! streams ([`tokio::io::duplex`]) on the paused clock, or arrange that no
//! I/O is in flight while a timer is armed.
//!
//! # Trio → Trellis
//!
//! | `trio.testing` | Trellis | difference, and why |
//! |---|---|---|
//! | `Sequencer` | [`Sequencer`] | `step(n)` returns a guard instead of an `async with` block |
//! | `assert_checkpoints`, `assert_no_checkpoints` | [`assert_checkpoint`], [`assert_no_checkpoint`] | wrap a future instead of a block |
//! | `wait_all_tasks_blocked(cushion=0)` | [`wait_all_tasks_blocked`], [`wait_all_tasks_blocked_for`] | tokio has no stable idle hook, so it is built on the paused clock, which only moves when no task can run: it requires that clock (and so the current-thread runtime), panics without it, and moves the clock by its cushion, at least 1 ms (tokio's timer resolution) where Trio's default cushion is 0 |
//! | `MockClock(autojump_threshold=0)` | tokio's paused clock (`run_paused`, `start_paused = true`) | tokio's clock is per runtime and jumps as soon as every task waits |
//! | `check_two_way_stream` | [`check_socket`], and [`check_protocol`] for protocols | |
//! | `memory_stream_pair` | [`memory_pair`] | |
//!
//! # Examples
//!
//! Two tasks that take turns, without sleeping:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), trellis::NurseryError> {
//! use std::sync::{Arc, Mutex};
//! use trellis::testing::{Sequencer, SequencerError};
//! use trellis::{nursery, NurseryError};
//!
//! let seq = Sequencer::new();
//! let log = Arc::new(Mutex::new(Vec::new()));
//! let log = nursery(|n| async move {
//!     for (name, steps) in [("ping", [0, 2]), ("pong", [1, 3])] {
//!         let (seq, log) = (seq.clone(), log.clone());
//!         n.spawn(async move {
//!             for step in steps {
//!                 let _step = seq.step(step).await?; // the step is done when this drops
//!                 log.lock().unwrap().push(name);
//!             }
//!             Ok::<_, SequencerError>(())
//!         });
//!     }
//!     Ok::<_, NurseryError>(log)
//! })
//! .await?;
//! assert_eq!(*log.lock().unwrap(), ["ping", "pong", "ping", "pong"]);
//! # Ok(()) }
//! ```

mod blocked;
mod checkpoint;
#[cfg(feature = "test-util")]
mod clock;
mod protocol;
mod sequencer;

pub use blocked::{wait_all_tasks_blocked, wait_all_tasks_blocked_for};
pub use checkpoint::{
    AssertCheckpoint, AssertNoCheckpoint, assert_checkpoint, assert_no_checkpoint,
};
#[cfg(feature = "test-util")]
pub use clock::run_paused;
pub use protocol::{MemoryStream, check_protocol, check_socket, memory_pair};
pub use sequencer::{Sequencer, SequencerError, Step};
