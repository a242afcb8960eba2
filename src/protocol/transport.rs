//! The transport handle and the connection driver.
//!
//! A connection is one task running [`run_connection`]: the *driver*. It
//! owns the protocol and the read buffer, reads, calls back, and flushes the
//! write buffer. The [`Transport`] handles (any number of clones, in any
//! task) share a mutex-protected [`State`] with it: the write buffer, the
//! flags set by `close`/`abort`/`pause_reading`, the flow-control marks.
//!
//! Invariants:
//!
//! 1. Bytes reach the socket in the order they were written: a handle
//!    writes to the socket directly only when the buffer is empty, and every
//!    socket write happens under the state lock.
//! 2. While the driver runs a callback (`corked`), writes are buffered; the
//!    driver flushes after the callback. Other writers wake the driver
//!    whenever they leave bytes or a command behind.
//! 3. `State::socket` is `None` once the connection is lost: the driver
//!    drops the last reference, closing the socket, even while handles live.
//! 4. Flow control changes `writing_paused` under the lock, at the exact
//!    buffer sizes; the driver delivers each change (`flow_toggles`) to the
//!    protocol after the current callback, in order.
//! 5. A protocol switch ([`Transport::set_protocol`]) and queued visits
//!    ([`Transport::with_protocol`]) wait in `State` with `Shared::pending`
//!    set; the driver applies them before its next callback (never in the
//!    middle of one), so the hot path pays one atomic load per callback.
//!    Once `connection_lost` is called (`State::protocol_lost`), switches are
//!    dropped and visits refused.

use std::any::{Any, type_name};
use std::future::poll_fn;
use std::io;
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use futures_util::task::AtomicWaker;
use tokio::sync::oneshot;

use super::{ExtraInfo, Protocol, ProtocolError, Socket};

/// asyncio's default high-water mark.
const DEFAULT_HIGH: usize = 64 * 1024;
/// The read buffer's first size; it doubles, up to `READ_BUFFER_MAX`, while
/// reads fill it. A connection holds a buffer only while it reads (an idle
/// one waits for readiness without one: a 16 KiB buffer kept while idle made
/// an idle kvstore client cost 22 KB, 2.3× Redis); 4 KiB holds a pipeline of
/// a hundred small requests, and a busy connection grows it in a few reads.
const READ_BUFFER_START: usize = 4 * 1024;
const READ_BUFFER_MAX: usize = 256 * 1024;
/// The largest read buffer a thread keeps for its next read (see
/// [`take_read_buffer`]).
const SPARE_READ_MAX: usize = 64 * 1024;

thread_local! {
    /// The buffer of the last read on this thread that ended waiting, for
    /// the next read of any connection here: an idle connection holds no
    /// buffer, and a busy thread neither allocates nor zeroes one per read.
    static SPARE_READ: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A read buffer of `size` bytes: this thread's spare when it is large
/// enough (its old bytes are only ever overwritten by the read, and the
/// protocol sees no more than the bytes read), else a new one.
fn take_read_buffer(size: usize) -> Vec<u8> {
    let mut buffer = SPARE_READ
        .try_with(std::cell::Cell::take)
        .unwrap_or_default();
    if buffer.capacity() < size {
        return vec![0; size];
    }
    buffer.resize(size, 0);
    buffer
}

/// Keeps `buffer` as this thread's spare read buffer, unless it is large.
fn give_back_read_buffer(buffer: Vec<u8>) {
    if buffer.capacity() <= SPARE_READ_MAX {
        let _ = SPARE_READ.try_with(|spare| spare.set(buffer));
    }
}
/// Writes at least this long go straight to the socket even inside a
/// callback (when nothing is buffered): gathering them would only add a copy.
const DIRECT_WRITE_MIN: usize = 8 * 1024;
/// Reads per poll before the driver yields to other tasks.
const READS_PER_POLL: usize = 32;

/// A connection's write side and controls (asyncio's `Transport`): a cheap,
/// `Clone`, `Send + Sync` handle.
///
/// Writes never wait: bytes the socket does not take at once are buffered
/// and flushed by the connection's task. Flow control tells the protocol
/// when the buffer is too full ([`set_write_buffer_limits`](Transport::set_write_buffer_limits)).
/// After [`close`](Transport::close), [`abort`](Transport::abort) or the
/// end of the connection, writes return [`ProtocolError::Closing`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use tokio::io::AsyncReadExt;
/// use trellis::protocol::{run_connection, Protocol, Transport};
/// use trellis::testing::memory_pair;
///
/// struct Greeter;
///
/// impl Protocol for Greeter {
///     fn connection_made(&mut self, transport: Transport) {
///         transport.writelines([&b"hello, "[..], b"world\n"]).unwrap();
///         assert!(!transport.is_closing());
///         transport.close(); // flushes, then closes
///         assert!(transport.is_closing());
///     }
///     fn data_received(&mut self, _data: &[u8]) {}
/// }
///
/// let (ours, mut theirs) = memory_pair(4); // a socket that takes 4 bytes at a time
/// let (_, greeting) = tokio::join!(run_connection(Greeter, ours), async {
///     let mut greeting = String::new();
///     theirs.read_to_string(&mut greeting).await.map(|_| greeting)
/// });
/// assert_eq!(greeting?, "hello, world\n");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Transport {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// The driver's waker.
    waker: AtomicWaker,
    /// Set while the driver runs a callback (invariant 2).
    corked: AtomicBool,
    /// Set while a switch or a visit waits in `State` (invariant 5).
    pending: AtomicBool,
    info: ExtraInfo,
}

