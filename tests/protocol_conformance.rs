//! Every socket a transport drives passes the conformance check of
//! `trellis::testing`: memory pairs, TCP and Unix streams.

use tokio::net::{TcpListener, TcpStream};
use trellis::testing::{check_socket, memory_pair};

#[tokio::test(start_paused = true)]
async fn memory_pairs_pass_the_socket_conformance_check() {
    check_socket(|| async { memory_pair(1000) }).await;
    check_socket(|| async { memory_pair(7) }).await;
}

#[tokio::test]
async fn tcp_streams_pass_the_socket_conformance_check() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    check_socket(|| async {
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    })
    .await;
}

#[cfg(unix)]
#[tokio::test]
async fn unix_streams_pass_the_socket_conformance_check() {
    check_socket(|| async { tokio::net::UnixStream::pair().unwrap() }).await;
}
