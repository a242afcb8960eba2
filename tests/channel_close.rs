//! How a channel ends: per-handle `close`, dropping, and what senders and
//! receivers see on either side (Trio's closing rules).

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use trellis::{RecvError, SendError, TryRecvError, TrySendError, channel};

async fn poll_once<F: Future>(mut fut: Pin<&mut F>) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

/// Lets every other task run until it blocks (paused clock).
async fn settle() {
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn receivers_drain_the_buffer_before_end_of_channel_once_all_senders_drop() {
    let (tx, rx) = channel(4);
    let tx2 = tx.clone();
    tx.send(1).await.unwrap();
    tx2.send(2).await.unwrap();
    drop(tx);
    assert_eq!(rx.recv().await, Ok(1), "one sender left: not the end");
    drop(tx2);
    assert_eq!(rx.recv().await, Ok(2), "buffered values come first");
    assert_eq!(rx.recv().await, Err(RecvError::EndOfChannel));
    assert_eq!(
        rx.recv().await,
        Err(RecvError::EndOfChannel),
        "and it stays ended"
    );
}

#[tokio::test(start_paused = true)]
async fn closing_every_sender_clone_ends_the_channel_like_dropping() {
    let (a, rx) = channel::<u8>(1);
    let b = a.clone();
    a.close();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    b.close();
    assert_eq!(rx.try_recv(), Err(TryRecvError::EndOfChannel));
    assert_eq!(rx.recv().await, Err(RecvError::EndOfChannel));
}

#[tokio::test(start_paused = true)]
async fn a_waiting_receiver_sees_end_of_channel_when_the_last_sender_closes() {
    let (tx, rx) = channel::<u8>(0);
    let receiver = tokio::spawn(async move { rx.recv().await });
    settle().await;
    tx.close();
    assert_eq!(receiver.await.unwrap(), Err(RecvError::EndOfChannel));
}

#[tokio::test(start_paused = true)]
async fn a_closed_sender_gives_the_value_back_and_leaves_its_clones_working() {
    let (tx, rx) = channel(2);
    let other = tx.clone();
    tx.close();
    assert_eq!(tx.send("mine").await, Err(SendError::Closed("mine")));
    assert!(matches!(
        tx.try_send("again"),
        Err(TrySendError::Closed("again"))
    ));

    other.send("theirs").await.unwrap();
    assert_eq!(rx.recv().await, Ok("theirs"));
}

#[tokio::test(start_paused = true)]
async fn send_gives_the_value_back_once_every_receiver_is_dropped() {
    let (tx, rx) = channel(2);
    let rx2 = rx.clone();
    drop(rx);
    tx.send(1).await.unwrap(); // one receiver left
    drop(rx2);
    let err = tx.send(2).await.unwrap_err();
    assert_eq!(err, SendError::Disconnected(2));
    assert_eq!(err.into_inner(), 2);
    assert!(matches!(tx.try_send(3), Err(TrySendError::Disconnected(3))));
}

#[tokio::test(start_paused = true)]
async fn a_waiting_send_gets_its_value_back_when_the_last_receiver_closes() {
    for capacity in [0, 1] {
        let (tx, rx) = channel::<String>(capacity);
        if capacity == 1 {
            tx.send("fills the buffer".into()).await.unwrap();
        }
        let mut send = pin!(tx.send("waiting".into()));
        assert!(poll_once(send.as_mut()).await.is_pending());
        rx.close();
        assert_eq!(
            poll_once(send.as_mut()).await,
            Poll::Ready(Err(SendError::Disconnected("waiting".to_string()))),
            "capacity {capacity}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_waiting_send_in_another_task_is_woken_by_the_last_receiver_closing() {
    let (tx, rx) = channel::<u32>(0);
    let sender = tokio::spawn(async move { tx.send(9).await });
    settle().await;
    rx.close();
    assert_eq!(sender.await.unwrap(), Err(SendError::Disconnected(9)));
}

#[tokio::test(start_paused = true)]
async fn a_closed_receiver_reports_closed_while_its_clones_still_receive() {
    let (tx, rx) = channel(2);
    let other = rx.clone();
    rx.close();
    tx.send(1).await.unwrap();
    assert_eq!(rx.recv().await, Err(RecvError::Closed));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(other.recv().await, Ok(1));
}

#[tokio::test(start_paused = true)]
async fn closing_every_receiver_clone_disconnects_the_senders() {
    let (tx, a) = channel::<u8>(2);
    let b = a.clone();
    a.close();
    assert!(tx.try_send(1).is_ok(), "one receiver is still open");
    b.close();
    assert!(matches!(tx.try_send(2), Err(TrySendError::Disconnected(2))));
}

#[tokio::test(start_paused = true)]
async fn closing_twice_is_harmless() {
    let (tx, rx) = channel::<u8>(1);
    let _keep_tx = tx.clone();
    let _keep_rx = rx.clone();
    tx.close();
    tx.close();
    rx.close();
    rx.close();
    let stats = _keep_tx.stats();
    assert_eq!(stats.open_send_channels, 1);
    assert_eq!(stats.open_receive_channels, 1);
}

#[tokio::test(start_paused = true)]
async fn cloning_a_closed_handle_gives_a_closed_handle() {
    let (tx, rx) = channel::<u8>(1);
    let _open_tx = tx.clone();
    let _open_rx = rx.clone();
    tx.close();
    rx.close();
    let tx_clone = tx.clone();
    let rx_clone = rx.clone();
    assert_eq!(tx_clone.send(1).await, Err(SendError::Closed(1)));
    assert_eq!(rx_clone.recv().await, Err(RecvError::Closed));
    assert_eq!(tx.stats().open_send_channels, 1);
    assert_eq!(rx.stats().open_receive_channels, 1);
}

#[tokio::test(start_paused = true)]
async fn a_closed_handle_does_not_keep_the_channel_open() {
    let (tx, rx) = channel::<u8>(1);
    tx.close();
    // `tx` still exists, but closed: the receiver sees the end at once.
    assert_eq!(rx.recv().await, Err(RecvError::EndOfChannel));
    drop(tx);
}
