//! Typed mailboxes: the way processes talk, after triotp's `mailbox`.
//!
//! A [`Mailbox<M>`] is a process's inbox of `M` messages; it owns a fresh
//! [`Pid`] and makes the process alive for as long as it exists. Anyone
//! holding its [`Address<M>`] — or knowing its pid or a registered name — can
//! send it messages. Dropping the mailbox (or [`destroy`]ing it) ends the
//! process: its names are released, monitors get a [`Down`], linked
//! processes an [`Exit`].
//!
//! | triotp | Trellis |
//! |---|---|
//! | `create()` / `destroy(mid)` | [`create`], [`create_bounded`] / [`destroy`] (or drop) |
//! | `async with open(name) as mid` | [`open`] |
//! | `register(mid, name)` / `unregister(name)` / `unregister_all(mid)` | [`register`] / [`unregister`] / [`unregister_all`] |
//! | `await send(name_or_mid, msg)` | [`send`] (or [`Address::send`]), [`try_send`] |
//! | `await receive(mid, timeout, on_timeout)` | [`Mailbox::receive`], [`Mailbox::receive_timeout`], [`Mailbox::receive_or_else`] |
//! | `MailboxDoesNotExist` (an unknown id *or* name) | [`MailboxError::ProcessNotFound`] |
//! | `NameAlreadyExist`, `NameDoesNotExist` | [`MailboxError::NameAlreadyExists`], [`MailboxError::NameNotFound`] (the crate's one spelling; triotp's kept as doc aliases) |
//! | `name_or_mid` | [`ProcessRef`]: a name, a pid or an [`Address`] |
//!
//! Mailboxes are unbounded by default, as Erlang's; a bounded one
//! ([`create_bounded`]) applies back-pressure to [`send`] and reports
//! fullness through [`try_send`]. Messages from one sender arrive in the order
//! they were sent.
//!
//! This module sits on [`process`](crate::process) (identity, links,
//! monitors) and [`registry`] (names); a
//! [gen_server](crate::gen_server) is a mailbox with a receive loop and the
//! call/cast protocol on top.
//!
//! # Examples
//!
//! ```
//! use trellis::mailbox;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let mut inbox = mailbox::create::<&str>();
//! mailbox::register("inbox", inbox.pid()).unwrap();
//! mailbox::send("inbox", "by name").await.unwrap();
//! mailbox::send(inbox.pid(), "by pid").await.unwrap();
//! assert_eq!(inbox.receive().await.unwrap(), "by name");
//! assert_eq!(inbox.receive().await.unwrap(), "by pid");
//! # }
//! ```

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

mod queue;

use queue::{Item, Link, Rx, Tx, View, channel};

use crate::process::{Down, Entry, Exit, ExitReason, MonitorRef, Pid, Signal, Views, Wake};
use crate::registry::{self, ProcessRef, RegistryError};

