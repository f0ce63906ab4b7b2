//! The OpenAPI document the server serves at `/v1/openapi.json`.
//!
//! `openapi.json` describes the operations and their successful answers.
//! Their error answers are made here from [`CODES`], so a code's status and
//! meaning are written once: each operation names the codes of its own
//! logic in `x-flint-errors`, and gets the ones every request of its kind
//! can meet from the gate (a foreign `Host` or `Origin`, a missing token, a
//! body that is too large, too slow or of the wrong type).

use super::access::{self, Surface};
use super::error::{CODES, Code};
use serde_json::{Map, Value, json};
use std::sync::LazyLock;

const TEMPLATE: &str = include_str!("openapi.json");

/// The served document.
pub(super) static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    build(TEMPLATE)
        .expect("openapi.json is checked by the tests")
        .to_string()
});

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// The template with every operation's error answers filled in.
fn build(template: &str) -> Result<Value, String> {
    let mut doc: Value = serde_json::from_str(template).map_err(|e| e.to_string())?;
    doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"] =
        CODES.iter().map(|c| c.name).collect();
    let paths = doc["paths"]
        .as_object_mut()
        .ok_or("the document has no paths")?;
    for (path, item) in paths.iter_mut() {
        for (method, operation) in item.as_object_mut().ok_or("a path is not an object")? {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let operation = operation
                .as_object_mut()
                .ok_or("an operation is not an object")?;
            let codes = errors_of(path, operation)
                .map_err(|e| format!("{} {path}: {e}", method.to_uppercase()))?;
            let responses = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| format!("{} {path} has no responses", method.to_uppercase()))?;
            describe(responses, &codes)
                .map_err(|e| format!("{} {path}: {e}", method.to_uppercase()))?;
        }
    }
    Ok(doc)
}

/// The codes an operation answers with: those the gate gives every request
/// of its kind, then its own `x-flint-errors` (removed from the operation),
/// in the order of [`CODES`].
fn errors_of(path: &str, operation: &mut Map<String, Value>) -> Result<Vec<&'static Code>, String> {
    let mut names = vec!["forbidden_host", "internal_error"];
    let admin = access::surface(path) == Surface::Admin;
    if admin {
        names.push("forbidden_origin");
    }
    let authenticated = operation.get("security").is_none_or(|s| {
        s.as_array().is_some_and(|s| {
            s.iter()
                .any(|r| r.as_object().is_some_and(|r| !r.is_empty()))
        })
    });
    if authenticated {
        names.extend(["unauthorized", "forbidden"]);
    }
    if operation.contains_key("requestBody") {
        names.extend(["payload_too_large", "request_timeout"]);
        if admin {
            names.push("unsupported_media_type");
        }
    }
    let own = operation
        .remove("x-flint-errors")
        .ok_or("no x-flint-errors list")?;
    for name in own.as_array().ok_or("x-flint-errors is not a list")? {
        let name = name.as_str().ok_or("x-flint-errors holds a non-string")?;
        if names.contains(&name) {
            return Err(format!(
                "x-flint-errors lists {name}, which every such operation gets"
            ));
        }
        names.push(name);
    }
    if let Some(unknown) = names.iter().find(|n| !CODES.iter().any(|c| c.name == **n)) {
        return Err(format!(
            "x-flint-errors lists {unknown}, which is not an error code"
        ));
    }
    Ok(CODES.iter().filter(|c| names.contains(&c.name)).collect())
}

/// Adds one response per status of `codes`, each with the codes it carries
/// and an example of each. An operation whose `default` response is a
/// function's own answer names the codes there instead, since a function
/// may answer with any status.
fn describe(responses: &mut Map<String, Value>, codes: &[&Code]) -> Result<(), String> {
    if let Some(default) = responses.get_mut("default") {
        let listed: Vec<String> = codes
            .iter()
            .map(|c| format!("`{}` ({})", c.name, c.status.as_u16()))
            .collect();
        let own = default["description"].as_str().unwrap_or_default();
        default["description"] = format!(
            "{own}; or an error of Flint's in the shape of Error: {}",
            listed.join(", ")
        )
        .into();
        return Ok(());
    }
    let mut statuses: Vec<u16> = codes.iter().map(|c| c.status.as_u16()).collect();
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        let these: Vec<&&Code> = codes
            .iter()
            .filter(|c| c.status.as_u16() == status)
            .collect();
        let key = status.to_string();
        if responses.contains_key(&key) {
            return Err(format!(
                "openapi.json describes {key} itself, which its codes {:?} describe",
                these.iter().map(|c| c.name).collect::<Vec<_>>()
            ));
        }
        let description = these
            .iter()
            .map(|c| format!("`{}`: {}", c.name, c.meaning))
            .collect::<Vec<_>>()
            .join("; ");
        let examples: Map<String, Value> = these
            .iter()
            .map(|c| {
                let value = json!({ "error": { "code": c.name, "message": c.meaning } });
                (
                    c.name.to_string(),
                    json!({ "summary": c.meaning, "value": value }),
                )
            })
            .collect();
        let mut response = json!({
            "description": description,
            "content": { "application/json": {
                "schema": { "allOf": [
                    { "$ref": "#/components/schemas/Error" },
                    { "type": "object", "properties": { "error": { "type": "object", "properties": {
                        "code": { "type": "string", "enum": these.iter().map(|c| c.name).collect::<Vec<_>>() }
                    } } } }
                ] },
                "examples": examples,
            } },
        });
        if let Some(headers) = headers(status) {
            response["headers"] = headers;
        }
        responses.insert(key, response);
    }
    Ok(())
}

