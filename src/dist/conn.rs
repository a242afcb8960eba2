//! One distribution connection: EPMD look-up, the handshake both ways, the
//! reader (frames → dispatch) and the writer (queued frames → coalesced
//! writes, ticks).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use erl_dist::handshake::{
    ClientSideHandshake, HandshakeError, HandshakeStatus, ServerSideHandshake,
};
use erl_dist::message::Message;
use erl_dist::node::{LocalNode, NodeName};
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_util::compat::TokioAsyncReadCompatExt;

use super::frame::{self, FrameError};
use super::tls::Reframe;
use super::{DistError, Inner};

/// How long a connection set-up may take (OTP's `net_setuptime`, 7 s).
pub(crate) const SETUP_TIME: Duration = Duration::from_secs(7);

/// The handshake error of the side that lost a simultaneous connect.
pub(crate) const SIMULTANEOUS: &str = "simultaneous connect: the peer's attempt wins";

/// The most bytes one write gathers from queued frames.
const COALESCE: usize = 256 * 1024;

/// The most bytes one-way sends queue before the sender writes them
/// itself (see [`Out::send_message_batched`]).
const MAX_BATCH: usize = 64 * 1024;

/// How many bytes of one-way sends may wait for a connection's writer
/// before a sender is made to wait for it (OTP's busy distribution port:
/// `dist_buf_busy_limit`, 1 MiB by default, suspends the sending process).
const BUSY_LIMIT: usize = 1024 * 1024;

/// The read buffer of a connection: many small frames per `recv`.
const READ_BUFFER: usize = 64 * 1024;

/// The local node as the handshake sees it.
fn local_node(inner: &Inner) -> Result<LocalNode, DistError> {
    let name: NodeName = inner.name.parse().map_err(|_| DistError::InvalidName {
        name: inner.name.clone(),
    })?;
    let mut local = LocalNode::new(name, erl_dist::node::Creation::new(inner.creation));
    local.flags = inner.flags;
    Ok(local)
}

/// What the handshake told us of a peer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    /// Its creation (which incarnation of the node).
    pub(crate) creation: u32,
    /// It advertised `DIST_HDR_ATOM_CACHE` (as we do): every frame but a
    /// tick goes with a normal distribution header, both ways.
    pub(crate) atom_cache: bool,
}

impl Peer {
    /// What `peer` told a node advertising `ours`: the cache is used only
    /// when both advertised it.
    fn new(peer: &erl_dist::node::PeerNode, ours: erl_dist::DistributionFlags) -> Self {
        let cache = erl_dist::DistributionFlags::DIST_HDR_ATOM_CACHE;
        Peer {
            creation: peer.creation.map_or(0, |c| c.get()),
            atom_cache: peer.flags.contains(cache) && ours.contains(cache),
        }
    }
}

/// A connection's byte stream: plain TCP, or TLS over it.
pub(crate) enum DistStream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

/// Connects to `node` (`name@host`): asks EPMD on `host` for its port, then
/// runs the client side of the handshake (inside TLS if configured).
pub(crate) async fn connect(
    inner: &Arc<Inner>,
    node: &str,
) -> Result<(DistStream, Peer), DistError> {
    let (alive, host) = node.split_once('@').ok_or_else(|| DistError::InvalidName {
        name: node.to_string(),
    })?;
    let epmd = TcpStream::connect((host, inner.epmd_port))
        .await
        .map_err(|source| DistError::Epmd {
            reason: source.to_string(),
        })?;
    let entry = erl_dist::epmd::EpmdClient::new(epmd.compat())
        .get_node(alive)
        .await
        .map_err(|e| DistError::Epmd {
            reason: e.to_string(),
        })?
        .ok_or_else(|| DistError::NodeNotFound {
            node: node.to_string(),
        })?;
    let stream = TcpStream::connect((host, entry.port))
        .await
        .map_err(|source| DistError::Connect {
            node: node.to_string(),
            reason: source.to_string(),
        })?;
    let _ = stream.set_nodelay(true);
    match &inner.tls {
        None => {
            let (stream, creation) = client_handshake(inner, node, stream).await?;
            Ok((DistStream::Tcp(stream), creation))
        }
        Some(tls) => {
            let name = rustls_pki_types::ServerName::try_from(host.to_string()).map_err(|e| {
                DistError::Tls {
                    reason: format!("server name {host}: {e}"),
                }
            })?;
            let stream = tls
                .connector
                .connect(name, stream)
                .await
                .map_err(|e| DistError::Tls {
                    reason: format!("connect to {node}: {e}"),
                })?;
            let stream = tokio_rustls::TlsStream::from(stream);
            let (stream, creation) = client_handshake(inner, node, Reframe::new(stream)).await?;
            Ok((DistStream::Tls(Box::new(stream.into_inner())), creation))
        }
    }
}

