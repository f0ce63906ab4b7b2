//! Desired state: `flint plan` / `flint apply` of a manifest with
//! environment overlays, prune, routes, secrets and release policies, and
//! the reconciling `flint serve --manifest --watch`.

use crate::support::{FLINT, Server, assert_error};
use flint_test_artifacts as artifacts;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

fn flint(server: &Server, args: &[&str]) -> Output {
    std::process::Command::new(FLINT)
        .args(args)
        .env("FLINT_SERVER", &server.url)
        .env_remove("FLINT_ENV")
        .output()
        .unwrap()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn failed(output: &Output) -> String {
    assert!(!output.status.success(), "expected a failure");
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn json_of(output: &Output) -> Value {
    serde_json::from_str(&ok(output)).unwrap()
}

fn actions(plan: &Value) -> Vec<(String, String)> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["function"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A manifest with `orders` (probe behind `/orders/...`, blue-green) and
/// `greeter` (hello), plus staging and prod overlays.
fn shop(extra: &str) -> String {
    format!(
        r#"
# The shop.
[functions.orders]
component = "{probe}"
routes = ["/orders/..."]
release = "blue-green"

[functions.orders.config]
memory_mb = 64
env = {{ MODE = "base", REGION = "eu" }}

[functions.greeter]
component = "{hello}"

[env.staging.functions.orders.config]
env = {{ MODE = "staging" }}

[env.prod.functions.orders.config]
min_instances = 1
env = {{ MODE = "prod" }}
{extra}"#,
        probe = artifacts::PROBE,
        hello = artifacts::HELLO,
    )
}

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("flint.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn plan_apply_is_idempotent_overlays_share_the_digest_and_prune_needs_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    let file = write(dir.path(), &shop(""));

    // Plan changes nothing and says what apply would do.
    let plan = json_of(&flint(
        &server,
        &["plan", "-f", &file, "--env", "prod", "--json"],
    ));
    let got = actions(&plan);
    for want in [
        ("orders", "create"),
        ("orders", "set_routes"),
        ("orders", "release"),
        ("greeter", "create"),
    ] {
        assert!(got.contains(&(want.0.into(), want.1.into())), "{plan}");
    }
    assert_eq!(plan["missing_components"].as_array().unwrap().len(), 2);
    let (_, list) = server.get_json("/v1/functions").await;
    assert_eq!(list["functions"], json!([]), "plan changed the server");

    let out = ok(&flint(&server, &["apply", "-f", &file, "--env", "prod"]));
    assert!(out.contains("create"), "{out}");
    let (status, mode) = server.get("/orders/env?name=MODE").await;
    assert_eq!((status.as_u16(), mode.as_str()), (200, "prod"));
    assert_eq!(server.get("/fn/greeter/").await.1, "Hello from Flint!\n");
    let orders = server.info("orders").await;
    assert_eq!(orders["config"]["min_instances"], 1);
    assert_eq!(orders["config"]["env"]["REGION"], "eu");
    let prod_digest = orders["versions"][0]["digest"].clone();
    let (_, aliases) = server.get_json("/v1/functions/orders/aliases").await;
    assert_eq!(aliases["default"], "prod", "{aliases}");

    // A second apply changes nothing, and says so.
    let again = flint(&server, &["apply", "-f", &file, "--env", "prod"]);
    assert!(ok(&again).contains("No changes"), "{}", ok(&again));
    let again = json_of(&flint(
        &server,
        &["apply", "-f", &file, "--env", "prod", "--json"],
    ));
    assert_eq!(again["changed"], false, "{again}");

    // Another environment: the same bytes, other config.
    let plan = json_of(&flint(
        &server,
        &["plan", "-f", &file, "--env", "staging", "--json"],
    ));
    assert_eq!(
        actions(&plan),
        vec![("orders".into(), "update_config".into())],
        "{plan}"
    );
    let detail = plan["changes"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("env ~MODE") && detail.contains("min_instances 1 -> 0"),
        "{detail}"
    );
    ok(&flint(&server, &["apply", "-f", &file, "--env", "staging"]));
    assert_eq!(server.get("/orders/env?name=MODE").await.1, "staging");
    let orders = server.info("orders").await;
    assert_eq!(orders["versions"].as_array().unwrap().len(), 1);
    assert_eq!(orders["versions"][0]["digest"], prod_digest);

    // Functions outside the manifest are kept unless --prune is given.
    server.deploy("stray", artifacts::HELLO).await;
    let plan = json_of(&flint(
        &server,
        &["plan", "-f", &file, "--env", "staging", "--json"],
    ));
    assert!(actions(&plan).is_empty(), "{plan}");
    assert!(
        plan["notes"]
            .to_string()
            .contains("`stray` is not in the manifest"),
        "{plan}"
    );
    let out = flint(&server, &["apply", "-f", &file, "--env", "staging"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--prune"));
    assert_eq!(server.get("/fn/stray/").await.0.as_u16(), 200);
    let plan = json_of(&flint(
        &server,
        &["plan", "-f", &file, "--env", "staging", "--prune", "--json"],
    ));
    assert_eq!(actions(&plan), vec![("stray".into(), "delete".into())]);
    ok(&flint(
        &server,
        &["apply", "-f", &file, "--env", "staging", "--prune"],
    ));
    assert_eq!(server.get("/fn/stray/").await.0.as_u16(), 404);

    // A new component: blue-green deploys a version and switches the alias.
    let file = write(
        dir.path(),
        &shop("").replacen(artifacts::PROBE, artifacts::WASI_HELLO, 1),
    );
    let plan = json_of(&flint(
        &server,
        &["plan", "-f", &file, "--env", "staging", "--json"],
    ));
    assert_eq!(
        actions(&plan),
        vec![
            ("orders".into(), "deploy".into()),
            ("orders".into(), "release".into())
        ],
        "{plan}"
    );
    ok(&flint(&server, &["apply", "-f", &file, "--env", "staging"]));
    assert_eq!(
        server.get("/orders/x").await.1,
        "Hello from plain wasi:http!\n"
    );
    let (_, history) = server.get_json("/v1/functions/orders/history").await;
    let last = history["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["action"], "release");
    assert_eq!(last["reason"], "flint apply");
}

#[tokio::test]
async fn routes_serve_whole_paths_and_conflicts_are_refused_at_plan_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    let file = write(
        dir.path(),
        &format!(
            r#"
[functions.orders]
component = "{probe}"
routes = ["/orders/...", "/checkout"]
[functions.special]
component = "{hello}"
routes = ["/orders/special/..."]
"#,
            probe = artifacts::PROBE,
            hello = artifacts::HELLO
        ),
    );
    ok(&flint(&server, &["apply", "-f", &file]));
    let (status, headers) = server.get_json("/orders/42/headers?x=1").await;
    assert_eq!(status.as_u16(), 200, "{headers}");
    assert_eq!(headers["path"], "/orders/42/headers", "{headers}");
    assert_eq!(
        server.get("/checkout").await.0.as_u16(),
        404,
        "probe: no route `checkout`"
    );
    assert_eq!(
        server.get("/orders/special/1").await.1,
        "Hello from Flint!\n"
    );
    let (status, body) = server.get("/nowhere").await;
    assert_error(status, &body, 404, "not_found");
    let (_, routes) = server.get_json("/v1/routes").await;
    assert_eq!(routes["routes"].as_array().unwrap().len(), 3, "{routes}");

    // A conflict with another function's route, and a reserved path: the
    // whole apply is refused and nothing changes.
    let bad = write(
        dir.path(),
        &format!(
            r#"
[functions.orders]
component = "{probe}"
routes = ["/orders/...", "/v1/mine"]
[functions.special]
component = "{hello}"
routes = ["/orders/..."]
[functions.extra]
component = "{hello}"
"#,
            probe = artifacts::PROBE,
            hello = artifacts::HELLO
        ),
    );
    let err = failed(&flint(&server, &["plan", "-f", &bad]));
    assert!(
        err.contains("claimed by both `orders` and `special`"),
        "{err}"
    );
    assert!(err.contains("keeps for itself"), "{err}");
    let err = failed(&flint(&server, &["apply", "-f", &bad]));
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(server.get("/fn/extra/").await.0.as_u16(), 404);
    assert_eq!(
        server.get("/orders/special/1").await.1,
        "Hello from Flint!\n"
    );
}

#[tokio::test]
async fn invalid_manifests_and_states_are_refused_with_their_reason_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    server.deploy("keep", artifacts::HELLO).await;

    let file = write(
        dir.path(),
        &format!(
            "[functions.orders]\ncomponent = \"{}\"\n\n[functions.orders.config]\nmemry_mb = 64\n",
            artifacts::PROBE
        ),
    );
    let err = failed(&flint(&server, &["plan", "-f", &file]));
    assert!(err.contains("memry_mb") && err.contains("line 5"), "{err}");

    // The server validates everything before it changes anything: one bad
    // function spoils the whole desired state.
    let digest = server.deploy("keep", artifacts::HELLO).await["digest"].clone();
    let state = json!({"functions": {
        "fine": {"digest": digest},
        "broken": {"digest": digest, "config": {"memory_mb": 0}},
        "bad-trigger": {"digest": digest, "trigger": {"queue": ""}},
        "Bad_Name": {"digest": digest},
        "unknown-digest": {"digest": format!("sha256:{}", "0".repeat(64))},
    }});
    let (status, body) = server.post("/v1/apply", state).await;
    let message = assert_error(status, &body, 400, "invalid_desired_state");
    assert!(message.contains("broken: invalid `memory_mb`"), "{message}");
    assert!(message.contains("bad-trigger: trigger"), "{message}");
    assert!(
        message.contains("Bad_Name: invalid function name"),
        "{message}"
    );
    let unknown = format!("sha256:{}", "0".repeat(64));
    let (status, body) = server
        .post(
            "/v1/apply",
            json!({"functions": {"unknown-digest": {"digest": unknown}}}),
        )
        .await;
    assert!(assert_error(status, &body, 409, "component_missing").contains("PUT /v1/components"));
    let (status, body) = server.post("/v1/plan?prune=maybe", json!({})).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = server.post("/v1/plan", "{\"functionz\": {}}").await;
    assert!(assert_error(status, &body, 400, "invalid_desired_state").contains("functionz"));

    let (_, list) = server.get_json("/v1/functions").await;
    let names: Vec<&str> = list["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["keep"], "a refused apply changed the server");
    assert_eq!(server.get("/fn/keep/").await.1, "Hello from Flint!\n");
}

#[tokio::test]
async fn secrets_reach_the_guest_and_never_an_api_response() {
    const SECRET: &str = "s3cret-value-4711";
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(dir.path(), &[], &[("FLINT_SECRET_ORDERS_DB", SECRET)]);
    let text = format!(
        "[functions.orders]\ncomponent = \"{}\"\n[functions.orders.config]\nenv = {{ DB = \"secret:orders-db\" }}\n",
        artifacts::PROBE
    );
    let file = write(dir.path(), &text);
    let plan = ok(&flint(&server, &["plan", "-f", &file, "--json"]));
    let applied = ok(&flint(&server, &["apply", "-f", &file, "--json"]));
    assert_eq!(server.get("/fn/orders/env?name=DB").await.1, SECRET);
    let mut seen = vec![plan, applied];
    for path in [
        "/v1/functions",
        "/v1/functions/orders",
        "/v1/functions/orders/config",
        "/metrics",
    ] {
        seen.push(server.get(path).await.1);
    }
    seen.push(ok(&flint(&server, &["info", "orders", "--json"])));
    for text in &seen {
        assert!(!text.contains(SECRET), "a secret leaked: {text}");
    }
    assert!(seen[3].contains("secret:orders-db"), "{}", seen[3]);

    // A reference the server cannot resolve is refused, naming where to put it.
    let file = write(dir.path(), &text.replace("orders-db", "missing-one"));
    let err = failed(&flint(&server, &["apply", "-f", &file]));
    assert!(err.contains("FLINT_SECRET_MISSING_ONE"), "{err}");
    let (status, body) = server
        .patch_config("orders", json!({"env": {"DB": "secret:missing-one"}}))
        .await;
    assert_error(status, &body.to_string(), 400, "invalid_config");
    assert_eq!(server.get("/fn/orders/env?name=DB").await.1, SECRET);
}

#[tokio::test]
async fn canary_policy_moves_the_alias_step_by_step() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir);
    let text = |component: &str| {
        format!(
            "[functions.web]\ncomponent = \"{component}\"\nrelease = \"canary\"\n[functions.web.canary]\nsteps = [50, 100]\ninterval_ms = 300\nmax_error_rate = 0.5\n"
        )
    };
    let file = write(dir.path(), &text(artifacts::HELLO));
    let first = json_of(&flint(&server, &["apply", "-f", &file, "--json"]));
    assert!(
        actions(&first).contains(&("web".into(), "release".into())),
        "{first}"
    );
    let file = write(dir.path(), &text(artifacts::WASI_HELLO));
    let second = json_of(&flint(&server, &["apply", "-f", &file, "--json"]));
    assert_eq!(
        actions(&second),
        vec![
            ("web".into(), "deploy".into()),
            ("web".into(), "start_canary".into())
        ],
        "{second}"
    );
    // While it runs, apply leaves it alone.
    let during = json_of(&flint(&server, &["plan", "-f", &file, "--json"]));
    assert!(actions(&during).is_empty(), "{during}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, canary) = server.get_json("/v1/functions/web/canary").await;
        if canary["status"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "canary did not finish: {canary}");
        let _ = server.get("/fn/web/").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        server.get("/fn/web/").await.1,
        "Hello from plain wasi:http!\n"
    );
    let after = json_of(&flint(&server, &["apply", "-f", &file, "--json"]));
    assert_eq!(after["changed"], false, "{after}");
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn serve_with_a_manifest_applies_watches_and_heals_drift() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), &shop(""));
    let server = Server::start_with(
        dir.path(),
        &[
            "--manifest",
            &file,
            "--env",
            "prod",
            "--watch",
            "--reconcile-secs",
            "1",
        ],
    );
    // Applied before the server listens.
    assert_eq!(server.get("/orders/env?name=MODE").await.1, "prod");

    // An edit of the file is picked up.
    write(
        dir.path(),
        &shop("").replace("MODE = \"prod\"", "MODE = \"edited\""),
    );
    eventually("the edit", async || {
        server.get("/orders/env?name=MODE").await.1 == "edited"
    })
    .await;

    // Changes made behind the manifest's back are put back.
    server.configure("orders", json!({"memory_mb": 32})).await;
    let response = server
        .http
        .delete(server.at("/v1/functions/greeter"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    eventually("greeter to come back", async || {
        server.get("/fn/greeter/").await.0.as_u16() == 200
    })
    .await;
    eventually("memory_mb to be restored", async || {
        server.info("orders").await["config"]["memory_mb"] == 64
    })
    .await;
    let metrics = server.get("/metrics").await.1;
    assert!(
        metrics.contains("flint_drift_corrections_total{function=\"greeter\",kind=\"create\"}"),
        "{metrics}"
    );

    // A broken edit is reported and the server keeps serving what it has.
    write(dir.path(), "[functions.orders\n");
    let log = dir.path().join("data.log");
    eventually("the broken edit to be reported", async || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("manifest changed but is invalid; the server keeps its state")
    })
    .await;
    assert_eq!(server.get("/orders/env?name=MODE").await.1, "edited");
    drop(server);

    // A manifest that does not apply stops the server at start, saying why.
    let bad = write(dir.path(), "[functions.orders]\nroutes = []\n");
    let out = std::process::Command::new(FLINT)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("other"))
        .args(["--manifest", &bad])
        .output()
        .unwrap();
    let err = failed(&out);
    assert!(err.contains("exactly one of"), "{err}");
}
