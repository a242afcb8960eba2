//! The protocol test kit: an in-memory socket pair, and conformance checks
//! for [`Socket`] implementations and for [`Protocol`]s.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::protocol::{Protocol, Socket, Transport, run_connection};

/// Two connected in-memory streams: what one writes, the other reads.
///
/// Each direction holds at most `capacity` bytes (at least 1): a writer
/// that finds it full waits (or gets `WouldBlock` from
/// [`Socket::try_write`]) until the reader reads. This makes the socket's
/// share of buffering exact, so flow-control tests are deterministic, and
/// no real I/O happens, so they run on a paused clock.
///
/// Both ends are [`Socket`]s, to run a [`Protocol`] over, and tokio
/// `AsyncRead + AsyncWrite` streams, to drive one from a test. Dropping an
/// end closes both directions: the other end reads end of file, and its
/// writes fail with `BrokenPipe`. [`MemoryStream::reset`] makes the other
/// end's next operation fail with `ConnectionReset` instead.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use trellis::testing::memory_pair;
///
/// let (mut a, mut b) = memory_pair(4);
/// let (written, read) = tokio::join!(a.write_all(b"more than four"), async {
///     let mut buf = vec![0; 14];
///     b.read_exact(&mut buf).await.map(|_| buf)
/// });
/// written?;
/// assert_eq!(read?, b"more than four");
/// # Ok(()) }
/// ```
pub fn memory_pair(capacity: usize) -> (MemoryStream, MemoryStream) {
    let capacity = capacity.max(1);
    let a_to_b = Arc::new(Pipe::new(capacity));
    let b_to_a = Arc::new(Pipe::new(capacity));
    (
        MemoryStream {
            read: Arc::clone(&b_to_a),
            write: Arc::clone(&a_to_b),
        },
        MemoryStream {
            read: a_to_b,
            write: b_to_a,
        },
    )
}

/// One end of a [`memory_pair`].
#[derive(Debug)]
pub struct MemoryStream {
    read: Arc<Pipe>,
    write: Arc<Pipe>,
}

#[derive(Debug)]
struct Pipe {
    state: Mutex<PipeState>,
}

