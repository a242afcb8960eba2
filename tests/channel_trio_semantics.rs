//! Trio's contract for memory channels, checked one rule at a time: values
//! go straight to the longest-waiting receiver (never through the buffer,
//! never to a thief), fan-out is round-robin in wait order, waiting senders
//! are served first-come first-served, a handle can be closed while another
//! task is blocked on it, statistics count the waiting tasks, every
//! operation is a checkpoint, and a cancelled receiver never loses a value.
//! Pending futures are polled by hand where "still waiting" matters, and
//! ordering comes from the paused clock's `settle`, never from timing.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use trellis::testing::assert_checkpoint;
use trellis::{
    CancelScope, RecvError, SendError, TryRecvError, TrySendError, channel, move_on_after,
};

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
async fn values_sent_to_waiting_receivers_bypass_the_buffer_and_never_exceed_capacity() {
    let (tx, rx) = channel::<u32>(1);
    let mut receivers = Vec::new();
    for _ in 0..5 {
        let rx = rx.clone();
        receivers.push(tokio::spawn(async move { rx.recv().await }));
        settle().await; // each waits before the next starts
    }
    assert_eq!(tx.stats().tasks_waiting_receive, 5);

    for v in 0..5 {
        let mut send = pin!(tx.send(v));
        assert_eq!(
            poll_once(send.as_mut()).await,
            Poll::Ready(Ok(())),
            "a receiver is waiting: no need to wait for room"
        );
        let stats = tx.stats();
        assert_eq!(stats.current_buffer_used, 0, "handed over, not buffered");
        assert_eq!(stats.tasks_waiting_receive, 4 - v as usize);
    }
    let got: Vec<_> = futures_util::future::join_all(receivers).await;
    let got: Vec<_> = got.into_iter().map(|r| r.unwrap().unwrap()).collect();
    assert_eq!(got, [0, 1, 2, 3, 4], "in the order the receivers waited");
}

#[tokio::test(start_paused = true)]
async fn a_value_handed_to_a_waiting_receiver_cannot_be_taken_by_try_recv() {
    let (tx, rx) = channel::<&str>(4);
    let waiting = tokio::spawn({
        let rx = rx.clone();
        async move { rx.recv().await }
    });
    settle().await;

    tx.send("for the waiter").await.unwrap();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "no stealing");
    assert_eq!(rx.stats().current_buffer_used, 0);
    assert_eq!(waiting.await.unwrap(), Ok("for the waiter"));
}

#[tokio::test(start_paused = true)]
async fn a_value_handed_to_a_waiting_receiver_cannot_be_taken_by_a_later_recv() {
    let (tx, rx) = channel::<u32>(4);
    let mut first = pin!(rx.recv());
    assert!(poll_once(first.as_mut()).await.is_pending());
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();

    // A receive that starts now gets the value sent after the hand-off.
    assert_eq!(rx.recv().await, Ok(2));
    assert_eq!(first.await, Ok(1));
}

/// Four workers loop on `recv` on a rendezvous channel; returns which
/// values each got, in order.
async fn fan_out(values: u32) -> Vec<Vec<u32>> {
    let (tx, rx) = channel::<u32>(0);
    let log = Arc::new(Mutex::new(vec![Vec::new(); 4]));
    let mut workers = Vec::new();
    for id in 0..4 {
        let (rx, log) = (rx.clone(), Arc::clone(&log));
        workers.push(tokio::spawn(async move {
            while let Ok(v) = rx.recv().await {
                log.lock().unwrap()[id].push(v);
            }
        }));
        settle().await; // workers start waiting in id order
    }
    drop(rx);
    for v in 0..values {
        tx.send(v).await.unwrap();
    }
    drop(tx);
    for worker in workers {
        worker.await.unwrap();
    }
    Arc::try_unwrap(log).unwrap().into_inner().unwrap()
}