/// What went wrong with a mailbox operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MailboxError {
    /// Nothing to send to: the name is not registered, or no live process
    /// has the pid (triotp's `MailboxDoesNotExist`, for names and ids
    /// alike).
    #[error("no mailbox at {to}")]
    #[doc(alias = "MailboxDoesNotExist")]
    ProcessNotFound {
        /// The name or pid that was used.
        to: Destination,
    },
    /// The name is already registered.
    #[error("name {name:?} is already registered")]
    #[doc(alias = "NameAlreadyExist")]
    NameAlreadyExists {
        /// The name.
        name: Arc<str>,
    },
    /// No process is registered under the name ([`unregister`]; a send to
    /// an unregistered name is [`ProcessNotFound`](Self::ProcessNotFound)).
    #[error("no process is registered as {name:?}")]
    #[doc(alias = "NameDoesNotExist")]
    NameNotFound {
        /// The name.
        name: Arc<str>,
    },
    /// The process exists but its mailbox does not take this message type.
    #[error("{subject} does not take {expected} messages")]
    WrongType {
        /// The name or pid used.
        subject: Arc<str>,
        /// The message type that was sent or asked for.
        expected: &'static str,
    },
    /// The bounded mailbox is full ([`try_send`] only; [`send`] waits).
    #[error("mailbox {pid} is full")]
    Full {
        /// The receiving process.
        pid: Pid,
    },
    /// The receiving process ended before the message was delivered.
    #[error("process {pid} has exited ({reason})")]
    Exited {
        /// The receiving process.
        pid: Pid,
        /// Why it ended.
        reason: ExitReason,
    },
    /// No message arrived in time.
    #[error("no message within {timeout:?}")]
    Timeout {
        /// The time waited.
        timeout: Duration,
    },
    /// A linked process ended abnormally and this process does not trap
    /// exits: it should stop too (returned by `receive`).
    #[error("linked process {pid} exited ({reason})")]
    LinkExited {
        /// The linked process.
        pid: Pid,
        /// Why it ended.
        reason: ExitReason,
    },
}

impl MailboxError {
    /// A failed lookup of a destination: a name that is not registered is
    /// the same error as an unknown pid.
    fn from_lookup(error: RegistryError) -> Self {
        match error {
            RegistryError::NameNotFound { name } => MailboxError::ProcessNotFound {
                to: Destination::Name(name),
            },
            other => other.into(),
        }
    }
}

impl From<RegistryError> for MailboxError {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::NameAlreadyExists { name } => MailboxError::NameAlreadyExists { name },
            RegistryError::NameNotFound { name } => MailboxError::NameNotFound { name },
            RegistryError::ProcessNotFound { pid } => MailboxError::ProcessNotFound {
                to: Destination::Pid(pid),
            },
            RegistryError::WrongType { subject, expected } => {
                MailboxError::WrongType { subject, expected }
            }
        }
    }
}

/// A message that could not be sent, with the reason; [`into_inner`]
/// gives the message back.
///
/// [`into_inner`]: SendError::into_inner
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct SendError<M> {
    error: MailboxError,
    message: M,
}

impl<M> SendError<M> {
    pub(crate) fn new(error: MailboxError, message: M) -> Self {
        SendError { error, message }
    }

    /// Why the message was not sent.
    pub fn error(&self) -> &MailboxError {
        &self.error
    }

    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        self.message
    }

    /// Both parts.
    pub fn into_parts(self) -> (MailboxError, M) {
        (self.error, self.message)
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// A registered name or a pid (triotp's `name_or_mid`), without a handle:
/// the subject of [`MailboxError::ProcessNotFound`]. Operations take a
/// [`ProcessRef`], which a `Destination` converts into. Built with `From`
/// from `&str`, `String`, `Arc<str>` or [`Pid`].
///
/// ```
/// use trellis::mailbox::Destination;
///
/// assert_eq!(Destination::from("logger").to_string(), "\"logger\"");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Destination {
    /// A name in the node's registry.
    Name(Arc<str>),
    /// A process id.
    Pid(Pid),
}

impl From<&str> for Destination {
    fn from(name: &str) -> Self {
        Destination::Name(name.into())
    }
}

impl From<String> for Destination {
    fn from(name: String) -> Self {
        Destination::Name(name.into())
    }
}

impl From<Arc<str>> for Destination {
    fn from(name: Arc<str>) -> Self {
        Destination::Name(name)
    }
}

impl From<Pid> for Destination {
    fn from(pid: Pid) -> Self {
        Destination::Pid(pid)
    }
}

impl<H> From<Destination> for ProcessRef<H> {
    fn from(destination: Destination) -> Self {
        match destination {
            Destination::Name(name) => ProcessRef::Name(name),
            Destination::Pid(pid) => ProcessRef::Pid(pid),
        }
    }
}

