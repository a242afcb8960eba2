//! TLS distribution against Erlang's `-proto_dist inet_tls` with mutual
//! certificates: both directions, and a peer without a certificate the CA
//! signed is refused. Certificates are made per run with `openssl`.

#![cfg(feature = "dist")]

use std::path::{Path, PathBuf};
use std::process::Command;

use trellis::dist::{self, DistError, DistOptions, DistTls, Term, atom, tagged};

#[allow(clippy::mod_module_files)]
mod dist_common;
use dist_common::{COOKIE, ErlNode, WAIT, unique};

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA and, signed by `ca`, a certificate for this host (DNS name, and
/// `localhost`) usable as client and server: `<name>.pem`, `<name>.key`.
fn certificates(dir: &Path, ca: &str, name: &str) {
    if !dir.join(format!("{ca}.pem")).exists() {
        openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &format!("{ca}.key"),
            ],
        );
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                &format!("{ca}.key"),
                "-days",
                "2",
                "-subj",
                &format!("/CN={ca}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-out",
                &format!("{ca}.pem"),
            ],
        );
    }
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(
        &ext,
        format!(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:{},DNS:localhost,IP:127.0.0.1\n",
            dist_common::host()
        ),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &format!("{name}.key"),
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            &format!("/CN={name}"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// A folder with a CA, a node certificate it signed (`node`), and one a
/// stranger CA signed (`stranger`), plus Erlang's `ssl_dist_optfile`s.
fn tls_dir() -> PathBuf {
    static ONCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("trellis_tls_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        certificates(&dir, "ca", "node");
        certificates(&dir, "other_ca", "stranger");
        for (file, cert, ca) in [("erl_ok.conf", "node", "ca"), ("erl_stranger.conf", "stranger", "other_ca")] {
            let path = |n: &str| dir.join(n).display().to_string();
            let side = |verify: &str| {
                format!(
                    "[{{certfile, \"{}\"}}, {{keyfile, \"{}\"}}, {{cacertfile, \"{}\"}}, {{verify, verify_peer}}{verify}]",
                    path(&format!("{cert}.pem")),
                    path(&format!("{cert}.key")),
                    path(&format!("{ca}.pem")),
                )
            };
            std::fs::write(
                dir.join(file),
                format!(
                    "[{{server, {}}}, {{client, {}}}].\n",
                    side(", {fail_if_no_peer_cert, true}"),
                    side("")
                ),
            )
            .unwrap();
        }
        dir
    })
    .clone()
}

fn node_tls() -> DistTls {
    let dir = tls_dir();
    DistTls::from_pem_files(
        dir.join("node.pem"),
        dir.join("node.key"),
        dir.join("ca.pem"),
    )
    .unwrap()
}

async fn tls_node(prefix: &str) -> dist::DistNode {
    dist_common::setup();
    dist::start(
        DistOptions::short(unique(prefix))
            .cookie(COOKIE)
            .tls(node_tls()),
    )
    .await
    .expect("distribution starts")
}

fn erl_tls(conf: &str, eval: &str, target: &str) -> ErlNode {
    let conf = tls_dir().join(conf).display().to_string();
    ErlNode::start_with(
        &unique("tls"),
        COOKIE,
        target,
        eval,
        &["-proto_dist", "inet_tls", "-ssl_dist_optfile", &conf],
    )
}

#[tokio::test]
async fn erlang_over_inet_tls_pings_and_calls_a_trellis_tls_node() {
    let node = tls_node("tls_echo").await;
    let mut inbox = node.register("inbox").unwrap();
    let mut erl = erl_tls(
        "erl_ok.conf",
        "T = list_to_atom(os:getenv(\"TRELLIS_NODE\")), \
         dist_peer:print(net_adm:ping(T)), {inbox, T} ! hello_over_tls.",
        node.name(),
    );
    assert_eq!(erl.one_of(&["pang", "pong"]).await, "pong");
    let Some(dist::Incoming::Message { term, .. }) =
        tokio::time::timeout(WAIT, inbox.recv()).await.unwrap()
    else {
        panic!("no message")
    };
    assert_eq!(term, atom("hello_over_tls"));
}

#[tokio::test]
async fn a_trellis_tls_node_calls_an_erlang_gen_server_over_inet_tls() {
    let node = tls_node("tls_caller").await;
    let mut erl = erl_tls(
        "erl_ok.conf",
        "dist_peer:start(), dist_peer:print(ready).",
        node.name(),
    );
    erl.expect("ready").await;
    let reply: Term = node
        .call(("echo", erl.name.as_str()), atom("secure"), WAIT)
        .await
        .unwrap();
    assert_eq!(reply, tagged("echo", vec![atom("secure")]));
    // 1 MiB crosses TLS records whole.
    let big = "y".repeat(1 << 20);
    let reply: (Term, String) = node
        .call(("echo", erl.name.as_str()), big.as_str(), WAIT)
        .await
        .unwrap();
    assert_eq!(reply.1, big);
}

#[tokio::test]
async fn a_peer_whose_certificate_another_ca_signed_is_refused_both_ways() {
    let node = tls_node("tls_guarded").await;
    let mut erl = erl_tls(
        "erl_stranger.conf",
        "dist_peer:start(), dist_peer:print(ready), \
         dist_peer:print(net_adm:ping(list_to_atom(os:getenv(\"TRELLIS_NODE\")))).",
        node.name(),
    );
    erl.expect("ready").await;
    assert_eq!(erl.one_of(&["pang", "pong"]).await, "pang");
    let error = node.connect(&erl.name).await.unwrap_err();
    assert!(matches!(error, DistError::Tls { .. }), "{error}");
    assert!(node.nodes().is_empty());
}

#[tokio::test]
async fn two_trellis_tls_nodes_ping_each_other() {
    let a = tls_node("tls_a").await;
    let b = tls_node("tls_b").await;
    assert!(a.ping(b.name(), WAIT).await);
    assert!(b.ping(a.name(), WAIT).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_to_a_tls_node_that_stops_reading_is_held_back_then_goes_on_losing_nothing() {
    let node = tls_node("tls_pusher").await;
    let mut erl = erl_tls("erl_ok.conf", dist_common::SINK, node.name());
    erl.expect("ready").await;
    dist_common::held_back_while_stopped(&node, &erl).await;
}
