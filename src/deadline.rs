//! (private) Timeouts for hot paths without a tokio timer per wait: what
//! [`gen_server`](crate::gen_server)'s `call` uses for its default timeout.
//!
//! `tokio::time::timeout` registers a timer in the runtime's timer wheel on
//! its first poll and removes it when dropped, under the driver's lock: on
//! the 2-core development machine that was ~0.9 µs, about three times a
//! whole local call round trip. Nearly every call ends long before its
//! timeout, so that timer is almost always waste.
//!
//! Here each thread keeps a small table of pending deadlines. A wait adds its
//! deadline and waker to the table of the thread it registers on (one
//! uncontended lock) and removes them when it ends (another). One watcher
//! task per table sleeps until the earliest deadline and wakes the waits that
//! reached it. The watcher is told of a new deadline only when it is earlier
//! than the one it sleeps until, so a stream of calls with the same timeout
//! costs it nothing: it wakes about once per timeout period to find the
//! deadlines it slept for already gone, re-arms for the earliest live one,
//! and ends once none is left, so an idle program keeps no task for it. The
//! watcher sleeps on tokio's clock, so paused-clock tests see exact
//! timeouts, as with `tokio::time::timeout`.
//!
//! Most waits never reach the table, nor read the clock. A call's first
//! wait only defers its wake-up to the scheduler's next look at its
//! deferred tasks (tokio's `yield_now`: when the worker runs out of work,
//! or at its regular maintenance, every few dozen polls), which the answer
//! nearly always beats: the server runs meanwhile. Only a wait still
//! pending when polled again reads the clock and registers (see
//! [`timeout`]).
//!
//! Compared with `tokio::time::timeout`, the value wins when both are ready
//! (the future is polled first), a wait that moves to another worker
//! stays in the table it registered in (the watcher runs anywhere), and a
//! wait's deadline counts from its second poll rather than its first (one
//! pass of the scheduler later).

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use crate::loom::lock;

/// Runs `fut` for at most `duration`: `Some(output)`, or `None` if the
/// deadline came first (the future is then dropped).
///
/// The first time `fut` has to wait, nothing is registered and no clock
/// is read: the task only defers its wake-up to the scheduler's next look
/// at its deferred tasks (tokio's `yield_now`: when the worker runs out of
/// work, or at its maintenance, every few dozen polls; outside a tokio
/// scheduler, a wake-up at once). Only if `fut` is still pending when
/// polled again is the deadline read and registered. A call whose server
/// answers before then (nearly every call: the server runs meanwhile) costs
/// no clock read, no table entry and no waker clone; a call that waits
/// longer has its deadline counted from its second poll, at most one pass
/// of the scheduler late.
///
/// # Panics
///
/// If it has to wait outside a tokio runtime, as `tokio::time::timeout`
/// does.
///
/// `fut` is taken pinned by the caller (`Unpin`: a `Pin<&mut _>` or a
/// box), so that a large future is not moved once more into this one.
pub(crate) fn timeout<F: Future + Unpin>(
    duration: Duration,
    mut fut: F,
) -> impl Future<Output = Option<F::Output>> {
    let mut waiting = Waiting::NotYet;
    poll_fn(move |cx| {
        if let Poll::Ready(output) = Pin::new(&mut fut).poll(cx) {
            return Poll::Ready(Some(output));
        }
        match &waiting {
            Waiting::NotYet => {
                // Polled again at the scheduler's next look at its deferred
                // tasks, unless the answer wakes us first: tokio's
                // `yield_now`, whose first poll only defers our waker.
                let _ = pin!(tokio::task::yield_now()).poll(cx);
                waiting = Waiting::Deferred;
            }
            Waiting::Deferred => {
                waiting = match Instant::now().checked_add(duration) {
                    Some(deadline) => Waiting::Registered(Entry::register(deadline, cx.waker())),
                    // Too far to represent: no deadline at all.
                    None => Waiting::Unbounded,
                };
            }
            Waiting::Registered(entry) => {
                if entry.expired(cx.waker()) {
                    return Poll::Ready(None);
                }
            }
            Waiting::Unbounded => {}
        }
        Poll::Pending
    })
}

/// Where a [`timeout`] stands.
enum Waiting {
    /// Not polled yet, or ready at its first poll.
    NotYet,
    /// Pending once, its wake-up deferred: registers if polled again
    /// while still pending.
    Deferred,
    /// Its deadline is in a table.
    Registered(Entry),
    /// Its deadline is beyond what `Instant` represents.
    Unbounded,
}

/// A thread's pending deadlines and the state of its watcher.
struct Table {
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// Whether a watcher task runs for this table.
    watching: bool,
    /// The deadline the watcher sleeps until, if it sleeps on one.
    armed: Option<Instant>,
}

struct Slot {
    deadline: Instant,
    waker: Waker,
    expired: bool,
}

struct Wheel {
    table: Mutex<Table>,
    /// Wakes the watcher for a deadline earlier than the armed one.
    earlier: Notify,
}