/// A protocol installed by [`Transport::set_protocol`]: a boxed protocol
/// that can still be downcast for [`Transport::with_protocol`].
trait Installed: Protocol {
    fn as_any(&mut self) -> &mut dyn Any;
    fn name(&self) -> &'static str;
}

impl<Q: Protocol> Installed for Q {
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
    fn name(&self) -> &'static str {
        type_name::<Q>()
    }
}

/// A closure queued by [`Transport::with_protocol`], given the current
/// protocol and its type name.
type Visit = Box<dyn FnOnce(&mut dyn Any, &'static str) + Send>;

struct State {
    socket: Option<Arc<dyn Socket>>,
    buffer: BytesMut,
    high: usize,
    low: usize,
    writing_paused: bool,
    flow_toggles: u32,
    reading: bool,
    closing: bool,
    aborted: bool,
    eof_requested: bool,
    /// A write error met by a handle, for the driver to end the connection
    /// with.
    error: Option<io::Error>,
    /// The protocol that takes over before the next callback.
    next_protocol: Option<Box<dyn Installed>>,
    /// Closures to run on the current protocol before the next callback.
    visits: Vec<Visit>,
    /// `connection_lost` was called: no more switches or visits.
    protocol_lost: bool,
}

impl State {
    fn check_writable(&self) -> Result<(), ProtocolError> {
        if self.closing || self.socket.is_none() {
            Err(ProtocolError::Closing)
        } else if self.eof_requested {
            Err(ProtocolError::EofWritten)
        } else {
            Ok(())
        }
    }

    /// Applies the marks to the current buffer size; returns whether the
    /// paused state changed.
    fn update_flow(&mut self) -> bool {
        let size = self.buffer.len();
        let change = if self.writing_paused {
            size <= self.low
        } else {
            size > self.high
        };
        if change {
            self.writing_paused = !self.writing_paused;
            self.flow_toggles += 1;
        }
        change
    }

    /// Writes what the socket takes now, without waiting. Returns the error
    /// of the socket, other than `WouldBlock`.
    fn write_now(&mut self) -> io::Result<()> {
        let Some(socket) = &self.socket else {
            return Ok(());
        };
        while !self.buffer.is_empty() {
            match socket.try_write(&self.buffer) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.buffer.advance(n),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => return Err(error),
            }
        }
        if self.buffer.is_empty() {
            self.buffer.clear(); // start again at the front of the allocation
        }
        Ok(())
    }
}

