//! Capacity 0 is a rendezvous and capacity > 0 a bounded FIFO buffer: when a
//! send completes, when it waits, and in which order waiters are served.
//! Pending futures are polled by hand, so every "still waiting" is checked
//! directly rather than inferred from timing.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use trellis::{TryRecvError, TrySendError, channel};

/// Polls `fut` once, with the calling task's waker.
async fn poll_once<F: Future>(mut fut: Pin<&mut F>) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

/// Lets every other task run until it blocks: with the clock paused, time only
/// advances (and this sleep only ends) once the runtime has nothing to run.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn rendezvous_send_waits_until_a_receiver_takes_the_value() {
    let (tx, rx) = channel::<u32>(0);
    let mut send = pin!(tx.send(7));
    assert!(poll_once(send.as_mut()).await.is_pending());
    settle().await;
    assert!(
        poll_once(send.as_mut()).await.is_pending(),
        "nobody received yet"
    );

    assert_eq!(rx.recv().await, Ok(7));
    assert_eq!(poll_once(send.as_mut()).await, Poll::Ready(Ok(())));
}

#[tokio::test(start_paused = true)]
async fn rendezvous_send_in_another_task_completes_only_after_recv() {
    let (tx, rx) = channel::<&str>(0);
    let sender = tokio::spawn(async move { tx.send("hand-off").await });
    settle().await;
    assert!(!sender.is_finished(), "a rendezvous send needs a receiver");

    assert_eq!(rx.recv().await, Ok("hand-off"));
    assert_eq!(sender.await.unwrap(), Ok(()));
}

#[tokio::test(start_paused = true)]
async fn rendezvous_send_to_a_waiting_receiver_hands_over_at_once_then_yields_once() {
    let (tx, rx) = channel::<u32>(0);
    let receiver = tokio::spawn(async move { rx.recv().await });
    settle().await; // the receiver is waiting now

    let mut send = pin!(tx.send(1));
    assert!(
        poll_once(send.as_mut()).await.is_pending(),
        "a checkpoint, even with a receiver waiting"
    );
    assert_eq!(tx.stats().tasks_waiting_receive, 0, "already handed over");
    assert_eq!(poll_once(send.as_mut()).await, Poll::Ready(Ok(())));
    assert_eq!(receiver.await.unwrap(), Ok(1));
}

#[tokio::test(start_paused = true)]
async fn rendezvous_try_send_needs_a_waiting_receiver() {
    let (tx, rx) = channel::<u32>(0);
    assert!(matches!(tx.try_send(1), Err(TrySendError::Full(1))));

    let receiver = tokio::spawn(async move { rx.recv().await });
    settle().await;
    assert!(tx.try_send(2).is_ok());
    assert_eq!(receiver.await.unwrap(), Ok(2));
}

#[tokio::test(start_paused = true)]
async fn rendezvous_try_recv_takes_the_value_of_a_waiting_sender() {
    let (tx, rx) = channel::<u32>(0);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    let mut send = pin!(tx.send(3));
    assert!(poll_once(send.as_mut()).await.is_pending());

    assert_eq!(rx.try_recv(), Ok(3));
    assert_eq!(poll_once(send.as_mut()).await, Poll::Ready(Ok(())));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

#[tokio::test(start_paused = true)]
async fn rendezvous_channel_buffers_nothing_while_a_sender_waits() {
    let (tx, _rx) = channel::<u32>(0);
    let mut send = pin!(tx.send(3));
    assert!(poll_once(send.as_mut()).await.is_pending());
    let stats = tx.stats();
    assert_eq!(stats.current_buffer_used, 0);
    assert_eq!(stats.max_buffer_size, 0);
}

#[tokio::test(start_paused = true)]
async fn bounded_send_completes_at_once_while_the_buffer_has_room() {
    let (tx, rx) = channel::<u32>(2);
    for v in [1, 2] {
        let mut send = pin!(tx.send(v));
        assert_eq!(poll_once(send.as_mut()).await, Poll::Ready(Ok(())));
    }
    let mut third = pin!(tx.send(3));
    assert!(
        poll_once(third.as_mut()).await.is_pending(),
        "buffer is full"
    );

    assert_eq!(rx.recv().await, Ok(1));
    assert_eq!(poll_once(third.as_mut()).await, Poll::Ready(Ok(())));
    assert_eq!(rx.recv().await, Ok(2));
    assert_eq!(rx.recv().await, Ok(3));
}

#[tokio::test(start_paused = true)]
async fn waiting_senders_are_served_in_the_order_they_started_waiting() {
    let (tx, rx) = channel::<u32>(1);
    tx.send(0).await.unwrap();
    let mut senders = Vec::new();
    for v in 1..=4 {
        let tx = tx.clone();
        senders.push(tokio::spawn(async move { tx.send(v).await }));
        settle().await; // each starts waiting before the next is spawned
    }
    assert!(senders.iter().all(|s| !s.is_finished()));

    for expected in 0..=4 {
        assert_eq!(rx.recv().await, Ok(expected));
    }
    for sender in senders {
        assert_eq!(sender.await.unwrap(), Ok(()));
    }
}

#[tokio::test(start_paused = true)]
async fn waiting_receivers_are_served_in_the_order_they_started_waiting() {
    let (tx, rx) = channel::<u32>(4);
    let mut receivers = Vec::new();
    for _ in 0..3 {
        let rx = rx.clone();
        receivers.push(tokio::spawn(async move { rx.recv().await }));
        settle().await;
    }
    for v in [10, 20, 30] {
        tx.send(v).await.unwrap();
    }
    let got: Vec<_> = futures_util::future::join_all(receivers).await;
    let got: Vec<_> = got.into_iter().map(|r| r.unwrap().unwrap()).collect();
    assert_eq!(got, [10, 20, 30]);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_recv_future_that_was_handed_a_value_loses_nothing() {
    let (tx, rx) = channel::<u32>(0);
    let mut first = Box::pin(rx.recv());
    assert!(poll_once(first.as_mut()).await.is_pending());
    // The waiting receiver is handed the value...
    tx.try_send(5).unwrap();
    // ...but is cancelled before it runs: the value stays in the channel.
    drop(first);
    assert_eq!(rx.try_recv(), Ok(5));
}

/// Counts how many values of this type were dropped.
struct Tracked(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_a_waiting_send_drops_its_value_and_spares_the_others() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let dropped = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = channel::<(u32, Tracked)>(1);
    tx.send((1, Tracked(dropped.clone()))).await.unwrap();
    {
        let mut cancelled = pin!(tx.send((2, Tracked(dropped.clone()))));
        assert!(poll_once(cancelled.as_mut()).await.is_pending());
    }
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the unsent value is dropped"
    );
    assert_eq!(rx.recv().await.unwrap().0, 1);
    // The cancelled send kept no place: the next value goes straight in.
    assert!(tx.try_send((3, Tracked(dropped.clone()))).is_ok());
    assert_eq!(rx.recv().await.unwrap().0, 3);
    assert!(rx.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn a_waiting_send_whose_value_was_taken_before_it_was_dropped_still_delivers() {
    let (tx, rx) = channel::<u32>(1);
    tx.send(1).await.unwrap();
    let mut send = Box::pin(tx.send(2));
    assert!(poll_once(send.as_mut()).await.is_pending());
    // Receiving makes room, and the waiting value moves into the buffer at
    // once, before its future runs again.
    assert_eq!(rx.recv().await, Ok(1));
    drop(send);
    assert_eq!(rx.try_recv(), Ok(2));
}