thread_local! {
    static WHEEL: Arc<Wheel> = Arc::new(Wheel {
        table: Mutex::new(Table { slots: Vec::new(), free: Vec::new(), watching: false, armed: None }),
        earlier: Notify::new(),
    });
}

/// One wait's place in a table; dropping it removes the place.
struct Entry {
    wheel: Arc<Wheel>,
    index: usize,
}

impl Entry {
    fn register(deadline: Instant, waker: &Waker) -> Entry {
        let wheel = WHEEL.with(Arc::clone);
        let mut table = lock(&wheel.table);
        let slot = Some(Slot {
            deadline,
            waker: waker.clone(),
            expired: false,
        });
        let index = match table.free.pop() {
            Some(index) => {
                table.slots[index] = slot;
                index
            }
            None => {
                table.slots.push(slot);
                table.slots.len() - 1
            }
        };
        let start_watcher = !table.watching;
        let wake_watcher = table.watching && table.armed.is_none_or(|armed| deadline < armed);
        if start_watcher {
            table.watching = true;
            table.armed = Some(deadline);
        }
        drop(table);
        // The guards first: if making the timer panics, the slot is freed
        // and the table is not left marked as watched.
        let entry = Entry { wheel, index };
        let wheel = &entry.wheel;
        if start_watcher {
            let watching = Watching {
                wheel: Arc::clone(wheel),
                returned: false,
            };
            // Made here, not in the watcher: in a runtime without a time
            // driver this panics in the caller, as `tokio::time::timeout`
            // does, not silently in a detached task.
            let timer = Box::pin(tokio::time::sleep_until(deadline));
            tokio::runtime::Handle::current().spawn(watch(watching, timer));
        } else if wake_watcher {
            wheel.earlier.notify_one();
        }
        entry
    }

    /// Whether the deadline has passed; if not, keeps `waker` as the one to
    /// wake.
    fn expired(&self, waker: &Waker) -> bool {
        let mut table = lock(&self.wheel.table);
        let Some(slot) = table.slots[self.index].as_mut() else {
            return false;
        };
        if !slot.expired && !slot.waker.will_wake(waker) {
            slot.waker = waker.clone();
        }
        slot.expired
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut table = lock(&self.wheel.table);
        table.slots[self.index] = None;
        table.free.push(self.index);
    }
}

/// The watcher's hold on its table: when the watcher is dropped with its
/// runtime, the next wait on the thread starts a new one.
struct Watching {
    wheel: Arc<Wheel>,
    /// Set when the watcher returned, having marked the table itself.
    returned: bool,
}

impl Drop for Watching {
    fn drop(&mut self) {
        if !self.returned {
            let mut table = lock(&self.wheel.table);
            table.watching = false;
            table.armed = None;
        }
    }
}

