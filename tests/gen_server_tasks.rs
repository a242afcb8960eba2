//! A gen_server's own tasks (`Context::spawn`): they never outlive their
//! server, whichever way it ends, and they live in the server's scope.
//!
//! The group that holds them is made on the first spawn; these tests pin
//! the guarantees that laziness must keep.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use trellis::BoxError;
use trellis::gen_server::{self, Context, Flow, GenServer, Init, Response};
use trellis::process::ExitReason;
use trellis::sync::Event;
use trellis::{CancelScope, current_deadline, move_on_after, nursery};

const LONG: Duration = Duration::from_secs(5);

/// Sets its flag when dropped: the task holding it has ended.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Spawns, on request, a task that holds a [`DropFlag`] and waits forever
/// after noting the deadline it sees.
struct Spawner {
    dropped: Arc<AtomicBool>,
    started: Event,
    /// The task's `current_deadline()`.
    deadline: Arc<Mutex<Option<Instant>>>,
}

impl Spawner {
    fn new() -> Self {
        Spawner {
            dropped: Arc::default(),
            started: Event::new(),
            deadline: Arc::default(),
        }
    }
}

impl GenServer for Spawner {
    type Arg = ();
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = ();

    async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, BoxError> {
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        (): (),
        ctx: &mut Context<Self>,
    ) -> Result<Response<()>, BoxError> {
        let flag = DropFlag(self.dropped.clone());
        let started = self.started.clone();
        let deadline = self.deadline.clone();
        ctx.spawn(async move {
            let _flag = flag;
            *deadline.lock().unwrap() = current_deadline();
            started.set();
            std::future::pending::<()>().await;
        })
        .unwrap();
        Ok(Response::Reply(()))
    }

    async fn handle_cast(&mut self, (): (), _: &mut Context<Self>) -> Result<Flow, BoxError> {
        Ok(Flow::Stop(ExitReason::Normal))
    }
}

#[tokio::test(start_paused = true)]
async fn a_server_that_never_spawns_still_starts_serves_and_stops() {
    nursery(|n| async move {
        let server = gen_server::start(&n, Spawner::new()).await?;
        server.stop().await.unwrap();
        assert_eq!(server.exit_reason(), Some(ExitReason::Normal));
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn serve_returns_only_after_the_tasks_of_its_server_have_ended() {
    let spawner = Spawner::new();
    let dropped = spawner.dropped.clone();
    let started = spawner.started.clone();
    nursery(|n| async move {
        let server = n
            .start(|status| async move {
                let result = gen_server::serve(spawner, status).await;
                // The task was cancelled and dropped before `serve` returned.
                assert!(dropped.load(Ordering::SeqCst));
                result
            })
            .await?;
        server.call((), LONG).await?;
        started.wait().await;
        server.cast(()).await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_nursery_returns_only_after_its_servers_tasks_have_ended() {
    let spawner = Spawner::new();
    let dropped = spawner.dropped.clone();
    let started = spawner.started.clone();
    nursery(|n| async move {
        let server = gen_server::start(&n, spawner).await?;
        server.call((), LONG).await?;
        started.wait().await;
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    assert!(dropped.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn an_outer_cancel_scope_reaches_the_servers_tasks_and_waits_for_them() {
    let spawner = Spawner::new();
    let dropped = spawner.dropped.clone();
    let started = spawner.started.clone();
    let scope = CancelScope::new();
    let canceller = scope.clone();
    let outcome = scope
        .run(nursery(|n| async move {
            let server = gen_server::start(&n, spawner).await?;
            server.call((), LONG).await?;
            started.wait().await;
            canceller.cancel();
            std::future::pending::<()>().await;
            Ok::<_, BoxError>(())
        }))
        .await;
    assert!(outcome.is_none(), "the scope was cancelled");
    assert!(dropped.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn the_servers_tasks_see_the_deadline_of_the_scope_it_runs_in() {
    let spawner = Spawner::new();
    let started = spawner.started.clone();
    let task_deadline = spawner.deadline.clone();
    move_on_after(LONG, async move {
        let outer = current_deadline();
        assert!(outer.is_some());
        nursery(|n| async move {
            let server = gen_server::start(&n, spawner).await?;
            server.call((), LONG).await?;
            started.wait().await;
            assert_eq!(*task_deadline.lock().unwrap(), outer);
            server.stop().await.unwrap();
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap();
    })
    .await
    .expect("done before the deadline");
}

#[tokio::test(start_paused = true)]
async fn spawning_from_terminate_while_the_server_is_killed_is_refused() {
    struct SpawnsInTerminate(Arc<AtomicBool>);

    impl GenServer for SpawnsInTerminate {
        type Arg = ();
        type Call = ();
        type Reply = ();
        type Cast = ();
        type Info = ();

        async fn init(&mut self, (): (), _: &mut Context<Self>) -> Result<Init, BoxError> {
            Ok(Init::Ready)
        }

        async fn handle_call(
            &mut self,
            (): (),
            _: &mut Context<Self>,
        ) -> Result<Response<()>, BoxError> {
            Ok(Response::Reply(()))
        }

        async fn terminate(&mut self, _: &ExitReason, ctx: &mut Context<Self>) {
            let refused = ctx.spawn(std::future::pending::<()>()).is_err();
            self.0.store(refused, Ordering::SeqCst);
        }
    }

    let refused = Arc::new(AtomicBool::new(false));
    let server = SpawnsInTerminate(refused.clone());
    nursery(|n| async move {
        gen_server::start(&n, server).await?;
        n.cancel();
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    assert!(refused.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn the_servers_tasks_belong_to_its_nursery_not_to_the_scope_it_was_started_from() {
    let spawner = Spawner::new();
    let dropped = spawner.dropped.clone();
    let started = spawner.started.clone();
    nursery(|n| async move {
        // Started from inside a cancel scope that is over (and then
        // cancelled) before the server spawns its task: as in Trio, what
        // `start` started lives in the nursery, not in the starter's scope.
        let scope = CancelScope::new();
        let canceller = scope.clone();
        let server = scope
            .run(gen_server::start(&n, spawner))
            .await
            .expect("the scope was not cancelled while starting")?;
        server.call((), LONG).await?;
        started.wait().await;
        canceller.cancel();
        tokio::time::sleep(LONG).await;
        assert!(
            !dropped.load(Ordering::SeqCst),
            "the server's task was cancelled"
        );
        server.call((), LONG).await?;
        server.stop().await?;
        assert!(dropped.load(Ordering::SeqCst));
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}