/// The client side of the handshake on `stream`.
async fn client_handshake<S>(
    inner: &Arc<Inner>,
    node: &str,
    stream: S,
) -> Result<(S, Peer), DistError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut handshake =
        ClientSideHandshake::new(stream.compat(), local_node(inner)?, &inner.cookie);
    let status = handshake
        .execute_send_name(erl_dist::LOWEST_DISTRIBUTION_PROTOCOL_VERSION)
        .await
        .map_err(|e| handshake_error(node, e))?;
    let (stream, peer) = handshake
        .execute_rest(status == HandshakeStatus::Alive)
        .await
        .map_err(|e| handshake_error(node, e))?;
    check_peer_flags(node, peer.flags)?;
    Ok((stream.into_inner(), Peer::new(&peer, inner.flags)))
}

/// Runs the server side of the handshake on an accepted stream (inside TLS
/// if configured); returns the peer's name and the stream.
pub(crate) async fn accept(
    inner: &Arc<Inner>,
    stream: TcpStream,
) -> Result<(String, DistStream, Peer), DistError> {
    let _ = stream.set_nodelay(true);
    match &inner.tls {
        None => {
            let (peer, stream, creation) = server_handshake(inner, stream).await?;
            Ok((peer, DistStream::Tcp(stream), creation))
        }
        Some(tls) => {
            let stream = tls
                .acceptor
                .accept(stream)
                .await
                .map_err(|e| DistError::Tls {
                    reason: format!("accept: {e}"),
                })?;
            let stream = tokio_rustls::TlsStream::from(stream);
            let (peer, stream, creation) = server_handshake(inner, Reframe::new(stream)).await?;
            Ok((
                peer,
                DistStream::Tls(Box::new(stream.into_inner())),
                creation,
            ))
        }
    }
}

/// The server side of the handshake on `stream`.
async fn server_handshake<S>(inner: &Arc<Inner>, stream: S) -> Result<(String, S, Peer), DistError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut handshake =
        ServerSideHandshake::new(stream.compat(), local_node(inner)?, &inner.cookie);
    let peer_name = handshake
        .execute_recv_name()
        .await
        .map_err(|e| handshake_error("?", e))?
        .ok_or_else(|| DistError::Handshake {
            node: "?".into(),
            reason: "dynamic node names are not supported".into(),
        })?
        .to_string();
    // A simultaneous connect: the node with the greater name keeps its own
    // attempt (OTP's rule). A peer already connected is let in: it
    // restarted, and its new connection replaces the old one.
    let status = if inner.is_connecting(&peer_name) && inner.name > peer_name {
        HandshakeStatus::Nok
    } else {
        HandshakeStatus::Ok
    };
    let (stream, peer) = handshake
        .execute_rest(status)
        .await
        .map_err(|e| handshake_error(&peer_name, e))?;
    check_peer_flags(&peer_name, peer.flags)?;
    Ok((
        peer_name,
        stream.into_inner(),
        Peer::new(&peer, inner.flags),
    ))
}

