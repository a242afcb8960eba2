//! [`Socket`] for tokio's TCP and Unix streams.
//!
//! Reads go through `try_io` so that a short read clears the readiness, as
//! tokio's own `AsyncRead` does on epoll and kqueue: the next read waits for
//! the reactor instead of costing a system call that would block.

use std::io::{self, Read};
use std::net::Shutdown;
use std::task::{Context, Poll, ready};

use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::{ExtraInfo, Socket, SocketAddress};

/// Reads once from a readiness-registered stream. `try_io` clears the
/// readiness only on `WouldBlock`, so a short read is reported as
/// `WouldBlock` inside the closure and its length kept aside.
macro_rules! poll_read_impl {
    // A macro only to write the same body for two stream types.
    ($stream:expr, $cx:expr, $buf:expr) => {{
        let stream = $stream;
        let buf: &mut [u8] = $buf;
        loop {
            ready!(stream.poll_read_ready($cx))?;
            let len = buf.len();
            let mut short = 0;
            let result = stream.try_io(Interest::READABLE, || {
                let n = (&*SockRef::from(stream)).read(&mut *buf)?;
                if n > 0 && n < len {
                    short = n;
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            });
            match result {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(_) if short > 0 => return Poll::Ready(Ok(short)),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }};
}

impl Socket for TcpStream {
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        poll_read_impl!(self, cx, buf)
    }

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        TcpStream::try_write(self, buf)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_write_ready(self, cx)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        SockRef::from(self).shutdown(Shutdown::Write)
    }

    fn extra_info(&self) -> ExtraInfo {
        #[allow(unused_mut)]
        let mut info = ExtraInfo::new(
            self.peer_addr().ok().map(SocketAddress::Inet),
            self.local_addr().ok().map(SocketAddress::Inet),
        );
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            info.raw_fd = Some(self.as_raw_fd());
        }
        info
    }
}

#[cfg(unix)]
mod unix {
    use super::*;
    use std::os::fd::AsRawFd;
    use tokio::net::UnixStream;

    fn unix_address(addr: io::Result<tokio::net::unix::SocketAddr>) -> Option<SocketAddress> {
        addr.ok()
            .map(|addr| SocketAddress::Unix(addr.as_pathname().map(Into::into)))
    }

    impl Socket for UnixStream {
        fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            poll_read_impl!(self, cx, buf)
        }

        fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            UnixStream::poll_read_ready(self, cx)
        }

        fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
            UnixStream::try_write(self, buf)
        }

        fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            UnixStream::poll_write_ready(self, cx)
        }

        fn shutdown_write(&self) -> io::Result<()> {
            SockRef::from(self).shutdown(Shutdown::Write)
        }

        fn extra_info(&self) -> ExtraInfo {
            let mut info = ExtraInfo::new(
                unix_address(self.peer_addr()),
                unix_address(self.local_addr()),
            );
            info.raw_fd = Some(self.as_raw_fd());
            info
        }
    }
}
