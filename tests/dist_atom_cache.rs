//! The distribution header's atom cache against a real Erlang node: atoms
//! cross a connection as cache references both ways (Erlang counts the
//! bytes of its distribution socket), and many distinct atoms, more than
//! the cache holds, long ones and more per message than a header can
//! reference, round-trip unchanged, repeatedly. Needs `erl`, `erlc` and
//! `epmd` (Debian's `erlang-nox`).

#![cfg(feature = "dist")]

use trellis::dist::{self, DistMailbox, DistOptions, Incoming, Term, ToTerm, atom, tuple};

#[allow(clippy::mod_module_files)]
mod dist_common;
use dist_common::{COOKIE, ErlNode, WAIT, unique};

/// Registers `back` on the Erlang node: `{From, M}` is answered with `M`;
/// `{octets, From}` with `{octets, Received, Sent}`, the byte counts of the
/// distribution socket to the Trellis node.
const BACK: &str = "T = list_to_atom(os:getenv(\"TRELLIS_NODE\")), \
     Stat = fun() -> \
         Port = proplists:get_value(T, erlang:system_info(dist_ctrl)), \
         {ok, [{recv_oct, R}, {send_oct, S}]} = inet:getstat(Port, [recv_oct, send_oct]), \
         {octets, R, S} \
     end, \
     register(back, spawn(fun Loop() -> \
         receive \
             {octets, From} -> From ! Stat(), Loop(); \
             {From, M} -> From ! M, Loop() \
         end \
     end)), \
     dist_peer:print(ready).";

async fn setup() -> (dist::DistNode, ErlNode, DistMailbox) {
    dist_common::setup();
    let node = dist::start(DistOptions::short(unique("cached")).cookie(COOKIE))
        .await
        .expect("distribution starts");
    let mut erl = ErlNode::start(&unique("cacher"), COOKIE, node.name(), BACK);
    erl.expect("ready").await;
    let mailbox = node.mailbox().expect("a mailbox");
    (node, erl, mailbox)
}

/// The next message's term.
async fn next(mailbox: &mut DistMailbox) -> Term {
    loop {
        match tokio::time::timeout(WAIT, mailbox.recv()).await {
            Ok(Some(Incoming::Message { term, .. })) => return term,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the mailbox closed"),
            Err(_) => panic!("no message within {WAIT:?}"),
        }
    }
}

/// The Erlang node's byte counts of the connection: received, sent.
async fn octets(mailbox: &mut DistMailbox, erl: &ErlNode) -> (u64, u64) {
    let ask = tuple(vec![atom("octets"), mailbox.pid().to_term()]);
    mailbox
        .send(("back", erl.name.as_str()), ask)
        .await
        .unwrap();
    let answer = next(mailbox).await;
    let Term::Tuple(t) = answer else {
        panic!("not a tuple: {answer}")
    };
    let count = |t: &Term| <u64 as dist::FromTerm>::from_term(t.clone()).unwrap();
    (count(&t.elements[1]), count(&t.elements[2]))
}

/// Sends each of `messages` to `back` and checks that it comes back equal.
async fn round_trip(mailbox: &mut DistMailbox, erl: &ErlNode, messages: &[Term]) {
    let me = mailbox.pid().to_term();
    for message in messages {
        let wrapped = tuple(vec![me.clone(), message.clone()]);
        mailbox
            .send(("back", erl.name.as_str()), wrapped)
            .await
            .unwrap();
    }
    for message in messages {
        assert_eq!(&next(mailbox).await, message);
    }
}

#[tokio::test]
async fn a_repeated_atom_crosses_as_a_cache_reference_both_ways() {
    let (_node, erl, mut mailbox) = setup().await;
    // 250 bytes of atom text in every message, each way.
    let long = atom(&"cached_atom_".repeat(21)[..250]);
    let message = tuple(vec![atom("m"), long]);
    let n = 200u64;
    round_trip(&mut mailbox, &erl, std::slice::from_ref(&message)).await;
    let (received, sent) = octets(&mut mailbox, &erl).await;
    round_trip(&mut mailbox, &erl, &vec![message; n as usize]).await;
    let (received_after, sent_after) = octets(&mut mailbox, &erl).await;
    // The `octets` exchange itself is in the counts too; well under the
    // atom's 250 bytes per message either way means no text crossed.
    let per_in = (received_after - received) / n;
    let per_out = (sent_after - sent) / n;
    assert!(per_in < 120, "{per_in} bytes per message to Erlang");
    assert!(per_out < 120, "{per_out} bytes per message from Erlang");
}

#[tokio::test]
async fn more_distinct_atoms_than_the_cache_holds_round_trip_unchanged_again_and_again() {
    let (_node, erl, mut mailbox) = setup().await;
    // 3,000 distinct atoms (the cache has 2,048 slots), 100 per message.
    let batches: Vec<Term> = (0..30)
        .map(|b| {
            let atoms: Vec<Term> = (0..100).map(|i| atom(&format!("atom_{b}_{i}"))).collect();
            tuple(vec![atom("batch"), atoms.to_term()])
        })
        .collect();
    // More distinct atoms in one message than a header references (255).
    let wide = (0..600)
        .map(|i| atom(&format!("wide_{i}")))
        .collect::<Vec<Term>>()
        .to_term();
    // Atoms of 255 characters, over 255 bytes in UTF-8 (two-byte lengths in
    // the header), and the same atom many times in one message.
    let long = atom(&"é".repeat(255));
    let longer = atom(&"ü".repeat(255));
    let repeated = tuple(vec![long.clone(), longer, long.clone(), atom("x"), long]);
    for _ in 0..3 {
        round_trip(&mut mailbox, &erl, &batches).await;
        round_trip(
            &mut mailbox,
            &erl,
            &[wide.clone(), repeated.clone(), atom("")],
        )
        .await;
    }
}