/// The peer must monitor and link as OTP 25 does.
fn check_peer_flags(node: &str, flags: erl_dist::DistributionFlags) -> Result<(), DistError> {
    use erl_dist::DistributionFlags as F;
    let needed = F::EXTENDED_REFERENCES | F::EXTENDED_PIDS_PORTS | F::UTF8_ATOMS | F::BIG_CREATION;
    if flags.contains(needed) {
        Ok(())
    } else {
        Err(DistError::Handshake {
            node: node.to_string(),
            reason: format!("peer lacks mandatory flags ({:#x})", flags.bits()),
        })
    }
}

/// A handshake failure as a [`DistError`]: a peer that hangs up during the
/// challenge rejected our cookie.
fn handshake_error(node: &str, error: HandshakeError) -> DistError {
    match error {
        HandshakeError::OngoingHandshake => DistError::Handshake {
            node: node.to_string(),
            reason: SIMULTANEOUS.to_string(),
        },
        HandshakeError::CookieMismatch => DistError::CookieRejected {
            node: node.to_string(),
        },
        HandshakeError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            DistError::CookieRejected {
                node: node.to_string(),
            }
        }
        other => DistError::Handshake {
            node: node.to_string(),
            reason: other.to_string(),
        },
    }
}

/// Reads frames until the peer closes, goes silent for `silence`, or sends
/// something malformed; dispatches each message.
pub(crate) async fn read_loop(
    inner: Arc<Inner>,
    peer: Arc<str>,
    read: impl tokio::io::AsyncRead + Unpin,
    silence: Duration,
    max_frame: usize,
) -> DistError {
    // Buffered: one `recv` takes many frames (each frame would otherwise
    // cost two, its length and its body).
    let mut read = tokio::io::BufReader::with_capacity(READ_BUFFER, read);
    let mut buf = Vec::new();
    // The atoms the peer caches on this connection (its frames' headers
    // fill it); a frame's references add at most a frame's worth of text.
    let mut atoms = frame::AtomCache::new(max_frame);
    // Where messages' payloads are copied for their receivers to decode:
    // one allocation shared by many messages, freed when the last is read.
    let mut arena = BytesMut::with_capacity(ARENA_CHUNK);
    let raw_for = |to: &erl_dist::term::PidOrAtom| inner.takes_raw(to);
    loop {
        // A whole frame already buffered (the usual case under load): decode
        // it where it lies, without copying it out or awaiting anything.
        if let Some(total) = buffered_frame(read.buffer(), max_frame) {
            let decoded = frame::decode_for_reader(
                &read.buffer()[4..total],
                &mut atoms,
                &mut arena,
                &raw_for,
            );
            std::pin::Pin::new(&mut read).consume(total);
            match decoded {
                Ok(Some(decoded)) => inner.dispatch_decoded(&peer, decoded),
                Ok(None) => {}
                Err(error) => return malformed(&peer, error),
            }
            continue;
        }
        let frame =
            tokio::time::timeout(silence, frame::read(&mut read, &mut buf, max_frame)).await;
        let message = match frame {
            Err(_) => {
                return DistError::NodeDown {
                    node: peer.to_string(),
                    reason: "net_tick_timeout".into(),
                };
            }
            Ok(Err(error)) => {
                return match error.kind() {
                    std::io::ErrorKind::InvalidData => {
                        tracing::warn!(node = %peer, %error, "oversized distribution frame; closing the connection");
                        DistError::Malformed {
                            node: peer.to_string(),
                            error: FrameError::Length {
                                len: u64::MAX,
                                at: 0,
                            },
                        }
                    }
                    _ => DistError::NodeDown {
                        node: peer.to_string(),
                        reason: error.to_string(),
                    },
                };
            }
            Ok(Ok(())) => match frame::decode_for_reader(&buf, &mut atoms, &mut arena, &raw_for) {
                Ok(Some(decoded)) => decoded,
                Ok(None) => continue,
                Err(error) => return malformed(&peer, error),
            },
        };
        inner.dispatch_decoded(&peer, message);
    }
}

