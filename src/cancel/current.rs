//! (private) The running task's innermost scope node.
//!
//! Every driver (a task's, a nursery's, a cancel scope's) makes its node
//! the current one around each poll and the drop of its body, so that a
//! scope, nursery or `wait_shutdown` opened inside finds its parent with
//! [`current`]. This is tokio's `task_local!` pattern, kept lean because it
//! runs on every poll of every task: one thread-local `Cell` swapped in and
//! out, with the node held by the future in between.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::tree::Node;

std::thread_local! {
    static NODE: Cell<Option<Arc<Node>>> = const { Cell::new(None) };
}

/// Returns the running task's innermost node, if it runs inside Trellis.
pub(crate) fn current() -> Option<Arc<Node>> {
    NODE.try_with(|cell| {
        let node = cell.take();
        let copy = node.clone();
        cell.set(node);
        copy
    })
    .ok()
    .flatten()
}

/// Runs `f` with the node in `slot` as the current one, and puts it back in
/// `slot` afterwards, also if `f` panics. (While the thread's locals are
/// being destroyed, `f` runs without a current node.)
fn enter<R>(slot: &mut Option<Arc<Node>>, f: impl FnOnce() -> R) -> R {
    /// Restores the previous node on the way out.
    struct Restore<'a> {
        slot: &'a mut Option<Arc<Node>>,
        previous: Option<Arc<Node>>,
    }
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let previous = self.previous.take();
            let _ = NODE.try_with(|cell| *self.slot = cell.replace(previous));
        }
    }
    match NODE.try_with(|cell| cell.replace(slot.take())) {
        Ok(previous) => {
            let _restore = Restore { slot, previous };
            f()
        }
        Err(_) => f(),
    }
}

/// Runs `f` with `node` as the current node.
pub(crate) fn with_node<R>(node: Arc<Node>, f: impl FnOnce() -> R) -> R {
    enter(&mut Some(node), f)
}

/// `future`, polled (and dropped) with `node` as the current node.
pub(crate) fn in_node<F: Future>(node: Arc<Node>, future: F) -> InNode<F> {
    InNode {
        node: Some(node),
        future: Some(future),
    }
}

pin_project! {
    /// The future returned by [`in_node`].
    pub(crate) struct InNode<F> {
        node: Option<Arc<Node>>,
        #[pin]
        future: Option<F>,
    }

    impl<F> PinnedDrop for InNode<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if std::mem::needs_drop::<F>() && this.future.is_some() {
                // Its destructors see the node too.
                enter(this.node, || this.future.set(None));
            }
        }
    }
}

impl<F: Future> Future for InNode<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut future = this.future;
        enter(this.node, || {
            let Some(body) = future.as_mut().as_pin_mut() else {
                panic!("a Trellis scope's body was polled after it completed");
            };
            let polled = body.poll(cx);
            if polled.is_ready() {
                // Dropped here, inside the node, rather than by a second
                // entry when the driver drops us.
                future.set(None);
            }
            polled
        })
    }
}

#[cfg(all(test, not(trellis_loom)))]
mod tests {
    use super::*;
    use crate::cancel::Kind;

    #[test]
    fn nodes_nest_and_are_restored_after_a_panic() {
        let outer = Node::new(Kind::Scope, false);
        let inner = Node::new(Kind::Scope, false);
        assert!(current().is_none());
        with_node(Arc::clone(&outer), || {
            assert!(Arc::ptr_eq(&current().unwrap(), &outer));
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                with_node(Arc::clone(&inner), || {
                    assert!(Arc::ptr_eq(&current().unwrap(), &inner));
                    panic!("inside");
                })
            }));
            assert!(caught.is_err());
            assert!(Arc::ptr_eq(&current().unwrap(), &outer));
        });
        assert!(current().is_none());
    }

    #[test]
    fn a_future_sees_its_node_in_every_poll_and_in_its_drop() {
        struct SeesNode(Arc<Node>);
        impl Drop for SeesNode {
            fn drop(&mut self) {
                assert!(Arc::ptr_eq(&current().unwrap(), &self.0));
            }
        }
        let node = Node::new(Kind::Scope, false);
        let guard = SeesNode(Arc::clone(&node));
        let expected = Arc::clone(&node);
        let mut future = Box::pin(in_node(Arc::clone(&node), async move {
            let _guard = guard;
            assert!(Arc::ptr_eq(&current().unwrap(), &expected));
            std::future::pending::<()>().await;
        }));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(future.as_mut().poll(&mut cx).is_pending());
        assert!(current().is_none());
        drop(future); // runs `SeesNode::drop` inside the node
        assert!(current().is_none());
    }
}
