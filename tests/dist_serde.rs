//! Typed messages through serde, against a real Erlang node: a struct
//! arrives as a map with atom keys, enum variants as atoms and tagged
//! tuples, and Erlang's calls decode into a Trellis gen_server's typed
//! requests.

#![cfg(feature = "dist")]

use serde::{Deserialize, Serialize};
use trellis::BoxError;
use trellis::dist::{self, DistOptions, Serde, Term, atom, from_term, to_term};
use trellis::gen_server::{self, Context, GenServer, Init, Response};

#[allow(clippy::mod_module_files)]
mod dist_common;
use dist_common::{COOKIE, ErlNode, WAIT, unique};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Point {
    x: i64,
    y: i64,
    label: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Request {
    GetAll,
    Put(String, i64),
    Get(String),
    Move { dx: i64, dy: i64 },
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Reply {
    Echo(Point),
}

#[tokio::test]
async fn a_struct_reaches_erlang_as_a_map_with_atom_keys_and_comes_back_typed() {
    dist_common::setup();
    let node = dist::start(DistOptions::short(unique("typed")).cookie(COOKIE))
        .await
        .unwrap();
    let mut erl = ErlNode::start(
        &unique("peer"),
        COOKIE,
        node.name(),
        "dist_peer:start(), dist_peer:forward().",
    );
    erl.expect("ready").await;
    let point = Point {
        x: 1,
        y: -2,
        label: "p".into(),
    };
    let mailbox = node.mailbox().unwrap();
    mailbox
        .send(("fwd", erl.name.as_str()), Serde(point.clone()))
        .await
        .unwrap();
    assert_eq!(erl.line().await, "#{label => <<\"p\">>,x => 1,y => -2}");
    for (request, printed) in [
        (Request::GetAll, "get_all"),
        (Request::Put("k".into(), 7), "{put,<<\"k\">>,7}"),
        (Request::Move { dx: 1, dy: 0 }, "{move,#{dx => 1,dy => 0}}"),
    ] {
        mailbox
            .send(("fwd", erl.name.as_str()), Serde(request))
            .await
            .unwrap();
        assert_eq!(erl.line().await, printed);
    }
    let reply: Serde<Reply> = node
        .call(("echo", erl.name.as_str()), Serde(point.clone()), WAIT)
        .await
        .unwrap();
    assert_eq!(reply.0, Reply::Echo(point));
}

/// A key-value store whose requests are a serde enum.
#[derive(Default)]
struct Store(std::collections::HashMap<String, i64>);

impl GenServer for Store {
    type Arg = ();
    type Call = Serde<Request>;
    type Reply = Term;
    type Cast = ();
    type Info = ();

    async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, BoxError> {
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        Serde(request): Serde<Request>,
        _: &mut Context<Self>,
    ) -> Result<Response<Term>, BoxError> {
        Ok(Response::Reply(match request {
            Request::Put(k, v) => {
                self.0.insert(k, v);
                atom("ok")
            }
            Request::Get(k) => to_term(&self.0.get(&k))?,
            Request::GetAll => {
                let mut all: Vec<_> = self.0.clone().into_iter().collect();
                all.sort();
                to_term(&all)?
            }
            Request::Move { .. } => atom("unsupported"),
        }))
    }
}

#[tokio::test]
async fn erlang_calls_decode_into_a_trellis_servers_serde_requests() {
    dist_common::setup();
    let node = dist::start(DistOptions::short(unique("store")).cookie(COOKIE))
        .await
        .unwrap();
    trellis::nursery(|n| {
        let node = node.clone();
        async move {
            let store = gen_server::start(&n, Store::default()).await.unwrap();
            node.export("store", store).unwrap();
            let mut erl = ErlNode::start(
                &unique("client"),
                COOKIE,
                node.name(),
                "S = {store, list_to_atom(os:getenv(\"TRELLIS_NODE\"))}, \
                 dist_peer:print(gen_server:call(S, {put, <<\"a\">>, 1})), \
                 dist_peer:print(gen_server:call(S, {put, \"b\", 2})), \
                 dist_peer:print(gen_server:call(S, {get, <<\"a\">>})), \
                 dist_peer:print(gen_server:call(S, {get, <<\"zz\">>})), \
                 dist_peer:print(gen_server:call(S, get_all)), \
                 dist_peer:print(gen_server:call(S, {nonsense, 1})).",
            );
            assert_eq!(erl.line().await, "ok");
            assert_eq!(erl.line().await, "ok"); // a charlist key decodes as a string
            assert_eq!(erl.line().await, "1");
            assert_eq!(erl.line().await, "undefined");
            assert_eq!(erl.line().await, "[{<<\"a\">>,1},{<<\"b\">>,2}]");
            assert_eq!(erl.line().await, "{error,badarg}");
            n.cancel();
        }
    })
    .await
    .unwrap();
}

#[test]
fn an_unknown_variant_is_an_error_naming_it() {
    let error = from_term::<Request>(atom("frobnicate")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "expected a known variant, got frobnicate"
    );
}
