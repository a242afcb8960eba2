use trellis::{BoxError, NurseryError, nursery};

async fn fetch_both() -> Result<(), BoxError> {
    nursery(|n| async move {
        n.spawn(async { Ok::<_, BoxError>(()) });
        Ok::<_, BoxError>(())
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn spawned() {
    tokio::spawn(fetch_both()).await.unwrap().unwrap();
    let _ = NurseryError::Closed;
}
