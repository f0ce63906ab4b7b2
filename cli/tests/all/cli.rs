//! The `flint` CLI against a real server.

use crate::support::{FLINT, Server, flint};
use flint_test_artifacts as artifacts;
use serde_json::Value;
use std::process::Output;

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[tokio::test]
async fn deploy_invoke_list_configure_logs_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    let out = flint(&server.url, &["deploy", "hello", artifacts::HELLO]);
    assert!(stdout(&out).contains("Deployed hello version 1"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Uploading"));
    let out = flint(
        &server.url,
        &["deploy", "hello", artifacts::HELLO, "--json"],
    );
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["created"], false);

    assert_eq!(
        stdout(&flint(&server.url, &["invoke", "hello"])),
        "Hello from Flint!\n"
    );
    flint(&server.url, &["deploy", "echo", artifacts::ECHO]);
    let out = stdout(&flint(
        &server.url,
        &["invoke", "echo", "/p", "--data", r#"{"message":"cli"}"#],
    ));
    assert!(out.contains(r#""upper":"CLI""#), "{out}");

    let table = stdout(&flint(&server.url, &["ls"]));
    assert!(
        table.contains("NAME") && table.contains("hello") && table.contains("echo"),
        "{table}"
    );
    let list: Value =
        serde_json::from_str(&stdout(&flint(&server.url, &["ls", "--json"]))).unwrap();
    assert_eq!(list["functions"].as_array().unwrap().len(), 2);

    let out = stdout(&flint(
        &server.url,
        &["config", "echo", "--memory-mb", "64", "--env", "A=1"],
    ));
    assert!(out.contains("64"), "{out}");
    let config: Value =
        serde_json::from_str(&stdout(&flint(&server.url, &["config", "echo", "--json"]))).unwrap();
    assert_eq!(config["memory_mb"], 64);
    assert_eq!(config["env"]["A"], "1");
    let info = stdout(&flint(&server.url, &["info", "echo"]));
    assert!(
        info.contains("memory_mb  ") && info.contains("latest version 1"),
        "{info}"
    );

    flint(&server.url, &["deploy", "probe", artifacts::PROBE]);
    stdout(&flint(
        &server.url,
        &["invoke", "probe", "/print?msg=from-cli"],
    ));
    let logs = stdout(&flint(&server.url, &["logs", "probe"]));
    assert!(logs.contains("from-cli"), "{logs}");

    let out = flint(&server.url, &["invoke", "probe", "/trap"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("trap"));

    stdout(&flint(&server.url, &["rm", "probe"]));
    let out = flint(&server.url, &["info", "probe"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not found") && stderr.contains("flint ls"),
        "{stderr}"
    );
}

#[test]
fn errors_say_what_to_do() {
    let out = std::process::Command::new(FLINT)
        .args(["ls", "--server", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("flint serve"), "{stderr}");
    let out = std::process::Command::new(FLINT)
        .args(["deploy", "x", "/no/such/file.wasm"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file.wasm"));
    let help = std::process::Command::new(FLINT)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--listen") && help.contains("FLINT_DATA_DIR"),
        "{help}"
    );
}

#[tokio::test]
async fn trigger_commands_manage_bindings() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    flint(
        &server.url,
        &["deploy", "orders", artifacts::ORDER_PROCESSOR],
    );
    let out = stdout(&flint(
        &server.url,
        &[
            "trigger",
            "add",
            "orders",
            "--queue",
            "orders-q",
            "--max-retries",
            "2",
        ],
    ));
    assert!(
        out.contains("orders-q") && out.contains("orders-q.dlq"),
        "{out}"
    );
    let table = stdout(&flint(&server.url, &["trigger", "ls"]));
    assert!(
        table.contains("FUNCTION")
            && table.contains("orders-q")
            && table.contains("broker: disabled"),
        "{table}"
    );
    let list: Value =
        serde_json::from_str(&stdout(&flint(&server.url, &["trigger", "ls", "--json"]))).unwrap();
    assert_eq!(list["triggers"][0]["max_retries"], 2);
    stdout(&flint(&server.url, &["trigger", "rm", "orders"]));
    let out = flint(&server.url, &["trigger", "rm", "orders"]);
    assert!(!out.status.success());
    let out = flint(
        &server.url,
        &["trigger", "add", "orders", "--queue", "amq.bad"],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("queue"),
        "{out:?}"
    );
}

#[tokio::test]
async fn release_commands_drive_aliases_canaries_and_shadows() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    flint(&server.url, &["deploy", "app", artifacts::HELLO]);
    flint(&server.url, &["deploy", "app", artifacts::WASI_HELLO]);
    let out = stdout(&flint(
        &server.url,
        &["release", "app", "--to", "1", "--reason", "go live"],
    ));
    assert!(
        out.contains("Released app version 1") && out.contains("prod*"),
        "{out}"
    );
    assert_eq!(
        stdout(&flint(&server.url, &["invoke", "app"])),
        "Hello from Flint!\n"
    );
    let out = stdout(&flint(
        &server.url,
        &[
            "alias",
            "set",
            "app",
            "split",
            "1=90",
            "2=10",
            "--sticky-header",
            "x-user",
        ],
    ));
    assert!(
        out.contains("v1=90% v2=10% (sticky on header x-user)"),
        "{out}"
    );
    let out = stdout(&flint(&server.url, &["alias", "ls", "app"]));
    assert!(out.contains("latest") && out.contains("split"), "{out}");
    stdout(&flint(&server.url, &["release", "app", "--to", "2"]));
    stdout(&flint(&server.url, &["rollback", "app"]));
    assert_eq!(
        stdout(&flint(&server.url, &["invoke", "app"])),
        "Hello from Flint!\n"
    );
    let out = stdout(&flint(&server.url, &["history", "app"]));
    assert!(out.contains("rollback") && out.contains("go live"), "{out}");
    let out = stdout(&flint(
        &server.url,
        &[
            "canary",
            "app",
            "--to",
            "2",
            "--steps",
            "50,100",
            "--interval",
            "200ms",
        ],
    ));
    assert!(out.contains("Canary of app to version 2 started"), "{out}");
    let out = stdout(&flint(&server.url, &["canary", "status", "app"]));
    assert!(out.contains("canary of app to version 2"), "{out}");
    let out = stdout(&flint(
        &server.url,
        &["shadow", "app", "--candidate", "2", "--sample", "50%"],
    ));
    assert!(out.contains("50%"), "{out}");
    let out = stdout(&flint(&server.url, &["shadow", "report", "app"]));
    assert!(out.contains("matched"), "{out}");
    stdout(&flint(&server.url, &["shadow", "stop", "app"]));
    let out = flint(
        &server.url,
        &["alias", "set", "app", "prod", "3=50", "1=40"],
    );
    assert!(!out.status.success());
}

#[test]
fn completions_generate_for_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "complete -F _flint"),
        ("zsh", "#compdef flint"),
        ("fish", "complete -c flint"),
    ] {
        let out = flint("http://127.0.0.1:9", &["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = stdout(&out);
        assert!(script.contains(marker), "{shell}: {script}");
        for command in ["deploy", "bench", "invoke", "completions"] {
            assert!(script.contains(command), "{shell} completes {command}");
        }
    }
    // bash parses what it would source.
    let script = stdout(&flint("http://127.0.0.1:9", &["completions", "bash"]));
    let checked = std::process::Command::new("bash")
        .args(["-n", "-c", &script])
        .output()
        .unwrap();
    assert!(checked.status.success(), "{checked:?}");
    let unknown = flint("http://127.0.0.1:9", &["completions", "tcsh"]);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("bash") && stderr.contains("fish"),
        "{stderr}"
    );
}

#[test]
fn the_manual_covers_every_command() {
    let out = flint("http://127.0.0.1:9", &["man"]);
    assert!(out.status.success(), "{out:?}");
    let page = stdout(&out);
    assert!(
        page.starts_with(".ie") || page.contains(".TH flint 1"),
        "{page}"
    );
    assert!(page.contains("bench"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    let out = flint(
        "http://127.0.0.1:9",
        &["man", "--out-dir", dir.path().to_str().unwrap()],
    );
    assert!(out.status.success(), "{out:?}");
    for page in [
        "flint.1",
        "flint-bench.1",
        "flint-deploy.1",
        "flint-alias-set.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}: {text}");
    }
    // The hidden compile worker is no command of the user's.
    let pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!pages.iter().any(|p| p.contains("__compile")), "{pages:?}");
    assert!(pages.len() > 30, "{pages:?}");
}
