//! The node-wide name registry: names → processes, looked up with their type.
//!
//! Erlang's `register/2` and `whereis/1`, made typed. A process (a
//! [mailbox](crate::mailbox) or a [gen_server](crate::gen_server)) can be
//! registered under any number of unique names; a name belongs to one process
//! at a time. Looking a name up asks for the *type* of handle you want — an
//! [`Address<M>`](crate::mailbox::Address) for a mailbox of `M`, a
//! [`Server<S>`](crate::gen_server::Server) for a gen_server — and a lookup
//! with the wrong type is an error value ([`RegistryError::WrongType`]), never
//! a panic.
//!
//! Names are released when their process ends, however it ends: returning,
//! failing, panicking or being cancelled. A supervisor restarting a named
//! child therefore finds the name free, and callers by name reach the new
//! incarnation.
//!
//! Most code uses the registry through [`mailbox`](crate::mailbox)
//! (`register`, `send` by name) and [`gen_server`](crate::gen_server) (`start`
//! with a name, `call` by name). For *several* processes under one key — pub/sub
//! dispatch, Elixir's `Registry` with `keys: :duplicate` — use
//! [`DuplicateRegistry`].
//!
//! # Concurrency
//!
//! The registry is a sharded concurrent map (`dashmap`): lookups take a read
//! lock on one shard only, so lookups from many threads do not serialize on
//! one lock, and registrations of different names rarely touch the same
//! shard. See `BENCHMARKS.md` for lookups per second from two threads.
//!
//! # Examples
//!
//! ```
//! use trellis::{mailbox, registry};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let mut inbox = mailbox::create::<String>();
//! registry::register("logger", inbox.pid()).unwrap();
//!
//! let logger: mailbox::Address<String> = registry::lookup("logger").unwrap();
//! logger.send("hello".to_string()).await.unwrap();
//! assert_eq!(inbox.receive().await.unwrap(), "hello");
//!
//! // The wrong type is an error value.
//! assert!(matches!(
//!     registry::lookup::<mailbox::Address<u64>>("logger"),
//!     Err(registry::RegistryError::WrongType { .. })
//! ));
//!
//! // The name goes with its process.
//! mailbox::destroy(inbox);
//! assert_eq!(registry::whereis("logger"), None);
//! # }
//! ```

use std::any::type_name;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, OnceLock, Weak};

use dashmap::DashMap;

use crate::process::{Entry, Pid, Registered};

/// What went wrong with a registry operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The name is taken by another process (or by this one already).
    #[error("name {name:?} is already registered")]
    #[doc(alias = "NameAlreadyExist")]
    NameAlreadyExists {
        /// The name that was taken.
        name: Arc<str>,
    },
    /// No process is registered under the name.
    #[error("no process is registered as {name:?}")]
    #[doc(alias = "NameDoesNotExist")]
    NameNotFound {
        /// The name that was looked up.
        name: Arc<str>,
    },
    /// The pid names no live process.
    #[error("process {pid} does not exist")]
    #[doc(alias = "MailboxDoesNotExist")]
    ProcessNotFound {
        /// The pid that was looked up.
        pid: Pid,
    },
    /// The process exists but offers no handle of the requested type.
    #[error("{subject} is not a {expected}")]
    WrongType {
        /// The name or pid that was looked up.
        subject: Arc<str>,
        /// The type that was asked for.
        expected: &'static str,
    },
}

/// A process to reach: a handle of type `H` (the fast path), a registered
/// name, or a pid — what every `call`, `cast` and `send` accepts, whatever
/// the kind of process.
///
/// `H` is the typed handle the operation needs: an
/// [`Address<M>`](crate::mailbox::Address) for [`mailbox::send`](crate::mailbox::send),
/// a [`Server<S>`](crate::gen_server::Server) for
/// [`gen_server::call`](crate::gen_server::call), a
/// [`Supervisor`](crate::supervisor::Supervisor) for supervisor requests.
/// It is built with `From` from `&str`, `String`, `&String`, `Arc<str>`
/// (names), [`Pid`], and from the handle itself (`H` or `&H`, for each
/// handle type); [`resolve`](ProcessRef::resolve) turns a name or pid into
/// the handle by looking it up.
///
/// # Examples
///
/// ```
/// use trellis::mailbox::{self, Address};
/// use trellis::registry::{self, ProcessRef};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let inbox = mailbox::create::<u32>();
/// registry::register("counter-inbox", inbox.pid()).unwrap();
///
/// let by_name: ProcessRef<Address<u32>> = "counter-inbox".into();
/// let by_pid: ProcessRef<Address<u32>> = inbox.pid().into();
/// let by_handle: ProcessRef<Address<u32>> = inbox.address().into();
/// for to in [by_name, by_pid, by_handle] {
///     assert_eq!(to.resolve().unwrap().pid(), inbox.pid());
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProcessRef<H> {
    /// A handle: used as is, no lookup.
    Handle(H),
    /// A name in the node's registry, looked up on each use.
    Name(Arc<str>),
    /// A process id, looked up on each use.
    Pid(Pid),
}

