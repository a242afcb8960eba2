//! The `Display` of every error of `trellis::util`: words a user would
//! search for.

use trellis::util::{MailboxRepeatedEvent, UnqueuedRepeatedEvent, UtilError, wait_any};

#[tokio::test(start_paused = true)]
async fn a_second_listener_is_told_there_can_only_be_one() {
    let event = UnqueuedRepeatedEvent::new();
    let _first = event.events().unwrap();
    let err = event.events().unwrap_err();
    assert_eq!(err, UtilError::AlreadyListening);
    assert_eq!(
        err.to_string(),
        "repeated event can only have one listener, and one is already listening"
    );
    let mailbox = MailboxRepeatedEvent::new();
    let _first = mailbox.events().unwrap();
    assert!(
        mailbox
            .events()
            .unwrap_err()
            .to_string()
            .contains("can only have one listener")
    );
}

#[tokio::test(start_paused = true)]
async fn wait_any_with_nothing_to_wait_on_says_so() {
    let none: Vec<std::future::Ready<()>> = Vec::new();
    let err = wait_any(none).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "wait_any needs at least one future, got none"
    );
}
