//! A server started on a corrupted data dir serves every healthy function,
//! and `flint doctor` names what is broken until it is fixed.

use crate::support::{Server, assert_error, flint};
use flint_spec::Digest;
use flint_test_artifacts as artifacts;
use serde_json::{Value, json};
use std::process::Output;

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_corrupted_data_dir_serves_the_healthy_functions_and_doctor_names_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&dir);
    server.deploy("good", artifacts::HELLO).await;
    server.deploy("bad", artifacts::PROBE).await;
    server.deploy("gone", artifacts::ECHO).await;
    assert!(server.terminate().success());

    // `bad`: a config row that no longer parses; `gone`: its blob and its
    // compiled artifact deleted.
    let db = rusqlite::Connection::open(data.join("registry.db")).unwrap();
    db.execute(
        "UPDATE functions SET config = '{not json' WHERE name = 'bad'",
        [],
    )
    .unwrap();
    drop(db);
    let hex = Digest::of(&artifacts::bytes(artifacts::ECHO))
        .hex()
        .to_string();
    std::fs::remove_file(data.join("blobs").join(format!("{hex}.wasm"))).unwrap();
    for entry in std::fs::read_dir(data.join("cache")).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&hex)
        {
            std::fs::remove_file(path).unwrap();
        }
    }

    let server = Server::start(&dir);
    assert_eq!(
        server.get("/fn/good/").await,
        (reqwest::StatusCode::OK, "Hello from Flint!\n".into())
    );
    let (status, body) = server.get("/fn/bad/").await;
    let message = assert_error(status, &body, 503, "function_disabled");
    assert!(message.contains("flint doctor"), "{message}");
    let (status, body) = server.get("/fn/gone/").await;
    assert_error(status, &body, 503, "function_disabled");
    let (status, ready) = server.get_json("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(
        ready["functions_disabled"].as_array().unwrap().len(),
        2,
        "{ready}"
    );

    let out = flint(&server.url, &["ls"]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert!(
        stdout.contains("STATUS") && stdout.contains("disabled"),
        "{stdout}"
    );

    let out = flint(&server.url, &["doctor"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("Checked 3 functions."), "{stdout}");
    assert!(
        stdout.contains("bad ") && stdout.contains("config"),
        "{stdout}"
    );
    assert!(
        stdout.contains("gone@1") && stdout.contains("blob is missing"),
        "{stdout}"
    );
    assert!(!stdout.contains("good"), "{stdout}");
    assert!(stderr.contains("2 problems remain"), "{stderr}");

    let out = flint(&server.url, &["doctor", "--no-repair", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["checked"], 3, "{report}");
    assert_eq!(report["problems"].as_array().unwrap().len(), 2, "{report}");

    // Fixed the way the report says: a new config, the same file again.
    let out = flint(&server.url, &["config", "bad", "--memory-mb", "64"]);
    assert!(out.status.success(), "{:?}", text(&out));
    server.deploy("gone", artifacts::ECHO).await;
    let out = flint(&server.url, &["doctor"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("No problems."), "{stdout}");
    assert_eq!(server.get("/fn/bad/counter").await.0, 200);
    assert_eq!(server.info("bad").await["config"]["memory_mb"], json!(64));
    let (_, ready) = server.get_json("/readyz").await;
    assert_eq!(ready["functions_disabled"], json!([]), "{ready}");
}
