//! Trellis: structured concurrency and supervision trees for async Rust.
#![doc(test(attr(deny(warnings))))]

mod cancel;
mod channel;
mod nursery;
mod runtime;
pub mod sync;

pub mod net;
pub mod testing;

pub use cancel::{
    CancelScope, Scoped, TooSlow, WaitShutdown, checkpoint, current_deadline, fail_after, fail_at, move_on_after,
    move_on_at, wait_shutdown,
};
pub use nursery::{
    nursery, nursery_with, Nursery, NurseryError, NurseryFuture, NurseryOptions, SpawnOptions, StartError,
    TaskFailure, TaskOutput, TaskStatus,
};
pub use runtime::{run, RunOptions};
