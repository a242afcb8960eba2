//! Long node names (`erl -name a@127.0.0.1`, [`DistOptions::long`]) against
//! a real Erlang node: ping and gen_server calls both ways.

#![cfg(feature = "dist")]

use trellis::BoxError;
use trellis::dist::{self, DistOptions, Term, atom, tuple};
use trellis::gen_server::{self};

#[allow(clippy::mod_module_files)]
mod dist_common;
use dist_common::{COOKIE, Echo, ErlNode, WAIT, unique};

#[tokio::test]
async fn a_long_named_trellis_node_and_a_long_named_erlang_node_ping_and_call_each_other() {
    dist_common::setup();
    let node =
        dist::start(DistOptions::long(format!("{}@127.0.0.1", unique("long"))).cookie(COOKIE))
            .await
            .expect("distribution starts");
    assert!(node.name().ends_with("@127.0.0.1"));
    let erl_name = format!("{}@127.0.0.1", unique("erl_long"));
    trellis::nursery(|n| {
        let node = node.clone();
        async move {
            let server = gen_server::start(&n, Echo).await?;
            node.export("echo", server)?;
            let mut erl = ErlNode::start_long(
                &erl_name,
                COOKIE,
                node.name(),
                "T = list_to_atom(os:getenv(\"TRELLIS_NODE\")), \
                 dist_peer:start(), \
                 dist_peer:print(net_adm:ping(T)), \
                 dist_peer:print(gen_server:call({echo, T}, hello)).",
            );
            assert_eq!(erl.line().await, "pong");
            assert_eq!(erl.line().await, "{echo,hello}");
            // And from Trellis: ping, a call by name.
            assert!(node.ping(&erl.name, WAIT).await);
            let reply: Term = node
                .call(("echo", erl.name.as_str()), atom("hi"), WAIT)
                .await?;
            assert_eq!(reply, tuple(vec![atom("echo"), atom("hi")]));
            n.cancel();
            Ok::<_, BoxError>(())
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_long_named_trellis_node_pings_a_long_named_erlang_node_and_gets_pang_for_an_unknown_one()
{
    dist_common::setup();
    let node =
        dist::start(DistOptions::long(format!("{}@127.0.0.1", unique("long"))).cookie(COOKIE))
            .await
            .expect("distribution starts");
    let erl_name = format!("{}@127.0.0.1", unique("erl_long"));
    let mut erl = ErlNode::start_long(&erl_name, COOKIE, node.name(), "dist_peer:print(ready).");
    erl.expect("ready").await;
    assert!(node.ping(&erl_name, WAIT).await);
    assert_eq!(node.nodes(), vec![erl_name.clone()]);
    drop(erl);
    let gone = format!("{}@127.0.0.1", unique("never"));
    assert!(!node.ping(&gone, WAIT).await);
}
