//! [`compose_values`]: one derived [`AsyncValue`] computed from several
//! others, kept up to date as any of them changes.
//!
//! [`AsyncValue::open_transform`] derives a value from one source; this
//! derives one from a tuple of two to four sources (nest them for more).

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use crate::loom::lock;

use super::AsyncValue;

/// A tuple of [`AsyncValue`] references that [`compose_values`] can follow:
/// `(&AsyncValue<A>, &AsyncValue<B>)` up to four, whose values are read as
/// the tuple `(A, B, …)`.
///
/// Implemented for tuples of two, three and four references; not meant to
/// be implemented elsewhere.
pub trait ComposeSources {
    /// The tuple of the sources' values.
    type Values: Send + 'static;

    /// The current values, read one source at a time.
    #[doc(hidden)]
    fn current(&self) -> Self::Values;

    /// Registers `update` with every source; the guards unregister it.
    #[doc(hidden)]
    fn follow_all(&self, update: Updater<Self::Values>) -> Vec<Box<dyn Send + Sync>>;
}

/// Applies one source's change to the composite tuple, then recomputes.
#[doc(hidden)]
pub type Updater<V> = Arc<dyn Fn(&mut dyn FnMut(&mut V)) + Send + Sync>;

/// The hook for one source: writes its value into its field of the
/// composite tuple, then recomputes.
fn hook<V: 'static, T: Clone + 'static>(
    update: &Updater<V>,
    field: fn(&mut V) -> &mut T,
) -> impl FnMut(&T) + Send + 'static {
    let update = Arc::clone(update);
    move |value: &T| update(&mut |values: &mut V| *field(values) = value.clone())
}

// One impl per tuple size; a macro because the four bodies differ only in
// arity (no public macro, nothing generated beyond these impls).
macro_rules! compose_sources {
    ($($T:ident $i:tt),+) => {
        impl<$($T: Clone + PartialEq + Send + 'static),+> ComposeSources for ($(&AsyncValue<$T>,)+) {
            type Values = ($($T,)+);

            fn current(&self) -> ($($T,)+) {
                ($(self.$i.value(),)+)
            }

            fn follow_all(&self, update: Updater<($($T,)+)>) -> Vec<Box<dyn Send + Sync>> {
                vec![$(
                    Box::new(self.$i.follow(hook::<Self::Values, $T>(&update, |values| &mut values.$i)))
                        as Box<dyn Send + Sync>
                ),+]
            }
        }
    };
}

compose_sources!(A 0, B 1);
compose_sources!(A 0, B 1, C 2);
compose_sources!(A 0, B 1, C 2, D 3);

/// A value computed by `transform` from the values of several
/// [`AsyncValue`]s, recomputed whenever any of them changes, for as long as
/// the returned [`Composed`] lives (trio-util's `compose_values`).
///
/// `sources` is a tuple of two to four `&AsyncValue`s; `transform` sees
/// their values as a tuple. The result dereferences to an ordinary
/// [`AsyncValue`]: wait on it, stream it, transform it further; waiters on
/// it are woken only when the derived value itself changes. It is meant to
/// be read only: a [`set`](AsyncValue::set) on it is overwritten by the next
/// change of a source.
///
/// `transform` runs inside the `set` of the source that changed, under that
/// source's lock and the composite's: keep it cheap, and keep it away from
/// the sources. Changes from several threads are applied one at a time, so
/// the derived value always reflects the latest value of every source.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use trellis::util::{compose_values, AsyncValue};
///
/// let x = AsyncValue::new(-1);
/// let y = AsyncValue::new(10);
/// let quadrant = compose_values((&x, &y), |&(x, y)| (x >= 0, y >= 0));
/// assert_eq!(quadrant.value(), (false, true));
/// let watcher = tokio::spawn({
///     let first = AsyncValue::clone(&quadrant);
///     async move { first.wait_value(|&(x, y)| x && y).await }
/// });
/// tokio::task::yield_now().await;
/// x.set(3);
/// assert_eq!(watcher.await.unwrap(), (true, true));
/// drop(quadrant); // stops following
/// assert_eq!(x.waiters() + y.waiters(), 0);
/// # }
/// ```
pub fn compose_values<S, U, F>(sources: S, transform: F) -> Composed<U>
where
    S: ComposeSources,
    U: Clone + PartialEq + Send + 'static,
    F: FnMut(&S::Values) -> U + Send + 'static,
{
    let values = sources.current();
    let mut transform = transform;
    let output = AsyncValue::new(transform(&values));
    let state = Arc::new(Mutex::new((values, transform)));
    let target = output.clone();
    let update: Updater<S::Values> = Arc::new(move |apply| {
        // Held while the output is set, so that concurrent changes of two
        // sources land in order (lock order: source, composite, output).
        let mut guard = lock(&state);
        let (values, transform) = &mut *guard;
        apply(values);
        target.set(transform(values));
    });
    let following = sources.follow_all(update);
    Composed {
        output,
        _following: following,
    }
}

/// The derived value of [`compose_values`], kept up to date while it lives.
pub struct Composed<U> {
    output: AsyncValue<U>,
    _following: Vec<Box<dyn Send + Sync>>,
}

impl<U: fmt::Debug> fmt::Debug for Composed<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Composed")
            .field("output", &self.output)
            .field("sources", &self._following.len())
            .finish()
    }
}

impl<U> Deref for Composed<U> {
    type Target = AsyncValue<U>;

    fn deref(&self) -> &AsyncValue<U> {
        &self.output
    }
}