impl Transport {
    fn lock(&self) -> MutexGuard<'_, State> {
        crate::loom::lock(&self.shared.state)
    }

    fn is_corked(&self) -> bool {
        self.shared.corked.load(Ordering::Acquire)
    }

    /// Buffers `data` (already partly written) and tells the driver.
    fn after_write(&self, mut state: MutexGuard<'_, State>, corked: bool, result: io::Result<()>) {
        if let Err(error) = result {
            state.error.get_or_insert(error);
        }
        let wake =
            !corked && (state.update_flow() || !state.buffer.is_empty() || state.error.is_some());
        drop(state);
        if wake {
            self.shared.waker.wake();
        }
    }

    /// Writes `data`, without waiting (asyncio's `write`).
    ///
    /// When nothing is buffered and no callback of this connection is
    /// running, the bytes go straight to the socket; what it does not take
    /// is buffered and flushed by the connection's task. Inside a callback,
    /// small writes are collected and handed over when it returns (large
    /// ones, 8 KiB or more, go straight to the socket when nothing is
    /// buffered). Growing the
    /// buffer past the high-water mark calls [`Protocol::pause_writing`]
    /// after the current callback.
    ///
    /// # Examples
    ///
    /// See [`Transport`].
    ///
    /// # Errors
    ///
    /// [`ProtocolError::Closing`] after [`close`](Transport::close),
    /// [`abort`](Transport::abort) or the end of the connection;
    /// [`ProtocolError::EofWritten`] after [`write_eof`](Transport::write_eof).
    /// The bytes are discarded. An I/O error of the socket is not returned
    /// here: it ends the connection and reaches [`Protocol::connection_lost`].
    pub fn write(&self, data: &[u8]) -> Result<(), ProtocolError> {
        let mut state = self.lock();
        state.check_writable()?;
        let corked = self.is_corked();
        let mut data = data;
        let mut result = Ok(());
        if state.buffer.is_empty() && (!corked || data.len() >= DIRECT_WRITE_MIN) {
            if let Some(socket) = &state.socket {
                match socket.try_write(data) {
                    Ok(n) if n == data.len() => return Ok(()),
                    Ok(n) => data = &data[n..],
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => result = Err(error),
                }
            }
        }
        state.buffer.extend_from_slice(data);
        self.after_write(state, corked, result);
        Ok(())
    }

    /// Writes several buffers as one write, without waiting (asyncio's
    /// `writelines`).
    ///
    /// The buffers are gathered into the write buffer and handed to the
    /// socket in one system call; otherwise as [`write`](Transport::write).
    ///
    /// # Errors
    ///
    /// As [`write`](Transport::write).
    pub fn writelines<I>(&self, buffers: I) -> Result<(), ProtocolError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut state = self.lock();
        state.check_writable()?;
        for buffer in buffers {
            state.buffer.extend_from_slice(buffer.as_ref());
        }
        let corked = self.is_corked();
        let result = if corked { Ok(()) } else { state.write_now() };
        self.after_write(state, corked, result);
        Ok(())
    }

    /// Closes the sending side once the buffer is flushed; reading goes on
    /// (asyncio's `write_eof`).
    ///
    /// # Errors
    ///
    /// [`ProtocolError::Closing`] if the transport is closing or closed.
    /// Calling it twice is not an error.
    pub fn write_eof(&self) -> Result<(), ProtocolError> {
        let mut state = self.lock();
        if state.closing || state.socket.is_none() {
            return Err(ProtocolError::Closing);
        }
        state.eof_requested = true;
        drop(state);
        self.shared.waker.wake();
        Ok(())
    }

    /// Whether [`write_eof`](Transport::write_eof) is supported: always for
    /// TCP and Unix streams.
    pub fn can_write_eof(&self) -> bool {
        true
    }

    /// Closes the connection: stops reading, flushes the buffer, then closes
    /// the socket and calls [`Protocol::connection_lost`] with `None`
    /// (asyncio's `close`). Does nothing if already closing.
    pub fn close(&self) {
        let mut state = self.lock();
        if state.closing {
            return;
        }
        state.closing = true;
        drop(state);
        self.shared.waker.wake();
    }

    /// Closes the connection now, discarding the buffer; then
    /// [`Protocol::connection_lost`] is called with `None` (asyncio's
    /// `abort`).
    pub fn abort(&self) {
        let mut state = self.lock();
        state.closing = true;
        state.aborted = true;
        state.buffer.clear();
        drop(state);
        self.shared.waker.wake();
    }

    /// Whether the transport is closing or closed.
    pub fn is_closing(&self) -> bool {
        let state = self.lock();
        state.closing || state.socket.is_none()
    }

    /// The socket's addresses and file descriptor (asyncio's
    /// `get_extra_info`).
    #[doc(alias = "get_extra_info")]
    pub fn extra_info(&self) -> &ExtraInfo {
        &self.shared.info
    }

    /// Stops calling [`Protocol::data_received`] until
    /// [`resume_reading`](Transport::resume_reading); takes effect after the
    /// current callback. Unread bytes wait in the socket, so the peer is
    /// slowed down by TCP's own flow control.
    pub fn pause_reading(&self) {
        self.lock().reading = false;
    }

    /// Starts calling [`Protocol::data_received`] again.
    pub fn resume_reading(&self) {
        let mut state = self.lock();
        if !state.reading {
            state.reading = true;
            drop(state);
            self.shared.waker.wake();
        }
    }

    /// Whether the transport is reading: not paused, not closing.
    pub fn is_reading(&self) -> bool {
        let state = self.lock();
        state.reading && !state.closing && state.socket.is_some()
    }

    /// Sets the write buffer's high- and low-water marks (asyncio's
    /// `set_write_buffer_limits`).
    ///
    /// [`Protocol::pause_writing`] is called when the buffer grows above
    /// `high`, [`Protocol::resume_writing`] when it then drains to `low` or
    /// below. Defaults: `high` 64 KiB; `low` a quarter of `high`; with only
    /// `low` given, `high` is four times `low`. The new marks apply at once
    /// to the current buffer.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// use trellis::protocol::{connect_socket, Protocol, ProtocolError};
    /// use trellis::testing::memory_pair;
    ///
    /// struct Idle;
    /// impl Protocol for Idle {
    ///     fn data_received(&mut self, _data: &[u8]) {}
    /// }
    ///
    /// trellis::nursery(|n| async move {
    ///     let (ours, _theirs) = memory_pair(16);
    ///     let (transport, _connection) = connect_socket(&n, Idle, ours)?;
    ///     assert_eq!(transport.write_buffer_limits(), (16 * 1024, 64 * 1024));
    ///     transport.set_write_buffer_limits(Some(100), None)?;
    ///     assert_eq!(transport.write_buffer_limits(), (25, 100));
    ///     assert!(matches!(
    ///         transport.set_write_buffer_limits(Some(1), Some(2)),
    ///         Err(ProtocolError::InvalidLimits { high: 1, low: 2 })
    ///     ));
    ///     n.cancel();
    ///     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ProtocolError::InvalidLimits`] if `low` is above `high`; the marks
    /// are left as they were.
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> Result<(), ProtocolError> {
        let (high, low) = match (high, low) {
            (None, None) => (DEFAULT_HIGH, DEFAULT_HIGH / 4),
            (Some(high), None) => (high, high / 4),
            (None, Some(low)) => (low.saturating_mul(4), low),
            (Some(high), Some(low)) => (high, low),
        };
        if low > high {
            return Err(ProtocolError::InvalidLimits { high, low });
        }
        let mut state = self.lock();
        state.high = high;
        state.low = low;
        if state.update_flow() {
            drop(state);
            self.shared.waker.wake();
        }
        Ok(())
    }

    /// The write buffer's `(low, high)` marks (asyncio's
    /// `get_write_buffer_limits`).
    #[doc(alias = "get_write_buffer_limits")]
    pub fn write_buffer_limits(&self) -> (usize, usize) {
        let state = self.lock();
        (state.low, state.high)
    }

    /// Hands the connection over to `protocol` (asyncio's `set_protocol`):
    /// every callback after the current one goes to it.
    ///
    /// The switch takes effect when the running callback returns (or, when
    /// called from another task, before the connection's next callback):
    /// later `data_received`, `eof_received`, `pause_writing`,
    /// `resume_writing` and `connection_lost` reach `protocol`. As in asyncio,
    /// [`Protocol::connection_made`] is **not** called on it: give it the
    /// transport when you build it. Flow control carries over: if writing is
    /// paused, the new protocol gets the next `resume_writing`.
    ///
    /// - **The current read** was delivered whole to the protocol whose
    ///   `data_received` is running: the driver cannot know how much of it
    ///   that protocol consumed. A protocol that switches in the middle of a
    ///   read passes the rest on itself, by calling the new protocol's
    ///   `data_received` before handing it over (as below). Later reads go
    ///   to the new protocol — asyncio's rule too.
    /// - **The replaced protocol.** The protocol the connection was started
    ///   with is parked, receives no more callbacks, and is still what
    ///   [`run_connection`] and [`Connection::wait_closed`](super::Connection::wait_closed)
    ///   hand back at the end (asyncio's `create_connection` caller also keeps
    ///   its object). A protocol installed by an earlier `set_protocol` is
    ///   dropped when replaced. The last one is dropped after its
    ///   `connection_lost`.
    /// - Two calls before the switch takes effect: the last one wins, the
    ///   other protocol is dropped.
    /// - Once [`Protocol::connection_lost`] has been called (including from
    ///   inside it), this does nothing but drop `protocol`.
    ///
    /// The switched protocol is called through a `Box<dyn Protocol>`: one
    /// allocation per switch, none per callback.
    ///
    /// # Examples
    ///
    /// A handshake protocol that waits for a `HELLO` line, then hands the
    /// connection to an echo protocol, passing on what followed the line in
    /// the same read:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// use trellis::protocol::{run_connection, Protocol, Transport};
    /// use trellis::testing::memory_pair;
    ///
    /// struct Echo(Transport); // built with the transport: no connection_made
    ///
    /// impl Protocol for Echo {
    ///     fn data_received(&mut self, data: &[u8]) {
    ///         let _ = self.0.write(data);
    ///     }
    /// }
    ///
    /// #[derive(Default)]
    /// struct Handshake {
    ///     transport: Option<Transport>,
    ///     line: Vec<u8>,
    /// }
    ///
    /// impl Protocol for Handshake {
    ///     fn connection_made(&mut self, transport: Transport) {
    ///         self.transport = Some(transport);
    ///     }
    ///     fn data_received(&mut self, data: &[u8]) {
    ///         let transport = self.transport.as_ref().unwrap();
    ///         let end = data.iter().position(|&b| b == b'\n');
    ///         self.line.extend_from_slice(&data[..end.unwrap_or(data.len())]);
    ///         if let Some(end) = end {
    ///             assert_eq!(self.line, b"HELLO");
    ///             let _ = transport.write(b"WELCOME\n");
    ///             let mut echo = Echo(transport.clone());
    ///             echo.data_received(&data[end + 1..]); // the rest of this read
    ///             transport.set_protocol(echo);
    ///         }
    ///     }
    /// }
    ///
    /// let (ours, mut theirs) = memory_pair(1024);
    /// theirs.write_all(b"HELLO\nping ").await?;
    /// theirs.write_all(b"pong").await?;
    /// theirs.shutdown().await?;
    /// let (handshake, answer) = tokio::join!(run_connection(Handshake::default(), ours), async {
    ///     let mut answer = String::new();
    ///     theirs.read_to_string(&mut answer).await.map(|_| answer)
    /// });
    /// assert_eq!(answer?, "WELCOME\nping pong");
    /// assert_eq!(handshake?.line, b"HELLO"); // the original protocol comes back
    /// # Ok(()) }
    /// ```
    pub fn set_protocol<Q: Protocol>(&self, protocol: Q) {
        let protocol: Box<dyn Installed> = Box::new(protocol);
        let mut state = self.lock();
        if state.protocol_lost {
            drop(state);
            drop(protocol);
            return;
        }
        let replaced = state.next_protocol.replace(protocol);
        self.shared.pending.store(true, Ordering::Release);
        drop(state);
        // Dropped outside the lock: a protocol's `Drop` may use the transport.
        drop(replaced);
        self.shared.waker.wake();
    }

    /// Runs `f` on the connection's current protocol, if it is a `Q`, in the
    /// connection's task between two callbacks, and returns what `f` returns
    /// (the Rust form of asyncio's `get_protocol`).
    ///
    /// asyncio's `get_protocol` returns the protocol object itself; here the
    /// protocol is owned by the connection's task and called back with
    /// `&mut self`, so no reference can leave it. Instead `f` travels to that
    /// task and runs there, exactly like a callback: after any pending
    /// [`set_protocol`](Transport::set_protocol) took effect, never during
    /// another callback, and writes it makes are flushed afterwards. A wrong
    /// `Q` is an error naming the protocol's actual type, which also answers
    /// "which protocol is this connection running?".
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// use trellis::protocol::{connect_socket, Protocol, ProtocolError, Transport};
    /// use trellis::testing::memory_pair;
    ///
    /// /// Echoes, and counts the bytes it echoed.
    /// #[derive(Default)]
    /// struct Count(Option<Transport>, usize);
    /// impl Protocol for Count {
    ///     fn connection_made(&mut self, transport: Transport) {
    ///         self.0 = Some(transport);
    ///     }
    ///     fn data_received(&mut self, data: &[u8]) {
    ///         self.1 += data.len();
    ///         let _ = self.0.as_ref().unwrap().write(data);
    ///     }
    /// }
    /// struct Other;
    /// impl Protocol for Other {
    ///     fn data_received(&mut self, _data: &[u8]) {}
    /// }
    ///
    /// trellis::nursery(|n| async move {
    ///     let (ours, mut theirs) = memory_pair(1024);
    ///     let (transport, _connection) = connect_socket(&n, Count::default(), ours)?;
    ///     theirs.write_all(b"12345").await?;
    ///     theirs.read_exact(&mut [0; 5]).await?; // echoed: the bytes were received
    ///     assert_eq!(transport.with_protocol(|count: &mut Count| count.1).await?, 5);
    ///     assert!(matches!(
    ///         transport.with_protocol(|_: &mut Other| ()).await,
    ///         Err(ProtocolError::WrongProtocol { .. })
    ///     ));
    ///     n.cancel();
    ///     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ProtocolError::WrongProtocol`] if the current protocol is not a
    /// `Q`; [`ProtocolError::Closing`] if [`Protocol::connection_lost`] was
    /// called before `f` could run, or if `f` panicked (the panic ends the
    /// connection, as a panicking callback does).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not take `f` back: it may still run; its
    /// result is then discarded.
    #[doc(alias = "get_protocol")]
    pub async fn with_protocol<Q, R, F>(&self, f: F) -> Result<R, ProtocolError>
    where
        Q: Protocol,
        R: Send + 'static,
        F: FnOnce(&mut Q) -> R + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let visit: Visit = Box::new(move |protocol: &mut dyn Any, found: &'static str| {
            let result = match protocol.downcast_mut::<Q>() {
                Some(protocol) => Ok(f(protocol)),
                None => Err(ProtocolError::WrongProtocol {
                    expected: type_name::<Q>(),
                    found,
                }),
            };
            let _ = tx.send(result);
        });
        {
            let mut state = self.lock();
            if state.protocol_lost {
                return Err(ProtocolError::Closing);
            }
            state.visits.push(visit);
            self.shared.pending.store(true, Ordering::Release);
        }
        self.shared.waker.wake();
        rx.await.unwrap_or(Err(ProtocolError::Closing))
    }

    /// How many written bytes the socket has not taken yet (asyncio's
    /// `get_write_buffer_size`). Inside a callback, this includes what the
    /// callback wrote so far.
    #[doc(alias = "get_write_buffer_size")]
    pub fn write_buffer_size(&self) -> usize {
        self.lock().buffer.len()
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Transport")
            .field("peer_addr", &self.shared.info.peer_addr)
            .field("buffered", &state.buffer.len())
            .field("closing", &state.closing)
            .field("open", &state.socket.is_some())
            .finish()
    }
}