impl<M> From<Address<M>> for ProcessRef<Address<M>> {
    fn from(address: Address<M>) -> Self {
        ProcessRef::Handle(address)
    }
}

impl<M> From<&Address<M>> for ProcessRef<Address<M>> {
    fn from(address: &Address<M>) -> Self {
        ProcessRef::Handle(address.clone())
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Name(name) => write!(f, "{name:?}"),
            Destination::Pid(pid) => write!(f, "{pid}"),
        }
    }
}

/// The sending side of a mailbox: cheap to clone, `Send + Sync`.
///
/// Sending through an address skips the registry: it is the fast path.
/// An address stays valid after its process ends; sends then fail with
/// [`MailboxError::Exited`] carrying the exit reason.
pub struct Address<M> {
    /// One allocation behind every clone: cloning is one atomic increment.
    link: Arc<Link<M>>,
}

impl<M: Send + 'static> Wake for Link<M> {
    fn wake(&self) {
        self.tx.nudge();
    }
}

impl<M> Clone for Address<M> {
    fn clone(&self) -> Self {
        Address {
            link: self.link.clone(),
        }
    }
}

impl<M> fmt::Debug for Address<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Address")
            .field(&self.link.entry.pid())
            .finish()
    }
}

impl<M> PartialEq for Address<M> {
    fn eq(&self, other: &Self) -> bool {
        self.link.entry.pid() == other.link.entry.pid()
    }
}

impl<M> Eq for Address<M> {}

impl<M: Send + 'static> Address<M> {
    /// The receiving process.
    pub fn pid(&self) -> Pid {
        self.link.entry.pid()
    }

    /// Sends `message`, waiting for room if the mailbox is bounded and full.
    ///
    /// # Errors
    ///
    /// [`MailboxError::Exited`] if the process has ended; the message comes
    /// back in the error.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped while waiting for room, the message is not
    /// sent (and is dropped with the future).
    pub async fn send(&self, message: M) -> Result<(), SendError<M>> {
        self.link
            .tx
            .send(message)
            .await
            .map_err(|message| SendError::new(self.exited(), message))
    }

    /// Sends `message` without waiting.
    ///
    /// # Errors
    ///
    /// [`MailboxError::Full`] if the bounded mailbox has no room;
    /// [`MailboxError::Exited`] if the process has ended. The message comes
    /// back in the error.
    #[doc(alias = "send_nowait")]
    pub fn try_send(&self, message: M) -> Result<(), SendError<M>> {
        self.link.tx.try_send(message).map_err(|(full, message)| {
            let error = if full {
                MailboxError::Full { pid: self.pid() }
            } else {
                self.exited()
            };
            SendError::new(error, message)
        })
    }

    /// Whether the process has ended.
    pub fn is_closed(&self) -> bool {
        self.link.tx.is_closed() || self.link.entry.exit_reason().is_some()
    }

    /// The process's exit reason, once it has ended.
    pub fn exit_reason(&self) -> Option<ExitReason> {
        self.link.entry.exit_reason()
    }

    pub(crate) fn exited(&self) -> MailboxError {
        MailboxError::Exited {
            pid: self.pid(),
            reason: self
                .link
                .entry
                .exit_reason()
                .unwrap_or(ExitReason::NoProcess),
        }
    }

    pub(crate) fn entry(&self) -> &Arc<Entry> {
        &self.link.entry
    }

    /// An address that sends `N` into this mailbox, wrapped by `wrap`.
    /// `unwrap` must undo `wrap` (it only ever sees values `wrap` made).
    pub(crate) fn view<N: Send + 'static>(
        &self,
        wrap: fn(N) -> M,
        unwrap: fn(M) -> N,
    ) -> Address<N> {
        Address {
            link: Arc::new(Link {
                entry: self.link.entry.clone(),
                tx: Tx::View(Arc::new(View {
                    inner: self.link.clone(),
                    wrap,
                    unwrap,
                })),
            }),
        }
    }
}

