//! `process::count()`: the live processes of the node, mailboxes and
//! gen_servers alike. One test in its own binary, so that no other test's
//! processes come and go meanwhile.

use trellis::gen_server::{self, Context, GenServer, Init, Response};
use trellis::{BoxError, mailbox, nursery, process};

struct Idle;

impl GenServer for Idle {
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
}

#[tokio::test(start_paused = true)]
async fn count_follows_mailboxes_and_servers_as_they_start_and_end() {
    let before = process::count();
    let inbox = mailbox::create::<u32>();
    assert_eq!(process::count(), before + 1);
    nursery(|n| async move {
        let server = gen_server::start(&n, Idle).await?;
        assert_eq!(process::count(), before + 2);
        server.stop().await?;
        assert_eq!(process::count(), before + 1);
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    mailbox::destroy(inbox);
    assert_eq!(process::count(), before);
}
