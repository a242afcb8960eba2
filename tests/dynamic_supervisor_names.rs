//! Dynamic supervisors are registered by name: reached by name or pid,
//! found with `registry::lookup`, and the name goes with the supervisor
//! however it ends. Each test uses its own names: tests share the registry.

use std::pin::pin;

use trellis::dynamic_supervisor::{self, DynamicSupervisorOptions};
use trellis::registry::{self, RegistryError};
use trellis::supervisor::{self, ChildSpec, Supervisor, SupervisorError};
use trellis::{StartError, TaskStatus, mailbox};

use trellis::BoxError;

/// A child that reports `value` and waits to be stopped.
fn job(id: &'static str, value: u32) -> ChildSpec {
    ChildSpec::new(id, move |status: TaskStatus<u32>| async move {
        status.started(value);
        trellis::wait_shutdown().await;
    })
}

fn no_such(result: Result<impl std::fmt::Debug, SupervisorError>, expected: &str) {
    match result {
        Err(SupervisorError::NoSuchSupervisor { name }) => assert_eq!(name, expected),
        other => panic!("expected NoSuchSupervisor, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn start_child_by_name_or_pid_reaches_the_supervisor() {
    trellis::nursery(|n| async move {
        let sup = n
            .start(|status| {
                dynamic_supervisor::serve(
                    DynamicSupervisorOptions::new().name("names-reach"),
                    status,
                )
            })
            .await?;
        let a = dynamic_supervisor::start_child("names-reach", job("a", 1)).await?;
        assert_eq!(a.downcast::<u32>().unwrap(), 1);
        let b = dynamic_supervisor::start_child(String::from("names-reach"), job("b", 2)).await?;
        assert_eq!(b.downcast::<u32>().unwrap(), 2);
        let c = dynamic_supervisor::start_child(sup.pid(), job("c", 3)).await?;
        assert_eq!(c.downcast::<u32>().unwrap(), 3);
        let ids: Vec<String> = sup.which_children().into_iter().map(|c| c.id).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        sup.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn registry_lookup_finds_the_running_supervisor() {
    trellis::nursery(|n| async move {
        let sup = n
            .start(|status| {
                dynamic_supervisor::serve(
                    DynamicSupervisorOptions::new().name("names-lookup"),
                    status,
                )
            })
            .await?;
        assert_eq!(registry::whereis("names-lookup"), Some(sup.pid()));
        let found = registry::lookup::<Supervisor>("names-lookup")?;
        assert_eq!(found.pid(), sup.pid());
        assert_eq!(found.name(), "names-lookup");
        // The handle found is a working one.
        let child = found.start_child(job("x", 7)).await?;
        assert_eq!(sup.count_children().active, 1);
        assert_eq!(
            registry::lookup_pid::<Supervisor>(sup.pid())?.pid(),
            sup.pid()
        );
        // Asking for another kind of handle is an error value.
        assert!(matches!(
            registry::lookup::<mailbox::Address<u32>>("names-lookup"),
            Err(RegistryError::WrongType { .. })
        ));
        dynamic_supervisor::terminate_child("names-lookup", child.id).await?;
        sup.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn which_count_and_terminate_work_by_name() {
    trellis::nursery(|n| async move {
        n.start(|status| {
            dynamic_supervisor::serve(DynamicSupervisorOptions::new().name("names-ops"), status)
        })
        .await?;
        let a = dynamic_supervisor::start_child("names-ops", job("a", 1)).await?;
        dynamic_supervisor::start_child("names-ops", job("b", 2)).await?;
        let count = dynamic_supervisor::count_children("names-ops")?;
        assert_eq!((count.specs, count.active, count.workers), (2, 2, 2));
        dynamic_supervisor::terminate_child("names-ops", a.id).await?;
        let ids: Vec<String> = dynamic_supervisor::which_children("names-ops")?
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["b"]);
        assert!(matches!(
            dynamic_supervisor::terminate_child("names-ops", a.id).await,
            Err(SupervisorError::ChildNotFound { .. })
        ));
        registry::lookup::<Supervisor>("names-ops")?.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_name_is_released_when_the_supervisor_stops_and_can_be_reused() {
    trellis::nursery(|n| async move {
        let first = n
            .start(|status| {
                dynamic_supervisor::serve(
                    DynamicSupervisorOptions::new().name("names-reuse"),
                    status,
                )
            })
            .await?;
        first.stop().await?;
        assert_eq!(registry::whereis("names-reuse"), None);
        no_such(
            dynamic_supervisor::count_children("names-reuse"),
            "\"names-reuse\"",
        );
        let second = n
            .start(|status| {
                dynamic_supervisor::serve(
                    DynamicSupervisorOptions::new().name("names-reuse"),
                    status,
                )
            })
            .await?;
        assert_ne!(second.pid(), first.pid());
        assert_eq!(registry::whereis("names-reuse"), Some(second.pid()));
        second.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    assert_eq!(registry::whereis("names-reuse"), None);
}

#[tokio::test(start_paused = true)]
async fn the_name_is_released_when_the_supervisor_is_cancelled() {
    let pid = trellis::nursery(|n| async move {
        let sup = n
            .start(|status| {
                dynamic_supervisor::serve(
                    DynamicSupervisorOptions::new().name("names-cancel"),
                    status,
                )
            })
            .await?;
        dynamic_supervisor::start_child("names-cancel", job("a", 1)).await?;
        n.cancel();
        Ok::<_, BoxError>(sup.pid())
    })
    .await
    .unwrap();
    assert_eq!(registry::whereis("names-cancel"), None);
    assert!(!trellis::process::is_alive(pid));
    no_such(dynamic_supervisor::which_children(pid), &pid.to_string());
}

#[tokio::test(start_paused = true)]
async fn the_name_is_released_when_the_task_running_it_panics() {
    let task = tokio::spawn(async {
        let mut sup = pin!(dynamic_supervisor::serve(
            DynamicSupervisorOptions::new().name("names-panic"),
            TaskStatus::ignored()
        ));
        // One poll registers the name and leaves the supervisor waiting.
        assert!(futures::poll!(sup.as_mut()).is_pending());
        assert!(registry::whereis("names-panic").is_some());
        panic!("the task running the supervisor panicked");
    });
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!(registry::whereis("names-panic"), None);
}

#[tokio::test(start_paused = true)]
async fn the_name_is_released_when_the_restart_intensity_trips() {
    let err = trellis::nursery(|n| async move {
        n.start(|status| {
            dynamic_supervisor::serve(
                DynamicSupervisorOptions::new()
                    .max_restarts(0)
                    .name("names-trip"),
                status,
            )
        })
        .await?;
        // Started, then fails: one exit is one too many.
        let crasher = ChildSpec::new("crasher", |status: TaskStatus<()>| async move {
            status.started(());
            Err::<(), _>("crash")
        });
        dynamic_supervisor::start_child("names-trip", crasher).await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("restart intensity exceeded"),
        "{err}"
    );
    assert_eq!(registry::whereis("names-trip"), None);
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_name_is_an_error_reported_by_the_start_handshake() {
    trellis::nursery(|n| async move {
        let first = n
            .start(|status| {
                dynamic_supervisor::serve(DynamicSupervisorOptions::new().name("names-dup"), status)
            })
            .await?;
        let second = n
            .start(|status| {
                dynamic_supervisor::serve(DynamicSupervisorOptions::new().name("names-dup"), status)
            })
            .await;
        let Err(StartError::Failed(failure)) = second else {
            panic!("expected a start failure, got {second:?}");
        };
        match failure
            .error()
            .and_then(|e| e.downcast_ref::<SupervisorError>())
        {
            Some(SupervisorError::NameTaken { name }) => assert_eq!(name, "names-dup"),
            other => panic!("expected NameTaken, got {other:?}"),
        }
        // The first one still owns the name.
        assert_eq!(registry::whereis("names-dup"), Some(first.pid()));
        dynamic_supervisor::start_child("names-dup", job("a", 1)).await?;

        // A name held by another kind of process is taken too.
        let inbox = mailbox::create::<u32>();
        mailbox::register("names-dup-mailbox", inbox.pid())?;
        let err = dynamic_supervisor::serve(
            DynamicSupervisorOptions::new().name("names-dup-mailbox"),
            TaskStatus::ignored(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, SupervisorError::NameTaken { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "supervisor names-dup-mailbox: name is already registered"
        );
        mailbox::destroy(inbox);
        first.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_unknown_name_or_pid_is_an_error_value() {
    no_such(
        dynamic_supervisor::start_child("names-nobody", job("a", 1)).await,
        "\"names-nobody\"",
    );
    no_such(
        dynamic_supervisor::which_children("names-nobody"),
        "\"names-nobody\"",
    );
    no_such(
        dynamic_supervisor::count_children("names-nobody"),
        "\"names-nobody\"",
    );
    let gone = trellis::process::Pid::new();
    no_such(dynamic_supervisor::count_children(gone), &gone.to_string());

    // A name that belongs to something other than a supervisor.
    let inbox = mailbox::create::<u32>();
    mailbox::register("names-not-a-supervisor", inbox.pid()).unwrap();
    no_such(
        dynamic_supervisor::count_children("names-not-a-supervisor"),
        "\"names-not-a-supervisor\"",
    );
    mailbox::destroy(inbox);

    // terminate_child needs a key from some supervisor.
    let key = trellis::nursery(|n| async move {
        let sup = n
            .start(|status| {
                dynamic_supervisor::serve(DynamicSupervisorOptions::new().name("names-key"), status)
            })
            .await?;
        let key = dynamic_supervisor::start_child(&sup, job("a", 1)).await?.id;
        sup.stop().await?;
        Ok::<_, BoxError>(key)
    })
    .await
    .unwrap();
    no_such(
        dynamic_supervisor::terminate_child("names-key", key).await,
        "\"names-key\"",
    );
}

#[tokio::test(start_paused = true)]
async fn static_supervisors_register_only_when_asked() {
    trellis::nursery(|n| async move {
        let children = || vec![ChildSpec::task("w", trellis::wait_shutdown)];
        let plain = n
            .start(|status| {
                supervisor::serve(
                    children(),
                    supervisor::SupervisorOptions::new().name("names-static"),
                    status,
                )
            })
            .await?;
        assert_eq!(registry::whereis("names-static"), None);
        // Still reachable by pid while it runs.
        let by_pid = dynamic_supervisor::count_children(plain.pid())?;
        assert_eq!(by_pid.active, 1);

        let options = supervisor::SupervisorOptions::new()
            .name("names-static-registered")
            .register(true);
        let registered = n
            .start(|status| supervisor::serve(children(), options, status))
            .await?;
        assert_eq!(
            registry::lookup::<Supervisor>("names-static-registered")?.pid(),
            registered.pid()
        );
        registered.stop().await?;
        assert_eq!(registry::whereis("names-static-registered"), None);
        assert!(!trellis::process::is_alive(registered.pid()));
        plain.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_restarted_dynamic_supervisor_takes_its_name_back() {
    trellis::nursery(|n| async move {
        let jobs = ChildSpec::new("jobs", |status: TaskStatus<Supervisor>| {
            dynamic_supervisor::serve(
                DynamicSupervisorOptions::new()
                    .max_restarts(0)
                    .name("names-nested"),
                status,
            )
        })
        .shutdown(supervisor::Shutdown::Infinity);
        let parent = n
            .start(|status| {
                supervisor::serve(
                    vec![jobs],
                    supervisor::SupervisorOptions::new().name("names-parent"),
                    status,
                )
            })
            .await?;
        let first = registry::whereis("names-nested").expect("registered");
        // A child that fails once started trips the dynamic supervisor
        // (max_restarts 0); its parent restarts it.
        let crasher = ChildSpec::new("crasher", |status: TaskStatus<()>| async move {
            status.started(());
            Err::<(), _>("crash")
        });
        dynamic_supervisor::start_child("names-nested", crasher).await?;
        // The paused clock moves only once every task is idle: by then the
        // restart is done.
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        let second = registry::whereis("names-nested").expect("registered again");
        assert_ne!(second, first);
        assert_eq!(parent.which_children()[0].restarts, 1);
        assert_eq!(
            dynamic_supervisor::count_children("names-nested")?.active,
            0
        );
        parent.stop().await?;
        assert_eq!(registry::whereis("names-nested"), None);
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}
