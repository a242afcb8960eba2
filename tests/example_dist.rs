//! Drives `examples/dist_echo.rs` and `examples/dist_call.rs` against a real
//! Erlang node: the README's session (`net_adm:ping` → `pong`,
//! `gen_server:call({echo, Node}, hello)` → `{echo, hello}`), and the Rust
//! node's typed call into Erlang's `application_controller`.

#![cfg(feature = "dist")]

#[path = "../examples/dist_echo.rs"]
#[allow(unreachable_pub, dead_code)]
mod dist_echo;

#[path = "../examples/dist_call.rs"]
#[allow(unreachable_pub, dead_code)]
mod dist_call;

#[allow(clippy::mod_module_files)]
mod dist_common;
use dist_common::{COOKIE, ErlNode, unique};
use trellis::dist::{self, DistError, DistOptions};

#[tokio::test]
async fn the_echo_example_answers_ping_and_calls_from_erlang() {
    dist_common::setup();
    let name = unique("echo");
    let args = ["--sname", name.as_str(), "--cookie", COOKIE].map(String::from);
    let options = dist_echo::options(args.into_iter()).unwrap();
    trellis::nursery(|n| async move {
        let node = dist_echo::start(&n, options).await.unwrap();
        assert_eq!(node.name(), format!("{name}@{}", dist_common::host()));
        let mut erl = ErlNode::start(
            &unique("a"),
            COOKIE,
            node.name(),
            "T = list_to_atom(os:getenv(\"TRELLIS_NODE\")), \
             dist_peer:print(net_adm:ping(T)), \
             dist_peer:print(gen_server:call({echo, T}, hello)).",
        );
        assert_eq!(erl.line().await, "pong");
        assert_eq!(erl.line().await, "{echo,hello}");
        n.cancel();
    })
    .await
    .unwrap();
}

#[test]
fn the_echo_example_refuses_unknown_flags_and_needs_a_name() {
    let args = |a: &[&str]| {
        a.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    };
    assert!(dist_echo::options(args(&["--bogus", "x"])).is_err());
    assert!(dist_echo::options(args(&["--cookie", "x"])).is_err());
    assert!(dist_echo::options(args(&["--sname", "x"])).is_ok());
}

#[tokio::test]
async fn the_call_example_lists_the_applications_of_an_erlang_node() {
    dist_common::setup();
    let node = dist::start(DistOptions::short(unique("caller")).cookie(COOKIE))
        .await
        .unwrap();
    let mut erl = ErlNode::start(&unique("a"), COOKIE, node.name(), "dist_peer:print(ready).");
    erl.expect("ready").await;
    let apps = dist_call::which_applications(&node, &erl.name)
        .await
        .unwrap();
    let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
    assert!(
        names.contains(&"kernel") && names.contains(&"stdlib"),
        "{names:?}"
    );
    let kernel = apps.iter().find(|a| a.name == "kernel").unwrap();
    assert_eq!(kernel.description, "ERTS  CXC 138 10");
    let missing = node
        .call::<dist::Term>(
            ("no_such_server", erl.name.as_str()),
            dist::atom("hi"),
            dist_call::TIMEOUT,
        )
        .await;
    assert!(matches!(missing, Err(DistError::NoProcess { .. })));
}
