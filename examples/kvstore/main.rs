//! kvstore: a Redis-protocol key-value server built only from Trellis parts.
//!
//! (Interim wiring: shards and the listener in one nursery; the supervision
//! tree replaces it.)

mod commands;
mod connection;
mod resp;
mod shard;

use std::time::Duration;

use trellis::gen_server::{self, BoxError, StartOptions};
use trellis::protocol::create_server;

use crate::commands::{Router, shard_name};
use crate::connection::RespConnection;
use crate::resp::Limits;
use crate::shard::Shard;

fn main() -> Result<(), BoxError> {
    let shards = std::thread::available_parallelism().map_or(2, |n| n.get());
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:6380".into());
    trellis::run(async move {
        trellis::nursery(|n| async move {
            for i in 0..shards {
                gen_server::start(
                    &n,
                    Shard::default(),
                    (),
                    StartOptions::new().name(shard_name(i)),
                )
                .await?;
            }
            let router = Router::new(shards);
            let limits = Limits::default();
            let server = create_server(
                &n,
                move || RespConnection::new(router.clone(), limits),
                addr,
            )
            .await?;
            println!("kvstore listening on {:?}", server.local_addrs());
            tokio::signal::ctrl_c().await?;
            n.shutdown(Duration::from_secs(1));
            Ok::<_, BoxError>(())
        })
        .await
        .map_err(BoxError::from)
    })
}