/// A process's inbox of `M` messages. Owning it keeps the process alive.
///
/// Created by [`create`], [`create_bounded`] or [`open`]. Dropping it ends
/// the process with [`ExitReason::Normal`] (or [`ExitReason::Panic`] when
/// dropped by a panic, [`ExitReason::Killed`] when an [`open`] scope is
/// cancelled).
pub struct Mailbox<M> {
    rx: Rx<M>,
    address: Address<M>,
    on_down: Option<fn(Down) -> M>,
    on_exit: Option<fn(Exit) -> M>,
}

/// The view of a plain mailbox: its `Address<M>`, nothing else.
fn address_view<M: Send + 'static>(base: &Arc<dyn Any + Send + Sync>, out: &mut dyn Any) {
    if let Some(out) = out.downcast_mut::<Option<Address<M>>>() {
        *out = address_of(base);
    }
}

/// The address behind a mailbox process's base handle (the address's own
/// shared part, published as is: no allocation of its own).
pub(crate) fn address_of<M: Send + 'static>(
    base: &Arc<dyn Any + Send + Sync>,
) -> Option<Address<M>> {
    Arc::clone(base)
        .downcast::<Link<M>>()
        .ok()
        .map(|link| Address { link })
}

impl<M> fmt::Debug for Mailbox<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Mailbox")
            .field(&self.address.link.entry.pid())
            .finish()
    }
}

/// Creates an unbounded mailbox: a new process with a fresh pid.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut inbox = trellis::mailbox::create::<u32>();
/// inbox.address().send(7).await.unwrap();
/// assert_eq!(inbox.receive().await.unwrap(), 7);
/// # }
/// ```
pub fn create<M: Send + 'static>() -> Mailbox<M> {
    Mailbox::with_view(None, address_view::<M>)
}

/// Creates a mailbox holding at most `capacity` messages: [`send`] waits
/// for room and [`try_send`] reports [`MailboxError::Full`].
///
/// # Panics
///
/// If `capacity` is 0.
///
/// ```
/// use trellis::mailbox::{self, MailboxError};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let inbox = mailbox::create_bounded::<u32>(1);
/// let to = inbox.address();
/// to.try_send(1).unwrap();
/// let full = to.try_send(2).unwrap_err();
/// assert!(matches!(full.error(), MailboxError::Full { .. }));
/// assert_eq!(full.into_inner(), 2);
/// # }
/// ```
pub fn create_bounded<M: Send + 'static>(capacity: usize) -> Mailbox<M> {
    Mailbox::with_view(Some(capacity), address_view::<M>)
}

