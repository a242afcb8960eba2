//! TLS distribution, interoperating with Erlang's `-proto_dist inet_tls`:
//! mutual certificates (both sides present one, both verify the other's
//! against a CA), rustls with the ring provider.
//!
//! Over TLS, `inet_tls_dist` frames the handshake messages with 4-byte
//! lengths instead of the 2-byte lengths of plain TCP; [`Reframe`] converts
//! between the two while the handshake runs, after which frames are the
//! usual 4-byte ones on both transports.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::DistError;

/// TLS for distribution: this node's certificate chain and private key, and
/// the CA that every peer's certificate must chain to. Both directions
/// authenticate both sides, as `inet_tls_dist` with `{verify, verify_peer}`
/// and `{fail_if_no_peer_cert, true}` does.
///
/// When connecting, the peer's certificate must name the host part of its
/// node name (`a@host` → `host`) as a DNS subject alternative name.
///
/// # Examples
///
/// ```
/// use trellis::dist::DistTls;
///
/// let missing = DistTls::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem", "/nonexistent/ca.pem");
/// assert!(missing.is_err());
/// ```
#[derive(Clone)]
pub struct DistTls {
    pub(crate) connector: TlsConnector,
    pub(crate) acceptor: TlsAcceptor,
}

impl std::fmt::Debug for DistTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DistTls")
    }
}

fn tls_error(what: &str, error: impl std::fmt::Display) -> DistError {
    DistError::Tls {
        reason: format!("{what}: {error}"),
    }
}

impl DistTls {
    /// Reads the PEM files: `cert` (this node's chain, leaf first), `key`
    /// (its private key: PKCS#8, PKCS#1 or SEC1) and `ca` (the certificates
    /// peers must chain to).
    ///
    /// # Errors
    ///
    /// [`DistError::Tls`] for an unreadable file or a certificate or key
    /// rustls refuses.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
        ca: impl AsRef<Path>,
    ) -> Result<Self, DistError> {
        let chain = CertificateDer::pem_file_iter(cert.as_ref())
            .map_err(|e| tls_error("certificate", e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_error("certificate", e))?;
        let key = PrivateKeyDer::from_pem_file(key.as_ref()).map_err(|e| tls_error("key", e))?;
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(ca.as_ref()).map_err(|e| tls_error("ca", e))? {
            roots
                .add(ca.map_err(|e| tls_error("ca", e))?)
                .map_err(|e| tls_error("ca", e))?;
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("client", e))?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .map_err(|e| tls_error("client", e))?;
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| tls_error("client verifier", e))?;
        let server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("server", e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| tls_error("server", e))?;
        Ok(DistTls {
            connector: TlsConnector::from(Arc::new(client)),
            acceptor: TlsAcceptor::from(Arc::new(server)),
        })
    }
}

/// Carries the handshake's 2-byte-framed messages (as `erl_dist` writes and
/// reads them) over a stream that frames them with 4 bytes (as
/// `inet_tls_dist` does). Reads never take more than the messages' bytes
/// from the stream, so what follows the handshake is left in it.
pub(crate) struct Reframe<S> {
    inner: S,
    /// Bytes written by the handshake, 2-byte framed, not yet converted.
    written: Vec<u8>,
    /// Converted bytes (4-byte framed) not yet written to `inner`.
    out: Vec<u8>,
    /// Bytes read from `inner` for the message being read (header first).
    raw: Vec<u8>,
    /// Converted bytes (2-byte framed) not yet read by the handshake.
    ready: Vec<u8>,
}

impl<S> Reframe<S> {
    pub(crate) fn new(inner: S) -> Self {
        Reframe {
            inner,
            written: Vec::new(),
            out: Vec::new(),
            raw: Vec::new(),
            ready: Vec::new(),
        }
    }

    pub(crate) fn into_inner(self) -> S {
        self.inner
    }

    /// Moves every whole message of `written` to `out`, 4-byte framed.
    fn convert_written(&mut self) {
        while self.written.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([self.written[0], self.written[1]]));
            if self.written.len() < 2 + len {
                break;
            }
            self.out.extend_from_slice(&(len as u32).to_be_bytes());
            self.out.extend_from_slice(&self.written[2..2 + len]);
            self.written.drain(..2 + len);
        }
    }
}

fn invalid(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_string())
}

impl<S: AsyncRead + Unpin> AsyncRead for Reframe<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        while this.ready.is_empty() {
            let need = if this.raw.len() < 4 {
                4 - this.raw.len()
            } else {
                let len = u32::from_be_bytes([this.raw[0], this.raw[1], this.raw[2], this.raw[3]]);
                if len > u32::from(u16::MAX) {
                    return Poll::Ready(Err(invalid("handshake message over 64 KiB")));
                }
                let total = 4 + len as usize;
                if this.raw.len() == total {
                    this.ready.extend_from_slice(&(len as u16).to_be_bytes());
                    this.ready.extend_from_slice(&this.raw[4..]);
                    this.raw.clear();
                    continue;
                }
                total - this.raw.len()
            };
            let mut chunk = vec![0u8; need];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                return Poll::Ready(Ok(())); // end of stream
            }
            this.raw.extend_from_slice(read.filled());
        }
        let n = this.ready.len().min(buf.remaining());
        buf.put_slice(&this.ready[..n]);
        this.ready.drain(..n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Reframe<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.written.extend_from_slice(buf);
        this.convert_written();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        while !this.out.is_empty() {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &this.out))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            this.out.drain(..n);
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