impl<H: Clone + 'static> ProcessRef<H> {
    /// The handle: itself, or the one the registry has for the name or pid.
    ///
    /// # Errors
    ///
    /// [`RegistryError::NameNotFound`], [`RegistryError::ProcessNotFound`],
    /// or [`RegistryError::WrongType`] if the process offers no `H`.
    pub fn resolve(self) -> Result<H, RegistryError> {
        match self {
            ProcessRef::Handle(handle) => Ok(handle),
            ProcessRef::Name(name) => lookup::<H>(&*name),
            ProcessRef::Pid(pid) => lookup_pid::<H>(pid),
        }
    }
}

impl<H> ProcessRef<H> {
    /// The name, if this refers to one.
    pub fn name(&self) -> Option<&str> {
        match self {
            ProcessRef::Name(name) => Some(name),
            _ => None,
        }
    }
}

impl<H> From<&str> for ProcessRef<H> {
    fn from(name: &str) -> Self {
        ProcessRef::Name(name.into())
    }
}

impl<H> From<String> for ProcessRef<H> {
    fn from(name: String) -> Self {
        ProcessRef::Name(name.into())
    }
}

impl<H> From<&String> for ProcessRef<H> {
    fn from(name: &String) -> Self {
        ProcessRef::Name(name.as_str().into())
    }
}

impl<H> From<Arc<str>> for ProcessRef<H> {
    fn from(name: Arc<str>) -> Self {
        ProcessRef::Name(name)
    }
}

impl<H> From<Pid> for ProcessRef<H> {
    fn from(pid: Pid) -> Self {
        ProcessRef::Pid(pid)
    }
}

/// Every registered name.
fn names() -> &'static DashMap<Arc<str>, Registered> {
    static NAMES: OnceLock<DashMap<Arc<str>, Registered>> = OnceLock::new();
    NAMES.get_or_init(DashMap::default)
}

/// Registers `pid` under `name`.
///
/// A process may have several names; a name belongs to one process until it
/// is unregistered or its process ends.
///
/// # Errors
///
/// [`RegistryError::NameAlreadyExists`] if the name is taken (when two
/// processes race for one name, exactly one wins);
/// [`RegistryError::ProcessNotFound`] if `pid` is not alive.
#[doc(alias = "register_name")]
pub fn register(name: impl AsRef<str>, pid: Pid) -> Result<(), RegistryError> {
    let name: Arc<str> = Arc::from(name.as_ref());
    let registered = Entry::find_registered(pid).ok_or(RegistryError::ProcessNotFound { pid })?;
    registered.entry.clone().add_name(
        name.clone(),
        || match names().entry(name.clone()) {
            dashmap::Entry::Occupied(_) => {
                Err(RegistryError::NameAlreadyExists { name: name.clone() })
            }
            dashmap::Entry::Vacant(slot) => {
                slot.insert(registered);
                Ok(())
            }
        },
        || RegistryError::ProcessNotFound { pid },
    )
}

/// Removes `name` from the registry and returns the pid it named.
///
/// # Errors
///
/// [`RegistryError::NameNotFound`] if nothing is registered under `name`.
pub fn unregister(name: impl AsRef<str>) -> Result<Pid, RegistryError> {
    let name = name.as_ref();
    let (_, registered) = names()
        .remove(name)
        .ok_or_else(|| RegistryError::NameNotFound { name: name.into() })?;
    registered.entry.remove_name(name);
    Ok(registered.entry.pid())
}

/// Removes every name of `pid`. Does nothing if it has none.
pub fn unregister_all(pid: Pid) {
    if let Some(entry) = Entry::find(pid) {
        for name in entry.take_names() {
            release(&name, pid);
        }
    }
}

/// Removes `name` if it still names `pid` (a process that ended).
pub(crate) fn release(name: &Arc<str>, pid: Pid) {
    names().remove_if(&**name, |_, registered| registered.entry.pid() == pid);
}

/// The pid registered under `name`, if any (Erlang's `whereis/1`).
pub fn whereis(name: impl AsRef<str>) -> Option<Pid> {
    names().get(name.as_ref()).map(|r| r.entry.pid())
}

/// The handle of type `T` offered by the process registered under `name`.
///
/// `T` is the kind of handle you want: an
/// [`Address<M>`](crate::mailbox::Address) to send `M` messages, a
/// [`Server<S>`](crate::gen_server::Server) to call a gen_server.
///
/// # Errors
///
/// [`RegistryError::NameNotFound`] if nothing is registered under `name`;
/// [`RegistryError::WrongType`] if the process offers no `T`.
pub fn lookup<T: Clone + 'static>(name: impl AsRef<str>) -> Result<T, RegistryError> {
    let name = name.as_ref();
    let registered = names()
        .get(name)
        .ok_or_else(|| RegistryError::NameNotFound { name: name.into() })?;
    registered
        .endpoint::<T>()
        .ok_or_else(|| RegistryError::WrongType {
            subject: format!("{name:?}").into(),
            expected: type_name::<T>(),
        })
}