/// Runs `protocol` over `socket` in the calling task until the connection
/// ends, and gives the protocol back (asyncio's `connect_accepted_socket`,
/// awaited).
///
/// This is the connection task of every server and client in this module:
/// use it directly to serve a socket you accepted or connected yourself, or
/// an in-memory [`MemoryStream`](crate::testing::MemoryStream) in tests.
/// [`Protocol::connection_made`] is called first, [`Protocol::connection_lost`]
/// last, as the [module documentation](super#you-call--we-call-back)
/// describes. After a [`Transport::set_protocol`], the protocol handed back
/// is still the one passed in here (see there).
///
/// # Examples
///
/// See [`Protocol`].
///
/// # Errors
///
/// [`ProtocolError::Panicked`] if a callback panicked (after
/// `connection_lost` was called with the panic's message). I/O errors are
/// not errors of this function: they end the connection and reach
/// `connection_lost`.
///
/// # Cancel safety
///
/// Dropping the future closes the socket at once, discarding buffered
/// writes, and calls [`Protocol::connection_lost`] with an error of kind
/// `ConnectionAborted`; the protocol is then dropped.
#[doc(alias = "connect_accepted_socket")]
pub async fn run_connection<P: Protocol>(
    protocol: P,
    socket: impl Socket,
) -> Result<P, ProtocolError> {
    let (_transport, driver) = Driver::new(protocol, Arc::new(socket));
    driver.run().await
}

