//! The core's operations and errors, called directly.

use crate::support::*;
use flint_gateway::core::{CoreError, Target};
use flint_runtime::ConfigPatch;
use flint_spec::alias::AliasTarget;
use flint_spec::canary::{CanarySpec, CanaryStatus};
use flint_spec::desired::{DesiredFunction, DesiredState};
use flint_spec::history::HistoryEntry;
use flint_spec::{Digest, TriggerSpec};
use std::time::{Duration, Instant};

fn by(action: &str) -> HistoryEntry {
    HistoryEntry::now("test", action)
}

#[tokio::test]
async fn deploys_make_numbered_immutable_versions_and_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let control = open(config(&dir)).await;

    let first = control
        .deploy("hello", component(artifacts::HELLO), None)
        .await
        .unwrap();
    assert_eq!((first.version, first.created), (1, true));
    let again = control
        .deploy("hello", component(artifacts::HELLO), None)
        .await
        .unwrap();
    assert_eq!(
        (again.version, again.created),
        (1, false),
        "same bytes: no new version"
    );
    assert_eq!(deploy(&control, "hello", artifacts::WASI_HELLO).await, 2);

    let error = control
        .deploy("Bad_Name", component(artifacts::HELLO), None)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_name", "{error}");
    assert!(error.to_string().contains("lowercase letters"), "{error}");
    let error = control
        .deploy("junk", "not wasm".into(), None)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_component", "{error}");
    assert!(matches!(
        control.info("junk"),
        Err(CoreError::FunctionNotFound(_))
    ));

    let info = control.info("hello").unwrap();
    assert_eq!(info.latest_version, Some(2));
    assert_eq!(info.versions.len(), 2);
    assert_eq!(control.list().len(), 1, "a refused deploy records nothing");
}

#[tokio::test]
async fn calls_resolve_default_alias_and_version_and_name_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let control = open(config(&dir)).await;
    deploy(&control, "hello", artifacts::HELLO).await;
    deploy(&control, "hello", artifacts::WASI_HELLO).await;

    let (version, status, _) = invoke(&control, "hello", Target::Default, "/")
        .await
        .unwrap();
    assert_eq!(
        (version, status.as_u16()),
        (2, 200),
        "plain calls follow latest"
    );
    let (version, _, body) = invoke(&control, "hello", Target::Version(1), "/")
        .await
        .unwrap();
    assert_eq!(version, 1);
    assert!(body.starts_with("Hello"), "{body}");

    let missing = |e: CoreError| e.code();
    assert_eq!(
        missing(
            invoke(&control, "nope", Target::Default, "/")
                .await
                .unwrap_err()
        ),
        "function_not_found"
    );
    let error = invoke(&control, "hello", Target::Version(9), "/")
        .await
        .unwrap_err();
    assert_eq!(error.code(), "version_not_found");
    assert!(error.to_string().contains("versions are 1..=2"), "{error}");
    assert_eq!(
        missing(
            invoke(&control, "hello", Target::Alias("beta"), "/")
                .await
                .unwrap_err()
        ),
        "alias_not_found"
    );
}