/// The size of each chunk of a reader's payload arena.
const ARENA_CHUNK: usize = 64 * 1024;

/// The length, header included, of the whole frame at the start of
/// `buffered`, if it is all there and within `max_frame`.
fn buffered_frame(buffered: &[u8], max_frame: usize) -> Option<usize> {
    let header = buffered.get(..4)?;
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    (len <= max_frame && len <= buffered.len() - 4).then_some(4 + len)
}

/// The error that closes a connection whose peer sent a malformed frame
/// (logged).
fn malformed(peer: &str, error: FrameError) -> DistError {
    tracing::warn!(node = %peer, %error, "malformed distribution frame; closing the connection");
    DistError::Malformed {
        node: peer.to_string(),
        error,
    }
}

/// The sending side of a connection.
#[derive(Clone)]
pub(crate) enum Out {
    /// Plain TCP: callers write directly while nothing is queued.
    Tcp(Arc<TcpOut>),
    /// TLS: frames queue for the writer task; `true` if they go with a
    /// normal distribution header (without references: frames are encoded
    /// by their senders, not in the order they are queued).
    Queue(mpsc::UnboundedSender<Vec<u8>>, bool, Arc<Backlog>),
}

/// How much a queued (TLS) connection's writer has yet to write, for
/// [`Out::wait_while_busy`].
#[derive(Default)]
pub(crate) struct Backlog {
    /// Bytes of frames queued and not yet written.
    queued: AtomicUsize,
    closed: AtomicBool,
    /// Wakes held-back senders: the writer wrote a batch, or stopped.
    drained: tokio::sync::Notify,
}

impl Backlog {
    /// Queues `frame` to `tx`, counted until the writer has written it.
    fn push(&self, tx: &mpsc::UnboundedSender<Vec<u8>>, frame: Vec<u8>) -> bool {
        let len = frame.len();
        // Counted first: the writer may take it, and subtract, at once.
        self.queued.fetch_add(len, Ordering::AcqRel);
        let sent = tx.send(frame).is_ok();
        if !sent {
            self.queued.fetch_sub(len, Ordering::AcqRel);
        }
        sent
    }

    fn busy(&self) -> bool {
        !self.closed.load(Ordering::Acquire) && self.queued.load(Ordering::Acquire) > BUSY_LIMIT
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.drained.notify_waiters();
    }
}

impl Out {
    /// Encodes `message` as a frame for this connection, to be sent with
    /// [`Out::send_deferred`], or logs why it cannot be.
    /// With the peer's atom cache it carries a normal distribution header
    /// without references (it may be written before or after frames encoded
    /// with the cache, so it must not depend on them).
    pub(crate) fn encode(&self, message: Message) -> Option<Vec<u8>> {
        let header = match self {
            Out::Tcp(out) => out.header,
            Out::Queue(_, header, _) => *header,
        };
        if !header {
            return encode(message);
        }
        let mut frame = Vec::with_capacity(256);
        match super::header::encode_into(message, &mut frame, None) {
            Ok(()) => Some(frame),
            Err(error) => {
                tracing::warn!(%error, "a term could not be encoded; not sent");
                None
            }
        }
    }

