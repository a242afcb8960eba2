//! Loom models of the scope tree (STYLE rule 11): each explores every
//! interleaving of 2–3 threads calling [`Node`] methods directly (no tokio
//! runtime) and checks one of the module's invariants. Run with
//!
//! ```text
//! RUSTFLAGS="--cfg trellis_loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test --lib --release loom_ -- --test-threads=1
//! ```
//!
//! Lost wakeups show up in two ways: a counting waker whose count is checked
//! after the threads are joined, or a driver blocked in `loom::future::block_on`
//! that nothing wakes, which loom reports as a deadlock.

use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::{Poll, Wake, Waker};

use loom::future::block_on;
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::thread;

use super::{Cause, DETACHED, Kind, Node, Ordering, Verdict};

/// A waker that counts how often it is woken.
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn counting_waker() -> (Waker, Arc<Counter>) {
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    (Waker::from(Arc::clone(&counter)), counter)
}

impl Counter {
    fn wakes(&self) -> usize {
        self.0.load(SeqCst)
    }
}

fn scope(parent: &Arc<Node>) -> Arc<Node> {
    Node::new_child(Some(parent), Kind::Scope, false)
}

/// Invariant 5's bookkeeping: every entry of `parent`'s children knows its
/// slot and its parent. Returns the children, in slot order.
fn children(parent: &Arc<Node>) -> Vec<Arc<Node>> {
    let state = parent.lock();
    for (key, child) in state.more.iter().flat_map(|more| &more.children) {
        assert_eq!(child.key.load(Ordering::Relaxed), key);
        assert!(Arc::ptr_eq(
            child.parent().expect("a child has a parent"),
            parent
        ));
    }
    Node::snapshot(&state)
}

fn assert_children(parent: &Arc<Node>, expected: &[&Arc<Node>]) {
    let found = children(parent);
    assert_eq!(found.len(), expected.len());
    for node in expected {
        assert!(found.iter().any(|c| Arc::ptr_eq(c, node)));
    }
}

/// The protocol of `WaitShutdown::poll`: register (again, by key) until the
/// request is seen; skip the lock while the registered waker would wake the
/// same task and the flag is unset.
fn wait_shutdown(node: &Node) -> impl Future<Output = ()> + '_ {
    let mut key = None;
    let mut registered: Option<Waker> = None;
    poll_fn(move |cx| {
        if key.is_some()
            && registered.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
            && !node.is_shutdown_requested()
        {
            return Poll::Pending;
        }
        match node.register_shutdown_waiter(key, cx.waker()) {
            None => Poll::Ready(()),
            Some(k) => {
                key = Some(k);
                registered = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    })
}

/// The protocol of a driver: register its waker, then read the verdict;
/// wait while it says `Poll`.
fn wait_verdict(node: &Node) -> impl Future<Output = Verdict> + '_ {
    poll_fn(move |cx| {
        node.register_waker(cx.waker());
        match node.verdict() {
            Verdict::Poll => Poll::Pending,
            verdict => Poll::Ready(verdict),
        }
    })
}

/// Invariant 2: a child attaching while its parent is cancelled ends up
/// cancelled (a shield does not), and the waker its driver registered before
/// is woken exactly once.
fn attach_races_cancel(shield: bool) {
    loom::model(move || {
        let parent = Node::new(Kind::Scope, false);
        let child = Node::new(Kind::Scope, shield);
        let (waker, counter) = counting_waker();
        child.register_waker(&waker);

        let attacher = {
            let (parent, child) = (Arc::clone(&parent), Arc::clone(&child));
            thread::spawn(move || child.attach(&parent))
        };
        assert!(parent.cancel(Cause::Explicit));
        attacher.join().unwrap();

        assert_eq!(child.is_cancelled(), !shield);
        assert!(!child.is_cancelled_by_itself());
        assert_eq!(child.own_cause(), None);
        assert_eq!(counter.wakes(), usize::from(!shield));
        assert_children(&parent, &[&child]);
        child.detach();
        assert_children(&parent, &[]);
    });
}

#[test]
fn loom_attach_races_cancel() {
    attach_races_cancel(false);
}

#[test]
fn loom_attach_shield_races_cancel() {
    attach_races_cancel(true);
}