#[derive(Debug)]
struct PipeState {
    data: VecDeque<u8>,
    capacity: usize,
    /// The writer shut down or dropped: the reader reads EOF after the data.
    write_closed: bool,
    /// The reader dropped: writes fail.
    read_closed: bool,
    /// One end reset the connection.
    reset: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Pipe {
    fn new(capacity: usize) -> Self {
        Pipe {
            state: Mutex::new(PipeState {
                data: VecDeque::new(),
                capacity,
                write_closed: false,
                read_closed: false,
                reset: false,
                reader: None,
                writer: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PipeState> {
        crate::loom::lock(&self.state)
    }

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.lock();
        if state.reset || state.write_closed || !state.data.is_empty() {
            return Poll::Ready(Ok(()));
        }
        state.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut state = self.lock();
        if state.reset {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if state.data.is_empty() {
            if state.write_closed {
                return Poll::Ready(Ok(0));
            }
            state.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(state.data.len());
        for (slot, byte) in buf.iter_mut().zip(state.data.drain(..n)) {
            *slot = byte;
        }
        if let Some(writer) = state.writer.take() {
            writer.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.lock();
        if state.reset {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        if state.read_closed || state.write_closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let room = state.capacity - state.data.len();
        if room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = room.min(buf.len());
        state.data.extend(&buf[..n]);
        if let Some(reader) = state.reader.take() {
            reader.wake();
        }
        Ok(n)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.lock();
        if state.reset || state.read_closed || state.write_closed {
            return Poll::Ready(Ok(())); // the write reports the error
        }
        if state.data.len() < state.capacity {
            return Poll::Ready(Ok(()));
        }
        state.writer = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Closes from the writer's side (`reset`: abortively).
    fn close_write(&self, reset: bool) {
        let mut state = self.lock();
        state.write_closed = true;
        state.reset |= reset;
        if let Some(reader) = state.reader.take() {
            reader.wake();
        }
    }

    /// Closes from the reader's side (`reset`: abortively).
    fn close_read(&self, reset: bool) {
        let mut state = self.lock();
        state.read_closed = true;
        state.reset |= reset;
        state.data.clear();
        if let Some(writer) = state.writer.take() {
            writer.wake();
        }
    }
}

impl MemoryStream {
    /// Resets the connection, as a TCP RST does: the other end's reads and
    /// writes fail with `ConnectionReset`.
    pub fn reset(&self) {
        self.write.close_write(true);
        self.read.close_read(true);
    }
}

impl Drop for MemoryStream {
    fn drop(&mut self) {
        self.write.close_write(false);
        self.read.close_read(false);
    }
}

impl Socket for MemoryStream {
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.read.poll_read(cx, buf)
    }

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.read.poll_read_ready(cx)
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.write.try_write(buf)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.write.poll_write_ready(cx)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.write.close_write(false);
        Ok(())
    }
}

impl AsyncRead for MemoryStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = std::task::ready!(self.read.poll_read(cx, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MemoryStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.write.try_write(buf) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    std::task::ready!(self.write.poll_write_ready(cx))?;
                }
                result => return Poll::Ready(result),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.write.close_write(false);
        Poll::Ready(Ok(()))
    }
}

/// Feeds `input` to a fresh protocol from `factory` split in several ways
/// (whole, one byte at a time, in chunks of 2, 3 and 7 bytes), then closes
/// the input; checks that the protocol answers the same bytes every time,
/// and returns them.
///
/// Every protocol must survive any split of its input: this is the check
/// that its framing does. The protocol runs over a [`memory_pair`] and must
/// end the connection after end of file (the default of
/// [`Protocol::eof_received`] does).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use trellis::protocol::{Protocol, Transport};
/// use trellis::testing::check_protocol;
///
/// /// Answers each complete line with its length, one byte.
/// #[derive(Default)]
/// struct LineLengths { transport: Option<Transport>, line: usize }
///
/// impl Protocol for LineLengths {
///     fn connection_made(&mut self, transport: Transport) {
///         self.transport = Some(transport);
///     }
///     fn data_received(&mut self, data: &[u8]) {
///         for &byte in data {
///             if byte == b'\n' {
///                 let _ = self.transport.as_ref().unwrap().write(&[self.line as u8]);
///                 self.line = 0;
///             } else {
///                 self.line += 1;
///             }
///         }
///     }
/// }
///
/// let output = check_protocol(LineLengths::default, b"abc\nhello\n").await;
/// assert_eq!(output, [3, 5]);
/// # }
/// ```
///
/// # Panics
///
/// If the answers differ between two splits, if the protocol panics, or if
/// the connection fails.
pub async fn check_protocol<P, F>(mut factory: F, input: &[u8]) -> Vec<u8>
where
    P: Protocol,
    F: FnMut() -> P,
{
    let mut reference: Option<Vec<u8>> = None;
    for chunk in [usize::MAX, 1, 2, 3, 7] {
        let (ours, mut theirs) = memory_pair(64 * 1024);
        let protocol = factory();
        let feed = async {
            let (mut reader, mut writer) = tokio::io::split(&mut theirs);
            let write = async {
                for piece in input.chunks(chunk.min(input.len().max(1))) {
                    writer.write_all(piece).await?;
                }
                writer.shutdown().await
            };
            let mut output = Vec::new();
            let (written, read) = tokio::join!(write, reader.read_to_end(&mut output));
            // The protocol may close before reading everything: a broken
            // pipe on our side is its choice, not a failure.
            if let Err(error) = written {
                assert_eq!(
                    error.kind(),
                    io::ErrorKind::BrokenPipe,
                    "writing the input failed"
                );
            }
            read.expect("reading the protocol's answers failed");
            output
        };
        let (ran, output) = tokio::join!(run_connection(protocol, ours), feed);
        if let Err(error) = ran {
            panic!("the protocol failed with the input in chunks of {chunk}: {error}");
        }
        match &reference {
            None => reference = Some(output),
            Some(expected) => assert_eq!(
                &output, expected,
                "the answers differ when the input comes in chunks of {chunk} bytes"
            ),
        }
    }
    reference.unwrap_or_default()
}

/// Checks that a [`Socket`] implementation behaves as a [`Transport`]
/// expects, given a function that makes connected pairs of it (trio's
/// `check_two_way_stream`).
///
/// It runs protocols on both ends and checks that: a megabyte written in
/// pieces arrives whole and in order, both ways at once; `write_eof` is seen
/// as end of file while the other direction still works; `close` flushes
/// what is buffered before the peer sees end of file; `abort` ends the
/// connection at once with `connection_lost(None)`; and callbacks come in
/// order (made, data…, eof, lost).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use trellis::testing::{check_socket, memory_pair};
///
/// check_socket(|| async { memory_pair(1000) }).await;
/// # }
/// ```
///
/// # Panics
///
/// On the first check that fails, saying which.
pub async fn check_socket<S, F, Fut>(mut make_pair: F)
where
    S: Socket,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (S, S)>,
{
    const LEN: usize = 1 << 20;
    let payload: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();

    // Both ways at once, then EOF both ways.
    let (a, b) = make_pair().await;
    let a_protocol = Recorder::sending(payload.clone(), End::WriteEof);
    let b_protocol = Recorder::sending(payload.clone(), End::WriteEof);
    let (a, b) = tokio::join!(run_connection(a_protocol, a), run_connection(b_protocol, b));
    for (end, recorder) in [("first", a), ("second", b)] {
        let recorder = recorder.expect("a connection failed");
        assert!(
            recorder.received == payload,
            "the {end} end received other bytes than were sent"
        );
        assert_eq!(
            recorder.events,
            ["made", "eof", "lost ok"],
            "callbacks of the {end} end"
        );
    }

    // `close` flushes before the peer sees EOF.
    let (a, b) = make_pair().await;
    let a_protocol = Recorder::sending(payload.clone(), End::Close);
    let b_protocol = Recorder::sending(Vec::new(), End::Nothing);
    let (a, b) = tokio::join!(run_connection(a_protocol, a), run_connection(b_protocol, b));
    let (a, b) = (
        a.expect("the closing end failed"),
        b.expect("the reading end failed"),
    );
    assert_eq!(
        a.events,
        ["made", "lost ok"],
        "callbacks of the closing end"
    );
    assert!(
        b.received == payload,
        "close did not flush the buffer first"
    );
    assert_eq!(
        b.events,
        ["made", "eof", "lost ok"],
        "callbacks of the reading end"
    );

    // `abort` ends the connection at once.
    let (a, b) = make_pair().await;
    let a_protocol = Recorder::sending(payload.clone(), End::Abort);
    let b_protocol = Recorder::sending(Vec::new(), End::Nothing);
    let (a, b) = tokio::join!(run_connection(a_protocol, a), run_connection(b_protocol, b));
    let (a, b) = (
        a.expect("the aborting end failed"),
        b.expect("the other end failed"),
    );
    assert_eq!(
        a.events,
        ["made", "lost ok"],
        "callbacks of the aborting end"
    );
    assert!(
        b.received.len() <= LEN,
        "the other end received more than was sent"
    );
    assert_eq!(
        b.events
            .last()
            .map(String::as_str)
            .map(|e| e.starts_with("lost")),
        Some(true)
    );
}

#[derive(Clone, Copy, Debug)]
enum End {
    WriteEof,
    Close,
    Abort,
    Nothing,
}

/// Sends its payload in 1000-byte pieces when the connection is made,
/// then ends as told; records what it receives and its callbacks.
struct Recorder {
    payload: Vec<u8>,
    end: End,
    received: Vec<u8>,
    events: Vec<String>,
}

impl Recorder {
    fn sending(payload: Vec<u8>, end: End) -> Self {
        Recorder {
            payload,
            end,
            received: Vec::new(),
            events: Vec::new(),
        }
    }
}

impl Protocol for Recorder {
    fn connection_made(&mut self, transport: Transport) {
        self.events.push("made".into());
        for piece in self.payload.chunks(1000) {
            transport
                .write(piece)
                .expect("write after connection_made failed");
        }
        match self.end {
            End::WriteEof => transport.write_eof().expect("write_eof failed"),
            End::Close => transport.close(),
            End::Abort => transport.abort(),
            End::Nothing => {}
        }
    }

    fn data_received(&mut self, data: &[u8]) {
        assert!(!data.is_empty(), "data_received with no data");
        assert_eq!(
            self.events.last().map(String::as_str),
            Some("made"),
            "data after eof"
        );
        self.received.extend_from_slice(data);
    }

    fn eof_received(&mut self) -> bool {
        self.events.push("eof".into());
        false
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.events.push(match error {
            None => "lost ok".into(),
            Some(error) => format!("lost {error}"),
        });
    }
}