impl<M: Send + 'static> Mailbox<M> {
    /// A mailbox (bounded with `Some(capacity)`) whose process offers
    /// lookups the handles `view` builds from its `Address<M>` (a
    /// gen_server's handle and its `info` view).
    pub(crate) fn with_view(capacity: Option<usize>, view: Views) -> Self {
        // The entry wakes the mailbox through its address's link, made
        // with it: one step, no cell to fill afterwards.
        let (link, rx) = channel(capacity, |link| {
            let waker: Weak<dyn Wake> = link.clone();
            Entry::new(Some(waker))
        });
        link.entry.publish(link.clone(), view);
        let address = Address { link };
        Mailbox {
            rx,
            address,
            on_down: None,
            on_exit: None,
        }
    }

    /// How signals become messages (a gen_server routes them to its own
    /// envelope).
    pub(crate) fn convert_signals(
        &mut self,
        on_down: fn(Down) -> M,
        on_exit: Option<fn(Exit) -> M>,
    ) {
        self.on_down = Some(on_down);
        self.on_exit = on_exit;
    }

    pub(crate) fn entry(&self) -> &Arc<Entry> {
        &self.address.link.entry
    }

    /// Messages waiting (for the observer's mailbox depth).
    pub(crate) fn queued(&self) -> usize {
        self.rx.len()
    }

    pub(crate) fn poll_receive_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<M, MailboxError>> {
        self.poll_receive(cx)
    }

    /// This process's id.
    pub fn pid(&self) -> Pid {
        self.address.link.entry.pid()
    }

    /// An address to send to this mailbox.
    pub fn address(&self) -> Address<M> {
        self.address.clone()
    }

    /// Waits for the next message.
    ///
    /// Signals come first: a [`Down`] from a monitor, or an [`Exit`] from a
    /// link when trapping exits, is returned as a message (converted with
    /// `From`).
    ///
    /// # Errors
    ///
    /// [`MailboxError::LinkExited`] when a linked process ended abnormally
    /// and this one does not trap exits: the process should stop.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped, no message is lost.
    pub async fn receive(&mut self) -> Result<M, MailboxError> {
        std::future::poll_fn(|cx| self.poll_receive(cx)).await
    }

    /// Waits at most `timeout` for the next message.
    ///
    /// # Errors
    ///
    /// [`MailboxError::Timeout`] if none came; otherwise as [`receive`](Self::receive).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn receive_timeout(&mut self, timeout: Duration) -> Result<M, MailboxError> {
        match tokio::time::timeout(timeout, self.receive()).await {
            Ok(received) => received,
            Err(_) => Err(MailboxError::Timeout { timeout }),
        }
    }

    /// Waits at most `timeout` for the next message, else returns what
    /// `on_timeout` produces (triotp's `receive(timeout, on_timeout)`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use std::time::Duration;
    ///
    /// let mut inbox = trellis::mailbox::create::<&str>();
    /// let got = inbox
    ///     .receive_or_else(Duration::from_secs(1), || async { "nothing" })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(got, "nothing");
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`receive`](Self::receive).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe while waiting for a message (none is lost); if dropped
    /// while `on_timeout`'s future runs, that future is dropped with it.
    pub async fn receive_or_else<F, Fut>(
        &mut self,
        timeout: Duration,
        on_timeout: F,
    ) -> Result<M, MailboxError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = M>,
    {
        match tokio::time::timeout(timeout, self.receive()).await {
            Ok(received) => received,
            Err(_) => Ok(on_timeout().await),
        }
    }

    /// Takes a message if one is waiting, without waiting.
    pub fn try_receive(&mut self) -> Option<Result<M, MailboxError>> {
        loop {
            if let Some(signal) = self.address.link.entry.pop_signal() {
                match self.convert(signal) {
                    Some(result) => return Some(result),
                    None => continue,
                }
            }
            match self.rx.try_recv()? {
                Item::Message(message) => return Some(Ok(message)),
                Item::Signal => continue,
            }
        }
    }

    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<Result<M, MailboxError>> {
        loop {
            if let Some(signal) = self.address.link.entry.pop_signal() {
                match self.convert(signal) {
                    Some(result) => return Poll::Ready(result),
                    None => continue,
                }
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Item::Message(message))) => return Poll::Ready(Ok(message)),
                Poll::Ready(Some(Item::Signal)) => continue,
                // We hold a sender ourselves: the channel cannot close.
                Poll::Ready(None) => return Poll::Pending,
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// What a signal means for this mailbox: a message, an error, or
    /// nothing (an exit we ignore).
    fn convert(&self, signal: Signal) -> Option<Result<M, MailboxError>> {
        match signal {
            Signal::Down(down) => self.on_down.map(|f| Ok(f(down))),
            Signal::Exit(exit) => match self.on_exit {
                Some(f) => Some(Ok(f(exit))),
                None if exit.reason.is_abnormal() => Some(Err(MailboxError::LinkExited {
                    pid: exit.pid,
                    reason: exit.reason,
                })),
                None => None,
            },
        }
    }

    /// Watches `pid`: one [`Down`] arrives in this mailbox (converted to `M`)
    /// when it ends — at once if it already has.
    ///
    /// ```
    /// use trellis::mailbox;
    /// use trellis::process::{Down, ExitReason};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut watcher = mailbox::create::<Down>();
    /// let worker = mailbox::create::<()>();
    /// watcher.monitor(worker.pid());
    /// let pid = worker.pid();
    /// mailbox::destroy(worker);
    /// let down = watcher.receive().await.unwrap();
    /// assert_eq!((down.pid, down.reason), (pid, ExitReason::Normal));
    /// # }
    /// ```
    pub fn monitor(&mut self, pid: Pid) -> MonitorRef
    where
        M: From<Down>,
    {
        self.on_down = Some(M::from);
        self.address.link.entry.monitor(pid)
    }

    /// Removes a monitor; its `Down` will not arrive, even if already
    /// queued. Returns whether the monitor was still active.
    pub fn demonitor(&mut self, pid: Pid, monitor: MonitorRef) -> bool {
        self.address.link.entry.demonitor(pid, monitor)
    }

    /// Links this process with `pid`: when either ends abnormally, the
    /// other is told — with an [`Exit`] message if it traps exits, else by
    /// [`receive`](Self::receive) returning [`MailboxError::LinkExited`].
    pub fn link(&mut self, pid: Pid) {
        self.address.link.entry.link(pid);
    }

    /// Removes the link with `pid`.
    pub fn unlink(&mut self, pid: Pid) {
        self.address.link.entry.unlink(pid);
    }

    /// Receives linked processes' exits as [`Exit`] messages (converted to
    /// `M`) instead of being stopped by abnormal ones; normal exits arrive
    /// too (Erlang's `process_flag(trap_exit, true)`).
    pub fn trap_exits(&mut self)
    where
        M: From<Exit>,
    {
        self.on_exit = Some(M::from);
    }
}

