//! Races between spawning, first polls and cancellation on a multi-thread
//! runtime. A lost cancellation shows up as a nursery that never returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use trellis::{NurseryError, fail_after, nursery};

struct Guard(Arc<AtomicUsize>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_while_tasks_make_their_first_poll_loses_none() {
    for round in 0..50 {
        let alive = Arc::new(AtomicUsize::new(0));
        let a = alive.clone();
        let outcome = fail_after(
            std::time::Duration::from_secs(30),
            nursery(|n| async move {
                for i in 0..200 {
                    a.fetch_add(1, Ordering::SeqCst);
                    let guard = Guard(a.clone());
                    n.spawn(async move {
                        let _guard = guard;
                        tokio::task::yield_now().await; // first Pending: registers
                        std::future::pending::<()>().await;
                    });
                    if i == round * 4 {
                        let n2 = n.clone();
                        n.spawn(async move { n2.cancel() });
                    }
                }
            }),
        )
        .await;
        let outcome = outcome.expect("a cancelled nursery never finished: a lost wake-up");
        assert!(outcome.is_ok() || matches!(outcome, Err(NurseryError::Cancelled)));
        assert_eq!(
            alive.load(Ordering::SeqCst),
            0,
            "round {round}: a task outlived its nursery"
        );
    }
}
