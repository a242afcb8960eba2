//! pg membership: joins, duplicate joins, leaves, and members leaving when
//! they exit, crash or are stopped; scopes kept apart.

use std::collections::HashSet;
use std::time::Duration;

use trellis::gen_server::{self, Context, GenServer, Init, Response};
use trellis::mailbox;
use trellis::pg::{self, PgError};
use trellis::process::ExitReason;
use trellis::{BoxError, nursery};

#[test]
fn a_process_joined_twice_is_listed_twice_and_must_leave_twice() {
    let scope = pg::scope("pg-membership-twice");
    let a = mailbox::create::<()>();
    let b = mailbox::create::<()>();
    scope.join("g", a.pid()).unwrap();
    scope.join("g", b.pid()).unwrap();
    scope.join("g", a.pid()).unwrap();
    assert_eq!(scope.get_members("g"), [a.pid(), b.pid(), a.pid()]);
    scope.leave("g", a.pid()).unwrap();
    assert_eq!(scope.get_members("g"), [b.pid(), a.pid()]);
    scope.leave("g", a.pid()).unwrap();
    assert_eq!(scope.get_members("g"), [b.pid()]);
    assert_eq!(
        scope.leave("g", a.pid()),
        Err(PgError::NotJoined {
            group: "g".into(),
            pid: a.pid()
        })
    );
}

#[test]
fn which_groups_lists_only_groups_with_members() {
    let scope = pg::scope("pg-membership-groups");
    let a = mailbox::create::<()>();
    scope.join("beta", a.pid()).unwrap();
    scope.join("alpha", a.pid()).unwrap();
    assert_eq!(
        scope.which_groups(),
        ["alpha".into(), "beta".into()] as [std::sync::Arc<str>; 2]
    );
    scope.leave("beta", a.pid()).unwrap();
    assert_eq!(
        scope.which_groups(),
        ["alpha".into()] as [std::sync::Arc<str>; 1]
    );
    assert!(scope.get_members("beta").is_empty());
}

#[test]
fn scopes_are_separate_and_the_same_name_is_the_same_scope() {
    let one = pg::scope("pg-membership-one");
    let other = pg::scope("pg-membership-other");
    let a = mailbox::create::<()>();
    one.join("g", a.pid()).unwrap();
    assert!(other.get_members("g").is_empty());
    assert_eq!(pg::scope("pg-membership-one").get_members("g"), [a.pid()]);
    assert_eq!(one.get_local_members("g"), [a.pid()]);
}

#[test]
fn the_default_scope_is_reached_by_the_free_functions() {
    let a = mailbox::create::<()>();
    pg::join("pg-membership-default", a.pid()).unwrap();
    assert_eq!(pg::get_members("pg-membership-default"), [a.pid()]);
    assert_eq!(
        pg::default_scope().get_members("pg-membership-default"),
        [a.pid()]
    );
    assert!(pg::which_groups().contains(&"pg-membership-default".into()));
    assert_eq!(pg::get_local_members("pg-membership-default"), [a.pid()]);
    pg::leave("pg-membership-default", a.pid()).unwrap();
    assert!(pg::get_members("pg-membership-default").is_empty());
}

#[test]
fn a_dead_process_cannot_join() {
    let scope = pg::scope("pg-membership-dead");
    let a = mailbox::create::<()>();
    let pid = a.pid();
    mailbox::destroy(a);
    assert_eq!(scope.join("g", pid), Err(PgError::ProcessNotFound { pid }));
    assert!(scope.get_members("g").is_empty());
}

#[test]
fn an_exiting_process_leaves_every_group_of_every_scope_at_once() {
    let one = pg::scope("pg-membership-exit-1");
    let two = pg::scope("pg-membership-exit-2");
    let a = mailbox::create::<()>();
    let b = mailbox::create::<()>();
    one.join("x", a.pid()).unwrap();
    one.join("x", a.pid()).unwrap();
    one.join("y", a.pid()).unwrap();
    one.join("x", b.pid()).unwrap();
    two.join("x", a.pid()).unwrap();
    mailbox::destroy(a);
    assert_eq!(one.get_members("x"), [b.pid()]);
    assert!(one.get_members("y").is_empty());
    assert!(two.get_members("x").is_empty());
}

struct Member {
    scope: &'static str,
}

impl GenServer for Member {
    type Arg = ();
    type Call = bool; // true: crash
    type Reply = ();
    type Cast = ();
    type Info = ();

    async fn init(&mut self, (): (), ctx: &mut Context<Self>) -> Result<Init, BoxError> {
        pg::scope(self.scope).join("members", ctx.pid())?;
        Ok(Init::Ready)
    }

    async fn handle_call(
        &mut self,
        crash: bool,
        _: &mut Context<Self>,
    ) -> Result<Response<()>, BoxError> {
        if crash {
            return Err("asked to crash".into());
        }
        Ok(Response::Reply(()))
    }
}

#[tokio::test(start_paused = true)]
async fn gen_servers_leave_when_they_stop_or_crash() {
    let scope = pg::scope("pg-membership-servers");
    let outcome = nursery(|n| async move {
        let first = gen_server::start(
            &n,
            Member {
                scope: "pg-membership-servers",
            },
        )
        .await?;
        let second = gen_server::start(
            &n,
            Member {
                scope: "pg-membership-servers",
            },
        )
        .await?;
        let members: HashSet<_> = pg::scope("pg-membership-servers")
            .get_members("members")
            .into_iter()
            .collect();
        assert_eq!(members, HashSet::from([first.pid(), second.pid()]));
        first.stop().await?;
        assert_eq!(
            pg::scope("pg-membership-servers").get_members("members"),
            [second.pid()]
        );
        let crashed = second.call(true, Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(
            crashed,
            gen_server::GenServerError::Exited {
                reason: ExitReason::Error(_),
                ..
            }
        ));
        // By the time the caller learns of the crash, the member is gone.
        assert!(
            pg::scope("pg-membership-servers")
                .get_members("members")
                .is_empty()
        );
        Ok::<_, BoxError>(())
    })
    .await;
    assert!(outcome.is_err(), "the crash fails the nursery");
    assert!(scope.which_groups().is_empty());
}