async fn watch(mut watching: Watching, mut timer: Pin<Box<Sleep>>) {
    let wheel = Arc::clone(&watching.wheel);
    loop {
        let next = {
            let mut table = lock(&wheel.table);
            let now = Instant::now();
            let mut earliest: Option<Instant> = None;
            for slot in table.slots.iter_mut().flatten() {
                if slot.expired {
                    continue;
                }
                if slot.deadline <= now {
                    slot.expired = true;
                    slot.waker.wake_by_ref();
                } else {
                    earliest = Some(earliest.map_or(slot.deadline, |e| e.min(slot.deadline)));
                }
            }
            if table.free.len() == table.slots.len() {
                // Every place is free: give the memory back after a burst.
                table.slots = Vec::new();
                table.free = Vec::new();
            }
            table.armed = earliest;
            match earliest {
                Some(next) => next,
                // Marked unwatched under this lock, not a later one: a wait
                // registering in between would find the table still
                // watched, and its deadline would be missed.
                None => {
                    table.watching = false;
                    watching.returned = true;
                    return;
                }
            }
        };
        if timer.deadline() != next {
            timer.as_mut().reset(next);
        }
        tokio::select! {
            () = timer.as_mut() => {}
            () = wheel.earlier.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::pending;
    use std::pin::pin;

    use super::*;

    fn slots_in_use() -> usize {
        WHEEL.with(|wheel| {
            let table = lock(&wheel.table);
            table.slots.len() - table.free.len()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_value_ready_before_the_deadline_is_returned_and_leaves_nothing() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiter = tokio::spawn(timeout(Duration::from_secs(5), rx));
        tokio::task::yield_now().await;
        tx.send(7).unwrap();
        assert_eq!(waiter.await.unwrap().map(Result::unwrap), Some(7));
        assert_eq!(slots_in_use(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_its_deadline_gives_up_exactly_at_it() {
        let start = Instant::now();
        assert_eq!(
            timeout(Duration::from_millis(1500), pending::<()>()).await,
            None
        );
        assert_eq!(start.elapsed(), Duration::from_millis(1500));
        assert_eq!(slots_in_use(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_deadline_added_later_fires_at_its_own_time() {
        let start = Instant::now();
        let late = tokio::spawn(async move {
            timeout(Duration::from_secs(10), pending::<()>()).await;
            start.elapsed()
        });
        tokio::task::yield_now().await;
        // The watcher sleeps until the 10 s deadline: it must be woken.
        assert_eq!(timeout(Duration::from_secs(2), pending::<()>()).await, None);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert_eq!(late.await.unwrap(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn the_watcher_ends_when_no_deadline_is_left() {
        let tasks = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        assert_eq!(
            timeout(Duration::from_secs(1), pin!(async { 1 })).await,
            Some(1)
        );
        // Ready at once: no deadline was registered, no watcher started.
        assert_eq!(
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
            tasks
        );
        assert_eq!(timeout(Duration::from_secs(1), pending::<()>()).await, None);
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
            tasks
        );
    }

    fn alive_tasks() -> usize {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    }

    #[tokio::test(start_paused = true)]
    async fn on_a_current_thread_runtime_an_answer_before_the_deferred_look_registers_nothing() {
        let tasks = alive_tasks();
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Scheduled before the waiter's second poll: answers meanwhile.
        let answer = tokio::spawn(async move { tx.send(7).unwrap() });
        assert_eq!(
            timeout(Duration::from_secs(5), rx)
                .await
                .map(Result::unwrap),
            Some(7)
        );
        answer.await.unwrap();
        // A registration would have started a watcher sleeping until 5 s.
        assert_eq!(alive_tasks(), tasks);
        assert_eq!(slots_in_use(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn on_a_current_thread_runtime_a_wait_pending_after_its_deferral_times_out_exactly() {
        let start = Instant::now();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // Answered after the deadline: the wait registered when polled again.
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let _ = tx.send(());
        });
        assert_eq!(timeout(Duration::from_secs(2), rx).await, None);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert_eq!(slots_in_use(), 0);
        late.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_waits_deadline_counts_from_its_second_poll() {
        let start = Instant::now();
        let mut wait = pin!(timeout(Duration::from_secs(2), pending::<()>()));
        assert!(futures::poll!(wait.as_mut()).is_pending());
        assert_eq!(slots_in_use(), 0, "the first wait registers nothing");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(futures::poll!(wait.as_mut()).is_pending());
        assert_eq!(slots_in_use(), 1);
        assert_eq!(wait.await, None);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[test]
    fn on_a_multi_thread_runtime_an_answer_before_the_deferred_look_registers_nothing() {
        let workers = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let (answered, slots) = workers.block_on(async {
            tokio::spawn(async {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let mut wait = pin!(timeout(Duration::from_secs(5), rx));
                assert!(futures::poll!(wait.as_mut()).is_pending());
                tx.send(7).unwrap();
                let answered = futures::poll!(wait.as_mut());
                (answered, slots_in_use())
            })
            .await
            .unwrap()
        });
        assert!(matches!(answered, Poll::Ready(Some(Ok(7)))));
        assert_eq!(slots, 0, "no deadline was registered");
    }

    #[test]
    fn a_wait_registered_on_one_thread_times_out_after_moving_to_another() {
        // Real time: a paused clock is per runtime, and this wait crosses
        // runtimes. The outcome does not depend on timing: the future never
        // completes, so only the deadline can end the wait.
        let workers = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let mut wait = Box::pin(timeout(Duration::from_millis(200), pending::<()>()));
        let start = std::time::Instant::now();
        // Polled twice on the worker thread (the first poll of a wait on a
        // multi-thread runtime only defers it): registered in the worker's
        // table, whose watcher runs on the worker runtime.
        let (wait, deferred, registered) = workers.block_on(async move {
            tokio::spawn(async move {
                assert!(futures::poll!(wait.as_mut()).is_pending());
                let deferred = slots_in_use();
                assert!(futures::poll!(wait.as_mut()).is_pending());
                (wait, deferred, slots_in_use())
            })
            .await
            .unwrap()
        });
        assert_eq!((deferred, registered), (0, 1));
        // Awaited on this thread, in another runtime.
        let elsewhere = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        assert_eq!(elsewhere.block_on(wait), None);
        assert!(start.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn without_a_time_driver_a_wait_panics_in_the_caller_and_the_next_runtime_still_times_out() {
        let no_timers = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let panicked = std::panic::catch_unwind(|| {
            no_timers.block_on(timeout(Duration::from_secs(1), pending::<()>()))
        });
        assert!(panicked.is_err());
        assert_eq!(slots_in_use(), 0);
        drop(no_timers);
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(async {
                assert_eq!(timeout(Duration::from_secs(1), pending::<()>()).await, None);
            });
    }

    #[test]
    fn a_watcher_dropped_with_its_runtime_is_replaced_in_the_next_one() {
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap()
        };
        // The first runtime ends while its watcher sleeps on a deadline.
        runtime().block_on(async {
            let waiting = tokio::spawn(timeout(Duration::from_secs(60), pending::<()>()));
            tokio::task::yield_now().await;
            waiting.abort();
        });
        runtime().block_on(async {
            let start = Instant::now();
            assert_eq!(timeout(Duration::from_secs(3), pending::<()>()).await, None);
            assert_eq!(start.elapsed(), Duration::from_secs(3));
        });
    }
}
