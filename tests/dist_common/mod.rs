//! Shared by the `dist_*` tests: real Erlang nodes started with `erl`,
//! killed when their guard drops (even when a test fails), and unique node
//! names.

#![allow(dead_code)] // each test file uses a part

use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// The cookie every test node shares.
pub(crate) const COOKIE: &str = "trellis-test-cookie";

/// How long any one wait on an Erlang node may take.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// A node name no other test (or test run) uses.
pub(crate) fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// This host's short name, as `erl -sname` uses it.
pub(crate) fn host() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    host.trim().split('.').next().unwrap().to_string()
}

/// Starts `epmd -daemon` (a no-op if it runs) and compiles the Erlang
/// helper module once; returns the folder with its `.beam`.
pub(crate) fn setup() -> std::path::PathBuf {
    static ONCE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let status = std::process::Command::new("epmd").arg("-daemon").status();
        assert!(status.is_ok_and(|s| s.success()), "epmd -daemon failed");
        let out = std::env::temp_dir().join(format!("trellis_dist_{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/erlang/dist_peer.erl");
        let status = std::process::Command::new("erlc")
            .arg("-o")
            .arg(&out)
            .arg(src)
            .status()
            .expect("erlc runs");
        assert!(status.success(), "erlc failed");
        out
    })
    .clone()
}

