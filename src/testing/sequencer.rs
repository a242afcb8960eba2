//! [`Sequencer`]: force steps of several tasks to happen in a given order
//! (`trio.testing.Sequencer`).

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;

use tokio::sync::watch;

/// Makes steps of several tasks happen in a fixed order: step 0, then step 1,
/// then step 2…, whichever task each one is in and whatever the scheduler
/// does (`trio.testing.Sequencer`).
///
/// A task calls [`step(n)`](Self::step) where it wants step `n` to begin; the
/// call waits until steps `0..n` have all completed, and returns a [`Step`]
/// guard. Step `n` is complete when its guard is dropped: at the end of the
/// block that holds it, or earlier with `drop(step)`. So
/// `let _step = seq.step(n).await?;` makes the rest of the block step `n`.
///
/// Every step number from 0 up to the last one used must be claimed by some
/// task, exactly once: a step that nobody claims blocks every later one, as
/// in Trio.
///
/// # Broken sequences
///
/// A step whose *wait* is cancelled (its future dropped before it returned:
/// a nursery cancelling the task, a timeout, a lost `select!`) breaks the
/// sequence, as in Trio. Every step still waiting, and every later call to
/// `step`, then returns [`SequencerError::Broken`] naming the cancelled step,
/// instead of waiting forever for a step that will never complete. A step
/// that already began is not affected, and a guard dropped in any way —
/// returning, `?`, a panic unwinding, its task being cancelled — completes
/// its step normally: failures *inside* a step do not break the sequence.
///
/// Cheap to clone; clones share the sequence. It needs no paused clock and
/// works on any runtime.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use std::sync::{Arc, Mutex};
/// use trellis::testing::{Sequencer, SequencerError};
/// use trellis::nursery;
///
/// let seq = Sequencer::new();
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let log = nursery(|n| async move {
///     // Spawned first, but its step comes second.
///     let (s, l) = (seq.clone(), log.clone());
///     n.spawn(async move {
///         let _step = s.step(1).await?;
///         l.lock().unwrap().push("second");
///         Ok::<_, SequencerError>(())
///     });
///     let step = seq.step(0).await?;
///     log.lock().unwrap().push("first");
///     drop(step); // step 0 is complete: step 1 may begin
///     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(log)
/// })
/// .await?;
/// assert_eq!(*log.lock().unwrap(), ["first", "second"]);
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct Sequencer {
    progress: watch::Sender<Progress>,
}

#[derive(Debug, Default)]
struct Progress {
    /// Steps `0..next` are complete; step `next` may begin.
    next: usize,
    /// Every step number handed out so far.
    claimed: BTreeSet<usize>,
    /// The step whose cancelled wait broke the sequence, if one did.
    broken_by: Option<usize>,
}

impl fmt::Debug for Sequencer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let progress = self.progress.borrow();
        f.debug_struct("Sequencer")
            .field("completed", &progress.next)
            .field("broken_by", &progress.broken_by)
            .finish()
    }
}

impl Sequencer {
    /// Creates a sequence whose first step is 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until steps `0..step` have completed, then begins step `step`;
    /// the step completes when the returned [`Step`] is dropped.
    ///
    /// The step number is claimed when `step` is called, so a number used
    /// twice is reported even if the first user is still waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), trellis::testing::SequencerError> {
    /// use futures_util::FutureExt as _;
    /// use trellis::testing::Sequencer;
    ///
    /// let seq = Sequencer::new();
    /// let step0 = seq.step(0).await?;
    /// let mut step1 = Box::pin(seq.step(1));
    /// assert!((&mut step1).now_or_never().is_none()); // waits for step 0
    /// drop(step0);
    /// assert_eq!(step1.await?.number(), 1);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SequencerError::Reused`] if `step` was claimed before;
    /// [`SequencerError::Broken`] if the wait of some step was cancelled,
    /// before or during this one's.
    ///
    /// # Cancel safety
    ///
    /// Deliberately not cancel safe: dropping the future before it is ready
    /// breaks the sequence (see [Broken sequences](Sequencer#broken-sequences)),
    /// so that the later steps fail instead of hanging.
    pub fn step(
        &self,
        step: usize,
    ) -> impl Future<Output = Result<Step, SequencerError>> + Send + 'static {
        let claim = self.claim(step);
        async move {
            let waiting = claim?;
            let mut progress = waiting.progress.subscribe();
            let broken_by = {
                // The sender lives in `waiting`: the channel cannot close.
                let ready = progress
                    .wait_for(|p| p.broken_by.is_some() || p.next == step)
                    .await;
                ready.ok().and_then(|p| p.broken_by)
            };
            if let Some(by) = broken_by {
                return Err(SequencerError::Broken { step, by });
            }
            Ok(waiting.begin())
        }
    }

    fn claim(&self, step: usize) -> Result<Waiting, SequencerError> {
        let mut claimed = Ok(());
        self.progress.send_if_modified(|p| {
            if !p.claimed.insert(step) {
                claimed = Err(SequencerError::Reused { step });
            } else if let Some(by) = p.broken_by {
                claimed = Err(SequencerError::Broken { step, by });
            }
            false // nobody waits for a claim
        });
        claimed.map(|()| Waiting {
            progress: self.progress.clone(),
            step,
            armed: true,
        })
    }
}

/// A claimed step that has not begun: breaks the sequence if dropped armed.
struct Waiting {
    progress: watch::Sender<Progress>,
    step: usize,
    armed: bool,
}

impl Waiting {
    fn begin(mut self) -> Step {
        self.armed = false;
        Step {
            progress: self.progress.clone(),
            step: self.step,
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.armed {
            let step = self.step;
            self.progress.send_modify(|p| {
                p.broken_by.get_or_insert(step);
            });
        }
    }
}

/// A step of a [`Sequencer`] in progress; dropping it completes the step and
/// lets the next one begin.
#[must_use = "the step completes as soon as this guard is dropped"]
pub struct Step {
    progress: watch::Sender<Progress>,
    step: usize,
}

impl Step {
    /// The step's number.
    pub fn number(&self) -> usize {
        self.step
    }
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Step").field("number", &self.step).finish()
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        let next = self.step + 1;
        self.progress.send_modify(|p| p.next = p.next.max(next));
    }
}

/// Why [`Sequencer::step`] did not begin a step.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SequencerError {
    /// The step number was claimed before: each number is used once.
    #[error("sequencer step {step} used twice")]
    Reused {
        /// The step number used again.
        step: usize,
    },
    /// The wait of step `by` was cancelled, so the steps after it could
    /// never begin: the sequence is broken.
    #[error("sequence broken: step {by} was cancelled while waiting, so step {step} cannot begin")]
    Broken {
        /// The step that could not begin.
        step: usize,
        /// The step whose wait was cancelled.
        by: usize,
    },
}
