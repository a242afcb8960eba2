//! The non-waiting twins `try_send` (Trio's `send_nowait`) and `try_recv`
//! (`receive_nowait`), and the values their errors give back.

use trellis::{RecvError, SendError, TryRecvError, TrySendError, channel};

#[test]
fn try_send_fills_the_buffer_then_reports_full_with_the_value() {
    let (tx, _rx) = channel(3);
    for v in 0..3 {
        tx.try_send(v).unwrap();
    }
    let err = tx.try_send(3).unwrap_err();
    assert!(matches!(err, TrySendError::Full(3)));
    assert_eq!(err.into_inner(), 3);
    assert_eq!(tx.stats().current_buffer_used, 3);
}

#[test]
fn try_recv_reports_empty_then_values_in_order_then_end_of_channel() {
    let (tx, rx) = channel(3);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.try_send('a').unwrap();
    tx.try_send('b').unwrap();
    drop(tx);
    assert_eq!(rx.try_recv(), Ok('a'));
    assert_eq!(rx.try_recv(), Ok('b'));
    assert_eq!(rx.try_recv(), Err(TryRecvError::EndOfChannel));
}

#[test]
fn try_send_reports_disconnected_and_closed_with_the_value() {
    let (tx, rx) = channel(1);
    let open = tx.clone();
    tx.close();
    assert_eq!(tx.try_send(1).unwrap_err().into_inner(), 1);
    assert!(matches!(tx.try_send(1), Err(TrySendError::Closed(1))));
    drop(rx);
    assert!(matches!(
        open.try_send(2),
        Err(TrySendError::Disconnected(2))
    ));
}

#[test]
fn try_recv_on_a_closed_receiver_reports_closed() {
    let (tx, rx) = channel::<u8>(1);
    tx.try_send(1).unwrap();
    rx.close();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
}

/// Not `Debug`, not `Clone`: errors must still be printable and unwrappable.
struct Opaque(u32);

#[test]
fn errors_print_without_their_value_and_give_it_back() {
    let (tx, rx) = channel::<Opaque>(0);
    let full = tx.try_send(Opaque(1)).unwrap_err();
    assert_eq!(format!("{full:?}"), "Full(..)");
    assert_eq!(full.to_string(), "channel full");
    assert_eq!(full.into_inner().0, 1);

    drop(rx);
    let gone = tx.try_send(Opaque(2)).unwrap_err();
    assert_eq!(gone.to_string(), "no receiver left");
    assert_eq!(gone.into_inner().0, 2);
}

#[test]
fn error_messages_are_short_and_lowercase() {
    assert_eq!(SendError::Disconnected(()).to_string(), "no receiver left");
    assert_eq!(SendError::Closed(()).to_string(), "sender closed");
    assert_eq!(TrySendError::Closed(()).to_string(), "sender closed");
    assert_eq!(RecvError::EndOfChannel.to_string(), "end of channel");
    assert_eq!(RecvError::Closed.to_string(), "receiver closed");
    assert_eq!(TryRecvError::Empty.to_string(), "channel empty");
    assert_eq!(TryRecvError::EndOfChannel.to_string(), "end of channel");
    assert_eq!(TryRecvError::Closed.to_string(), "receiver closed");
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(SendError::Closed(()));
    assert_eq!(boxed.to_string(), "sender closed");
}