/// Invariant 2 one level down: a grandchild attaching under a node whose
/// cancellation is inherited (pushed by `cancel_inherited`, not `cancel`).
/// The grandchild's driver, blocked on its verdict, must be woken.
#[test]
fn loom_attach_races_inherited_cancel() {
    loom::model(|| {
        let root = Node::new(Kind::Scope, false);
        let mid = scope(&root);
        let leaf = Node::new(Kind::Task(std::borrow::Cow::Borrowed("task")), false);

        let canceller = {
            let root = Arc::clone(&root);
            thread::spawn(move || assert!(root.cancel(Cause::Deadline)))
        };
        leaf.attach(&mid);
        assert_eq!(block_on(wait_verdict(&leaf)), Verdict::Drop);
        canceller.join().unwrap();

        assert!(mid.is_cancelled() && !mid.is_cancelled_by_itself());
        assert_eq!(mid.verdict(), Verdict::Park);
        assert_eq!(root.own_cause(), Some(Cause::Deadline));
        leaf.detach();
        mid.detach();
        assert_children(&root, &[]);
    });
}

/// Invariant 5 against cancellation: one child detaches and another attaches
/// while the parent is cancelled. Nothing panics, the parent's children are
/// exactly the attached one, in its own slot, and the detached child's subtree
/// is cancelled all or nothing.
#[test]
fn loom_detach_races_cancel() {
    loom::model(|| {
        let parent = Node::new(Kind::Scope, false);
        let leaving = scope(&parent);
        let below_leaving = scope(&leaving);
        let joining = Node::new(Kind::Scope, false);

        let detacher = {
            let leaving = Arc::clone(&leaving);
            thread::spawn(move || leaving.detach())
        };
        let attacher = {
            let (parent, joining) = (Arc::clone(&parent), Arc::clone(&joining));
            thread::spawn(move || joining.attach(&parent))
        };
        assert!(parent.cancel(Cause::Explicit));
        detacher.join().unwrap();
        attacher.join().unwrap();

        assert_eq!(leaving.key.load(Ordering::Relaxed), DETACHED);
        assert_children(&parent, &[&joining]);
        assert!(joining.is_cancelled());
        assert_eq!(below_leaving.is_cancelled(), leaving.is_cancelled());
        assert_children(&leaving, &[&below_leaving]);
        below_leaving.detach();
        joining.detach();
        assert_children(&parent, &[]);
    });
}

/// No lost wakeup between `request_shutdown` and `register_shutdown_waiter`:
/// a `wait_shutdown` on a child (so the request arrives by propagation)
/// either sees the flag or is woken, and leaves no waiter behind.
#[test]
fn loom_shutdown_races_waiter() {
    loom::model(|| {
        let parent = Node::new(Kind::Scope, false);
        let child = Node::new_child(Some(&parent), Kind::Scope, true);

        let requester = {
            let parent = Arc::clone(&parent);
            thread::spawn(move || parent.request_shutdown())
        };
        block_on(wait_shutdown(&child));
        requester.join().unwrap();

        assert!(parent.is_shutdown_requested() && child.is_shutdown_requested());
        assert!(!child.is_cancelled(), "a shutdown request only informs");
        assert!(child.lock().shutdown_waiters.is_empty());
        child.detach();
    });
}

/// Invariant 2 for the shutdown flag: a node attaching while its parent is
/// asked to shut down inherits the request, and a waiter registered on it
/// before it attached is woken exactly once.
#[test]
fn loom_attach_races_shutdown() {
    loom::model(|| {
        let parent = Node::new(Kind::Scope, false);
        let child = Node::new(Kind::Scope, false);
        let (waker, counter) = counting_waker();
        assert_eq!(child.register_shutdown_waiter(None, &waker), Some(0));

        let attacher = {
            let (parent, child) = (Arc::clone(&parent), Arc::clone(&child));
            thread::spawn(move || child.attach(&parent))
        };
        parent.request_shutdown();
        attacher.join().unwrap();

        assert!(child.is_shutdown_requested());
        assert_eq!(counter.wakes(), 1);
        assert_eq!(child.register_shutdown_waiter(Some(0), &waker), None);
        child.detach();
    });
}

