//! A worker pool: a dynamic supervisor of workers that join a pg group, and
//! a dispatcher that sends each job round-robin to the group's members.
//!
//! Workers crash at random (one job in `crash_one_in` on average); the
//! supervisor restarts them, each new worker joins the group in its `init`,
//! and the crashed one has left the group by the time anyone hears of its
//! crash. The dispatcher retries a job that crashed its worker on the next
//! member, so the pool answers every job and stays at its size.
//!
//! Run it with `cargo run --example pool`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use trellis::BoxError;
use trellis::dynamic_supervisor::{self, DynamicSupervisorOptions};
use trellis::gen_server::{self, Context, GenServer, GenServerError, Init, Response};
use trellis::pg::{self, Scope};
use trellis::supervisor::{ChildSpec, Supervisor};

/// The pg group the workers join.
pub const GROUP: &str = "pool-workers";
/// How long the dispatcher waits for one worker.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(1);

/// One worker of the pool: squares numbers, and crashes at random.
#[derive(Debug)]
pub struct Worker {
    scope: Scope,
    crash_one_in: u64,
    /// xorshift state: each worker (and each restart) draws its own.
    seed: u64,
}

impl Worker {
    fn new(scope: Scope, crash_one_in: u64) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
        let seed = NEXT.fetch_add(0x6A09_E667_F3BC_C909, Ordering::Relaxed) | 1;
        Worker {
            scope,
            crash_one_in: crash_one_in.max(1),
            seed,
        }
    }

    fn unlucky(&mut self) -> bool {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.seed % self.crash_one_in == 0
    }
}

impl GenServer for Worker {
    type Arg = ();
    type Call = u64;
    type Reply = u64;
    type Cast = ();
    type Info = ();

    async fn init(&mut self, (): (), ctx: &mut Context<Self>) -> Result<Init, BoxError> {
        // Leaving is automatic: a worker that ends leaves the group.
        self.scope.join(GROUP, ctx.pid())?;
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        n: u64,
        _: &mut Context<Self>,
    ) -> Result<Response<u64>, BoxError> {
        if self.unlucky() {
            return Err(format!("worker crashed at random on {n}").into());
        }
        Ok(Response::Reply(n * n))
    }
}

/// A pool of `size` workers in `scope`, under a dynamic supervisor in `n`;
/// each crashes on one call in `crash_one_in` on average.
///
/// # Errors
///
/// If the supervisor or a worker cannot start.
pub async fn start(
    n: &trellis::Nursery,
    scope: &Scope,
    size: usize,
    crash_one_in: u64,
) -> Result<Supervisor, BoxError> {
    // Crashes are expected: allow many restarts before giving up.
    let options = DynamicSupervisorOptions::new()
        .max_restarts(1000)
        .max_seconds(Duration::from_secs(1));
    let sup = dynamic_supervisor::start(n, options).await?;
    for i in 0..size {
        let scope = scope.clone();
        let spec = ChildSpec::gen_server(
            format!("worker-{i}"),
            move || Worker::new(scope.clone(), crash_one_in),
            (),
            (),
        );
        dynamic_supervisor::start_child(&sup, spec).await?;
    }
    Ok(sup)
}

/// Squares `n` on the next worker in turn; if that worker crashes on it,
/// tries the next one, up to `tries` times.
///
/// # Errors
///
/// [`DispatchError::NoWorkers`] if the group is empty, or the last
/// worker's error after `tries` attempts.
pub async fn dispatch(scope: &Scope, n: u64, tries: usize) -> Result<u64, DispatchError> {
    let mut last = DispatchError::NoWorkers;
    for _ in 0..tries {
        let Some(pid) = scope.pick_round_robin(GROUP) else {
            // Every worker is restarting: let the supervisor run.
            tokio::task::yield_now().await;
            continue;
        };
        match gen_server::call::<Worker>(pid, n, JOB_TIMEOUT).await {
            Ok(answer) => return Ok(answer),
            Err(error) => last = DispatchError::Worker(error),
        }
    }
    Err(last)
}

/// Why a job got no answer.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The pool had no worker.
    #[error("no workers in the pool")]
    NoWorkers,
    /// The last worker tried failed.
    #[error("worker failed: {0}")]
    Worker(GenServerError),
}

/// Waits until the group has `size` members again.
pub async fn wait_for_size(scope: &Scope, size: usize) {
    let (mut monitor, now) = scope.monitor(GROUP);
    let mut members = now.len();
    while members != size {
        match monitor.next().await {
            Some(pg::PgEvent::Join { pids, .. }) => members += pids.len(),
            Some(pg::PgEvent::Leave { pids, .. }) => members -= pids.len(),
            None => return,
        }
    }
}

#[allow(dead_code)] // the test drives the pool without `main`
fn main() -> Result<(), BoxError> {
    trellis::run(async {
        trellis::nursery(|n| async move {
            let scope = pg::scope("pool-example");
            let sup = start(&n, &scope, 4, 5).await?;
            for n in 1..=40 {
                match dispatch(&scope, n, 10).await {
                    Ok(square) => println!("{n}² = {square}"),
                    Err(error) => println!("{n}: {error}"),
                }
            }
            wait_for_size(&scope, 4).await;
            println!(
                "workers now: {}, restarts: {}",
                scope.get_members(GROUP).len(),
                sup.which_children().iter().map(|c| c.restarts).sum::<u64>(),
            );
            sup.stop().await?;
            Ok::<_, BoxError>(())
        })
        .await?;
        Ok(())
    })
}
