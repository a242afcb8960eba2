//! Echo through the protocol layer against a hand-written tokio echo server,
//! over loopback TCP with many connections, on a 2-worker multi-thread
//! runtime shared by servers and clients.
//!
//! - `protocol_echo_latency`: 64 connections each send 64 bytes and wait for
//!   them to come back; one iteration is one such round on every connection.
//! - `protocol_echo_throughput`: 16 connections each stream 256 KiB through
//!   the server and read it back, concurrently.
//!
//! Contenders: `tokio` — one task per connection, `read` into a 16 KiB
//! buffer then `write_all`; `trellis` — a `Protocol` whose `data_received`
//! writes the bytes back (pausing reading while the transport asks it to
//! pause writing), served by `trellis::protocol::create_server`.
//!
//! Run: `cargo bench -p trellis-benches --bench protocol_echo`
//! (add `-- --quick` for a fast, rougher run).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::future::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::Mutex;
use trellis::protocol::{Protocol, Transport, create_server};

const LATENCY_CONNECTIONS: usize = 64;
const MESSAGE: usize = 64;
const THROUGHPUT_CONNECTIONS: usize = 16;
const STREAM: usize = 256 * 1024;

/// The protocol-layer echo.
struct Echo(Option<Transport>);

impl Protocol for Echo {
    fn connection_made(&mut self, transport: Transport) {
        self.0 = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        if let Some(transport) = &self.0 {
            let _ = transport.write(data);
        }
    }
    fn pause_writing(&mut self) {
        if let Some(transport) = &self.0 {
            transport.pause_reading();
        }
    }
    fn resume_writing(&mut self) {
        if let Some(transport) = &self.0 {
            transport.resume_reading();
        }
    }
}

/// Starts the trellis server in a background task; returns its address.
async fn trellis_server() -> SocketAddr {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(trellis::nursery(|n| async move {
        let server = create_server(&n, || Echo(None), "127.0.0.1:0").await?;
        let _ = tx.send(server.local_addrs()[0].as_inet().unwrap());
        server.serve_forever().await;
        Ok::<_, trellis::protocol::ProtocolError>(())
    }));
    rx.await.unwrap()
}

/// Starts the hand-written tokio server in a background task.
async fn tokio_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0; 16 * 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

async fn connect(addr: SocketAddr, count: usize) -> Arc<Mutex<Vec<TcpStream>>> {
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        clients.push(stream);
    }
    Arc::new(Mutex::new(clients))
}

async fn latency_round(clients: &mut [TcpStream]) {
    join_all(clients.iter_mut().map(|client| async move {
        let message = [7u8; MESSAGE];
        let mut reply = [0u8; MESSAGE];
        client.write_all(&message).await.unwrap();
        client.read_exact(&mut reply).await.unwrap();
    }))
    .await;
}

async fn throughput_round(clients: &mut [TcpStream], data: &[u8]) {
    join_all(clients.iter_mut().map(|client| async move {
        let (mut reader, mut writer) = client.split();
        let mut back = vec![0u8; data.len()];
        let (written, read) = tokio::join!(writer.write_all(data), reader.read_exact(&mut back));
        written.unwrap();
        read.unwrap();
    }))
    .await;
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let addrs = rt.block_on(async {
        [
            ("tokio", tokio_server().await),
            ("trellis", trellis_server().await),
        ]
    });

    let mut group = c.benchmark_group("protocol_echo_latency");
    group.throughput(Throughput::Elements(LATENCY_CONNECTIONS as u64));
    for (name, addr) in addrs {
        let clients = rt.block_on(connect(addr, LATENCY_CONNECTIONS));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let clients = Arc::clone(&clients);
                async move {
                    let mut clients = clients.lock().await;
                    let start = Instant::now();
                    for _ in 0..iters {
                        latency_round(&mut clients).await;
                    }
                    start.elapsed()
                }
            });
        });
    }
    group.finish();

    let data: Arc<Vec<u8>> = Arc::new((0..STREAM).map(|i| i as u8).collect());
    let mut group = c.benchmark_group("protocol_echo_throughput");
    group.throughput(Throughput::Bytes((STREAM * THROUGHPUT_CONNECTIONS) as u64));
    for (name, addr) in addrs {
        let clients = rt.block_on(connect(addr, THROUGHPUT_CONNECTIONS));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (clients, data) = (Arc::clone(&clients), Arc::clone(&data));
                async move {
                    let mut clients = clients.lock().await;
                    let start = Instant::now();
                    for _ in 0..iters {
                        throughput_round(&mut clients, &data).await;
                    }
                    start.elapsed()
                }
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