/// Both flags at once (three threads): a node attaching while its parent is
/// cancelled and asked to shut down inherits both, whatever the order.
#[test]
fn loom_attach_races_cancel_and_shutdown() {
    loom::model(|| {
        let parent = Node::new(Kind::Scope, false);
        let child = Node::new(Kind::Task(std::borrow::Cow::Borrowed("task")), false);

        let canceller = {
            let parent = Arc::clone(&parent);
            thread::spawn(move || assert!(parent.cancel(Cause::Explicit)))
        };
        let requester = {
            let parent = Arc::clone(&parent);
            thread::spawn(move || parent.request_shutdown())
        };
        child.attach(&parent);
        canceller.join().unwrap();
        requester.join().unwrap();

        assert!(child.is_cancelled() && child.is_shutdown_requested());
        assert_eq!(child.verdict(), Verdict::Drop);
        child.detach();
        assert_children(&parent, &[]);
    });
}

/// Two cancellations of one node: exactly one returns `true` and its cause is
/// the one recorded; the child is cancelled by inheritance, and each driver
/// is woken exactly once.
#[test]
fn loom_cancel_races_cancel() {
    loom::model(|| {
        let node = Node::new(Kind::Scope, false);
        let child = scope(&node);
        let (node_waker, node_wakes) = counting_waker();
        let (child_waker, child_wakes) = counting_waker();
        node.register_waker(&node_waker);
        child.register_waker(&child_waker);

        let other = {
            let node = Arc::clone(&node);
            thread::spawn(move || node.cancel(Cause::Explicit))
        };
        let mine = node.cancel(Cause::Deadline);
        let theirs = other.join().unwrap();

        assert_ne!(mine, theirs, "exactly one cancel wins");
        let winner = if mine {
            Cause::Deadline
        } else {
            Cause::Explicit
        };
        assert_eq!(node.own_cause(), Some(winner));
        assert_eq!(node.verdict(), Verdict::Drop);
        assert!(child.is_cancelled() && !child.is_cancelled_by_itself());
        assert_eq!(child.own_cause(), None);
        assert_eq!((node_wakes.wakes(), child_wakes.wakes()), (1, 1));
        child.detach();
    });
}

/// A scope cancelling itself while its parent's cancellation reaches it: in
/// every order it ends up cancelled by itself, with its own cause, and
/// parked — the outermost cancelled scope (the parent) catches, as in Trio —
/// and its driver is woken once or twice (once per cancellation that found
/// it not yet cancelled), never left asleep.
#[test]
fn loom_own_cancel_races_inherited() {
    loom::model(|| {
        let parent = Node::new(Kind::Scope, false);
        let child = scope(&parent);
        let (waker, counter) = counting_waker();
        child.register_waker(&waker);

        let other = {
            let parent = Arc::clone(&parent);
            thread::spawn(move || parent.cancel(Cause::Explicit))
        };
        child.cancel(Cause::Failure);
        assert!(other.join().unwrap());

        assert_eq!(parent.own_cause(), Some(Cause::Explicit));
        assert_eq!(child.own_cause(), Some(Cause::Failure));
        assert_eq!(child.verdict(), Verdict::Park);
        assert_eq!(parent.verdict(), Verdict::Drop);
        assert!((1..=2).contains(&counter.wakes()), "{}", counter.wakes());
        child.detach();
    });
}

/// Holds: while a shield inside a task is active, the cancelled task and the
/// scopes between them say `Poll`; once it is released the task's driver is
/// told to `Drop` (woken if it waits), a plain scope inside to `Park`, a
/// nursery inside to `Drop`, and the shield is untouched.
#[test]
fn loom_hold_defers_verdict() {
    loom::model(|| {
        let task = Node::new(Kind::Task(std::borrow::Cow::Borrowed("task")), false);
        let inner = scope(&task);
        let shield = Node::new_child(Some(&inner), Kind::Scope, true);
        let group = Node::new_child(Some(&task), Kind::Group(Arc::new(())), false);
        shield.acquire_hold();

        let canceller = {
            let task = Arc::clone(&task);
            thread::spawn(move || assert!(task.cancel(Cause::Explicit)))
        };
        assert_eq!(task.verdict(), Verdict::Poll);
        assert_eq!(inner.verdict(), Verdict::Poll);
        shield.release_hold();
        assert_eq!(block_on(wait_verdict(&task)), Verdict::Drop);
        canceller.join().unwrap();

        assert_eq!(inner.verdict(), Verdict::Park);
        assert_eq!(group.verdict(), Verdict::Drop);
        assert_eq!(shield.verdict(), Verdict::Poll);
        assert!(!shield.is_cancelled());
        for node in [&shield, &inner, &group] {
            node.detach();
        }
        assert_children(&task, &[]);
    });
}
