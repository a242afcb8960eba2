//! Heap allocations per process start, Trellis gen_server vs raw tokio task:
//! `cargo run --release -p trellis-benches --example alloc_count`.
//!
//! Counts calls to the global allocator (and bytes requested) over 10k
//! starts after a warm-up, and prints the sizes requested by one Trellis
//! start, in order, to tell which allocation is which. Then the same per
//! child of a supervisor: the difference between starting a supervisor of
//! 10,001 gen_server children and one of 1 (the specs made beforehand),
//! and the sizes requested by the second child's start.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use trellis::supervisor::{self, ChildSpec, SupervisorOptions};
use trellis_benches::otp::{Contender, Idle, Tokio, Trellis, in_nursery};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);
static TRACE: AtomicBool = AtomicBool::new(false);
static SIZES: [AtomicUsize; 64] = [const { AtomicUsize::new(0) }; 64];

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let n = ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size(), Relaxed);
        if TRACE.load(Relaxed) {
            SIZES[n % SIZES.len()].store(layout.size(), Relaxed);
        }
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, that is from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const STARTS: usize = 10_000;

/// Starts `STARTS` processes (after 1,000 to warm up) and prints the
/// allocations per start; the processes are returned, still running.
async fn measure<C: Contender>(nursery: &trellis::Nursery) -> Vec<C::Handle> {
    let mut keep = Vec::with_capacity(STARTS + 1_001);
    for _ in 0..1_000 {
        keep.push(C::start(nursery).await);
    }
    let (a0, b0) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
    for _ in 0..STARTS {
        keep.push(C::start(nursery).await);
    }
    let (a1, b1) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
    println!(
        "{}: {:.2} allocations, {:.0} bytes requested per start",
        C::NAME,
        (a1 - a0) as f64 / STARTS as f64,
        (b1 - b0) as f64 / STARTS as f64
    );
    keep
}

/// Starts a supervisor of `children` idle gen_servers (specs made before
/// counting) and returns the allocations and bytes its start requested.
async fn supervisor_start(children: usize) -> (usize, usize) {
    let specs: Vec<ChildSpec> = (0..children)
        .map(|i| ChildSpec::gen_server(format!("s{i}"), || Idle, (), ()))
        .collect();
    let (a0, b0) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
    trellis::nursery(|n| async move {
        let sup = n
            .start(|status| supervisor::serve(specs, SupervisorOptions::new(), status))
            .await?;
        let counts = (ALLOCS.load(Relaxed) - a0, BYTES.load(Relaxed) - b0);
        sup.stop().await?;
        Ok::<_, trellis::BoxError>(counts)
    })
    .await
    .expect("supervisor")
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(in_nursery(|n| async move {
        let mut trellis = measure::<Trellis>(&n).await;
        let first = ALLOCS.load(Relaxed);
        TRACE.store(true, Relaxed);
        trellis.push(Trellis::start(&n).await);
        TRACE.store(false, Relaxed);
        let sizes: Vec<usize> = (first..ALLOCS.load(Relaxed))
            .map(|i| SIZES[i % SIZES.len()].load(Relaxed))
            .collect();
        println!("trellis: sizes requested by one start, in order: {sizes:?}");
        let tokio = measure::<Tokio>(&n).await;
        for server in trellis {
            Trellis::stop(server).await;
        }
        for task in tokio {
            Tokio::stop(task).await;
        }
    }));
    let (one, many) = rt.block_on(async {
        let one = supervisor_start(1).await;
        (one, supervisor_start(STARTS + 1).await)
    });
    println!(
        "supervised gen_server: {:.2} allocations, {:.0} bytes requested per child",
        (many.0 - one.0) as f64 / STARTS as f64,
        (many.1 - one.1) as f64 / STARTS as f64
    );
}
