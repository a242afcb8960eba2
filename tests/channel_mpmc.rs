//! Many producers and many consumers on one channel: every value is
//! received exactly once, and each producer's values keep their order.

use std::collections::HashMap;

use proptest::prelude::*;
use trellis::channel;

/// Runs `producers` tasks sending `per_producer` values each through a
/// channel of `capacity`, and `consumers` tasks receiving until the end;
/// returns what each consumer received, in order.
async fn run(
    capacity: usize,
    producers: u32,
    consumers: u32,
    per_producer: u32,
) -> Vec<Vec<(u32, u32)>> {
    let (tx, rx) = channel::<(u32, u32)>(capacity);
    let mut producer_tasks = Vec::new();
    for p in 0..producers {
        let tx = tx.clone();
        producer_tasks.push(tokio::spawn(async move {
            for i in 0..per_producer {
                tx.send((p, i)).await.unwrap();
            }
        }));
    }
    drop(tx);
    let mut consumer_tasks = Vec::new();
    for _ in 0..consumers {
        let rx = rx.clone();
        consumer_tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Ok(v) = rx.recv().await {
                got.push(v);
            }
            got
        }));
    }
    drop(rx);
    for task in producer_tasks {
        task.await.unwrap();
    }
    let mut all = Vec::new();
    for task in consumer_tasks {
        all.push(task.await.unwrap());
    }
    all
}

/// Checks exactly-once delivery and per-producer order within each consumer.
fn check(received: &[Vec<(u32, u32)>], producers: u32, per_producer: u32) {
    let mut seen: HashMap<(u32, u32), usize> = HashMap::new();
    for consumer in received {
        let mut last: HashMap<u32, u32> = HashMap::new();
        for &(p, i) in consumer {
            *seen.entry((p, i)).or_default() += 1;
            if let Some(&prev) = last.get(&p) {
                assert!(prev < i, "producer {p}: {i} after {prev}");
            }
            last.insert(p, i);
        }
    }
    assert_eq!(
        seen.len(),
        (producers * per_producer) as usize,
        "lost values"
    );
    assert!(seen.values().all(|&n| n == 1), "duplicated values");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_in_and_fan_out_across_threads_deliver_every_value_exactly_once() {
    for capacity in [0, 1, 16] {
        let received = run(capacity, 4, 4, 2_000).await;
        check(&received, 4, 2_000);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_mix_of_producers_consumers_and_capacity_loses_and_duplicates_nothing(
        capacity in 0usize..4,
        producers in 1u32..5,
        consumers in 1u32..5,
        per_producer in 0u32..40,
        multi_thread in any::<bool>(),
    ) {
        let runtime = if multi_thread {
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).build()
        } else {
            tokio::runtime::Builder::new_current_thread().build()
        }
        .unwrap();
        let received = runtime.block_on(run(capacity, producers, consumers, per_producer));
        check(&received, producers, per_producer);
    }
}