#[tokio::test(start_paused = true)]
async fn fan_out_to_four_waiting_workers_is_round_robin_in_wait_order() {
    let got = fan_out(40).await;
    for (id, values) in got.iter().enumerate() {
        let expected: Vec<u32> = (0..10).map(|k| id as u32 + 4 * k).collect();
        assert_eq!(values, &expected, "worker {id}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_fast_consumer_cannot_take_values_from_waiting_workers() {
    let (tx, rx) = channel::<u32>(4);
    let log = Arc::new(Mutex::new(vec![Vec::new(); 4]));
    let mut workers = Vec::new();
    for id in 0..4 {
        let (rx, log) = (rx.clone(), Arc::clone(&log));
        workers.push(tokio::spawn(async move {
            while let Ok(v) = rx.recv().await {
                log.lock().unwrap()[id].push(v);
            }
        }));
    }
    settle().await;
    for round in 0..10 {
        // Four values while four workers wait: the fast consumer, right
        // here and never yielding, finds none of them.
        for k in 0..4 {
            tx.send(round * 4 + k).await.unwrap();
        }
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "round {round}");
        settle().await; // the workers take their values and wait again
    }
    drop((tx, rx));
    for worker in workers {
        worker.await.unwrap();
    }
    for (id, values) in log.lock().unwrap().iter().enumerate() {
        assert_eq!(values.len(), 10, "worker {id} got {values:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn waiting_senders_are_served_first_come_first_served_and_try_send_cannot_jump_the_queue() {
    let (tx, rx) = channel::<u32>(1);
    tx.send(0).await.unwrap();
    let mut senders = Vec::new();
    for v in 1..=3 {
        let tx = tx.clone();
        senders.push(tokio::spawn(async move { tx.send(v).await }));
        settle().await;
    }
    assert_eq!(tx.stats().tasks_waiting_send, 3);

    assert_eq!(rx.recv().await, Ok(0));
    // The room went to the first waiting sender at once.
    assert_eq!(rx.stats().tasks_waiting_send, 2);
    assert_eq!(rx.stats().current_buffer_used, 1);
    assert!(matches!(tx.try_send(99), Err(TrySendError::Full(99))));

    for expected in 1..=3 {
        assert_eq!(rx.recv().await, Ok(expected));
    }
    for sender in senders {
        assert_eq!(sender.await.unwrap(), Ok(()));
    }
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

#[tokio::test(start_paused = true)]
async fn closing_a_receiver_wakes_the_task_blocked_on_that_same_handle() {
    let (tx, rx) = channel::<u32>(1);
    let rx = Arc::new(rx);
    let other = rx.as_ref().clone();
    let blocked = tokio::spawn({
        let rx = Arc::clone(&rx);
        async move { rx.recv().await }
    });
    settle().await;
    assert_eq!(rx.stats().tasks_waiting_receive, 1);

    rx.close();
    assert_eq!(blocked.await.unwrap(), Err(RecvError::Closed));
    assert_eq!(rx.stats().tasks_waiting_receive, 0);
    // The clone is unaffected and still keeps the channel open.
    tx.send(5).await.unwrap();
    assert_eq!(other.recv().await, Ok(5));
}

#[tokio::test(start_paused = true)]
async fn closing_a_sender_wakes_the_task_blocked_on_that_same_handle_with_its_value() {
    let (tx, rx) = channel::<String>(0);
    let tx = Arc::new(tx);
    let blocked = tokio::spawn({
        let tx = Arc::clone(&tx);
        async move { tx.send(String::from("mine")).await }
    });
    settle().await;
    assert_eq!(tx.stats().tasks_waiting_send, 1);

    tx.close();
    assert_eq!(
        blocked.await.unwrap(),
        Err(SendError::Closed(String::from("mine")))
    );
    assert_eq!(rx.stats().tasks_waiting_send, 0);
    assert_eq!(rx.recv().await, Err(RecvError::EndOfChannel));
}

#[tokio::test(start_paused = true)]
async fn closing_the_last_receiver_drops_the_buffer_and_refuses_waiting_senders() {
    let (tx, rx) = channel::<u32>(1);
    tx.send(1).await.unwrap();
    let waiting = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send(2).await }
    });
    settle().await;
    rx.close();
    assert_eq!(waiting.await.unwrap(), Err(SendError::Disconnected(2)));
    assert_eq!(tx.stats().current_buffer_used, 0, "dropped at once");
}

#[tokio::test(start_paused = true)]
async fn stats_count_waiting_senders_and_receivers() {
    let (tx, rx) = channel::<u32>(0);
    let mut recv_a = pin!(rx.recv());
    let mut recv_b = Box::pin(rx.recv());
    assert!(poll_once(recv_a.as_mut()).await.is_pending());
    assert!(poll_once(recv_b.as_mut()).await.is_pending());
    let stats = tx.stats();
    assert_eq!(
        (stats.tasks_waiting_send, stats.tasks_waiting_receive),
        (0, 2)
    );

    tx.try_send(1).unwrap();
    assert_eq!(tx.stats().tasks_waiting_receive, 1, "the first was served");
    assert_eq!(recv_a.await, Ok(1));
    drop(recv_b);
    assert_eq!(tx.stats().tasks_waiting_receive, 0, "a dropped wait leaves");

    let mut send = pin!(tx.send(2));
    assert!(poll_once(send.as_mut()).await.is_pending());
    let stats = rx.stats();
    assert_eq!(
        (stats.tasks_waiting_send, stats.tasks_waiting_receive),
        (1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn rendezvous_send_to_a_waiting_receiver_is_a_checkpoint() {
    let (tx, rx) = channel::<u32>(0);
    let receiver = tokio::spawn(async move { rx.recv().await });
    settle().await;
    assert_checkpoint(tx.send(1)).await.unwrap();
    assert_eq!(receiver.await.unwrap(), Ok(1));
}

#[tokio::test(start_paused = true)]
async fn rendezvous_recv_from_a_waiting_sender_is_a_checkpoint() {
    let (tx, rx) = channel::<u32>(0);
    let sender = tokio::spawn(async move { tx.send(1).await });
    settle().await;
    assert_eq!(assert_checkpoint(rx.recv()).await, Ok(1));
    assert_eq!(sender.await.unwrap(), Ok(()));
}

/// Runs `body` in a scope that a freshly spawned task cancels: the scope
/// ends early only if `body` yields to the scheduler.
async fn run_cancelled_by_another_task<F: Future>(body: F) -> Option<F::Output> {
    let scope = CancelScope::new();
    let canceller = tokio::spawn({
        let scope = scope.clone();
        async move { scope.cancel() }
    });
    let outcome = scope.run(body).await;
    canceller.await.unwrap();
    outcome
}

#[tokio::test(start_paused = true)]
async fn a_loop_of_buffered_sends_and_receives_that_never_wait_still_yields_and_can_be_cancelled() {
    let (tx, rx) = channel::<u32>(1);
    // Bounded, so that operations that never yield fail the test instead of
    // hanging it: the loop would then end before the canceller ran.
    let outcome = run_cancelled_by_another_task(async {
        for i in 0..100_000 {
            tx.send(i).await.unwrap();
            rx.recv().await.unwrap();
        }
    })
    .await;
    assert!(outcome.is_none(), "cancelled inside the loop");
}

#[tokio::test(start_paused = true)]
async fn a_send_loop_against_a_receiver_that_keeps_up_lets_other_tasks_run() {
    let (tx, rx) = channel::<u32>(16);
    let consumer = tokio::spawn(async move {
        let mut n = 0u32;
        while rx.recv().await.is_ok() {
            n += 1;
        }
        n
    });
    let outcome = run_cancelled_by_another_task(async {
        for i in 0..100_000 {
            tx.send(i).await.unwrap();
        }
    })
    .await;
    assert!(outcome.is_none(), "cancelled inside the loop");
    drop(tx);
    assert!(consumer.await.unwrap() < 100_000);
}

#[tokio::test(start_paused = true)]
async fn a_loop_of_rendezvous_sends_to_a_keeping_up_receiver_can_be_cancelled() {
    let (tx, rx) = channel::<u32>(0);
    let consumer = tokio::spawn(async move { while rx.recv().await.is_ok() {} });
    let outcome = run_cancelled_by_another_task(async {
        for i in 0..100_000 {
            tx.send(i).await.unwrap();
        }
    })
    .await;
    assert!(outcome.is_none());
    drop(tx);
    consumer.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_receiver_cancelled_after_it_was_handed_a_value_gives_it_to_the_next_waiter() {
    let (tx, rx) = channel::<u32>(1);
    let mut timed_out = pin!(move_on_after(Duration::from_secs(1), rx.recv()));
    assert!(poll_once(timed_out.as_mut()).await.is_pending());
    let next = tokio::spawn({
        let rx = rx.clone();
        async move { rx.recv().await }
    });
    tokio::task::yield_now().await; // `next` waits behind the first
    assert_eq!(rx.stats().tasks_waiting_receive, 2);

    tx.try_send(7).unwrap(); // handed to the first waiter...
    tokio::time::advance(Duration::from_secs(2)).await; // ...whose deadline passes
    assert_eq!(timed_out.await, None, "cancelled before it ran");
    assert_eq!(next.await.unwrap(), Ok(7), "the value moved on");
}

#[tokio::test(start_paused = true)]
async fn a_receiver_cancelled_after_it_was_handed_a_value_puts_it_back_at_the_front() {
    let (tx, rx) = channel::<u32>(1);
    let mut timed_out = pin!(move_on_after(Duration::from_secs(1), rx.recv()));
    assert!(poll_once(timed_out.as_mut()).await.is_pending());
    tx.try_send(7).unwrap(); // handed over: the buffer stays free...
    tx.try_send(8).unwrap(); // ...for the next value
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(timed_out.await, None);

    assert_eq!(
        rx.stats().current_buffer_used,
        2,
        "given back past the capacity"
    );
    assert!(
        matches!(tx.try_send(9), Err(TrySendError::Full(9))),
        "no room until it is below capacity"
    );
    assert_eq!(rx.recv().await, Ok(7), "first out: it was sent first");
    assert_eq!(rx.recv().await, Ok(8));
}

#[tokio::test(start_paused = true)]
async fn a_rendezvous_receiver_dropped_at_its_checkpoint_gives_the_value_back() {
    let (tx, rx) = channel::<u32>(0);
    let mut send = pin!(tx.send(3));
    assert!(poll_once(send.as_mut()).await.is_pending());
    {
        let mut recv = pin!(rx.recv());
        // Takes the value, then yields: dropped there.
        assert!(poll_once(recv.as_mut()).await.is_pending());
    }
    assert_eq!(poll_once(send.as_mut()).await, Poll::Ready(Ok(())));
    assert_eq!(rx.try_recv(), Ok(3), "not lost");
}

/// Producers and consumers on a multi-thread runtime; some consumers drop
/// their `recv` futures at random points. Every value arrives exactly once.
async fn stress(capacity: usize, cancelling: bool) {
    const PRODUCERS: u32 = 4;
    const PER_PRODUCER: u32 = 2_000;
    let (tx, rx) = channel::<u32>(capacity);
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let tx = tx.clone();
        producers.push(tokio::spawn(async move {
            for i in 0..PER_PRODUCER {
                tx.send(p * PER_PRODUCER + i).await.unwrap();
            }
        }));
    }
    drop(tx);
    let mut consumers = Vec::new();
    for c in 0..4u32 {
        let rx = rx.clone();
        consumers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            let mut round = 0u32;
            loop {
                round += 1;
                let received = if cancelling && (round + c) % 3 == 0 {
                    // Races the receive against a yield: the receive is often
                    // dropped while it waits or after it was handed a value.
                    tokio::select! {
                        biased;
                        () = tokio::task::yield_now() => continue,
                        r = rx.recv() => r,
                    }
                } else {
                    rx.recv().await
                };
                match received {
                    Ok(v) => got.push(v),
                    Err(RecvError::EndOfChannel) => break got,
                    Err(e) => panic!("unexpected {e:?}"),
                }
                if !cancelling {
                    assert!(rx.stats().current_buffer_used <= capacity.max(1));
                }
            }
        }));
    }
    drop(rx);
    for p in producers {
        p.await.unwrap();
    }
    let mut all = Vec::new();
    for c in consumers {
        all.extend(c.await.unwrap());
    }
    all.sort_unstable();
    let expected: Vec<u32> = (0..PRODUCERS * PER_PRODUCER).collect();
    assert_eq!(all.len(), expected.len(), "each value exactly once");
    assert_eq!(all, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_thread_stress_delivers_every_value_exactly_once() {
    for capacity in [0, 1, 16] {
        stress(capacity, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_thread_stress_with_cancelled_receives_loses_and_duplicates_nothing() {
    for capacity in [0, 1, 16] {
        stress(capacity, true).await;
    }
}
