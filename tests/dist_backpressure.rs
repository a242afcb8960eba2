//! One-way sends to a node that does not read: the sender is held back
//! once 1 MiB waits for the connection (OTP's busy distribution port), not
//! queued without bound, and goes on, nothing lost, when the node reads
//! again. (Over TLS: `tests/dist_tls.rs`.) Needs `erl` and `epmd` (Debian's
//! `erlang-nox`).

#![cfg(feature = "dist")]

use trellis::dist::{self, DistOptions};

#[allow(clippy::mod_module_files)]
mod dist_common;
use dist_common::{COOKIE, ErlNode, SINK, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_to_a_node_that_stops_reading_is_held_back_then_goes_on_losing_nothing() {
    dist_common::setup();
    let node = dist::start(DistOptions::short(unique("pusher")).cookie(COOKIE))
        .await
        .unwrap();
    let mut erl = ErlNode::start(&unique("stopped"), COOKIE, node.name(), SINK);
    erl.expect("ready").await;
    dist_common::held_back_while_stopped(&node, &erl).await;
}
