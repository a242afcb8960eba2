//! Shared helpers for the Trellis benchmarks (see `benches/*.rs`).
//!
//! The benchmarks live in their own workspace crate so that the library's
//! tests never compile the peer crates they are compared with.

/// Builds the multi-thread tokio runtime every benchmark runs on (2 workers,
/// the size of the reference machine).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build tokio runtime")
}

pub mod otp;

/// Builds a current-thread tokio runtime (the single-threaded comparison).
pub fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build tokio runtime")
}