/// The headers an error answer of `status` carries.
fn headers(status: u16) -> Option<Value> {
    let string = json!({ "type": "string" });
    match status {
        401 => Some(json!({ "WWW-Authenticate": {
            "description": "`Bearer realm=\"flint\"`",
            "required": true,
            "schema": string,
        } })),
        429 => Some(json!({ "Retry-After": {
            "description": "seconds to wait before retrying",
            "required": true,
            "schema": { "type": "integer", "minimum": 0 },
        } })),
        408 | 413 => Some(json!({ "Connection": {
            "description": "`close`: the rest of the body is left unread",
            "required": true,
            "schema": string,
        } })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn document() -> Value {
        build(TEMPLATE).unwrap_or_else(|e| panic!("{e}"))
    }

    fn operations(doc: &Value) -> impl Iterator<Item = (String, &Map<String, Value>)> {
        doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .iter()
                    .filter(|(m, _)| METHODS.contains(&m.as_str()))
                    .map(move |(m, op)| {
                        (
                            format!("{} {path}", m.to_uppercase()),
                            op.as_object().unwrap(),
                        )
                    })
            })
    }

    #[test]
    fn every_error_answer_lists_its_codes_with_their_status_and_an_example() {
        let doc = document();
        let mut used = BTreeSet::new();
        for (name, op) in operations(&doc) {
            assert!(!op.contains_key("x-flint-errors"), "{name}");
            for (status, response) in op["responses"].as_object().unwrap() {
                if status == "default" {
                    let text = response["description"].as_str().unwrap();
                    used.extend(
                        text.split('`')
                            .skip(1)
                            .step_by(2)
                            .filter_map(|c| CODES.iter().find(|k| k.name == c).map(|k| k.name)),
                    );
                    continue;
                }
                if !status.starts_with(['4', '5']) || name == "GET /readyz" {
                    continue;
                }
                let media = &response["content"]["application/json"];
                let codes = media["schema"]["allOf"][1]["properties"]["error"]["properties"]["code"]
                    ["enum"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{name} {status} lists no codes"));
                for code in codes {
                    let code = code.as_str().unwrap();
                    assert_eq!(
                        super::super::error::status_of(code).as_str(),
                        status,
                        "{name} {code}"
                    );
                    assert_eq!(
                        media["examples"][code]["value"]["error"]["code"], code,
                        "{name}"
                    );
                    used.insert(CODES.iter().find(|k| k.name == code).unwrap().name);
                }
            }
        }
        // Every code is some operation's answer, except the router's own
        // (unknown paths and methods, which no operation describes).
        let unused: Vec<&str> = CODES
            .iter()
            .map(|c| c.name)
            .filter(|c| !used.contains(c))
            .collect();
        assert_eq!(unused, ["method_not_allowed"]);
    }

    #[test]
    fn every_operation_shows_an_example_of_its_request_and_its_answers() {
        let doc = document();
        let mut missing = Vec::new();
        for (name, op) in operations(&doc) {
            let mut media: Vec<(String, &Value)> = Vec::new();
            if let Some(content) = op.get("requestBody").and_then(|b| b["content"].as_object()) {
                media.extend(content.iter().map(|(t, m)| (format!("request {t}"), m)));
            }
            for (status, response) in op["responses"].as_object().unwrap() {
                if let Some(content) = response["content"].as_object() {
                    media.extend(content.iter().map(|(t, m)| (format!("{status} {t}"), m)));
                }
            }
            for (place, m) in media {
                let binary = m["schema"]["format"] == "binary";
                let shown = m.get("example").is_some() || m.get("examples").is_some();
                if !binary && !shown && name != "GET /v1/openapi.json" {
                    missing.push(format!("{name} {place}"));
                }
            }
        }
        assert_eq!(missing, Vec::<String>::new(), "no example");
    }

    #[test]
    fn the_gate_s_codes_come_with_each_kind_of_operation() {
        let doc = document();
        let codes = |op: &str, status: &str| -> Vec<String> {
            let (_, op) = operations(&doc).find(|(name, _)| name == op).unwrap();
            op["responses"][status]["content"]["application/json"]["schema"]["allOf"][1]
                ["properties"]["error"]["properties"]["code"]["enum"]
                .as_array()
                .map(|a| a.iter().map(|c| c.as_str().unwrap().to_string()).collect())
                .unwrap_or_default()
        };
        assert_eq!(codes("GET /healthz", "403"), ["forbidden_host"]);
        assert_eq!(codes("GET /healthz", "401"), Vec::<String>::new());
        assert_eq!(
            codes("GET /v1/functions", "403"),
            ["forbidden", "forbidden_host", "forbidden_origin"]
        );
        assert_eq!(
            codes("PATCH /v1/functions/{name}/config", "415"),
            ["unsupported_media_type"]
        );
        assert_eq!(codes("POST /async/{name}", "413"), ["payload_too_large"]);
        assert_eq!(codes("POST /async/{name}", "415"), Vec::<String>::new());
        assert_eq!(codes("POST /async/{name}", "401"), ["unauthorized"]);
    }

    #[test]
    fn a_mistake_in_the_template_is_named() {
        let with = |errors: &str| {
            TEMPLATE.replacen(
                "\"x-flint-errors\": [\n     \"function_not_found\"\n    ]",
                &format!("\"x-flint-errors\": {errors}"),
                1,
            )
        };
        assert!(
            with("[\"function_not_found\"]") != TEMPLATE,
            "the template changed shape"
        );
        assert!(
            build(&with("[\"no_such_code\"]"))
                .unwrap_err()
                .contains("no_such_code")
        );
        assert!(
            build(&with("[\"internal_error\"]"))
                .unwrap_err()
                .contains("every such operation")
        );
    }
}