#[tokio::test]
async fn releases_move_the_default_alias_and_a_canary_owns_its_alias() {
    let dir = tempfile::tempdir().unwrap();
    let control = open(config(&dir)).await;
    deploy(&control, "f", artifacts::HELLO).await;
    deploy(&control, "f", artifacts::WASI_HELLO).await;

    let aliases = control
        .release("f", "prod", 1, by("release"))
        .await
        .unwrap();
    assert_eq!(
        aliases.default, "prod",
        "the first release makes its alias the default"
    );
    let (version, _, _) = invoke(&control, "f", Target::Default, "/").await.unwrap();
    assert_eq!(version, 1);
    let error = control
        .rollback("f", "prod", by("rollback"))
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        "release_conflict",
        "nothing to roll back to: {error}"
    );
    let error = control
        .set_alias(
            "f",
            "9lives",
            AliasTarget::version(1),
            false,
            by("alias_set"),
        )
        .await;
    assert!(
        error.is_ok(),
        "alias names may start with a digit if not all digits"
    );
    let error = control
        .set_alias("f", "beta", AliasTarget::version(7), false, by("alias_set"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_release");

    let spec = CanarySpec {
        to: 2,
        alias: "prod".into(),
        steps: vec![50, 100],
        interval_ms: 600_000,
        max_error_rate: 0.5,
        max_p99_ms: None,
    };
    let bad = CanarySpec {
        max_p99_ms: Some(-1.0),
        ..spec.clone()
    };
    assert_eq!(
        control
            .start_canary("f", bad, "test")
            .await
            .unwrap_err()
            .code(),
        "invalid_release"
    );
    let started = control.start_canary("f", spec, "test").await.unwrap();
    assert_eq!(started.status, CanaryStatus::Running);

    // Every write to the alias waits for the canary, removal included.
    for error in [
        control
            .remove_alias("f", "prod", by("alias_removed"))
            .await
            .unwrap_err(),
        control
            .release("f", "prod", 1, by("release"))
            .await
            .unwrap_err(),
        control
            .set_alias("f", "prod", AliasTarget::version(1), false, by("alias_set"))
            .await
            .unwrap_err(),
        control
            .rollback("f", "prod", by("rollback"))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(error.code(), "release_conflict", "{error}");
    }

    control.abort_canary("f").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = control.canary_status("f").await.unwrap();
        if status.status == CanaryStatus::RolledBack {
            assert_eq!(status.reason.as_deref(), Some("aborted by the user"));
            break;
        }
        assert!(Instant::now() < deadline, "the canary did not roll back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        control.abort_canary("f").await.unwrap_err().code(),
        "canary_not_found"
    );
    assert_eq!(
        control.aliases("f").unwrap().aliases["prod"],
        AliasTarget::version(1)
    );
    control
        .remove_alias("f", "prod", by("alias_removed"))
        .await
        .unwrap();
    assert_eq!(control.aliases("f").unwrap().default, "latest");
    let actions: Vec<String> = control
        .history("f")
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.action)
        .collect();
    assert!(
        actions.contains(&"canary_rolled_back".to_string()),
        "{actions:?}"
    );
}

#[tokio::test]
async fn config_triggers_and_queueing_refuse_what_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    let control = open(config(&dir)).await;
    deploy(&control, "f", artifacts::HELLO).await;

    let patch: ConfigPatch = serde_json::from_value(serde_json::json!({"memory_mb": 64})).unwrap();
    assert_eq!(
        control.patch_config("f", patch).await.unwrap().memory_mb,
        64
    );
    let patch: ConfigPatch = serde_json::from_value(serde_json::json!({"memory_mb": 0})).unwrap();
    assert_eq!(
        control.patch_config("f", patch).await.unwrap_err().code(),
        "invalid_config"
    );
    let patch: ConfigPatch =
        serde_json::from_value(serde_json::json!({"env": {"DB": "secret:missing-one"}})).unwrap();
    let error = control.patch_config("f", patch).await.unwrap_err();
    assert_eq!(error.code(), "invalid_config");
    assert!(
        error.to_string().contains("FLINT_SECRET_MISSING_ONE"),
        "{error}"
    );
    assert_eq!(control.function_config("f").unwrap().memory_mb, 64);

    assert_eq!(
        control.enqueue("f", b"x", None).await.unwrap_err().code(),
        "trigger_not_found"
    );
    let spec: TriggerSpec = serde_json::from_value(serde_json::json!({"queue": ""})).unwrap();
    assert_eq!(
        control.set_trigger("f", spec).await.unwrap_err().code(),
        "invalid_trigger"
    );
    let spec: TriggerSpec = serde_json::from_value(serde_json::json!({"queue": "orders"})).unwrap();
    let binding = control.set_trigger("f", spec).await.unwrap();
    assert_eq!(binding.dead_letter, "orders.dlq");
    let error = control.enqueue("f", b"x", None).await.unwrap_err();
    assert_eq!(
        error.code(),
        "broker_unavailable",
        "no broker configured: {error}"
    );
    control.remove_trigger("f").await.unwrap();
    assert_eq!(
        control.remove_trigger("f").await.unwrap_err().code(),
        "trigger_not_found"
    );
}