    /// Encodes `messages` and sends them (or queues them) in one write,
    /// after any deferred frames; on TCP encoded under the connection's
    /// lock, with the peer's atom cache if it takes it (the cache must see
    /// frames in the order they are written). `Ok(false)` if the connection
    /// is closed.
    ///
    /// # Errors
    ///
    /// The [`FrameError`] of the first message that does not encode (the
    /// ones before it are sent).
    pub(crate) fn send_messages(
        &self,
        messages: impl IntoIterator<Item = Message>,
    ) -> Result<bool, FrameError> {
        match self {
            Out::Tcp(out) => out.send_messages(messages),
            Out::Queue(tx, header, backlog) => {
                let mut frames = Vec::new();
                let mut failed = None;
                for message in messages {
                    let encoded = if *header {
                        super::header::encode_into(message, &mut frames, None)
                    } else {
                        frame::encode_into(message, &mut frames)
                    };
                    if let Err(error) = encoded {
                        failed = Some(error);
                        break;
                    }
                }
                let sent = frames.is_empty() || backlog.push(tx, frames);
                match failed {
                    Some(error) => Err(error),
                    None => Ok(sent),
                }
            }
        }
    }

    /// [`Out::send_messages`] of one message; an encoding error is logged
    /// and answers false.
    pub(crate) fn send_message(&self, message: Message) -> bool {
        self.send_messages([message]).unwrap_or_else(|error| {
            tracing::warn!(%error, "a term could not be encoded; not sent");
            false
        })
    }

    /// Encodes `message` and queues it for the writer task, which gathers
    /// what callers queued meanwhile into one write (one-way messages:
    /// throughput over latency); on TCP the frame is encoded straight into
    /// the writer's buffer (no frame of its own to allocate, copy and free).
    /// Past [`MAX_BATCH`] queued bytes the caller writes them itself, so
    /// that a sender faster than the writer is not buffered without bound
    /// while the socket takes data. False if closed or if the message does
    /// not encode (logged).
    pub(crate) fn send_message_batched(&self, message: Message) -> bool {
        match self {
            Out::Tcp(out) => out.send_message_batched(message),
            Out::Queue(tx, _, backlog) => self
                .encode(message)
                .is_some_and(|frame| backlog.push(tx, frame)),
        }
    }

    /// Waits while more than [`BUSY_LIMIT`] bytes of one-way sends wait
    /// for this connection's writer (until its writer takes them, or the
    /// connection closes): a sender faster than the socket is held back,
    /// as OTP suspends a process sending on a busy distribution port,
    /// instead of queueing without bound. On TLS connections, the bytes
    /// queued to the writer and not yet written count.
    pub(crate) async fn wait_while_busy(&self) {
        // Nearly always not busy: one look, no waiter made.
        while self.busy() {
            let drained = match self {
                Out::Tcp(out) => out.drained.notified(),
                Out::Queue(_, _, backlog) => backlog.drained.notified(),
            };
            let mut drained = std::pin::pin!(drained);
            // Registered before the second look: a drain between the two
            // still wakes us.
            drained.as_mut().enable();
            if !self.busy() {
                return;
            }
            drained.await;
        }
    }

    /// Whether more than [`BUSY_LIMIT`] bytes wait for the writer of this
    /// open connection.
    fn busy(&self) -> bool {
        match self {
            Out::Tcp(out) => {
                let state = crate::loom::lock(&out.state);
                !state.closed && state.pending.len() - state.head > BUSY_LIMIT
            }
            Out::Queue(_, _, backlog) => backlog.busy(),
        }
    }

    /// Sends `frame` with the next frame sent, or at the next tick at the
    /// latest (for frames nobody waits on, as a call's `DEMONITOR_P`): it
    /// then costs no write of its own. False if the connection is closed.
    pub(crate) fn send_deferred(&self, frame: Vec<u8>) -> bool {
        match self {
            Out::Tcp(out) => out.send_deferred(&frame),
            Out::Queue(tx, _, backlog) => backlog.push(tx, frame),
        }
    }

    /// Stops the writer; the write side closes once it is done. Senders
    /// held back by [`wait_while_busy`](Self::wait_while_busy) go on.
    pub(crate) fn close(&self) {
        match self {
            Out::Tcp(out) => {
                crate::loom::lock(&out.state).closed = true;
                out.wake.notify_one();
                out.drained.notify_waiters();
            }
            Out::Queue(_, _, backlog) => backlog.close(),
        }
    }
}