/// The connection's task: see the module header.
pub(super) struct Driver<P: Protocol> {
    /// The protocol the connection started with: called back until a
    /// switch, then parked, and handed back when the connection ends.
    original: Option<P>,
    /// The protocol installed by the latest switch, if any.
    switched: Option<Box<dyn Installed>>,
    transport: Transport,
    socket: Arc<dyn Socket>,
    /// Empty while the connection waits for bytes (an idle connection
    /// holds no buffer); `read_size` long while it reads.
    read_buffer: Vec<u8>,
    /// The size of the next read buffer: it doubles while reads fill it and
    /// halves while they use a quarter of it or less.
    read_size: usize,
    /// What the protocol was last told: paused or not.
    told_paused: bool,
    eof_received: bool,
    eof_sent: bool,
    /// `connection_lost` was called (or the protocol is gone).
    lost: bool,
}

/// One callback, so that the driver can call either its original protocol
/// (statically) or a switched one (through its vtable) with the same code.
enum Callback<'a> {
    Made(Transport),
    Data(&'a [u8]),
    Eof,
    Lost(Option<io::Error>),
    PauseWriting,
    ResumeWriting,
}

impl Callback<'_> {
    fn name(&self) -> &'static str {
        match self {
            Callback::Made(_) => "connection_made",
            Callback::Data(_) => "data_received",
            Callback::Eof => "eof_received",
            Callback::Lost(_) => "connection_lost",
            Callback::PauseWriting => "pause_writing",
            Callback::ResumeWriting => "resume_writing",
        }
    }

    /// Calls `protocol` back; the result is `eof_received`'s answer (`false`
    /// for the other callbacks).
    fn dispatch<Q: Protocol + ?Sized>(self, protocol: &mut Q) -> bool {
        match self {
            Callback::Made(transport) => protocol.connection_made(transport),
            Callback::Data(data) => protocol.data_received(data),
            Callback::Eof => return protocol.eof_received(),
            Callback::Lost(error) => protocol.connection_lost(error),
            Callback::PauseWriting => protocol.pause_writing(),
            Callback::ResumeWriting => protocol.resume_writing(),
        }
        false
    }
}

