//! The gateway's layers run one way: adapters -> core -> store, with leaf
//! modules any layer may use. Read from the source, so a new import that
//! breaks the direction (or makes a cycle) fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every top-level module and the top-level modules it may import.
const ALLOWED: &[(&str, &[&str])] = &[
    ("body_timeout", &[]),
    ("config", &[]),
    ("metrics", &[]),
    ("routes", &[]),
    ("secrets", &[]),
    ("limits", &["body_timeout", "config"]),
    ("store", &[]),
    (
        "core",
        &[
            "body_timeout",
            "config",
            "limits",
            "metrics",
            "routes",
            "secrets",
            "store",
        ],
    ),
    (
        "api",
        &["body_timeout", "core", "config", "limits", "metrics"],
    ),
    ("triggers", &["core", "config", "limits", "metrics"]),
    ("reconcile", &["core"]),
    ("scheduler", &["core"]),
    ("cluster", &["config", "core", "store"]),
    ("connection", &["config"]),
    (
        "server",
        &[
            "api",
            "body_timeout",
            "connection",
            "core",
            "config",
            "scheduler",
            "triggers",
        ],
    ),
];

/// The top-level modules `text` names as `crate::NAME` outside comments.
fn crate_refs(text: &str, own: &str, into: &mut BTreeSet<String>) {
    for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let name: String = line[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name != own && !name.is_empty() {
                into.insert(name);
            }
        }
    }
}

/// Adds what every `.rs` file at or below `path` imports to `module`'s set.
fn scan(path: &Path, module: &str, graph: &mut BTreeMap<String, BTreeSet<String>>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            scan(&entry.unwrap().path(), module, graph);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        let text = std::fs::read_to_string(path).unwrap();
        crate_refs(&text, module, graph.entry(module.to_string()).or_default());
    }
}

/// Each top-level module of the gateway and the modules it imports.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let module = path.file_stem().unwrap().to_string_lossy().into_owned();
        if module != "lib" {
            scan(&path, &module, &mut graph);
        }
    }
    graph
}

#[test]
fn every_module_imports_only_the_layers_below_it() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let graph = graph();
    for (module, uses) in &graph {
        let Some(may) = allowed.get(module.as_str()) else {
            panic!("module `{module}` has no place in the layer table; add it to ALLOWED");
        };
        for used in uses {
            assert!(
                may.contains(&used.as_str()),
                "`{module}` imports `crate::{used}`, which is not below it"
            );
        }
    }
}

#[test]
fn the_modules_have_no_import_cycle() {
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(module) {
            return;
        }
        if let Some(start) = path.iter().position(|m| m == module) {
            panic!("import cycle: {} -> {module}", path[start..].join(" -> "));
        }
        path.push(module.to_string());
        for used in graph.get(module).into_iter().flatten() {
            visit(used, graph, path, done);
        }
        path.pop();
        done.insert(module.to_string());
    }
    let graph = graph();
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done);
    }
    assert!(
        graph.contains_key("core") && graph.contains_key("api"),
        "{graph:?}"
    );
}