/// A connection's reading side.
pub(crate) type ReadSide = Box<dyn tokio::io::AsyncRead + Unpin + Send>;

/// A connection's writer task, to spawn.
pub(crate) type Writer = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// The stream's sending side, its reading side, and the writer task to run
/// (ticks every `tick`, and whatever callers could not write at once).
/// `atom_cache`: the peer takes frames with a normal distribution header
/// (and its atom cache).
pub(crate) fn split(
    stream: DistStream,
    tick: Duration,
    atom_cache: bool,
) -> (Out, ReadSide, Writer) {
    match stream {
        DistStream::Tcp(stream) => {
            let (read, write) = stream.into_split();
            let out = Arc::new(TcpOut {
                write,
                state: std::sync::Mutex::new(OutState {
                    atoms: atom_cache.then(frame::SendAtomCache::new),
                    ..OutState::default()
                }),
                wake: tokio::sync::Notify::new(),
                drained: tokio::sync::Notify::new(),
                active: AtomicBool::new(false),
                header: atom_cache,
            });
            (
                Out::Tcp(out.clone()),
                Box::new(read),
                Box::pin(tcp_write_loop(out, tick)),
            )
        }
        DistStream::Tls(stream) => {
            let (read, write) = tokio::io::split(*stream);
            let (tx, rx) = mpsc::unbounded_channel();
            let backlog = Arc::new(Backlog::default());
            (
                Out::Queue(tx, atom_cache, backlog.clone()),
                Box::new(read),
                Box::pin(write_loop(write, rx, tick, backlog)),
            )
        }
    }
}

/// A TCP connection's sending side, shared by callers and the writer task.
///
/// A caller writes its frame straight to the socket (one non-blocking
/// write, no hand-off to another task) when nothing is pending and the
/// writer is idle; otherwise it appends to `pending`, which the writer
/// drains in order. Frames therefore never interleave or reorder.
pub(crate) struct TcpOut {
    write: OwnedWriteHalf,
    state: std::sync::Mutex<OutState>,
    wake: tokio::sync::Notify,
    /// Wakes the senders held back by [`Out::wait_while_busy`]: the writer
    /// took what was pending, or the connection closed.
    drained: tokio::sync::Notify,
    /// Something was sent since the writer last checked (no tick needed).
    active: AtomicBool,
    /// Frames go with a normal distribution header.
    header: bool,
}

#[derive(Default)]
pub(crate) struct OutState {
    pending: Vec<u8>,
    /// How much of `pending`'s front a sender already wrote (see
    /// [`TcpOut::send_message_batched`]); `pending` is cleared when all of
    /// it is written, so an empty `pending` still means nothing waits.
    head: usize,
    /// Frames to send with the next one (or at the next tick).
    deferred: Vec<u8>,
    writing: bool,
    closed: bool,
    /// The atoms cached on the peer, if it takes the atom cache: one-way
    /// sends are encoded with it here, under the lock, in write order.
    atoms: Option<frame::SendAtomCache>,
}

impl TcpOut {
    fn send_deferred(&self, frame: &[u8]) -> bool {
        let mut state = crate::loom::lock(&self.state);
        if state.closed {
            return false;
        }
        if state.writing || !state.pending.is_empty() {
            // The writer is draining `pending`: it takes this too.
            state.pending.extend_from_slice(frame);
        } else {
            state.deferred.extend_from_slice(frame);
        }
        true
    }

