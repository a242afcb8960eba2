//! `azip` and `azip_longest`: lockstep rounds over concurrently polled streams.

use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::{self, BoxStream};
use tokio::time::Instant;
use trellis::util::{azip, azip_longest};

fn ticking(period_ms: u64, count: u64) -> BoxStream<'static, u64> {
    stream::iter(0..count)
        .then(move |i| async move {
            tokio::time::sleep(Duration::from_millis(period_ms)).await;
            i * period_ms
        })
        .boxed()
}

#[tokio::test(start_paused = true)]
async fn azip_longest_fills_ended_streams_with_none_until_all_end() {
    let rounds: Vec<_> = azip_longest([ticking(10, 3), ticking(30, 1), ticking(20, 2)])
        .collect()
        .await;
    assert_eq!(
        rounds,
        [
            vec![Some(0), Some(0), Some(0)],
            vec![Some(10), None, Some(20)],
            vec![Some(20), None, None],
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn azip_ends_with_the_shortest_stream() {
    let rounds: Vec<_> = azip([ticking(10, 3), ticking(20, 2)]).collect().await;
    assert_eq!(rounds, [vec![0, 0], vec![10, 20]]);
}

#[tokio::test(start_paused = true)]
async fn streams_are_polled_concurrently_so_a_round_takes_the_slowest_time() {
    let start = Instant::now();
    let mut zipped = azip([ticking(100, 5), ticking(300, 5), ticking(200, 5)]);
    zipped.next().await;
    assert_eq!(start.elapsed(), Duration::from_millis(300)); // not 600
}

#[tokio::test]
async fn zipping_no_streams_ends_at_once() {
    let none: Vec<stream::Iter<std::ops::Range<u8>>> = Vec::new();
    assert_eq!(azip(none.clone()).next().await, None);
    assert_eq!(azip_longest(none).next().await, None);
}
