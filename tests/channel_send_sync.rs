//! Pins the auto traits of the channel handles and futures: a `Sender` or
//! `Receiver` of any `T: Send` can be shared between threads, and its futures
//! can be spawned.

use std::cell::Cell;
use std::future::Future;

use trellis::{Receiver, Sender, channel};

fn send_sync<T: Send + Sync + 'static>() {}
fn send<T: Send>(_: &T) {}
fn spawnable<F: Future + Send + 'static>(_: F) {}

#[test]
fn handles_of_send_but_not_sync_values_are_send_and_sync() {
    // `Cell` is `Send` but not `Sync`.
    send_sync::<Sender<Cell<u8>>>();
    send_sync::<Receiver<Cell<u8>>>();
    send_sync::<trellis::ChannelStats>();
    send_sync::<trellis::SendError<u8>>();
    send_sync::<trellis::TrySendError<u8>>();
    send_sync::<trellis::RecvError>();
    send_sync::<trellis::TryRecvError>();
}

#[test]
fn send_and_recv_futures_are_send() {
    let (tx, rx) = channel::<Cell<u8>>(1);
    send(&tx.send(Cell::new(1)));
    send(&rx.recv());
    spawnable(async move {
        let _ = tx.send(Cell::new(2)).await;
        let _ = rx.recv().await;
    });
}

#[test]
fn handles_of_non_static_values_work_without_stream_or_sink() {
    let text = String::from("borrowed");
    let (tx, rx) = channel::<&str>(1);
    tx.try_send(&text).unwrap();
    assert_eq!(rx.try_recv(), Ok("borrowed"));
}