#[tokio::test]
async fn apply_validates_everything_first_and_a_second_apply_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let control = open(config(&dir)).await;
    let digest = Digest::of(&component(artifacts::HELLO)).to_string();
    let desired = |name: &str, digest: &str, routes: Vec<String>| DesiredState {
        functions: [(
            name.to_string(),
            DesiredFunction {
                digest: digest.into(),
                config: Default::default(),
                routes,
                trigger: None,
                schedule: None,
                release: Default::default(),
            },
        )]
        .into(),
    };

    let error = control
        .apply(&desired("greet", &digest, vec![]), false, "test")
        .await
        .unwrap_err();
    assert_eq!(error.code(), "component_missing", "{error}");
    let error = control
        .apply(
            &desired("Bad", &digest, vec!["/v1/x".into()]),
            false,
            "test",
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_desired_state");
    assert!(error.to_string().contains("nothing was changed"), "{error}");

    control
        .upload_component(component(artifacts::HELLO), None)
        .await
        .unwrap();
    let plan = control
        .plan(&desired("greet", &digest, vec!["/greet".into()]), false)
        .await
        .unwrap();
    assert_eq!(plan.changes.len(), 2, "{:?}", plan.changes);
    let applied = control
        .apply(
            &desired("greet", &digest, vec!["/greet".into()]),
            false,
            "test",
        )
        .await
        .unwrap();
    assert_eq!(applied.changes.len(), 2);
    assert_eq!(control.route("/greet").as_deref(), Some("greet"));
    let again = control
        .apply(
            &desired("greet", &digest, vec!["/greet".into()]),
            false,
            "test",
        )
        .await
        .unwrap();
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    let (_, status, _) = invoke(&control, "greet", Target::Default, "/")
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 200);
}

#[tokio::test]
async fn a_reopened_core_has_everything_the_store_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    {
        let control = open(config(&dir)).await;
        deploy(&control, "f", artifacts::HELLO).await;
        deploy(&control, "f", artifacts::WASI_HELLO).await;
        control
            .release("f", "prod", 1, by("release"))
            .await
            .unwrap();
        let spec: TriggerSpec = serde_json::from_value(serde_json::json!({"queue": "q"})).unwrap();
        control.set_trigger("f", spec).await.unwrap();
        deploy(&control, "gone", artifacts::HELLO).await;
        control.delete("gone").await.unwrap();
    }
    let control = open(config(&dir)).await;
    assert_eq!(control.list().len(), 1);
    assert_eq!(control.info("f").unwrap().latest_version, Some(2));
    assert_eq!(control.aliases("f").unwrap().default, "prod");
    assert_eq!(control.trigger("f").unwrap().queue, "q");
    let (version, _, _) = invoke(&control, "f", Target::Default, "/").await.unwrap();
    assert_eq!(version, 1);
    // The deleted function's blob is still used by `f` version 1.
    assert!(
        control
            .has_component(&Digest::of(&component(artifacts::HELLO)))
            .await
    );
}

#[tokio::test]
async fn warm_instances_follow_the_default_alias_not_the_latest_version() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = config(&dir);
    settings.unload_after = Duration::from_millis(200);
    let control = open(settings).await;
    for path in [artifacts::HELLO, artifacts::WASI_HELLO, artifacts::ECHO] {
        deploy(&control, "f", path).await;
    }
    let patch: ConfigPatch =
        serde_json::from_value(serde_json::json!({"min_instances": 2})).unwrap();
    control.patch_config("f", patch).await.unwrap();
    control
        .release("f", "prod", 2, by("release"))
        .await
        .unwrap();
    deploy(&control, "f", artifacts::PROBE).await;

    let warm_starts = || control.info("f").unwrap().stats.warm_starts;
    let released_warm = || control.info("f").unwrap().versions[1].warm_instances;
    let wait_warm = async || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while released_warm() < 2 {
            assert!(
                Instant::now() < deadline,
                "version 2 never got its warm instances"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    wait_warm().await;
    let before = warm_starts();
    let (version, _, _) = invoke(&control, "f", Target::Default, "/").await.unwrap();
    assert_eq!(
        (version, warm_starts()),
        (2, before + 1),
        "the first call is warm"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    control.maintain();
    let loaded: Vec<(u32, bool)> = control
        .info("f")
        .unwrap()
        .versions
        .iter()
        .map(|v| (v.version, v.loaded))
        .collect();
    assert!(
        loaded.contains(&(2, true)),
        "the released version stays loaded: {loaded:?}"
    );
    assert!(
        loaded.contains(&(4, false)),
        "the unreleased latest unloads: {loaded:?}"
    );
    wait_warm().await;
    let before = warm_starts();
    invoke(&control, "f", Target::Default, "/").await.unwrap();
    assert_eq!(
        warm_starts(),
        before + 1,
        "still warm after the idle unload"
    );
    assert!(
        control
            .encode_metrics(flint_gateway::metrics::Exposition::Prometheus)
            .contains("flint_starts_total{function=\"f\",kind=\"warm\"}"),
        "warm starts are counted in the metrics"
    );
}
