//! Dynamic supervisors: children added at run time, `max_children`,
//! `terminate_child`, `which_children` and `count_children`, and the restart
//! rules for dynamic children.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::mpsc;
use trellis::dynamic_supervisor::{self, DynamicSupervisorOptions};
use trellis::supervisor::{ChildSpec, Restart, SupervisorError};
use trellis::{TaskStatus, nursery};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn job(id: &'static str, value: u32) -> ChildSpec {
    ChildSpec::new(id, move |status: TaskStatus<u32>| async move {
        status.started(value);
        trellis::wait_shutdown().await;
    })
}

#[tokio::test(start_paused = true)]
async fn start_child_returns_its_id_and_started_value() {
    nursery(|n| async move {
        let sup = n
            .start(|status| {
                dynamic_supervisor::serve(
                    DynamicSupervisorOptions::new().name("dyn-values"),
                    status,
                )
            })
            .await?;
        let a = dynamic_supervisor::start_child(&sup, job("a", 1)).await?;
        let b = dynamic_supervisor::start_child(&sup, job("b", 2)).await?;
        assert_ne!(a.id, b.id);
        assert_eq!(b.downcast::<u32>().unwrap(), 2);
        let ids: Vec<String> = dynamic_supervisor::which_children(&sup)?
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["a", "b"]);
        sup.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn max_children_is_a_clear_error_and_frees_up_on_terminate() {
    nursery(|n| async move {
        let sup = n
            .start(|status| {
                dynamic_supervisor::serve(
                    DynamicSupervisorOptions::new()
                        .max_children(2)
                        .name("dyn-max"),
                    status,
                )
            })
            .await?;
        let first = dynamic_supervisor::start_child(&sup, job("a", 1)).await?;
        dynamic_supervisor::start_child(&sup, job("b", 2)).await?;
        let err = dynamic_supervisor::start_child(&sup, job("c", 3))
            .await
            .unwrap_err();
        assert!(matches!(err, SupervisorError::MaxChildren { max: 2, .. }));
        assert_eq!(
            err.to_string(),
            "supervisor dyn-max: max_children (2) reached"
        );
        dynamic_supervisor::terminate_child(&sup, first.id).await?;
        assert_eq!(dynamic_supervisor::count_children(&sup)?.active, 1);
        dynamic_supervisor::start_child(&sup, job("c", 3)).await?;
        let missing = dynamic_supervisor::terminate_child(&sup, first.id).await;
        assert!(matches!(
            missing,
            Err(SupervisorError::ChildNotFound { .. })
        ));
        sup.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn dynamic_supervisor_with_no_children_keeps_running() {
    nursery(|n| async move {
        let sup = n
            .start(|status| {
                dynamic_supervisor::serve(DynamicSupervisorOptions::new().name("dyn-idle"), status)
            })
            .await?;
        let once = dynamic_supervisor::start_child(
            &sup,
            ChildSpec::task("once", || async {}).restart(Restart::Temporary),
        )
        .await?;
        let _ = once;
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        assert!(sup.is_running());
        assert_eq!(dynamic_supervisor::count_children(&sup)?.specs, 0);
        sup.stop().await?;
        assert!(matches!(
            sup.stop().await,
            Err(SupervisorError::NotRunning { .. })
        ));
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn permanent_dynamic_child_is_restarted_and_keeps_its_id() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let runs = Arc::new(AtomicU32::new(0));
    let spec = ChildSpec::task("crashy", move || {
        let (tx, runs) = (tx.clone(), runs.clone());
        async move {
            let run = runs.fetch_add(1, Ordering::SeqCst);
            let _ = tx.send(run);
            if run == 0 {
                panic!("first run");
            }
            trellis::wait_shutdown().await;
        }
    });
    nursery(|n| async move {
        let sup = n
            .start(|status| {
                dynamic_supervisor::serve(
                    DynamicSupervisorOptions::new().name("dyn-restart"),
                    status,
                )
            })
            .await?;
        let child = dynamic_supervisor::start_child(&sup, spec).await?;
        assert_eq!(rx.recv().await, Some(0));
        assert_eq!(rx.recv().await, Some(1));
        let children = dynamic_supervisor::which_children(&sup)?;
        assert_eq!(children[0].key, child.id);
        assert_eq!(children[0].restarts, 1);
        sup.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn child_failing_to_start_is_reported_and_not_kept() {
    nursery(|n| async move {
        let sup = n
            .start(|status| {
                dynamic_supervisor::serve(DynamicSupervisorOptions::new().name("dyn-fail"), status)
            })
            .await?;
        let bad = ChildSpec::new("bad", |_: TaskStatus<()>| async { Err::<(), _>("nope") });
        let err = dynamic_supervisor::start_child(&sup, bad)
            .await
            .unwrap_err();
        assert!(matches!(err, SupervisorError::StartFailed { ref child, .. } if child == "bad"));
        assert_eq!(dynamic_supervisor::count_children(&sup)?.specs, 0);
        sup.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}
