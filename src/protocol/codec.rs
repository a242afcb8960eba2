//! The bridge to [`tokio_util::codec`]: a [`Protocol`] built from a
//! `Decoder`/`Encoder` and a handler of whole frames.
//!
//! # When to choose which
//!
//! | you have… | use |
//! |---|---|
//! | a codec, and answers computed from each frame (maybe later, from another task) | [`FramedProtocol`] |
//! | a codec, and straight-line `async` code per connection | `tokio_util::codec::Framed` over a stream from [`net`](crate::net) |
//! | no codec, or a parser that wants the raw bytes (zero-copy, incremental) | a [`Protocol`] of your own |

use std::fmt;
use std::io;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::{Protocol, Transport};

/// The handler of a [`FramedProtocol`]: called with whole frames.
pub trait FrameHandler<C: Decoder>: Send + 'static {
    /// Called with each decoded frame, in order; `writer` encodes answers,
    /// which are written together when the frames of one read are handled.
    fn frame_received(&mut self, frame: C::Item, writer: &mut FrameWriter<'_, C>);

    /// Called once, first. Default: does nothing.
    fn connection_made(&mut self, transport: &Transport) {
        let _ = transport;
    }

    /// Called when the codec fails to decode. Default: logs the error at
    /// debug level and aborts the connection; what was buffered is dropped.
    fn decode_failed(&mut self, error: C::Error, transport: &Transport) {
        drop(error); // `Decoder::Error` need not be `Debug` or `Display`
        tracing::debug!("could not decode a frame; aborting the connection");
        transport.abort();
    }

    /// Called once, last; see [`Protocol::connection_lost`]. Default: does
    /// nothing.
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let _ = error;
    }
}

/// Encodes answers of a [`FrameHandler`] into the connection's output.
pub struct FrameWriter<'a, C> {
    codec: &'a mut C,
    transport: &'a Transport,
    output: &'a mut BytesMut,
}

impl<C> fmt::Debug for FrameWriter<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameWriter")
            .field("buffered", &self.output.len())
            .finish_non_exhaustive()
    }
}

impl<C> FrameWriter<'_, C> {
    /// Encodes `item`; it is written with the other answers to this read.
    ///
    /// # Errors
    ///
    /// The codec's error; nothing is written for that item.
    pub fn send<I>(&mut self, item: I) -> Result<(), C::Error>
    where
        C: Encoder<I>,
    {
        self.codec.encode(item, self.output)
    }

    /// The connection's transport: keep a clone to answer later, from
    /// another task.
    pub fn transport(&self) -> &Transport {
        self.transport
    }
}

/// A [`Protocol`] that decodes frames with a [`tokio_util::codec`] codec and
/// hands them to a [`FrameHandler`].
///
/// Bytes are gathered until the decoder yields frames; frames are handled in
/// order; answers encoded during one read are written in one write. At end
/// of file, the decoder's `decode_eof` gets the rest, then the transport
/// closes.
///
/// # Examples
///
/// Lines in, line lengths out:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use tokio_util::codec::LinesCodec;
/// use trellis::protocol::{run_connection, FrameHandler, FrameWriter, FramedProtocol};
/// use trellis::testing::memory_pair;
///
/// struct Lengths;
///
/// impl FrameHandler<LinesCodec> for Lengths {
///     fn frame_received(&mut self, line: String, writer: &mut FrameWriter<'_, LinesCodec>) {
///         let _ = writer.send(line.len().to_string());
///     }
/// }
///
/// let (ours, mut theirs) = memory_pair(1024);
/// let protocol = FramedProtocol::new(LinesCodec::new(), Lengths);
/// let (served, answers) = tokio::join!(run_connection(protocol, ours), async move {
///     theirs.write_all(b"hello\nhi\nsplit ").await?;
///     theirs.write_all(b"line\n").await?;
///     theirs.shutdown().await?;
///     let mut answers = String::new();
///     theirs.read_to_string(&mut answers).await.map(|_| answers)
/// });
/// served?;
/// assert_eq!(answers?, "5\n2\n10\n");
/// # Ok(()) }
/// ```
pub struct FramedProtocol<C, H> {
    codec: C,
    handler: H,
    input: BytesMut,
    output: BytesMut,
    transport: Option<Transport>,
}

impl<C, H> fmt::Debug for FramedProtocol<C, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FramedProtocol")
            .field("buffered_input", &self.input.len())
            .finish_non_exhaustive()
    }
}

impl<C, H> FramedProtocol<C, H>
where
    C: Decoder + Send + 'static,
    H: FrameHandler<C>,
{
    /// A protocol decoding with `codec` and handing frames to `handler`.
    pub fn new(codec: C, handler: H) -> Self {
        FramedProtocol {
            codec,
            handler,
            input: BytesMut::new(),
            output: BytesMut::new(),
            transport: None,
        }
    }

    /// The handler, e.g. to read its state after the connection ended.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, by value.
    pub fn into_handler(self) -> H {
        self.handler
    }

    fn decode(&mut self, eof: bool) {
        let Some(transport) = self.transport.as_ref() else {
            return;
        };
        loop {
            let decoded = if eof {
                self.codec.decode_eof(&mut self.input)
            } else {
                self.codec.decode(&mut self.input)
            };
            match decoded {
                Ok(Some(frame)) => {
                    let mut writer = FrameWriter {
                        codec: &mut self.codec,
                        transport,
                        output: &mut self.output,
                    };
                    self.handler.frame_received(frame, &mut writer);
                }
                Ok(None) => break,
                Err(error) => {
                    self.input.clear();
                    self.handler.decode_failed(error, transport);
                    break;
                }
            }
        }
        if !self.output.is_empty() {
            // A closed transport discards the answers, as asyncio does.
            let _ = transport.write(&self.output);
            self.output.clear();
        }
    }
}

impl<C, H> Protocol for FramedProtocol<C, H>
where
    C: Decoder + Send + 'static,
    H: FrameHandler<C>,
{
    fn connection_made(&mut self, transport: Transport) {
        self.handler.connection_made(&transport);
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        self.input.extend_from_slice(data);
        self.decode(false);
    }

    fn eof_received(&mut self) -> bool {
        if !self.input.is_empty() {
            self.decode(true);
        }
        false
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.handler.connection_lost(error);
    }
}