impl<P: Protocol> Driver<P> {
    pub(super) fn new(protocol: P, socket: Arc<dyn Socket>) -> (Transport, Driver<P>) {
        let info = socket.extra_info();
        let state = State {
            socket: Some(Arc::clone(&socket)),
            buffer: BytesMut::new(),
            high: DEFAULT_HIGH,
            low: DEFAULT_HIGH / 4,
            writing_paused: false,
            flow_toggles: 0,
            reading: true,
            closing: false,
            aborted: false,
            eof_requested: false,
            error: None,
            next_protocol: None,
            visits: Vec::new(),
            protocol_lost: false,
        };
        let transport = Transport {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                waker: AtomicWaker::new(),
                corked: AtomicBool::new(false),
                pending: AtomicBool::new(false),
                info,
            }),
        };
        let driver = Driver {
            original: Some(protocol),
            switched: None,
            transport: transport.clone(),
            socket,
            read_buffer: Vec::new(),
            read_size: READ_BUFFER_START,
            told_paused: false,
            eof_received: false,
            eof_sent: false,
            lost: false,
        };
        (transport, driver)
    }

    pub(super) async fn run(mut self) -> Result<P, ProtocolError> {
        let transport = self.transport.clone();
        if let Err(error) = self.call(Callback::Made(transport)) {
            return Err(self.fail(error));
        }
        poll_fn(|cx| self.poll(cx)).await
    }

    /// Runs one callback on the current protocol, corked, catching a panic.
    /// A pending switch or visit is applied first (invariant 5), except
    /// before `connection_made`, which always reaches the original protocol.
    fn call(&mut self, callback: Callback<'_>) -> Result<bool, ProtocolError> {
        if !matches!(callback, Callback::Made(_))
            && self.transport.shared.pending.load(Ordering::Acquire)
        {
            self.apply_pending()?;
        }
        if matches!(callback, Callback::Lost(_)) {
            self.refuse_pending();
        }
        let name = callback.name();
        let corked = &self.transport.shared.corked;
        let result = if let Some(protocol) = &mut self.switched {
            corked.store(true, Ordering::Release);
            let result = catch_unwind(AssertUnwindSafe(|| callback.dispatch(&mut **protocol)));
            corked.store(false, Ordering::Release);
            result
        } else if let Some(protocol) = &mut self.original {
            corked.store(true, Ordering::Release);
            let result = catch_unwind(AssertUnwindSafe(|| callback.dispatch(protocol)));
            corked.store(false, Ordering::Release);
            result
        } else {
            return Err(ProtocolError::Cancelled);
        };
        result.map_err(|panic| ProtocolError::Panicked {
            callback: name,
            message: panic_message(&*panic),
        })
    }

    /// Installs a pending protocol and runs the queued visits.
    #[cold]
    #[inline(never)]
    fn apply_pending(&mut self) -> Result<(), ProtocolError> {
        let mut state = self.transport.lock();
        self.transport
            .shared
            .pending
            .store(false, Ordering::Release);
        let next = state.next_protocol.take();
        let visits = mem::take(&mut state.visits);
        drop(state);
        if let Some(next) = next {
            // The replaced protocol is dropped here, outside the lock; the
            // original one is kept to be handed back.
            self.switched = Some(next);
        }
        for visit in visits {
            let (protocol, name): (&mut dyn Any, &'static str) =
                match (&mut self.switched, &mut self.original) {
                    (Some(protocol), _) => {
                        let name = protocol.name();
                        (protocol.as_any(), name)
                    }
                    (None, Some(protocol)) => (protocol, type_name::<P>()),
                    (None, None) => return Err(ProtocolError::Cancelled),
                };
            let corked = &self.transport.shared.corked;
            corked.store(true, Ordering::Release);
            let result = catch_unwind(AssertUnwindSafe(|| visit(protocol, name)));
            corked.store(false, Ordering::Release);
            if let Err(panic) = result {
                return Err(ProtocolError::Panicked {
                    callback: "with_protocol",
                    message: panic_message(&*panic),
                });
            }
        }
        Ok(())
    }

    /// From `connection_lost` on, switches are dropped and visits refused.
    #[cold]
    #[inline(never)]
    fn refuse_pending(&mut self) {
        self.lost = true;
        let mut state = self.transport.lock();
        state.protocol_lost = true;
        let next = state.next_protocol.take();
        let visits = mem::take(&mut state.visits);
        drop(state);
        // Dropped outside the lock: a protocol's `Drop` may use the transport.
        drop(next);
        drop(visits);
    }

    /// Ends the connection after a panic: abort, tell the protocol.
    fn fail(&mut self, error: ProtocolError) -> ProtocolError {
        tracing::error!(%error, peer = ?self.transport.shared.info.peer_addr, "protocol failed; connection aborted");
        self.close_socket();
        self.refuse_pending();
        let lost = io::Error::other(error.to_string());
        let switched = self.switched.take();
        let original = self.original.take();
        // A second panic, in `connection_lost`, is only logged.
        let result = match (switched, original) {
            (Some(mut protocol), _) => {
                catch_unwind(AssertUnwindSafe(|| protocol.connection_lost(Some(lost))))
            }
            (None, Some(mut protocol)) => {
                catch_unwind(AssertUnwindSafe(|| protocol.connection_lost(Some(lost))))
            }
            (None, None) => Ok(()),
        };
        if result.is_err() {
            tracing::error!("protocol panicked again in connection_lost");
        }
        error
    }

    /// Ends the connection normally (`None`) or after an I/O error.
    fn finish(&mut self, error: Option<io::Error>) -> Poll<Result<P, ProtocolError>> {
        self.close_socket();
        let result = self.call(Callback::Lost(error));
        self.switched = None;
        let original = self.original.take();
        if let Err(error) = result {
            tracing::error!(%error, "protocol panicked in connection_lost");
            return Poll::Ready(Err(error));
        }
        match original {
            Some(protocol) => Poll::Ready(Ok(protocol)),
            None => Poll::Ready(Err(ProtocolError::Cancelled)),
        }
    }

    /// Drops the socket (invariant 3) and the buffer.
    fn close_socket(&mut self) {
        let mut state = self.transport.lock();
        state.socket = None;
        state.closing = true;
        state.buffer = BytesMut::new();
        drop(state);
        self.socket = Arc::new(Closed);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<P, ProtocolError>> {
        self.transport.shared.waker.register(cx.waker());
        let mut reads = 0;
        loop {
            // Commands and flow-control changes.
            let mut state = self.transport.lock();
            let toggles = mem::take(&mut state.flow_toggles);
            let error = state.error.take();
            let (aborted, closing, eof_requested, reading) = (
                state.aborted,
                state.closing,
                state.eof_requested,
                state.reading,
            );
            drop(state);
            if let Some(error) = error {
                return self.finish(Some(error));
            }
            if self.transport.shared.pending.load(Ordering::Acquire) {
                // A switch or a visit from another task, while idle.
                if let Err(error) = self.apply_pending() {
                    return Poll::Ready(Err(self.fail(error)));
                }
            }
            if aborted {
                return self.finish(None);
            }
            for _ in 0..toggles {
                self.told_paused = !self.told_paused;
                let result = if self.told_paused {
                    self.call(Callback::PauseWriting)
                } else {
                    self.call(Callback::ResumeWriting)
                };
                if let Err(error) = result {
                    return Poll::Ready(Err(self.fail(error)));
                }
            }

            // Writes.
            match self.flush(cx) {
                Err(error) => return self.finish(Some(error)),
                Ok(false) => {}
                Ok(true) => {
                    if eof_requested && !self.eof_sent {
                        self.eof_sent = true;
                        if let Err(error) = self.socket.shutdown_write() {
                            return self.finish(Some(error));
                        }
                    }
                    if closing {
                        if !self.eof_sent {
                            // Best effort: the socket closes next anyway.
                            let _ = self.socket.shutdown_write();
                        }
                        return self.finish(None);
                    }
                }
            }

            // Reads.
            if !reading || closing || self.eof_received {
                return Poll::Pending;
            }
            if reads == READS_PER_POLL {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if self.read_buffer.is_empty() {
                // An idle connection holds no read buffer: it waits for
                // readiness first, and takes one only to read.
                match self.socket.poll_read_ready(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(error)) => return self.finish(Some(error)),
                    Poll::Ready(Ok(())) => {}
                }
                self.read_buffer = take_read_buffer(self.read_size);
            }
            let read = match self.socket.poll_read(cx, &mut self.read_buffer) {
                Poll::Pending => {
                    give_back_read_buffer(mem::take(&mut self.read_buffer));
                    return Poll::Pending;
                }
                Poll::Ready(read) => read,
            };
            reads += 1;
            let result = match read {
                Err(error) => return self.finish(Some(error)),
                Ok(0) => {
                    self.eof_received = true;
                    self.call(Callback::Eof).map(|keep_open| {
                        if !keep_open {
                            self.transport.close();
                        }
                    })
                }
                Ok(n) => {
                    let mut buffer = mem::take(&mut self.read_buffer);
                    let result = self.call(Callback::Data(&buffer[..n])).map(drop);
                    if n == buffer.len() && buffer.len() < READ_BUFFER_MAX {
                        self.read_size = buffer.len() * 2;
                        buffer.resize(self.read_size, 0);
                    } else if n <= self.read_size / 4 && self.read_size > READ_BUFFER_START {
                        // Small reads again: the next buffer is smaller.
                        self.read_size /= 2;
                    }
                    self.read_buffer = buffer;
                    result
                }
            };
            if let Err(error) = result {
                return Poll::Ready(Err(self.fail(error)));
            }
        }
    }

    /// Hands the buffer to the socket. `Ok(true)` when it is empty;
    /// `Ok(false)` when the socket is full (`cx` is registered).
    fn flush(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
        let mut state = self.transport.lock();
        loop {
            let result = state.write_now();
            state.update_flow();
            result?;
            if state.buffer.is_empty() {
                // Toggles from this flush are delivered on the next pass.
                let toggled = state.flow_toggles > 0;
                drop(state);
                if toggled {
                    cx.waker().wake_by_ref();
                }
                return Ok(true);
            }
            match self.socket.poll_write_ready(cx) {
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(error)) => return Err(error),
                Poll::Pending => {
                    let toggled = state.flow_toggles > 0;
                    drop(state);
                    if toggled {
                        cx.waker().wake_by_ref();
                    }
                    return Ok(false);
                }
            }
        }
    }
}