/// A real Erlang node, killed on drop.
pub(crate) struct ErlNode {
    pub(crate) name: String,
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl ErlNode {
    /// Starts `erl -sname <short> -setcookie <cookie>` running `eval`
    /// (`TRELLIS_NODE` in its environment is `target`).
    pub(crate) fn start(short: &str, cookie: &str, target: &str, eval: &str) -> ErlNode {
        Self::start_with(short, cookie, target, eval, &[])
    }

    /// As [`ErlNode::start`], with more `erl` arguments.
    pub(crate) fn start_with(
        short: &str,
        cookie: &str,
        target: &str,
        eval: &str,
        extra: &[&str],
    ) -> ErlNode {
        Self::spawn(
            "-sname",
            short,
            &format!("{short}@{}", host()),
            cookie,
            target,
            eval,
            extra,
        )
    }

    /// Starts `erl -name <full>` (a long name, `name@host.domain` or
    /// `name@127.0.0.1`), otherwise as [`ErlNode::start`].
    pub(crate) fn start_long(full: &str, cookie: &str, target: &str, eval: &str) -> ErlNode {
        Self::spawn("-name", full, full, cookie, target, eval, &[])
    }

    /// Whether `elixir` is installed. Under `CI` it must be: a missing
    /// `elixir` panics there instead of skipping the Elixir tests.
    pub(crate) fn elixir_available() -> bool {
        let found = std::process::Command::new("elixir")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found && std::env::var_os("CI").is_some() {
            panic!("elixir is not installed, and CI is set: install it (apt-get install elixir)");
        }
        if !found {
            eprintln!("elixir not installed: skipping (set CI to make this a failure)");
        }
        found
    }

    /// Starts `elixir --sname <short> --cookie <cookie> -e <script>`, a
    /// hidden Elixir node (`TRELLIS_NODE` in its environment is `target`).
    pub(crate) fn start_elixir(short: &str, cookie: &str, target: &str, script: &str) -> ErlNode {
        setup();
        let mut child = Command::new("elixir")
            .args([
                "--sname", short, "--cookie", cookie, "--hidden", "-e", script,
            ])
            .env("TRELLIS_NODE", target)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("elixir starts");
        let stdout = child.stdout.take().unwrap();
        ErlNode {
            name: format!("{short}@{}", host()),
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    fn spawn(
        flag: &str,
        name: &str,
        full: &str,
        cookie: &str,
        target: &str,
        eval: &str,
        extra: &[&str],
    ) -> ErlNode {
        let beams = setup();
        let mut child = Command::new("erl")
            .args([
                flag,
                name,
                "-setcookie",
                cookie,
                "-noshell",
                "-hidden",
                "-pa",
            ])
            .arg(&beams)
            .args(extra)
            .args(["-eval", eval])
            .env("TRELLIS_NODE", target)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("erl starts");
        let stdout = child.stdout.take().unwrap();
        ErlNode {
            name: full.to_string(),
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// The next line the node prints, within [`WAIT`].
    pub(crate) async fn line(&mut self) -> String {
        match tokio::time::timeout(WAIT, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            other => panic!("no line from {}: {other:?}", self.name),
        }
    }

    /// Waits until the node prints `expected` (skipping other lines).
    pub(crate) async fn expect(&mut self, expected: &str) {
        loop {
            let line = self.line().await;
            if line.trim() == expected {
                return;
            }
        }
    }

    /// The first line that is one of `choices` (Erlang's own reports, such
    /// as TLS alerts, are skipped).
    pub(crate) async fn one_of(&mut self, choices: &[&str]) -> String {
        loop {
            let line = self.line().await;
            if choices.contains(&line.trim()) {
                return line.trim().to_string();
            }
        }
    }

    /// The OS pid of the `erl` process.
    pub(crate) fn os_pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Sends `signal` (`-9`, `-STOP`, `-CONT`) to the node.
    pub(crate) fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(signal)
            .arg(self.os_pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for ErlNode {
    fn drop(&mut self) {
        // A stopped node must be continued to die promptly.
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
        }
        let _ = self.child.start_kill();
    }
}

/// A Trellis gen_server that answers any call `X` with `{echo, X}`.
pub(crate) struct Echo;

impl trellis::gen_server::GenServer for Echo {
    type Arg = ();
    type Call = trellis::dist::Term;
    type Reply = trellis::dist::Term;
    type Cast = ();
    type Info = ();

    async fn init(
        &mut self,
        (): (),
        _: &mut trellis::gen_server::Context<Self>,
    ) -> Result<trellis::gen_server::Init, trellis::BoxError> {
        Ok(trellis::gen_server::Init::Ready)
    }

    async fn handle_call(
        &mut self,
        x: trellis::dist::Term,
        _: &mut trellis::gen_server::Context<Self>,
    ) -> Result<trellis::gen_server::Response<trellis::dist::Term>, trellis::BoxError> {
        Ok(trellis::gen_server::Response::Reply(trellis::dist::tagged(
            "echo",
            vec![x],
        )))
    }
}

/// Registers `sink` on an Erlang node: counts what it receives; `{count,
/// From}` is answered with `{count, N}` (the back-pressure tests).
pub(crate) const SINK: &str = "register(sink, spawn(fun() -> \
         Loop = fun Loop(N) -> \
             receive \
                 {count, From} -> From ! {count, N}, Loop(N); \
                 _ -> Loop(N + 1) \
             end \
         end, \
         Loop(0) \
     end)), \
     dist_peer:print(ready).";

/// A send [`fill_until_held`] found held back.
pub(crate) type HeldSend<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), trellis::dist::DistError>> + 'a>>;

/// Sends 16 KiB messages to `sink` on `node` (which must have stopped
/// reading) until one send is held back rather than done at its first
/// poll: how many were sent, and that send. Fails past 64 MiB.
pub(crate) fn fill_until_held<'a>(
    mailbox: &'a trellis::dist::DistMailbox,
    node: &'a str,
) -> (u64, HeldSend<'a>) {
    let payload = trellis::dist::Term::from(eetf::Binary::from(vec![7u8; 16 * 1024]));
    let mut sent = 0u64;
    loop {
        assert!(
            sent < 4096,
            "64 MiB sent to a node that reads nothing, and no send held back"
        );
        let mut send: HeldSend<'a> = Box::pin(mailbox.send(("sink", node), payload.clone()));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match send.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(result) => {
                result.unwrap();
                sent += 1;
            }
            std::task::Poll::Pending => return (sent, send),
        }
    }
}

/// The held send is still held after a scheduler pass; it goes on once
/// `resume` lets the node read again.
pub(crate) async fn release(mut held: HeldSend<'_>, resume: impl FnOnce()) {
    tokio::task::yield_now().await;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(
        held.as_mut().poll(&mut cx).is_pending(),
        "let go while nothing drained"
    );
    resume();
    tokio::time::timeout(WAIT, held)
        .await
        .expect("the held send goes on once the node reads")
        .unwrap();
}

/// How many messages `sink` on `node` has received (after everything
/// this mailbox sent before asking).
pub(crate) async fn sink_count(mailbox: &mut trellis::dist::DistMailbox, node: &str) -> u64 {
    use trellis::dist::{FromTerm, Incoming, Term, ToTerm, atom, tuple};
    let ask = tuple(vec![atom("count"), mailbox.pid().to_term()]);
    mailbox.send(("sink", node), ask).await.unwrap();
    loop {
        match tokio::time::timeout(WAIT, mailbox.recv()).await.unwrap() {
            Some(Incoming::Message {
                term: Term::Tuple(t),
                ..
            }) if t.elements.len() == 2 && t.elements[0] == atom("count") => {
                return u64::from_term(t.elements[1].clone()).unwrap();
            }
            Some(_) => {}
            None => panic!("the node stopped"),
        }
    }
}

/// The back-pressure scenario against `erl`, which runs [`SINK`]: a
/// message, then the node stopped; sends until one is held back
/// ([`fill_until_held`]); it goes on when the node continues
/// ([`release`]); the sink counts every message sent.
pub(crate) async fn held_back_while_stopped(node: &trellis::dist::DistNode, erl: &ErlNode) {
    let mut mailbox = node.mailbox().unwrap();
    mailbox
        .send(("sink", erl.name.as_str()), trellis::dist::atom("hello"))
        .await
        .unwrap();
    erl.signal("-STOP");
    let (filled, held) = fill_until_held(&mailbox, &erl.name);
    release(held, || erl.signal("-CONT")).await;
    assert_eq!(sink_count(&mut mailbox, &erl.name).await, 1 + filled + 1);
}
