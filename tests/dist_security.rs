//! A peer that sends something malformed loses its own connection and
//! nothing else: the node keeps serving its other peers. The peer here is a
//! raw client that does the handshake (with the right cookie) and then
//! writes hostile bytes.

#![cfg(feature = "dist")]

use erl_dist::DistributionFlags;
use erl_dist::handshake::ClientSideHandshake;
use erl_dist::node::{Creation, LocalNode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::compat::TokioAsyncReadCompatExt;
use trellis::dist::{self, DistOptions, NodeEvent, atom};

#[allow(clippy::mod_module_files)]
mod dist_common;
use dist_common::{COOKIE, ErlNode, WAIT, unique};

/// Connects to `node` as a made-up node advertising `more` flags besides
/// the minimal set, handshake done; returns the stream and the name used.
async fn raw_peer_with(node: &dist::DistNode, more: DistributionFlags) -> (TcpStream, String) {
    let name = format!("{}@{}", unique("raw"), dist_common::host());
    let stream = TcpStream::connect(("127.0.0.1", node.port()))
        .await
        .unwrap();
    let mut local = LocalNode::new(name.parse().unwrap(), Creation::new(7));
    local.flags = DistributionFlags::default()
        | DistributionFlags::DIST_MONITOR
        | DistributionFlags::DIST_MONITOR_NAME
        | more;
    let mut handshake = ClientSideHandshake::new(stream.compat(), local, COOKIE);
    handshake
        .execute_send_name(erl_dist::LOWEST_DISTRIBUTION_PROTOCOL_VERSION)
        .await
        .unwrap();
    let (stream, _) = handshake.execute_rest(true).await.unwrap();
    (stream.into_inner(), name)
}

/// Waits for the `Down` of `peer`, skipping other events; returns its reason.
async fn down_of(events: &mut dist::NodeEvents, peer: &str) -> String {
    loop {
        match tokio::time::timeout(WAIT, events.recv()).await.unwrap() {
            Some(NodeEvent::Down { node, reason }) if node == peer => return reason,
            Some(_) => {}
            None => panic!("node stopped"),
        }
    }
}

/// Reads until the peer closes; panics if it does not within the wait.
async fn closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(_)) => {} // ticks
            Err(_) => panic!("connection not closed"),
        }
    }
}

/// A frame whose control term claims a list of four billion elements.
const HUGE_LIST: [u8; 11] = [0, 0, 0, 7, 112, 131, 108, 0xff, 0xff, 0xff, 0xff];

/// The good peer is still served: a message forwarded to it arrives.
async fn still_served(node: &dist::DistNode, erl: &mut ErlNode) {
    let mailbox = node.mailbox().unwrap();
    mailbox
        .send(("fwd", erl.name.as_str()), atom("still_here"))
        .await
        .unwrap();
    assert_eq!(erl.line().await, "still_here");
}

async fn good_peer(node: &dist::DistNode) -> ErlNode {
    let mut erl = ErlNode::start(
        &unique("good"),
        COOKIE,
        node.name(),
        "dist_peer:print(net_adm:ping(list_to_atom(os:getenv(\"TRELLIS_NODE\")))), \
         dist_peer:forward().",
    );
    assert_eq!(erl.line().await, "pong");
    erl.expect("ready").await;
    erl
}

/// Sends `bytes` to a node started with `options` from a raw peer that
/// advertised `flags` besides the minimal set, and checks that this
/// connection alone closes, its node-down reason naming `reason`, while an
/// Erlang peer stays connected and served.
async fn only_that_connection_closes(
    options: DistOptions,
    flags: DistributionFlags,
    bytes: &[u8],
    reason: &str,
) {
    dist_common::setup();
    let node = dist::start(options).await.unwrap();
    let mut events = node.monitor_nodes();
    let mut erl = good_peer(&node).await;
    let (mut evil, evil_name) = raw_peer_with(&node, flags).await;
    evil.write_all(bytes).await.unwrap();
    closed(&mut evil).await;
    let down = down_of(&mut events, &evil_name).await;
    assert!(down.contains(reason), "{down}");
    assert_eq!(node.nodes(), vec![erl.name.clone()]);
    still_served(&node, &mut erl).await;
}

fn options() -> DistOptions {
    DistOptions::short(unique("target")).cookie(COOKIE)
}

#[tokio::test]
async fn a_malformed_term_closes_that_connection_only() {
    // A control term that claims a list of four billion elements.
    only_that_connection_closes(
        options(),
        DistributionFlags::from_bits_truncate(0),
        &HUGE_LIST,
        "malformed",
    )
    .await;
}

#[tokio::test]
async fn a_malformed_frame_read_in_one_go_behind_others_closes_that_connection_only() {
    // Two ticks, then the hostile list, in one write: the reader takes the
    // later frames from its buffer, where they are decoded in place.
    let mut bytes = vec![0, 0, 0, 0, 0, 0, 0, 0];
    bytes.extend(HUGE_LIST);
    only_that_connection_closes(
        options(),
        DistributionFlags::from_bits_truncate(0),
        &bytes,
        "malformed",
    )
    .await;
}

#[tokio::test]
async fn a_frame_over_the_size_limit_closes_that_connection_only() {
    // 1 GiB announced; a few bytes sent.
    only_that_connection_closes(
        options().max_frame_len(64 * 1024),
        DistributionFlags::from_bits_truncate(0),
        &[0x40, 0, 0, 0, 112, 131],
        "malformed",
    )
    .await;
}

#[tokio::test]
async fn a_reference_to_an_empty_atom_cache_slot_closes_that_connection_only() {
    // A normal distribution header with one reference, not new, to slot 5,
    // which no frame filled. The good peer's connection caches atoms too.
    only_that_connection_closes(
        options(),
        DistributionFlags::DIST_HDR_ATOM_CACHE,
        &[0, 0, 0, 5, 131, 68, 1, 0, 5],
        "atom cache slot 5",
    )
    .await;
}