/// The handle of type `T` offered by the live process `pid`.
///
/// # Errors
///
/// [`RegistryError::ProcessNotFound`] if `pid` is not alive;
/// [`RegistryError::WrongType`] if the process offers no `T`.
pub fn lookup_pid<T: Clone + 'static>(pid: Pid) -> Result<T, RegistryError> {
    let registered = Entry::find_registered(pid).ok_or(RegistryError::ProcessNotFound { pid })?;
    registered
        .endpoint::<T>()
        .ok_or_else(|| RegistryError::WrongType {
            subject: pid.to_string().into(),
            expected: type_name::<T>(),
        })
}

/// Every registered name with its pid, in no particular order (Erlang's
/// `registered/0`).
pub fn registered() -> Vec<(Arc<str>, Pid)> {
    names()
        .iter()
        .map(|r| (r.key().clone(), r.value().entry.pid()))
        .collect()
}

/// A registry where one key may hold several processes — Elixir's `Registry`
/// with duplicate keys — for publish/subscribe dispatch.
///
/// Each registration is a `(pid, value)` pair under a key; a process may
/// register under a key more than once. Registrations disappear when their
/// process ends. Unlike the node-wide name registry, a `DuplicateRegistry`
/// is a value you create and share (it is cheap to clone).
///
/// # Examples
///
/// ```
/// use trellis::{mailbox, registry::DuplicateRegistry};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let topics = DuplicateRegistry::<&str, mailbox::Address<String>>::new();
/// let mut alice = mailbox::create::<String>();
/// let mut bob = mailbox::create::<String>();
/// topics.register("news", alice.pid(), alice.address()).unwrap();
/// topics.register("news", bob.pid(), bob.address()).unwrap();
///
/// for (_pid, address) in topics.lookup(&"news") {
///     address.try_send("extra!".to_string()).unwrap();
/// }
/// assert_eq!(alice.receive().await.unwrap(), "extra!");
/// assert_eq!(bob.receive().await.unwrap(), "extra!");
///
/// mailbox::destroy(alice);
/// assert_eq!(topics.count(&"news"), 1);
/// # }
/// ```
pub struct DuplicateRegistry<K, V> {
    inner: Arc<DashMap<K, Vec<(Pid, V)>>>,
}

impl<K, V> Clone for DuplicateRegistry<K, V> {
    fn clone(&self) -> Self {
        DuplicateRegistry {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V> fmt::Debug for DuplicateRegistry<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DuplicateRegistry").finish_non_exhaustive()
    }
}

impl<K, V> Default for DuplicateRegistry<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> DuplicateRegistry<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// An empty registry.
    pub fn new() -> Self {
        DuplicateRegistry {
            inner: Arc::new(DashMap::new()),
        }
    }

    /// Adds `(pid, value)` under `key`, until it is unregistered or `pid`
    /// ends.
    ///
    /// # Errors
    ///
    /// [`RegistryError::ProcessNotFound`] if `pid` is not alive.
    pub fn register(&self, key: K, pid: Pid, value: V) -> Result<(), RegistryError> {
        let entry = Entry::find(pid).ok_or(RegistryError::ProcessNotFound { pid })?;
        self.inner
            .entry(key.clone())
            .or_default()
            .push((pid, value));
        let weak: Weak<DashMap<K, Vec<(Pid, V)>>> = Arc::downgrade(&self.inner);
        let cleanup = Box::new(move |pid: Pid| {
            if let Some(inner) = weak.upgrade() {
                remove(&inner, &key, pid);
            }
        });
        if !entry.on_exit(cleanup) {
            // It ended in between: undo.
            self.unregister_all_of(pid);
            return Err(RegistryError::ProcessNotFound { pid });
        }
        Ok(())
    }

    /// Removes every registration of `pid` under `key`.
    pub fn unregister(&self, key: &K, pid: Pid) {
        remove(&self.inner, key, pid);
    }

    fn unregister_all_of(&self, pid: Pid) {
        self.inner.retain(|_, entries| {
            entries.retain(|(p, _)| *p != pid);
            !entries.is_empty()
        });
    }

    /// Every `(pid, value)` under `key`, in registration order.
    pub fn lookup(&self, key: &K) -> Vec<(Pid, V)> {
        self.inner.get(key).map(|e| e.clone()).unwrap_or_default()
    }

    /// Calls `f` with every `(pid, value)` under `key`, without copying them
    /// out (Elixir's `Registry.dispatch/3`). `f` must not touch this registry.
    pub fn dispatch(&self, key: &K, mut f: impl FnMut(Pid, &V)) {
        if let Some(entries) = self.inner.get(key) {
            for (pid, value) in entries.iter() {
                f(*pid, value);
            }
        }
    }

    /// How many registrations `key` has.
    pub fn count(&self, key: &K) -> usize {
        self.inner.get(key).map_or(0, |e| e.len())
    }

    /// Every key with at least one registration.
    pub fn keys(&self) -> Vec<K> {
        self.inner.iter().map(|r| r.key().clone()).collect()
    }
}

fn remove<K: Eq + Hash, V>(inner: &DashMap<K, Vec<(Pid, V)>>, key: &K, pid: Pid) {
    inner.remove_if_mut(key, |_, entries| {
        entries.retain(|(p, _)| *p != pid);
        entries.is_empty()
    });
}
