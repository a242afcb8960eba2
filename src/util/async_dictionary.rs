//! [`AsyncDictionary`]: a map whose readers can wait for a key to appear.
//!
//! Built on a [`std::sync::Mutex`] around a [`HashMap`] and one
//! [`tokio::sync::Notify`] per key that somebody waits for; no waiter list is
//! written by hand. Compared with an [`AsyncValue`](super::AsyncValue) of a
//! whole map, an insertion wakes only the waiters of its own key.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// A map whose [`get_wait`](Self::get_wait) and
/// [`pop_wait`](Self::pop_wait) wait until the key is present
/// (trio-util's `AsyncDictionary`).
///
/// The ordinary map operations never wait. An `AsyncDictionary` is a cheap
/// handle: clones share the map.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use trellis::util::AsyncDictionary;
///
/// let replies = AsyncDictionary::new();
/// let reader = tokio::spawn({
///     let replies = replies.clone();
///     async move { replies.pop_wait(&7).await }
/// });
/// tokio::task::yield_now().await;
/// assert!(replies.is_waiting(&7));
/// replies.insert(7, "pong");
/// assert_eq!(reader.await.unwrap(), "pong");
/// assert!(replies.is_empty()); // popped
/// # }
/// ```
pub struct AsyncDictionary<K, V> {
    shared: Arc<Mutex<Map<K, V>>>,
}

struct Map<K, V> {
    entries: HashMap<K, V>,
    /// Keys somebody waits for: how many waiters, and how to wake them.
    waiting: HashMap<K, (usize, Arc<Notify>)>,
}

impl<K, V> Clone for AsyncDictionary<K, V> {
    fn clone(&self) -> Self {
        AsyncDictionary {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for AsyncDictionary<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let map = self.lock();
        f.debug_struct("AsyncDictionary")
            .field("entries", &map.entries)
            .field("waiting", &map.waiting.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<K, V> Default for AsyncDictionary<K, V> {
    fn default() -> Self {
        AsyncDictionary {
            shared: Arc::new(Mutex::new(Map {
                entries: HashMap::new(),
                waiting: HashMap::new(),
            })),
        }
    }
}

impl<K, V> AsyncDictionary<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Map<K, V>> {
        crate::loom::lock(&self.shared)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.lock().entries.is_empty()
    }
}

impl<K: Eq + Hash + Clone, V> AsyncDictionary<K, V> {
    /// Inserts `value` under `key`, returning the value it replaces, and
    /// wakes the tasks waiting for `key`.
    pub fn insert(&self, key: K, value: V) -> Option<V> {
        let mut map = self.lock();
        let old = map.entries.insert(key.clone(), value);
        if let Some((_, notify)) = map.waiting.get(&key) {
            notify.notify_waiters();
        }
        old
    }

    /// Removes `key`, returning its value. Never waits.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().entries.remove(key)
    }

    /// Whether `key` is present.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().entries.contains_key(key)
    }

    /// Whether some task is waiting in [`get_wait`](Self::get_wait) or
    /// [`pop_wait`](Self::pop_wait) for `key`.
    pub fn is_waiting<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().waiting.contains_key(key)
    }

    /// Removes every entry (waiters keep waiting).
    pub fn clear(&self) {
        self.lock().entries.clear();
    }

    /// The keys present now.
    pub fn keys(&self) -> Vec<K> {
        self.lock().entries.keys().cloned().collect()
    }

    /// Waits until `key` is present, then returns its value (a clone),
    /// leaving it in the map.
    ///
    /// A checkpoint every time: when the key is already present, it yields
    /// once before returning.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use trellis::util::AsyncDictionary;
    ///
    /// let d = AsyncDictionary::new();
    /// d.insert("a", 1);
    /// assert_eq!(d.get_wait(&"a").await, 1); // present: one yield, no wait
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future leaves the map as it was.
    pub async fn get_wait<Q>(&self, key: &Q) -> V
    where
        V: Clone,
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.wait_for(key, |entries, key| entries.get(key).cloned())
            .await
    }

    /// Waits until `key` is present, then removes it and returns its value.
    ///
    /// When several tasks pop the same key, each insertion goes to one of
    /// them; the others keep waiting. A checkpoint every time, like
    /// [`get_wait`](Self::get_wait).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a value is removed only by the poll that returns it.
    pub async fn pop_wait<Q>(&self, key: &Q) -> V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.wait_for(key, |entries, key| entries.remove(key)).await
    }

    async fn wait_for<Q>(
        &self,
        key: &Q,
        mut take: impl FnMut(&mut HashMap<K, V>, &Q) -> Option<V>,
    ) -> V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        // Every call is a checkpoint: when the key is already there, yield
        // once before taking it (nothing is taken before the yield, so the
        // wait stays cancel safe).
        let present = self.lock().entries.contains_key(key);
        if present {
            crate::checkpoint().await;
            if let Some(value) = take(&mut self.lock().entries, key) {
                return value;
            }
        }
        let registration = {
            let mut map = self.lock();
            let owned = key.to_owned();
            let notify = match map.waiting.entry(owned.clone()) {
                Entry::Occupied(mut e) => {
                    e.get_mut().0 += 1;
                    Arc::clone(&e.get().1)
                }
                Entry::Vacant(e) => Arc::clone(&e.insert((1, Arc::new(Notify::new()))).1),
            };
            Registration {
                shared: Arc::clone(&self.shared),
                key: Some(owned),
                notify,
            }
        };
        let mut yielded = present;
        loop {
            // Enable the notification before looking, so that an insertion
            // between the look and the `.await` is not missed.
            let notified = registration.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let found = if yielded {
                take(&mut self.lock().entries, key)
            } else {
                None
            };
            if let Some(value) = found {
                return value;
            }
            if !yielded && self.lock().entries.contains_key(key) {
                // Inserted between the first look and the registration:
                // still yield once first.
                crate::checkpoint().await;
            } else {
                notified.await;
            }
            yielded = true;
        }
    }
}

/// Counts a waiter in `waiting` for as long as it lives.
struct Registration<K: Eq + Hash, V> {
    shared: Arc<Mutex<Map<K, V>>>,
    key: Option<K>,
    notify: Arc<Notify>,
}

impl<K: Eq + Hash, V> Drop for Registration<K, V> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut map = crate::loom::lock(&self.shared);
        if let Entry::Occupied(mut e) = map.waiting.entry(key) {
            e.get_mut().0 -= 1;
            if e.get().0 == 0 {
                e.remove();
            }
        }
    }
}
