//! An Elixir node against a Trellis node: Elixir pings it and
//! `GenServer.call`s an exported Trellis gen_server; Trellis calls an Elixir
//! `GenServer` whose replies (a struct, a tagged tuple) decode through the
//! serde bridge. Needs `elixir` (Debian's `elixir` package): skipped with a
//! message when it is missing, a failure when `CI` is set.

#![cfg(feature = "dist")]

use serde::{Deserialize, Serialize};
use trellis::BoxError;
use trellis::dist::{self, DistOptions, Serde};
use trellis::gen_server::{self};

#[allow(clippy::mod_module_files)]
mod dist_common;
use dist_common::{COOKIE, Echo, ErlNode, WAIT, unique};

/// The Elixir side: a `Shapes` GenServer registered as `:shapes`, then a
/// ping and a call to the Trellis node's `:echo`, printed.
const SCRIPT: &str = r#"
defmodule Point do
  defstruct [:x, :y, :label]
end

defmodule Shapes do
  use GenServer
  def init(state), do: {:ok, state}
  def handle_call(:origin, _from, s), do: {:reply, %Point{x: 0, y: 0, label: "origin"}, s}
  def handle_call({:move, %{dx: dx, dy: dy}}, _from, s),
    do: {:reply, {:moved, %Point{x: dx, y: dy, label: "moved"}}, s}
  def handle_call(:missing, _from, s), do: {:reply, :not_found, s}
end

{:ok, _} = GenServer.start(Shapes, nil, name: :shapes)
t = String.to_atom(System.get_env("TRELLIS_NODE"))
IO.inspect(Node.ping(t))
IO.inspect(GenServer.call({:echo, t}, "hello"))
IO.inspect(GenServer.call({:echo, t}, {:add, 1, %{a: 2}}))
IO.puts("ready")
Process.sleep(:infinity)
"#;

/// An Elixir `%Point{}`: its `__struct__` key is ignored.
#[derive(Deserialize, Debug, PartialEq)]
struct Point {
    x: i64,
    y: i64,
    label: String,
}

/// What this test asks `Shapes`: `:origin`, `{:move, %{dx: .., dy: ..}}`.
#[derive(Serialize)]
enum Ask {
    Origin,
    Move { dx: i64, dy: i64 },
    Missing,
}

/// `Shapes`'s answers that are not a bare struct.
#[derive(Deserialize, Debug, PartialEq)]
enum Answer {
    Moved(Point),
    NotFound,
}

#[tokio::test]
async fn an_elixir_node_pings_and_calls_trellis_and_trellis_decodes_elixir_structs_and_tagged_tuples()
 {
    if !ErlNode::elixir_available() {
        return;
    }
    dist_common::setup();
    let node = dist::start(DistOptions::short(unique("exnode")).cookie(COOKIE))
        .await
        .expect("distribution starts");
    trellis::nursery(|n| {
        let node = node.clone();
        async move {
            let server = gen_server::start(&n, Echo).await?;
            node.export("echo", server)?;
            let mut ex = ErlNode::start_elixir(&unique("elixir"), COOKIE, node.name(), SCRIPT);
            assert_eq!(ex.line().await, ":pong");
            assert_eq!(ex.line().await, "{:echo, \"hello\"}");
            assert_eq!(ex.line().await, "{:echo, {:add, 1, %{a: 2}}}");
            ex.expect("ready").await;
            let shapes = ("shapes", ex.name.as_str());
            let Serde(origin) = node
                .call::<Serde<Point>>(shapes, Serde(Ask::Origin), WAIT)
                .await?;
            assert_eq!(
                origin,
                Point {
                    x: 0,
                    y: 0,
                    label: "origin".into()
                }
            );
            let Serde(moved) = node
                .call::<Serde<Answer>>(shapes, Serde(Ask::Move { dx: 3, dy: -4 }), WAIT)
                .await?;
            assert_eq!(
                moved,
                Answer::Moved(Point {
                    x: 3,
                    y: -4,
                    label: "moved".into()
                })
            );
            let Serde(missing) = node
                .call::<Serde<Answer>>(shapes, Serde(Ask::Missing), WAIT)
                .await?;
            assert_eq!(missing, Answer::NotFound);
            n.cancel();
            Ok::<_, BoxError>(())
        }
    })
    .await
    .unwrap();
}
