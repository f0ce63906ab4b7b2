//! The data dir over time, in process: garbage collection keeps what
//! versions use and removes the rest, and the storage cap refuses an upload
//! that does not fit without storing any of it.

use crate::support::*;
use flint_gateway::core::{CoreError, Target};
use flint_spec::Digest;
use flint_test_artifacts as artifacts;
use std::path::Path;
use std::time::Duration;

/// The names of the files of the blob store and the artifact cache.
fn stored(data: &Path) -> Vec<String> {
    let mut names: Vec<String> = ["blobs", "cache"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(data.join(sub)).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn garbage_collection_removes_only_what_no_version_uses() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = config(&dir);
    settings.gc_grace = Duration::ZERO;
    let data = settings.data_dir.clone();
    let control = open(settings).await;
    deploy(&control, "live", artifacts::PROBE).await;
    let live = Digest::of(&component(artifacts::PROBE));
    let upload = control
        .upload_component(component(artifacts::HELLO), None)
        .await
        .unwrap();
    assert!(upload.created);
    deploy(&control, "deleted", artifacts::ECHO).await;
    control.delete("deleted").await.unwrap();
    assert_eq!(stored(&data).len(), 4, "{:?}", stored(&data));

    let report = control.collect_garbage().await.unwrap();
    assert_eq!(report.removed.len(), 2, "{report:?}");
    assert!(report.bytes() > 0);
    let left = stored(&data);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        left.iter().all(|name| name.starts_with(live.hex())),
        "{left:?}"
    );
    let (_, _, counter) = invoke(&control, "live", Target::Default, "/counter")
        .await
        .unwrap();
    assert_eq!(counter, "1");
    assert!(control.collect_garbage().await.unwrap().removed.is_empty());
}

#[tokio::test]
async fn the_grace_period_spares_young_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = config(&dir).data_dir;
    let control = open(config(&dir)).await;
    control
        .upload_component(component(artifacts::HELLO), None)
        .await
        .unwrap();
    assert!(control.collect_garbage().await.unwrap().removed.is_empty());
    assert_eq!(stored(&data).len(), 2);
}

#[tokio::test]
async fn an_upload_over_the_storage_cap_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = config(&dir);
    let hello = component(artifacts::HELLO);
    // Room for the blob but not for its compiled artifact as well.
    settings.max_storage_bytes = hello.len() as u64 + 1;
    let data = settings.data_dir.clone();
    let control = open(settings).await;
    let error = control.deploy("hello", hello, None).await.unwrap_err();
    assert!(
        matches!(error, CoreError::InsufficientStorage { .. }),
        "{error:?}"
    );
    assert_eq!(error.code(), "insufficient_storage");
    assert!(error.to_string().contains("--max-storage-bytes"), "{error}");
    assert_eq!(stored(&data), Vec::<String>::new());
    assert!(control.list().is_empty());
}
