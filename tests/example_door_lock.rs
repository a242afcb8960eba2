//! Drives `examples/door_lock.rs` through its API: the right code opens
//! the door, which locks itself after 10 s; a wrong code keeps it locked;
//! a half-typed code is forgotten after 30 s; buttons pressed while open
//! wait until the door has locked.

#[path = "../examples/door_lock.rs"]
#[allow(unreachable_pub, dead_code)]
mod door_lock;

use std::time::Duration;

use door_lock::{Door, FORGET_AFTER, OPEN_FOR};
use tokio::time::Instant;
use trellis::{BoxError, nursery};

#[tokio::test(start_paused = true)]
async fn the_right_code_opens_the_door_until_the_state_timeout_locks_it() {
    nursery(|n| async move {
        let door = door_lock::start(&n, &[1, 2, 3]).await?;
        assert_eq!(door_lock::status(&door).await?, (Door::Locked, 0));
        for digit in [9, 1, 2, 3] {
            door_lock::button(&door, digit).await?;
        }
        let opened = Instant::now();
        assert_eq!(door_lock::status(&door).await?, (Door::Open, 0));
        // Status calls are events, but do not cancel a state timeout.
        tokio::time::sleep(OPEN_FOR - Duration::from_millis(1)).await;
        assert_eq!(door_lock::status(&door).await?.0, Door::Open);
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(door_lock::status(&door).await?, (Door::Locked, 0));
        assert!(opened.elapsed() > OPEN_FOR);
        assert_eq!(
            door_lock::history(&door).await?,
            ["locked", "unlocked", "locked"]
        );
        door.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_wrong_code_keeps_the_door_locked() {
    nursery(|n| async move {
        let door = door_lock::start(&n, &[1, 2, 3]).await?;
        for digit in [3, 2, 1, 4] {
            door_lock::button(&door, digit).await?;
        }
        assert_eq!(door_lock::status(&door).await?.0, Door::Locked);
        assert_eq!(door_lock::history(&door).await?, ["locked"]);
        door.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_half_typed_code_is_forgotten_after_a_quiet_while() {
    nursery(|n| async move {
        let door = door_lock::start(&n, &[1, 2, 3]).await?;
        door_lock::button(&door, 1).await?;
        door_lock::button(&door, 2).await?;
        tokio::time::sleep(FORGET_AFTER + Duration::from_secs(1)).await;
        // Forgotten: the 3 alone does not open.
        door_lock::button(&door, 3).await?;
        assert_eq!(door_lock::status(&door).await?, (Door::Locked, 1));
        door.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn buttons_pressed_while_open_are_typed_once_the_door_locks() {
    nursery(|n| async move {
        let door = door_lock::start(&n, &[1, 2, 3]).await?;
        for digit in [1, 2, 3, 7, 8] {
            door_lock::button(&door, digit).await?;
        }
        assert_eq!(door_lock::status(&door).await?, (Door::Open, 0));
        door_lock::lock(&door).await?;
        // Re-delivered after the state change: 7 and 8 are now typed.
        assert_eq!(door_lock::status(&door).await?, (Door::Locked, 2));
        door.stop().await?;
        Ok::<_, BoxError>(())
    })
    .await
    .unwrap();
}
