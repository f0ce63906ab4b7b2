//! The admin API's defences: tokens and scopes (a matrix over every
//! operation of the OpenAPI document), token lifecycle, invoke and secret
//! rules, browser-borne requests (content type, Origin, Host), the admin
//! listener split, the refusal to expose an open admin API, and TLS.

use crate::support::{FLINT, Server, flint};
use flint_test_artifacts as artifacts;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

const BOOTSTRAP: &str = "bootstrap-secret-for-tests-0123456789";

/// A server whose bootstrap token is [`BOOTSTRAP`].
fn secured(dir: &tempfile::TempDir, args: &[&str]) -> Server {
    Server::start_with_env(dir.path(), args, &[("FLINT_ADMIN_TOKEN", BOOTSTRAP)])
}

/// Sends `method path` with `token` and, for writes, a body of the type the
/// operation takes; returns the status and the error code, if any.
async fn send(
    server: &Server,
    method: &Method,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> (StatusCode, String) {
    let mut request = server.http.request(method.clone(), server.at(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some((content_type, bytes)) = body {
        request = request.header("content-type", content_type).body(bytes);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (status, code)
}

/// Creates a token with the admin token; returns its secret.
async fn create_token(server: &Server, spec: Value) -> String {
    let (status, created) = server
        .call_as(Method::POST, "/v1/tokens", BOOTSTRAP, Some(&spec))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("flint_"), "{token}");
    token
}

/// One operation of the OpenAPI document.
struct Operation {
    method: Method,
    path: String,
    scope: String,
    /// The request body's media type, when it takes one.
    media: Option<String>,
}

async fn operations(server: &Server) -> Vec<Operation> {
    let (status, doc) = server.get_json("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            if method == Method::from_bytes(b"PARAMETERS").unwrap() {
                continue;
            }
            let scope = operation["x-flint-scope"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} declares no x-flint-scope"))
                .to_string();
            let media = operation["requestBody"]["content"]
                .as_object()
                .and_then(|c| c.keys().next().cloned());
            operations.push(Operation {
                method,
                path: path.clone(),
                scope,
                media,
            });
        }
    }
    assert!(operations.len() >= 30, "{} operations", operations.len());
    operations
}

/// Whether a token of `scope` whose globs cover only `orders-*` may do an
/// operation that needs `needed`, on function `function` (if the path
/// names one).
fn allowed(scope: &str, needed: &str, function: Option<&str>) -> bool {
    let covers = match scope {
        "admin" => true,
        "deploy" => needed != "admin",
        other => other == needed,
    };
    let in_glob = function.is_none_or(|f| f.starts_with("orders-"));
    covers && (scope == "admin" || in_glob)
}

#[tokio::test]
async fn every_operation_checks_tokens_scopes_and_globs() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured(&dir, &[]);
    server
        .deploy_as(BOOTSTRAP, "orders-api", artifacts::HELLO)
        .await;
    server
        .deploy_as(BOOTSTRAP, "payments", artifacts::HELLO)
        .await;
    let mut tokens = Vec::new();
    for scope in ["read", "invoke", "deploy", "admin"] {
        let token = create_token(
            &server,
            json!({"name": format!("t-{scope}"), "scope": scope, "functions": ["orders-*"]}),
        )
        .await;
        tokens.push((scope, token));
    }
    let revoked = create_token(&server, json!({"name": "gone", "scope": "admin"})).await;
    let (status, _) = send(
        &server,
        &Method::DELETE,
        "/v1/tokens/gone",
        Some(BOOTSTRAP),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let wrong = format!("flint_{}", "0".repeat(64));
    // A token limited to some functions lists only those.
    let (_, list) = server
        .call_as(Method::GET, "/v1/functions", &tokens[0].1, None)
        .await;
    let names: Vec<&str> = list["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(names, ["orders-api"], "{list}");

    let mut checked = 0;
    for op in operations(&server).await {
        if op.scope == "invoke" {
            continue; // invocations: see `functions_that_ask_for_a_token`
        }
        let body = || {
            op.media.as_deref().map(|media| {
                let bytes = if media == "application/json" {
                    b"{}".to_vec()
                } else {
                    b"not a component".to_vec()
                };
                (media, bytes)
            })
        };
        for function in ["orders-api", "payments"] {
            let names_function = op.path.contains("{name}") && op.path.starts_with("/v1/functions");
            let path = op
                .path
                .replace("{name}", function)
                .replace("{alias}", "prod");
            if op.scope == "none" {
                let (status, _) = send(&server, &op.method, &path, None, body()).await;
                assert_ne!(status, StatusCode::UNAUTHORIZED, "{} {path}", op.method);
                continue;
            }
            for (token, what) in [
                (None, "no token"),
                (Some(wrong.as_str()), "a wrong token"),
                (Some(revoked.as_str()), "a revoked token"),
            ] {
                let (status, code) = send(&server, &op.method, &path, token, body()).await;
                assert_eq!(
                    (status, code.as_str()),
                    (StatusCode::UNAUTHORIZED, "unauthorized"),
                    "{} {path} with {what}",
                    op.method
                );
            }
            for (scope, token) in &tokens {
                let (status, code) = send(&server, &op.method, &path, Some(token), body()).await;
                let target = names_function.then_some(function);
                if allowed(scope, &op.scope, target) {
                    assert!(
                        status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                        "{} {path} with a {scope} token: {status} {code}",
                        op.method
                    );
                } else {
                    assert_eq!(
                        (status, code.as_str()),
                        (StatusCode::FORBIDDEN, "forbidden"),
                        "{} {path} with a {scope} token",
                        op.method
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 200, "{checked} checks");
    // The refusals changed nothing and the server still serves.
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_web_page_cannot_change_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--allowed-host", "flint.test"]);
    server.deploy("hello", artifacts::HELLO).await;

    // The cross-site "simple request" a page can send without a preflight.
    let response = server
        .http
        .post(server.at("/v1/apply?prune=true"))
        .header("content-type", "text/plain")
        .body(r#"{"functions":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unsupported_media_type");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("application/json")
    );
    // A form post of an upload, and an upload typed as JSON.
    for content_type in [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let (status, code) = send(
            &server,
            &Method::PUT,
            "/v1/functions/hello",
            None,
            Some((content_type, artifacts::bytes(artifacts::WASI_HELLO))),
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
        );
    }
    assert_eq!(server.info("hello").await["latest_version"], 1);

    // A foreign Origin, even with the right content type.
    let response = server
        .http
        .delete(server.at("/v1/functions/hello"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden_origin");
    // The server's own origin is fine.
    let own = server.url.clone();
    let response = server
        .http
        .get(server.at("/v1/functions"))
        .header("origin", own)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // DNS rebinding: a name that resolves to 127.0.0.1 is not this server's.
    let port = server.url.rsplit(':').next().unwrap().to_string();
    for path in ["/v1/functions", "/fn/hello/", "/metrics"] {
        let response = server
            .http
            .get(server.at(path))
            .header("host", format!("evil.example:{port}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "forbidden_host", "{path}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("--allowed-host")
        );
    }
    for host in [
        format!("localhost:{port}"),
        format!("flint.test:{port}"),
        "[::1]".to_string(),
    ] {
        let response = server
            .http
            .get(server.at("/v1/functions"))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{host}");
    }

    // Every function is still there, and the server serves the next call.
    let (status, body) = server.get("/fn/hello/").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(server.info("hello").await["latest_version"], 1);
    // Running open on loopback is allowed, with one warning.
    let log = std::fs::read_to_string(dir.path().join("data.log")).unwrap();
    assert_eq!(log.matches("no tokens").count(), 1, "{log}");
}

#[tokio::test]
async fn tokens_are_created_used_expired_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured(&dir, &[]);
    let admin = |args: &[&str]| {
        let mut all = vec!["--token", BOOTSTRAP];
        all.extend_from_slice(args);
        flint(&server.url, &all)
    };

    // Printed once, alone on stdout.
    let created = admin(&[
        "token",
        "create",
        "ci",
        "--scope",
        "deploy",
        "--function",
        "app-*",
        "--expires",
        "3s",
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let stdout = String::from_utf8(created.stdout).unwrap();
    let token = stdout.trim_end_matches('\n');
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    assert!(token.starts_with("flint_") && token.len() == 70, "{token}");
    let stored = std::fs::read(dir.path().join("data/registry.db")).unwrap();
    assert!(
        !stored.windows(token.len()).any(|w| w == token.as_bytes()),
        "the registry holds the token itself"
    );

    // Used through the CLI (FLINT_TOKEN), recorded as the actor, listed
    // with its last use and never its secret.
    let with_token = |args: &[&str]| {
        Command::new(FLINT)
            .args(args)
            .env("FLINT_SERVER", &server.url)
            .env("FLINT_TOKEN", token)
            .output()
            .unwrap()
    };
    let wasm = artifacts::HELLO;
    let deployed = with_token(&["deploy", "app-a", wasm]);
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    let denied = with_token(&["deploy", "other", wasm]);
    assert!(!denied.status.success());
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains("forbidden") && stderr.contains("deploy"),
        "{stderr}"
    );
    let aliased = with_token(&["alias", "set", "app-a", "prod", "1"]);
    assert!(
        aliased.status.success(),
        "{}",
        String::from_utf8_lossy(&aliased.stderr)
    );
    // With tokens on, the actor is the token's name, whatever the header says.
    let response = server
        .http
        .put(server.at("/v1/functions/app-a/aliases/beta"))
        .bearer_auth(token)
        .header("x-flint-actor", "mallory")
        .json(&json!({"version": 1}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let path = "/v1/functions/app-a/history";
    let (_, history) = server.call_as(Method::GET, path, BOOTSTRAP, None).await;
    let actors: Vec<&Value> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["actor"])
        .collect();
    assert_eq!(actors, [&json!("ci"), &json!("ci")], "{history}");

    let listed = admin(&["token", "ls"]);
    let table = String::from_utf8(listed.stdout).unwrap();
    assert!(
        table.contains("ci") && table.contains("deploy") && table.contains("app-*"),
        "{table}"
    );
    assert!(!table.contains(token), "{table}");
    let listed = admin(&["token", "ls", "--json"]);
    let json: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let ci = &json["tokens"][0];
    assert_eq!(ci["name"], "ci");
    assert!(ci["last_used_at"].is_string(), "{json}");
    assert!(ci["expires_at"].is_string(), "{json}");
    assert!(!json.to_string().contains(token));

    // Expired: refused, with a message that says so.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let (status, _) = send(&server, &Method::GET, "/v1/functions", Some(token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let expired = with_token(&["ls"]);
    assert!(!expired.status.success());
    assert!(String::from_utf8_lossy(&expired.stderr).contains("expired"));

    // Revoked: refused from the next request on.
    let second = admin(&["token", "create", "ops", "--scope", "read"]);
    let second = String::from_utf8(second.stdout).unwrap().trim().to_string();
    let (status, _) = send(&server, &Method::GET, "/v1/functions", Some(&second), None).await;
    assert_eq!(status, StatusCode::OK);
    let revoked = admin(&["token", "revoke", "ops"]);
    assert!(revoked.status.success());
    let (status, code) = send(&server, &Method::GET, "/v1/functions", Some(&second), None).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let again = admin(&["token", "revoke", "ops"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("token_not_found"));

    // A token survives a restart: it is in the registry.
    let kept = admin(&["token", "create", "kept", "--scope", "read"]);
    let kept = String::from_utf8(kept.stdout).unwrap().trim().to_string();
    server.kill();
    let server = Server::start_with(dir.path(), &[]);
    let (status, _) = send(&server, &Method::GET, "/v1/functions", Some(&kept), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&server, &Method::GET, "/v1/functions", None, None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "stored tokens keep auth on"
    );
}

#[tokio::test]
async fn token_requests_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured(&dir, &[]);
    create_token(&server, json!({"name": "kept", "scope": "read"})).await;
    for (spec, status, code) in [
        (json!({"name": "x", "scope": "root"}), 400, "bad_request"),
        (
            json!({"name": "Bad Name", "scope": "read"}),
            400,
            "bad_request",
        ),
        (
            json!({"name": "x", "scope": "read", "functions": ["a/b"]}),
            400,
            "bad_request",
        ),
        (
            json!({"name": "x", "scope": "read", "expires_in_secs": 0}),
            400,
            "bad_request",
        ),
        (json!({"name": "admin", "scope": "read"}), 409, "conflict"),
        (json!({"name": "kept", "scope": "read"}), 409, "conflict"),
    ] {
        let (answered, body) = server
            .call_as(Method::POST, "/v1/tokens", BOOTSTRAP, Some(&spec))
            .await;
        assert_eq!(answered.as_u16(), status, "{spec}");
        assert_eq!(body["error"]["code"], code, "{spec}");
    }
    let (status, list) = server
        .call_as(Method::GET, "/v1/tokens", BOOTSTRAP, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["tokens"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn functions_that_ask_for_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured(&dir, &[]);
    server
        .deploy_as(BOOTSTRAP, "orders-api", artifacts::HELLO)
        .await;
    server
        .deploy_as(BOOTSTRAP, "public", artifacts::HELLO)
        .await;
    let patch = json!({"invoke_auth": "token"});
    let path = "/v1/functions/orders-api/config";
    let (status, _) = server
        .call_as(Method::PATCH, path, BOOTSTRAP, Some(&patch))
        .await;
    assert_eq!(status, StatusCode::OK);
    let invoke = create_token(
        &server,
        json!({"name": "app", "scope": "invoke", "functions": ["orders-*"]}),
    )
    .await;
    let elsewhere = create_token(
        &server,
        json!({"name": "other", "scope": "invoke", "functions": ["billing-*"]}),
    )
    .await;
    let read = create_token(&server, json!({"name": "reader", "scope": "read"})).await;
    let deploy = create_token(
        &server,
        json!({"name": "dev", "scope": "deploy", "functions": ["orders-*"]}),
    )
    .await;

    for path in ["/fn/orders-api/", "/fn/orders-api@1/x"] {
        let (status, code) = send(&server, &Method::GET, path, None, None).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{path}"
        );
        for (token, expected) in [
            (&invoke, StatusCode::OK),
            (&deploy, StatusCode::OK),
            (&elsewhere, StatusCode::FORBIDDEN),
            (&read, StatusCode::FORBIDDEN),
        ] {
            let (status, _) = send(&server, &Method::GET, path, Some(token), None).await;
            assert_eq!(status, expected, "{path}");
        }
    }
    // Queued invocations follow the same rule.
    let (status, code) = send(
        &server,
        &Method::POST,
        "/async/orders-api",
        None,
        Some(("application/json", b"{}".to_vec())),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    // A public function needs nothing, and an invoke token opens no admin route.
    let (status, _) = send(&server, &Method::GET, "/fn/public/", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, code) = send(&server, &Method::GET, "/v1/functions", Some(&invoke), None).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    // The CLI sends FLINT_TOKEN with invocations too.
    let called = Command::new(FLINT)
        .args(["invoke", "orders-api", "/"])
        .env("FLINT_SERVER", &server.url)
        .env("FLINT_TOKEN", &invoke)
        .output()
        .unwrap();
    assert!(
        called.status.success(),
        "{}",
        String::from_utf8_lossy(&called.stderr)
    );
}

#[tokio::test]
async fn secrets_need_a_token_whose_globs_cover_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        dir.path(),
        &[],
        &[
            ("FLINT_ADMIN_TOKEN", BOOTSTRAP),
            ("FLINT_SECRET_ORDERS_DB", "orders-password"),
            ("FLINT_SECRET_PAYMENTS_DB", "payments-password"),
        ],
    );
    let orders = create_token(
        &server,
        json!({"name": "orders", "scope": "deploy", "functions": ["orders-*"], "secrets": ["orders-*"]}),
    )
    .await;
    server
        .deploy_as(&orders, "orders-api", artifacts::HELLO)
        .await;
    let config = "/v1/functions/orders-api/config";
    let patch = |env: Value| json!({ "env": env });
    let (status, body) = server
        .call_as(
            Method::PATCH,
            config,
            &orders,
            Some(&patch(json!({"DB": "secret:payments-db"}))),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("payments-db"), "{message}");
    let allowed = patch(json!({"DB": "secret:orders-db", "PLAIN": "x"}));
    let (status, body) = server
        .call_as(Method::PATCH, config, &orders, Some(&allowed))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let admin_only = patch(json!({"DB": "secret:payments-db"}));
    let (status, _) = server
        .call_as(Method::PATCH, config, BOOTSTRAP, Some(&admin_only))
        .await;
    assert_eq!(status, StatusCode::OK);

    // Apply follows the same rule, and prune needs admin; a refusal
    // changes nothing.
    let (_, info) = server
        .call_as(Method::GET, "/v1/functions/orders-api", BOOTSTRAP, None)
        .await;
    let digest = info["versions"][0]["digest"].as_str().unwrap().to_string();
    let desired = |env: Value| json!({"functions": {"orders-api": {"digest": digest, "config": {"env": env}}}});
    for (path, state) in [
        ("/v1/apply", desired(json!({"DB": "secret:payments-db"}))),
        (
            "/v1/apply?prune=true",
            desired(json!({"DB": "secret:orders-db"})),
        ),
    ] {
        let (status, body) = server
            .call_as(Method::POST, path, &orders, Some(&state))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
    }
    let (_, stored) = server.call_as(Method::GET, config, BOOTSTRAP, None).await;
    assert_eq!(stored["env"]["DB"], "secret:payments-db", "{stored}");
    let state = desired(json!({"DB": "secret:orders-db"}));
    let (status, body) = server
        .call_as(Method::POST, "/v1/apply", &orders, Some(&state))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn the_admin_api_can_have_a_listener_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--admin-listen", "127.0.0.1:0"]);
    let admin = server.admin_url.clone().unwrap();
    assert_ne!(admin, server.url);
    let deployed = server
        .http
        .put(format!("{admin}/v1/functions/hello"))
        .header("content-type", "application/wasm")
        .body(artifacts::bytes(artifacts::HELLO))
        .send()
        .await
        .unwrap();
    assert_eq!(deployed.status(), StatusCode::CREATED);
    for (base, path, expected) in [
        (&server.url, "/fn/hello/", 200),
        (&server.url, "/healthz", 200),
        (&server.url, "/v1/functions", 404),
        (&server.url, "/v1/openapi.json", 404),
        (&server.url, "/metrics", 404),
        (&admin, "/v1/functions", 200),
        (&admin, "/metrics", 200),
        (&admin, "/healthz", 200),
        (&admin, "/fn/hello/", 404),
    ] {
        let response = server
            .http
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "{base}{path}");
    }
    // The CLI manages functions through the admin listener.
    let listed = flint(&admin, &["ls"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("hello"));
}

#[tokio::test]
async fn an_open_admin_api_is_never_exposed_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let refused = Command::new(FLINT)
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env_remove("FLINT_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("FLINT_ADMIN_TOKEN"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "nothing was started");

    // With the admin API on loopback, invocations may face the network;
    // --insecure-no-auth is the explicit way out.
    for args in [
        &["--admin-listen", "127.0.0.1:0", "--listen", "0.0.0.0:0"][..],
        &["--listen", "0.0.0.0:0", "--insecure-no-auth"][..],
    ] {
        let server = Server::start_with(dir.path(), args);
        let port = server.url.rsplit(':').next().unwrap();
        let response = server
            .http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{args:?}");
        server.kill();
    }
}

#[tokio::test]
async fn tls_round_trip_with_a_generated_certificate() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    let (cert_file, key_file, ca_file) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("ca.pem"),
    );
    std::fs::write(&cert_file, leaf.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let server = Server::start_with(
        dir.path(),
        &[
            "--tls-cert",
            cert_file.to_str().unwrap(),
            "--tls-key",
            key_file.to_str().unwrap(),
        ],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let ca_arg = ca_file.to_str().unwrap();
    let deployed = flint(
        &server.url,
        &["--cacert", ca_arg, "deploy", "hello", artifacts::HELLO],
    );
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    let called = flint(&server.url, &["--cacert", ca_arg, "invoke", "hello", "/"]);
    assert!(
        called.status.success(),
        "{}",
        String::from_utf8_lossy(&called.stderr)
    );
    assert!(!called.stdout.is_empty());

    // Over HTTP/2 (ALPN) and HTTP/1.1, with the CA trusted.
    let ca_cert = reqwest::Certificate::from_pem(&std::fs::read(&ca_file).unwrap()).unwrap();
    for http2 in [true, false] {
        let mut builder = reqwest::Client::builder().add_root_certificate(ca_cert.clone());
        if !http2 {
            builder = builder.http1_only();
        }
        let client = builder.build().unwrap();
        let response = client.get(server.at("/fn/hello/")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let expected = if http2 {
            reqwest::Version::HTTP_2
        } else {
            reqwest::Version::HTTP_11
        };
        assert_eq!(response.version(), expected);
    }
    // Without the CA the CLI refuses the server, and plain HTTP gets nothing.
    let untrusted = flint(&server.url, &["ls"]);
    assert!(!untrusted.status.success());
    let plain = server.url.replace("https://", "http://");
    assert!(
        server
            .http
            .get(format!("{plain}/healthz"))
            .send()
            .await
            .is_err()
    );
    // The server still serves after both.
    let client = reqwest::Client::builder()
        .add_root_certificate(ca_cert)
        .build()
        .unwrap();
    let response = client.get(server.at("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
