//! The start vocabulary every process kind shares: `start(&n, …)` runs the
//! process in a nursery and returns its handle once started, with the
//! process's own error when it did not start; `serve(…, status)` is the
//! same body for `n.start`.

use trellis::dynamic_supervisor::{self, DynamicSupervisorOptions};
use trellis::process::ExitReason;
use trellis::registry;
use trellis::supervisor::{self, ChildSpec, SupervisorError, SupervisorOptions};
use trellis::{BoxError, TaskStatus, nursery};

#[tokio::test(start_paused = true)]
async fn supervisor_start_returns_the_handle_and_serve_is_the_same_body() {
    nursery(|n| async move {
        let children = || vec![ChildSpec::task("w", trellis::wait_shutdown)];
        let a = supervisor::start(&n, children(), SupervisorOptions::new().name("a")).await?;
        let b = n
            .start(|s| supervisor::serve(children(), SupervisorOptions::new().name("b"), s))
            .await?;
        assert_eq!((a.name(), b.name()), ("a", "b"));
        assert_eq!(a.count_children(), b.count_children());
        a.stop().await?;
        b.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn supervisor_start_gives_back_the_supervisors_own_start_error() {
    nursery(|n| async move {
        let broken = ChildSpec::new("broken", |_: TaskStatus<()>| async {
            Err::<(), _>("no config")
        });
        let err = supervisor::start(&n, vec![broken], SupervisorOptions::new())
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            SupervisorError::StartFailed { ref child, ref reason, .. }
                if child == "broken" && *reason == ExitReason::error("no config")
        ));
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_dynamic_supervisor_registers_the_name_in_its_options_and_only_then() {
    nursery(|n| async move {
        let named = DynamicSupervisorOptions::new().name("start-named");
        let sup = dynamic_supervisor::start(&n, named.clone()).await?;
        assert_eq!(registry::whereis("start-named"), Some(sup.pid()));
        let err = dynamic_supervisor::start(&n, named).await.unwrap_err();
        assert!(matches!(err, SupervisorError::NameTaken { ref name } if name == "start-named"));
        let unnamed = dynamic_supervisor::start(&n, DynamicSupervisorOptions::new()).await?;
        assert_eq!(unnamed.name(), "dynamic_supervisor");
        assert_eq!(registry::whereis("dynamic_supervisor"), None);
        // Reached by handle or pid.
        assert!(dynamic_supervisor::which_children(unnamed.pid())?.is_empty());
        sup.stop().await?;
        unnamed.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}