    fn send_message_batched(&self, message: Message) -> bool {
        self.active.store(true, Ordering::Relaxed);
        let mut state = crate::loom::lock(&self.state);
        if state.closed {
            return false;
        }
        let was_empty = state.pending.is_empty();
        if !state.deferred.is_empty() {
            let deferred = std::mem::take(&mut state.deferred);
            state.pending.extend_from_slice(&deferred);
        }
        let encoded = {
            let OutState { atoms, pending, .. } = &mut *state;
            match atoms {
                Some(atoms) => super::header::encode_into(message, pending, Some(atoms)),
                None => frame::encode_into(message, pending),
            }
        };
        if let Err(error) = encoded {
            drop(state);
            tracing::warn!(%error, "a term could not be encoded; not sent");
            return false;
        }
        if !state.writing && state.pending.len() - state.head >= MAX_BATCH {
            let head = state.head;
            match self.write.try_write(&state.pending[head..]) {
                Ok(n) => {
                    // Advance past what the socket took; move the rest to the
                    // front only once it is the smaller part (moving it on
                    // every partial write cost a copy of the whole queue per
                    // message while the peer read slowly).
                    state.head += n;
                    if state.head == state.pending.len() {
                        state.pending.clear();
                        state.head = 0;
                    } else if state.head >= state.pending.len() / 2 {
                        let head = state.head;
                        state.pending.drain(..head);
                        state.head = 0;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    state.closed = true;
                    drop(state);
                    self.wake.notify_one();
                    return false;
                }
            }
        }
        let wake = was_empty || state.pending.len() - state.head >= MAX_BATCH;
        drop(state);
        if wake {
            self.wake.notify_one();
        }
        true
    }

    /// Encodes `messages` (with the peer's atom cache, if it takes it) after
    /// the deferred frames, and writes them ([`TcpOut::write_or_queue`]). The
    /// frames encoded before one that fails are still sent: the cache
    /// counts on them.
    fn send_messages(
        &self,
        messages: impl IntoIterator<Item = Message>,
    ) -> Result<bool, FrameError> {
        self.active.store(true, Ordering::Relaxed);
        let mut state = crate::loom::lock(&self.state);
        if state.closed {
            return Ok(false);
        }
        let mut frames = std::mem::take(&mut state.deferred);
        let mut failed = None;
        for message in messages {
            let encoded = match &mut state.atoms {
                Some(atoms) => super::header::encode_into(message, &mut frames, Some(atoms)),
                None => frame::encode_into(message, &mut frames),
            };
            if let Err(error) = encoded {
                failed = Some(error);
                break;
            }
        }
        let sent = frames.is_empty() || self.write_or_queue(state, &frames);
        match failed {
            Some(error) => Err(error),
            None => Ok(sent),
        }
    }

    /// Writes `frame` now if nothing is queued and the writer is idle (what
    /// the socket does not take is queued), else queues it; false if the
    /// connection is closed.
    fn write_or_queue(&self, mut state: std::sync::MutexGuard<'_, OutState>, frame: &[u8]) -> bool {
        if !state.writing && state.pending.is_empty() {
            match self.write.try_write(frame) {
                Ok(n) if n == frame.len() => return true,
                Ok(n) => state.pending.extend_from_slice(&frame[n..]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    state.pending.extend_from_slice(frame);
                }
                Err(_) => {
                    state.closed = true;
                    drop(state);
                    self.wake.notify_one();
                    return false;
                }
            }
        } else {
            state.pending.extend_from_slice(frame);
        }
        drop(state);
        self.wake.notify_one();
        true
    }
}

/// Writes all of `buf`, waiting for the socket to take it.
async fn write_fully(write: &OwnedWriteHalf, buf: &[u8]) -> std::io::Result<()> {
    let mut at = 0;
    while at < buf.len() {
        write.writable().await?;
        match write.try_write(&buf[at..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Drains what callers queued, and sends a tick after `tick` without
/// traffic.
async fn tcp_write_loop(out: Arc<TcpOut>, tick: Duration) {
    // The buffer written last, cleared: it becomes `pending` again, so
    // senders do not grow a fresh buffer from nothing after every write.
    let mut spare = Vec::new();
    loop {
        let woken = tokio::time::timeout(tick, out.wake.notified())
            .await
            .is_ok();
        if !woken {
            let mut state = crate::loom::lock(&out.state);
            let deferred = std::mem::take(&mut state.deferred);
            if !deferred.is_empty() {
                state.pending.extend_from_slice(&deferred);
            } else if !out.active.swap(false, Ordering::Relaxed) {
                state.pending.extend_from_slice(&[0, 0, 0, 0]);
            }
        }
        loop {
            let buf = {
                let mut state = crate::loom::lock(&out.state);
                if state.closed {
                    drop(state);
                    out.drained.notify_waiters();
                    return;
                }
                if state.pending.is_empty() {
                    state.writing = false;
                    break;
                }
                state.writing = true;
                let head = std::mem::take(&mut state.head);
                (
                    std::mem::replace(&mut state.pending, std::mem::take(&mut spare)),
                    head,
                )
            };
            // What was pending is ours now: held-back senders go on.
            out.drained.notify_waiters();
            let (buf, head) = buf;
            if write_fully(&out.write, &buf[head..]).await.is_err() {
                crate::loom::lock(&out.state).closed = true;
                out.drained.notify_waiters();
                return;
            }
            // Kept unless a large message made it large.
            if buf.capacity() <= 2 * COALESCE {
                spare = buf;
                spare.clear();
            }
        }
    }
}

/// Writes queued frames, many per write, and a tick whenever nothing was
/// written for `tick`.
pub(crate) async fn write_loop(
    mut write: impl AsyncWrite + Unpin,
    mut frames: mpsc::UnboundedReceiver<Vec<u8>>,
    tick: Duration,
    backlog: Arc<Backlog>,
) {
    let mut out = Vec::with_capacity(COALESCE);
    loop {
        match tokio::time::timeout(tick, frames.recv()).await {
            Err(_) => out.extend_from_slice(&[0, 0, 0, 0]),
            Ok(None) => break,
            Ok(Some(frame)) => {
                out.extend_from_slice(&frame);
                while out.len() < COALESCE {
                    match frames.try_recv() {
                        Ok(frame) => out.extend_from_slice(&frame),
                        Err(_) => break,
                    }
                }
            }
        }
        if write.write_all(&out).await.is_err() {
            break;
        }
        // Every frame taken is written (a tick is not counted: `saturating`).
        let _ = backlog
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                Some(queued.saturating_sub(out.len()))
            });
        backlog.drained.notify_waiters();
        out.clear();
        if out.capacity() > 4 * COALESCE {
            out = Vec::with_capacity(COALESCE);
        }
    }
    backlog.close();
    let _ = write.shutdown().await;
}

/// Registers `alive` (the part before `@`) as a hidden node listening on
/// `port` with the EPMD at `epmd_port`; returns the creation and the stream
/// that must stay open while the registration holds.
pub(crate) async fn epmd_register(
    alive: &str,
    port: u16,
    epmd_port: u16,
) -> Result<(TcpStream, u32), DistError> {
    let stream = TcpStream::connect(("127.0.0.1", epmd_port))
        .await
        .map_err(|e| DistError::Epmd {
            reason: e.to_string(),
        })?;
    let entry = erl_dist::epmd::NodeEntry::new_hidden(alive, port);
    let (stream, creation) = erl_dist::epmd::EpmdClient::new(stream.compat())
        .register(entry)
        .await
        .map_err(|e| DistError::Epmd {
            reason: e.to_string(),
        })?;
    Ok((stream.into_inner(), creation.get()))
}

/// Encodes `message` as a frame, or logs why it cannot be.
pub(crate) fn encode(message: Message) -> Option<Vec<u8>> {
    match frame::encode(message) {
        Ok(bytes) => Some(bytes),
        Err(error) => {
            tracing::warn!(%error, "a term could not be encoded; not sent");
            None
        }
    }
}