impl<P: Protocol> Drop for Driver<P> {
    fn drop(&mut self) {
        if !self.lost {
            // Cancelled: the task was dropped before the connection ended.
            self.close_socket();
            let error = io::Error::new(io::ErrorKind::ConnectionAborted, "connection cancelled");
            if let Err(error) = self.call(Callback::Lost(Some(error))) {
                tracing::error!(%error, "protocol panicked in connection_lost");
            }
        }
    }
}

/// The socket of a lost connection: every operation fails.
struct Closed;

impl Socket for Closed {
    fn poll_read(&self, _cx: &mut Context<'_>, _buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(not_connected()))
    }
    fn try_write(&self, _buf: &[u8]) -> io::Result<usize> {
        Err(not_connected())
    }
    fn poll_write_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Err(not_connected()))
    }
    fn shutdown_write(&self) -> io::Result<()> {
        Err(not_connected())
    }
}

fn not_connected() -> io::Error {
    io::ErrorKind::NotConnected.into()
}

/// The message of a caught panic.
pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_buffer_given_back_is_the_next_reads_on_the_thread() {
        let mut buffer = take_read_buffer(READ_BUFFER_START);
        assert_eq!(buffer.len(), READ_BUFFER_START);
        buffer[0] = 7;
        let at = buffer.as_ptr() as usize;
        give_back_read_buffer(buffer);
        // Same allocation, not zeroed again; a smaller read uses a prefix.
        let buffer = take_read_buffer(READ_BUFFER_START / 2);
        assert_eq!(
            (buffer.as_ptr() as usize, buffer.len()),
            (at, READ_BUFFER_START / 2)
        );
        assert_eq!(buffer[0], 7);
        // Taken: the thread holds none until it is given back.
        let other = take_read_buffer(READ_BUFFER_START);
        assert_ne!(other.as_ptr() as usize, at);
        give_back_read_buffer(buffer);
    }

    #[test]
    fn a_large_read_buffer_is_not_kept() {
        drop(take_read_buffer(0));
        give_back_read_buffer(vec![0; SPARE_READ_MAX * 2]);
        assert_eq!(take_read_buffer(0).capacity(), 0);
    }
}
