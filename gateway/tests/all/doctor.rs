//! Start-up on broken stored state, and `doctor`: a function whose rows or
//! component are broken is disabled with the reason, the others serve, and
//! the doctor repairs artifacts from their blobs and names the rest.

use crate::support::*;
use flint_gateway::api::App;
use flint_gateway::core::{Control, Target};
use flint_runtime::ConfigPatch;
use flint_spec::Digest;
use http::{Method, StatusCode};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The compiled artifact of `digest` under `data`'s cache.
fn artifact(data: &Path, digest: &Digest) -> PathBuf {
    std::fs::read_dir(data.join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(digest.hex())
        })
        .unwrap_or_else(|| panic!("no artifact of {digest}"))
}

fn blob(data: &Path, digest: &Digest) -> PathBuf {
    data.join("blobs").join(format!("{}.wasm", digest.hex()))
}

fn digest(path: &str) -> Digest {
    Digest::of(&component(path))
}

/// Polls until `check` holds (bounded).
async fn wait_until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn disabled(control: &Control, name: &str) -> Option<String> {
    control
        .list()
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name} is listed"))
        .disabled
}

#[tokio::test]
async fn broken_state_disables_one_function_and_doctor_repairs_what_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let settings = config(&dir);
    let data = settings.data_dir.clone();
    {
        let control = open(settings.clone()).await;
        deploy(&control, "a", artifacts::HELLO).await;
        deploy(&control, "b", artifacts::ECHO).await;
        deploy(&control, "c", artifacts::WASI_HELLO).await;
    }
    // `a`: a config row that no longer parses; `b`: its component's blob
    // and compiled artifact both gone.
    let db = rusqlite::Connection::open(data.join("registry.db")).unwrap();
    db.execute(
        "UPDATE functions SET config = '{not json' WHERE name = 'a'",
        [],
    )
    .unwrap();
    drop(db);
    let echo = digest(artifacts::ECHO);
    std::fs::remove_file(blob(&data, &echo)).unwrap();
    std::fs::remove_file(artifact(&data, &echo)).unwrap();

    let control = open(settings).await;
    let (_, status, body) = invoke(&control, "c", Target::Default, "/").await.unwrap();
    assert_eq!(status, 200, "the healthy function serves: {body}");
    let error = invoke(&control, "a", Target::Default, "/")
        .await
        .unwrap_err();
    assert_eq!(error.code(), "function_disabled", "{error}");
    let message = error.to_string();
    assert!(
        message.contains("config") && message.contains("flint doctor"),
        "{message}"
    );
    let error = invoke(&control, "b", Target::Default, "/")
        .await
        .unwrap_err();
    assert_eq!(error.code(), "function_disabled", "{error}");
    assert!(error.to_string().contains("version 1"), "{error}");
    assert!(disabled(&control, "a").unwrap().contains("config"));
    assert!(disabled(&control, "b").unwrap().contains("gone"));
    assert_eq!(disabled(&control, "c"), None);
    assert!(control.info("a").unwrap().disabled.is_some());

    // Over HTTP: 503 with the code; readiness stays 200 and names both.
    let app = App::new(control.clone());
    let (status, _, body) = call(&app, Method::GET, "/fn/a/", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code(&body), "function_disabled");
    let (status, ready) = call_json(&app, Method::GET, "/readyz", serde_json::Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    let names: Vec<&str> = ready["functions_disabled"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["function"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"], "{ready}");

    // `c` loses only its artifact: reported without repair, recompiled from
    // the blob with it.
    wait_until("c loaded", || control.info("c").unwrap().versions[0].loaded).await;
    let c_artifact = artifact(&data, &digest(artifacts::WASI_HELLO));
    std::fs::remove_file(&c_artifact).unwrap();
    let report = control.doctor(false).await.unwrap();
    assert_eq!(report.checked, 3);
    assert!(report.repaired.is_empty(), "{report:?}");
    let problems: Vec<(&str, Option<u32>)> = report
        .problems
        .iter()
        .map(|p| (p.function.as_str(), p.version))
        .collect();
    assert_eq!(
        problems,
        [("a", None), ("b", Some(1)), ("c", Some(1))],
        "{report:?}"
    );
    assert!(report.problems[0].problem.contains("config"), "{report:?}");
    assert!(
        report.problems[1].problem.contains("blob is missing"),
        "{report:?}"
    );
    assert!(!c_artifact.exists(), "no repair without repair");

    let report = control.doctor(true).await.unwrap();
    assert_eq!(report.repaired.len(), 1, "{report:?}");
    assert_eq!(report.repaired[0].function, "c");
    assert!(report.repaired[0].what.contains("recompiled"), "{report:?}");
    assert!(c_artifact.is_file());
    assert_eq!(report.problems.len(), 2, "{report:?}");
    // An artifact that does not load is recompiled too.
    std::fs::write(&c_artifact, b"not an artifact").unwrap();
    let report = control.doctor(true).await.unwrap();
    assert_eq!(report.repaired.len(), 1, "{report:?}");
    assert!(
        report.repaired[0].what.contains("does not load"),
        "{report:?}"
    );

    // A new config replaces the broken row: `a` serves again. The same
    // bytes deployed again restore `b`'s component.
    let patch: ConfigPatch = serde_json::from_value(serde_json::json!({"memory_mb": 64})).unwrap();
    control.patch_config("a", patch).await.unwrap();
    assert_eq!(disabled(&control, "a"), None);
    let (_, status, _) = invoke(&control, "a", Target::Default, "/").await.unwrap();
    assert_eq!(status, 200);
    let again = control
        .deploy("b", component(artifacts::ECHO), None)
        .await
        .unwrap();
    assert!(!again.created);
    assert!(blob(&data, &echo).is_file());
    assert_eq!(disabled(&control, "b"), None);
    let report = control.doctor(true).await.unwrap();
    assert!(
        report.problems.is_empty() && report.repaired.is_empty(),
        "{report:?}"
    );
    let (_, status, _) = invoke(&control, "b", Target::Default, "/").await.unwrap();
    assert!(status.is_success() || status.is_client_error(), "{status}");
}

#[tokio::test]
async fn a_schedule_that_cannot_fire_is_named_by_the_doctor_and_its_function_serves() {
    let dir = tempfile::tempdir().unwrap();
    let settings = config(&dir);
    let data = settings.data_dir.clone();
    let id = {
        let control = open(settings.clone()).await;
        deploy(&control, "s", artifacts::HELLO).await;
        let spec = serde_json::from_str(r#"{"cron":"0 0 1 1 *"}"#).unwrap();
        control.add_schedule("s", spec).await.unwrap().id
    };
    let db = rusqlite::Connection::open(data.join("registry.db")).unwrap();
    db.execute("UPDATE schedules SET spec = '{not json'", [])
        .unwrap();
    drop(db);

    let control = open(settings).await;
    let (_, status, _) = invoke(&control, "s", Target::Default, "/").await.unwrap();
    assert_eq!(status, 200, "the function serves");
    assert!(control.schedules("s").await.unwrap().is_empty());
    let report = control.doctor(false).await.unwrap();
    assert_eq!(report.problems.len(), 1, "{report:?}");
    let problem = &report.problems[0];
    assert_eq!(problem.function, "s");
    assert!(
        problem
            .problem
            .contains(&format!("schedule `{id}` cannot fire"))
            && problem.problem.contains("flint schedule rm s"),
        "{problem:?}"
    );
    // Removing it clears the report.
    control.remove_schedule("s", &id).await.unwrap();
    assert!(control.doctor(false).await.unwrap().problems.is_empty());
}