impl<M> Drop for Mailbox<M> {
    fn drop(&mut self) {
        let reason = if std::thread::panicking() {
            ExitReason::Panic("panicked".into())
        } else if self.address.link.entry.is_killed() {
            ExitReason::Killed
        } else {
            ExitReason::Normal
        };
        self.address.link.entry.exit(reason, registry::release);
    }
}

/// Ends the mailbox's process with [`ExitReason::Normal`]: the same as
/// dropping it, named after triotp.
pub fn destroy<M>(mailbox: Mailbox<M>) {
    drop(mailbox);
}

/// Registers the process `pid` under `name`.
///
/// # Errors
///
/// [`MailboxError::NameAlreadyExists`] if the name is taken;
/// [`MailboxError::ProcessNotFound`] if `pid` is not alive.
pub fn register(name: impl AsRef<str>, pid: Pid) -> Result<(), MailboxError> {
    Ok(registry::register(name, pid)?)
}

/// Removes `name` from the registry.
///
/// # Errors
///
/// [`MailboxError::NameNotFound`] if it was not registered.
pub fn unregister(name: impl AsRef<str>) -> Result<(), MailboxError> {
    registry::unregister(name)?;
    Ok(())
}

/// Removes every name of `pid`.
pub fn unregister_all(pid: Pid) {
    registry::unregister_all(pid);
}

/// The address of type `M` behind a name or a pid (or the address itself).
///
/// # Errors
///
/// [`MailboxError::ProcessNotFound`] for a name not registered or a pid not
/// alive; [`MailboxError::WrongType`] if the process does not take `M`.
///
/// ```
/// use trellis::mailbox::{self, MailboxError};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let inbox = mailbox::create::<u32>();
/// assert_eq!(mailbox::address::<u32>(inbox.pid()).unwrap().pid(), inbox.pid());
/// assert!(matches!(
///     mailbox::address::<u32>("nobody-here"),
///     Err(MailboxError::ProcessNotFound { .. })
/// ));
/// # }
/// ```
pub fn address<M: Send + 'static>(
    to: impl Into<ProcessRef<Address<M>>>,
) -> Result<Address<M>, MailboxError> {
    to.into().resolve().map_err(MailboxError::from_lookup)
}

