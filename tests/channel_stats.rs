//! `stats()`: Trio's `statistics()` for memory channels.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;

use trellis::{ChannelStats, channel};

async fn poll_once<F: Future>(mut fut: Pin<&mut F>) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

#[tokio::test(start_paused = true)]
async fn stats_report_buffer_use_capacity_and_open_handles() {
    let (tx, rx) = channel::<u8>(5);
    let tx2 = tx.clone();
    let rx2 = rx.clone();
    let rx3 = rx.clone();
    tx.send(1).await.unwrap();
    tx2.send(2).await.unwrap();
    let stats = rx.stats();
    assert_eq!(stats.current_buffer_used, 2);
    assert_eq!(stats.max_buffer_size, 5);
    assert_eq!(stats.open_send_channels, 2);
    assert_eq!(stats.open_receive_channels, 3);
    assert_eq!(stats, tx.stats(), "both sides report the same channel");

    drop((tx2, rx2, rx3));
    rx.recv().await.unwrap();
    let stats = rx.stats();
    assert_eq!(
        (
            stats.current_buffer_used,
            stats.open_send_channels,
            stats.open_receive_channels
        ),
        (1, 1, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiting_sender_is_not_counted_in_the_buffer_until_there_is_room() {
    let (tx, rx) = channel::<u8>(1);
    tx.send(1).await.unwrap();
    let mut waiting = pin!(tx.send(2));
    assert!(poll_once(waiting.as_mut()).await.is_pending());
    assert_eq!(
        rx.stats().current_buffer_used,
        1,
        "full, one sender waiting"
    );
    assert_eq!(rx.recv().await, Ok(1));
    assert_eq!(
        rx.stats().current_buffer_used,
        1,
        "the waiting value moved in"
    );
    assert_eq!(poll_once(waiting.as_mut()).await, Poll::Ready(Ok(())));
}

#[test]
fn stats_work_on_closed_handles_and_after_one_side_is_gone() {
    let (tx, rx) = channel::<u8>(3);
    let keep_rx = rx.clone();
    tx.try_send(1).unwrap();
    tx.close();
    rx.close();
    let stats = tx.stats();
    assert_eq!(
        stats.current_buffer_used, 1,
        "read through the open receiver"
    );
    assert_eq!(stats.open_send_channels, 0);
    assert_eq!(stats.open_receive_channels, 1);
    assert_eq!(rx.stats(), stats);

    drop(keep_rx);
    let stats = tx.stats();
    assert_eq!(stats.open_receive_channels, 0);
    assert_eq!(
        stats.current_buffer_used, 0,
        "no handle left to use the buffer"
    );
    assert_eq!(stats.max_buffer_size, 3);
}

#[test]
fn stats_are_a_plain_copyable_value() {
    fn copy_debug<T: Copy + std::fmt::Debug + Default + PartialEq>() {}
    copy_debug::<ChannelStats>();
    let (tx, _rx) = channel::<()>(1);
    let stats = tx.stats();
    let copy = stats;
    assert_eq!(copy, stats);
    assert!(format!("{stats:?}").contains("max_buffer_size: 1"));
}

#[test]
fn huge_capacities_are_clamped_and_work_as_unbounded() {
    let (tx, rx) = channel::<u32>(usize::MAX);
    assert_eq!(tx.stats().max_buffer_size, isize::MAX as usize);
    for i in 0..10_000 {
        tx.try_send(i).unwrap();
    }
    assert_eq!(rx.stats().current_buffer_used, 10_000);
    assert_eq!(rx.try_recv(), Ok(0));
}
