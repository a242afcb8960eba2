//! `run(main)`: the entry point that owns a tokio runtime (Trio's `trio.run`).
//!
//! [`run`] builds a multi-thread runtime, runs `main` on it to completion and
//! returns its output; [`RunOptions`] picks a current-thread runtime or a
//! number of workers. Nothing else in Trellis needs
//! `run`: every API works inside a plain `#[tokio::main]` or `#[tokio::test]`
//! too, so use `run` when Trellis owns the program and the tokio attribute
//! when something else does.

use std::future::Future;
use std::io;

/// Builds a multi-thread tokio runtime, runs `main` on it, and returns its
/// output (Trio's `trio.run(main)`).
///
/// # Examples
///
/// ```
/// let answer = trellis::run(async {
///     trellis::nursery(|n| async move {
///         n.spawn(async {});
///         Ok::<_, trellis::NurseryError>(42)
///     })
///     .await
/// });
/// assert_eq!(answer.unwrap(), 42);
/// ```
///
/// # Panics
///
/// If the runtime cannot be built (the OS refused threads or an I/O driver),
/// as `#[tokio::main]` does; [`RunOptions::run`] returns that error instead.
pub fn run<F: Future>(main: F) -> F::Output {
    match RunOptions::new().run(main) {
        Ok(output) => output,
        Err(error) => panic!("trellis::run could not build a tokio runtime: {error}"),
    }
}

/// Options for [`run`]: runtime flavour and worker count.
///
/// | option | default |
/// |---|---|
/// | [`current_thread`](Self::current_thread) | multi-thread runtime |
/// | [`worker_threads`](Self::worker_threads) | one per core (tokio's default) |
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct RunOptions {
    current_thread: bool,
    worker_threads: Option<usize>,
}

impl RunOptions {
    /// The defaults: a multi-thread runtime with tokio's worker count.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs everything on the calling thread.
    pub fn current_thread(mut self) -> Self {
        self.current_thread = true;
        self
    }

    /// Sets the number of worker threads of the multi-thread runtime.
    pub fn worker_threads(mut self, count: usize) -> Self {
        self.worker_threads = Some(count);
        self
    }

    /// Builds the runtime, runs `main` on it and returns its output.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis::RunOptions;
    ///
    /// let out = RunOptions::new().current_thread().run(async { 1 + 1 }).unwrap();
    /// assert_eq!(out, 2);
    /// ```
    ///
    /// # Errors
    ///
    /// The I/O error if the runtime cannot be built.
    pub fn run<F: Future>(self, main: F) -> io::Result<F::Output> {
        let mut builder = if self.current_thread {
            tokio::runtime::Builder::new_current_thread()
        } else {
            tokio::runtime::Builder::new_multi_thread()
        };
        builder.enable_all();
        if let Some(count) = self.worker_threads {
            builder.worker_threads(count);
        }
        Ok(builder.build()?.block_on(main))
    }
}
