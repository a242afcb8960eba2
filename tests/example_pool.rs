//! Drives `examples/pool.rs`: workers in a pg group under a dynamic
//! supervisor crash at random, the dispatcher still gets every answer, and
//! the pool is back at its size after the crashes.

#[path = "../examples/pool.rs"]
#[allow(unreachable_pub, dead_code)]
mod pool;

use std::collections::HashSet;

use trellis::pg::{self, PgEvent};
use trellis::{BoxError, dynamic_supervisor, nursery};

#[tokio::test(start_paused = true)]
async fn the_pool_answers_every_job_and_stays_at_size_while_workers_crash() {
    nursery(|n| async move {
        let scope = pg::scope("example-pool-crashes");
        let (mut monitor, _) = scope.monitor(pool::GROUP);
        let sup = pool::start(&n, &scope, 4, 3).await?;
        let first: HashSet<_> = scope.get_members(pool::GROUP).into_iter().collect();
        assert_eq!(first.len(), 4);
        for job in 1..=60 {
            assert_eq!(pool::dispatch(&scope, job, 20).await?, job * job);
        }
        pool::wait_for_size(&scope, 4).await;
        // Workers did crash, left the group, and were replaced.
        let mut left = 0;
        while let Some(event) = monitor.try_next() {
            if let PgEvent::Leave { .. } = event {
                left += 1;
            }
        }
        assert!(left > 0, "no worker crashed");
        let restarts: u64 = sup.which_children().iter().map(|c| c.restarts).sum();
        assert_eq!(restarts as usize, left);
        let now: HashSet<_> = scope.get_members(pool::GROUP).into_iter().collect();
        assert_eq!(now.len(), 4);
        assert_ne!(now, first);
        assert_eq!(dynamic_supervisor::count_children(&sup)?.active, 4);
        sup.stop().await?;
        assert!(scope.get_members(pool::GROUP).is_empty());
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn round_robin_spreads_jobs_over_every_worker() {
    nursery(|n| async move {
        let scope = pg::scope("example-pool-spread");
        // Workers that (almost) never crash.
        let sup = pool::start(&n, &scope, 3, u64::MAX).await?;
        let mut picked = HashSet::new();
        for _ in 0..3 {
            picked.insert(scope.pick_round_robin(pool::GROUP).unwrap());
        }
        assert_eq!(picked.len(), 3);
        for job in 1..=9 {
            assert_eq!(pool::dispatch(&scope, job, 1).await?, job * job);
        }
        sup.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}