/// Sends `message` to a name, a pid or an address, waiting for room if its
/// mailbox is bounded and full (triotp's `send(name_or_mid, message)`).
///
/// # Errors
///
/// Any [`MailboxError`] of [`address`], or [`MailboxError::Exited`]; the
/// message comes back in the error.
///
/// # Cancel safety
///
/// As [`Address::send`]: if the future is dropped while waiting for room,
/// the message is dropped unsent.
///
/// ```
/// use trellis::mailbox::{self, MailboxError};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // An unregistered name is the same error as an unknown pid.
/// let error = mailbox::send("nobody-here", 1_u32).await.unwrap_err();
/// assert!(matches!(error.error(), MailboxError::ProcessNotFound { .. }));
/// assert_eq!(error.into_inner(), 1);
/// # }
/// ```
pub async fn send<M: Send + 'static>(
    to: impl Into<ProcessRef<Address<M>>>,
    message: M,
) -> Result<(), SendError<M>> {
    match address::<M>(to) {
        Ok(address) => address.send(message).await,
        Err(error) => Err(SendError::new(error, message)),
    }
}

/// Sends `message` to a name, a pid or an address without waiting.
///
/// # Errors
///
/// As [`send`], plus [`MailboxError::Full`].
#[doc(alias = "send_nowait")]
pub fn try_send<M: Send + 'static>(
    to: impl Into<ProcessRef<Address<M>>>,
    message: M,
) -> Result<(), SendError<M>> {
    match address::<M>(to) {
        Ok(address) => address.try_send(message),
        Err(error) => Err(SendError::new(error, message)),
    }
}

/// Runs `body` with a new mailbox registered under `name` (if any), and ends
/// the process when `body` finishes — triotp's `async with open(name)`.
///
/// The process ends with [`ExitReason::Normal`] when `body` returns,
/// [`ExitReason::Panic`] if it panics and [`ExitReason::Killed`] if the
/// scope is cancelled; the name is released in every case.
///
/// # Errors
///
/// [`MailboxError::NameAlreadyExists`] if the name is taken (`body` does not
/// run).
///
/// # Cancel safety
///
/// Dropping the future drops `body` and ends the process with
/// [`ExitReason::Killed`]; the name is released.
///
/// ```
/// use trellis::mailbox;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let got = mailbox::open(Some("greeter"), |mut inbox: mailbox::Mailbox<String>| async move {
///     mailbox::send("greeter", "hi".to_string()).await.unwrap();
///     inbox.receive().await.unwrap()
/// })
/// .await
/// .unwrap();
/// assert_eq!(got, "hi");
/// assert_eq!(trellis::registry::whereis("greeter"), None);
/// # }
/// ```
pub async fn open<M, F, Fut>(name: Option<&str>, body: F) -> Result<Fut::Output, MailboxError>
where
    M: Send + 'static,
    F: FnOnce(Mailbox<M>) -> Fut,
    Fut: Future,
{
    let mailbox = create::<M>();
    if let Some(name) = name {
        register(name, mailbox.pid())?;
    }
    let entry = mailbox.address.link.entry.clone();
    let body = body(mailbox);
    let mut body = std::pin::pin!(body);
    // Declared after `body`, so dropped before it when the scope is
    // cancelled: the mailbox inside `body` then reports `Killed`.
    let mut guard = KillOnDrop(Some(entry));
    let output = body.as_mut().await;
    guard.0 = None;
    Ok(output)
}

/// Marks the process killed if the scope is dropped before its body ends,
/// so that the mailbox (dropped with the body) reports `Killed`.
struct KillOnDrop(Option<Arc<Entry>>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(entry) = &self.0 {
            entry.mark_killed();
        }
    }
}
