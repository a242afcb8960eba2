//! Drives `examples/kvstore_basic.rs` through its client API: the whole
//! script of triotp's kvstore (set, get, an unknown command, the state
//! printed on stop).

#[path = "../examples/kvstore_basic.rs"]
#[allow(unreachable_pub)]
mod kvstore_basic;

use kvstore_basic::{KvError, KvStore, UnknownCommand};
use trellis::gen_server::{self, GenServerError};
use trellis::{BoxError, nursery};

#[tokio::test(start_paused = true)]
async fn the_basic_kvstore_runs_the_triotp_script() {
    let (store, state_on_stop) = KvStore::reporting();
    nursery(|n| async move {
        gen_server::Builder::new(store)
            .name(kvstore_basic::NAME)
            .start(&n)
            .await?;
        // set, then get the value set.
        assert_eq!(kvstore_basic::set("foo", "bar").await?, None);
        assert_eq!(kvstore_basic::get("foo").await?, Some("bar".into()));
        assert_eq!(kvstore_basic::set("foo", "baz").await?, Some("bar".into()));
        // An unknown request is answered with an error...
        let unknown = kvstore_basic::command("frobnicate").await.unwrap_err();
        assert!(
            matches!(&unknown, KvError::Unknown(UnknownCommand(c)) if c == "frobnicate"),
            "{unknown:?}"
        );
        // ...and the store goes on.
        assert_eq!(kvstore_basic::get("foo").await?, Some("baz".into()));
        kvstore_basic::print_state().await?;
        kvstore_basic::stop().await?;
        // Stopped: the name is gone, and calls say so.
        let error = kvstore_basic::get("foo").await.unwrap_err();
        assert!(
            matches!(error, KvError::Call(GenServerError::NameNotFound { .. })),
            "{error:?}"
        );
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
    // The state printed on stop.
    assert_eq!(state_on_stop.await.unwrap(), r#"[("foo", "baz")]"#);
}
