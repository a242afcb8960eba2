//! `Receiver` as a `futures::Stream` and `Sender` as a `futures::Sink`.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use futures_core::stream::FusedStream;
use futures_util::{SinkExt, StreamExt};
use trellis::{RecvError, SendError, channel};

async fn poll_once<F: Future>(mut fut: Pin<&mut F>) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

/// Lets every other task run until it blocks (paused clock).
async fn settle() {
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn the_receiver_stream_yields_every_value_then_ends_with_the_channel() {
    let (tx, mut rx) = channel(2);
    let producer = tokio::spawn(async move {
        for i in 0..5 {
            tx.send(i).await.unwrap();
        }
    });
    let mut got = Vec::new();
    while let Some(v) = rx.next().await {
        got.push(v);
    }
    producer.await.unwrap();
    assert_eq!(got, [0, 1, 2, 3, 4]);
    assert!(rx.is_terminated());
    assert_eq!(rx.next().await, None);
}

#[tokio::test(start_paused = true)]
async fn a_closed_receiver_stream_is_empty_and_terminated() {
    let (tx, mut rx) = channel(2);
    tx.send(1).await.unwrap();
    assert!(!rx.is_terminated());
    rx.close();
    assert!(rx.is_terminated());
    assert_eq!(rx.next().await, None);
}

#[tokio::test(start_paused = true)]
async fn stream_and_recv_on_clones_share_the_values_without_loss() {
    let (tx, mut streaming) = channel(8);
    let plain = streaming.clone();
    for i in 0..6 {
        tx.send(i).await.unwrap();
    }
    drop(tx);
    let mut got = vec![
        streaming.next().await.unwrap(),
        plain.recv().await.unwrap(),
        streaming.next().await.unwrap(),
    ];
    got.extend(plain.recv().await);
    got.extend(streaming.by_ref().collect::<Vec<_>>().await);
    assert_eq!(got, [0, 1, 2, 3, 4, 5]);
    assert_eq!(plain.recv().await, Err(RecvError::EndOfChannel));
}

#[tokio::test(start_paused = true)]
async fn a_pending_stream_poll_is_woken_by_the_next_send() {
    let (tx, mut rx) = channel::<u8>(0);
    let mut next = pin!(rx.next());
    assert!(poll_once(next.as_mut()).await.is_pending());
    tx.try_send(4).expect("the stream is a waiting receiver");
    assert_eq!(poll_once(next.as_mut()).await, Poll::Ready(Some(4)));
}

#[tokio::test(start_paused = true)]
async fn the_sender_sink_forwards_a_whole_stream() {
    let (mut tx, rx) = channel(1);
    let consumer = tokio::spawn(async move { rx.collect::<Vec<u32>>().await });
    let mut source = futures_util::stream::iter((0..10).map(Ok::<_, SendError<u32>>));
    tx.send_all(&mut source).await.unwrap();
    drop(tx);
    assert_eq!(consumer.await.unwrap(), (0..10).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn sink_close_flushes_the_last_value_then_closes_the_handle() {
    let (mut tx, rx) = channel(0);
    let consumer = tokio::spawn(async move { rx.collect::<Vec<&str>>().await });
    SinkExt::send(&mut tx, "one").await.unwrap();
    tx.feed("two").await.unwrap(); // held by the sink, not yet flushed
    settle().await;
    SinkExt::close(&mut tx).await.unwrap();
    assert_eq!(tx.stats().open_send_channels, 0);
    assert_eq!(consumer.await.unwrap(), ["one", "two"]);
}

#[tokio::test(start_paused = true)]
async fn the_sink_gives_the_value_back_when_no_receiver_is_left() {
    let (mut tx, rx) = channel(1);
    drop(rx);
    let err = SinkExt::send(&mut tx, 5).await.unwrap_err();
    assert_eq!(err, SendError::Disconnected(5));
}

#[tokio::test(start_paused = true)]
async fn the_sink_of_a_closed_handle_gives_the_value_back() {
    let (mut tx, _rx) = channel(1);
    tx.close();
    let err = SinkExt::send(&mut tx, 6).await.unwrap_err();
    assert_eq!(err, SendError::Closed(6));
}

#[tokio::test(start_paused = true)]
async fn a_sink_send_on_a_rendezvous_waits_for_a_receiver() {
    let (mut tx, rx) = channel::<u8>(0);
    let mut send = pin!(SinkExt::send(&mut tx, 1));
    assert!(poll_once(send.as_mut()).await.is_pending());
    settle().await;
    assert!(
        poll_once(send.as_mut()).await.is_pending(),
        "nobody received"
    );
    assert_eq!(rx.recv().await, Ok(1));
    assert_eq!(poll_once(send.as_mut()).await, Poll::Ready(Ok(())));
}
