use super::*;

fn parse(text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(text, Path::new("flint.toml"))
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

const FULL: &str = r#"
[functions.orders]
component = "target/wasm32-wasip2/release/orders.wasm"
routes = ["/orders", "/orders/..."]
release = "canary"
alias = "live"

[functions.orders.canary]
steps = [25, 100]
interval_ms = 1000
max_p99_ms = 250.0

[functions.orders.config]
memory_mb = 64
env = { LOG_LEVEL = "info", DB_PASSWORD = "secret:orders-db" }

[functions.orders.trigger]
queue = "orders"

[functions.report]
build = { command = "make report", output = "out/report.wasm", dir = "report" }
release = "blue-green"

[functions.legacy]
digest = "sha256:ABCDEF0000000000000000000000000000000000000000000000000000000000"

[env.staging.functions.orders.config]
env = { LOG_LEVEL = "debug" }

[env.prod.functions.orders.config]
min_instances = 2
env = { LOG_LEVEL = "warn", EXTRA = "1" }
[env.prod.functions.orders.trigger]
queue = "orders-prod"
concurrency = 32

[env.dev]
"#;

#[test]
fn minimal_manifest_takes_the_defaults() {
    let m = Manifest::parse(
        "[functions.hello]\ncomponent = \"hello.wasm\"\n",
        Path::new("/srv/app/flint.toml"),
    )
    .unwrap();
    assert!(m.environments().is_empty());
    assert_eq!(m.base_dir(), Path::new("/srv/app"));
    let hello = &m.resolve(None).unwrap().functions["hello"];
    assert_eq!(
        hello.source,
        ComponentSource::Path("/srv/app/hello.wasm".into())
    );
    assert_eq!(hello.config, FunctionConfig::default());
    assert!(hello.routes.is_empty());
    assert_eq!(hello.trigger, None);
    assert_eq!(hello.release, ReleasePolicy::default());
}

#[test]
fn an_empty_manifest_declares_nothing() {
    assert_eq!(
        parse("").unwrap().resolve(None).unwrap(),
        Resolved::default()
    );
}

#[test]
fn relative_origin_gives_absolute_paths() {
    let m = parse("[functions.hello]\ncomponent = \"./hello.wasm\"\n").unwrap();
    let ComponentSource::Path(path) = &m.resolve(None).unwrap().functions["hello"].source else {
        panic!("not a path source");
    };
    assert!(path.is_absolute(), "{}", path.display());
    assert_eq!(path, &std::env::current_dir().unwrap().join("hello.wasm"));
}

#[test]
fn full_manifest() {
    let m = Manifest::parse(FULL, Path::new("/p/flint.toml")).unwrap();
    assert_eq!(m.environments(), ["dev", "prod", "staging"]);
    let base = m.resolve(None).unwrap();
    let orders = &base.functions["orders"];
    assert_eq!(
        orders.source,
        ComponentSource::Path("/p/target/wasm32-wasip2/release/orders.wasm".into())
    );
    assert_eq!(orders.routes, ["/orders", "/orders/..."]);
    assert_eq!(orders.config.memory_mb, 64);
    assert_eq!(orders.config.env["DB_PASSWORD"], "secret:orders-db");
    assert_eq!(orders.trigger.as_ref().unwrap().queue, "orders");
    assert_eq!(
        orders.release,
        ReleasePolicy {
            strategy: Strategy::Canary,
            alias: "live".into(),
            canary: CanaryPolicy {
                steps: vec![25, 100],
                interval_ms: 1000,
                max_error_rate: 0.01,
                max_p99_ms: Some(250.0),
            },
        }
    );
    assert_eq!(
        base.functions["report"].source,
        ComponentSource::Build {
            command: "make report".into(),
            dir: "/p/report".into(),
            output: "/p/out/report.wasm".into(),
        }
    );
    assert_eq!(
        base.functions["report"].release.strategy,
        Strategy::BlueGreen
    );
    assert_eq!(
        base.functions["report"].release.alias,
        DEFAULT_RELEASE_ALIAS
    );
    // Digests are normalised to lowercase with their prefix.
    assert_eq!(
        base.functions["legacy"].source,
        ComponentSource::Digest(
            "sha256:abcdef0000000000000000000000000000000000000000000000000000000000".into()
        )
    );
    // An empty environment is the base.
    assert_eq!(m.resolve(Some("dev")).unwrap(), base);
}

#[test]
fn overlays_merge_env_replace_the_rest_and_replace_triggers() {
    let m = parse(FULL).unwrap();
    let prod = m.resolve(Some("prod")).unwrap();
    let orders = &prod.functions["orders"];
    assert_eq!(orders.config.memory_mb, 64, "kept from the base");
    assert_eq!(orders.config.min_instances, 2, "set by the overlay");
    assert_eq!(
        orders.config.env,
        BTreeMap::from([
            ("DB_PASSWORD".to_owned(), "secret:orders-db".to_owned()),
            ("EXTRA".to_owned(), "1".to_owned()),
            ("LOG_LEVEL".to_owned(), "warn".to_owned()),
        ])
    );
    let trigger = orders.trigger.as_ref().unwrap();
    assert_eq!(
        (trigger.queue.as_str(), trigger.concurrency),
        ("orders-prod", 32)
    );
    assert_eq!(
        trigger.max_retries,
        crate::trigger::DEFAULT_MAX_RETRIES,
        "replaced whole, not merged"
    );
    // Untouched functions and everything but config and trigger are the base.
    let base = m.resolve(None).unwrap();
    assert_eq!(prod.functions["report"], base.functions["report"]);
    assert_eq!(orders.source, base.functions["orders"].source);
    assert_eq!(orders.release, base.functions["orders"].release);

    let staging = m.resolve(Some("staging")).unwrap();
    let orders = &staging.functions["orders"];
    assert_eq!(orders.config.env["LOG_LEVEL"], "debug");
    assert_eq!(orders.config.env["DB_PASSWORD"], "secret:orders-db");
    assert_eq!(
        orders.trigger.as_ref().unwrap().queue,
        "orders",
        "base trigger kept"
    );
}

#[test]
fn desired_state_carries_the_resolved_function() {
    let m = parse(FULL).unwrap();
    let resolved = m.resolve(Some("prod")).unwrap();
    let components = LoadedComponents {
        digests: BTreeMap::from([
            ("orders".to_owned(), "sha256:1".to_owned()),
            ("report".to_owned(), "sha256:2".to_owned()),
        ]),
        files: BTreeMap::new(),
    };
    let desired = resolved.desired(&components);
    let orders = &desired.functions["orders"];
    assert_eq!(orders.digest, "sha256:1");
    assert_eq!(orders.config, resolved.functions["orders"].config);
    assert_eq!(orders.routes, resolved.functions["orders"].routes);
    assert_eq!(orders.trigger, resolved.functions["orders"].trigger);
    assert_eq!(orders.release, resolved.functions["orders"].release);
    // A digest source needs no loading.
    assert_eq!(
        desired.functions["legacy"].digest,
        "sha256:abcdef0000000000000000000000000000000000000000000000000000000000"
    );
}

#[test]
fn unknown_keys_name_the_key_and_line() {
    let err = error(
        "[functions.orders]\ncomponent = \"o.wasm\"\n\n[functions.orders.config]\nmemry_mb = 64\n",
    );
    assert!(
        err.starts_with("flint.toml: TOML parse error at line 5, column 1"),
        "{err}"
    );
    assert!(err.contains("unknown field `memry_mb`"), "{err}");

    let err = error("[functions.orders]\ncomponent = \"o.wasm\"\nroute = []\n");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("unknown field `route`"), "{err}");

    let err = error("[function.orders]\ncomponent = \"o.wasm\"\n");
    assert!(err.contains("unknown field `function`"), "{err}");
}

#[test]
fn overlays_cannot_change_the_component() {
    let err = error(
        "[functions.orders]\ncomponent = \"o.wasm\"\n[env.prod.functions.orders]\ncomponent = \"other.wasm\"\n",
    );
    assert!(err.contains("line 4"), "{err}");
    assert!(err.contains("unknown field `component`"), "{err}");

    let err = error(
        "[functions.orders]\ncomponent = \"o.wasm\"\n[env.prod.functions.orders]\nroutes = [\"/x\"]\n",
    );
    assert!(err.contains("unknown field `routes`"), "{err}");
}

#[test]
fn invalid_manifests_say_where_and_what() {
    let cases = [
        (
            "[functions.orders]\nroutes = []\n",
            "flint.toml:1: functions.orders: set exactly one of `component`, `build` or `digest` (none is set)",
        ),
        (
            "\n[functions.orders]\ncomponent = \"o.wasm\"\ndigest = \"sha256:00\"\n",
            "flint.toml:2: functions.orders: set exactly one of `component`, `build` or `digest` (`component` and `digest` are set)",
        ),
        (
            "[functions.orders]\ndigest = \"sha256:xyz\"\n",
            "flint.toml:1: functions.orders.digest: \"sha256:xyz\" is not a digest",
        ),
        (
            "[functions.orders]\ncomponent = \"o.wasm\"\n[functions.orders.canary]\nsteps = [10, 100]\n",
            "flint.toml:1: functions.orders.canary: a `canary` table needs `release = \"canary\"` (release is \"immediate\")",
        ),
        (
            "[functions.orders]\ncomponent = \"o.wasm\"\nrelease = \"canary\"\ncanary = { steps = [50, 10, 100] }\n",
            "flint.toml:1: functions.orders.canary: `steps` must increase",
        ),
        (
            "[functions.orders]\ncomponent = \"o.wasm\"\nrelease = \"canary\"\ncanary = { steps = [10, 50] }\n",
            "functions.orders.canary: `steps` must end at 100",
        ),
        (
            "[functions.orders]\ncomponent = \"o.wasm\"\nrelease = \"canary\"\ncanary = { max_p99_ms = 0.0 }\n",
            "functions.orders.canary: `max_p99_ms` must be above 0",
        ),
        (
            "[functions.orders]\ncomponent = \"o.wasm\"\nrelease = \"canary\"\ncanary = { interval_ms = 50 }\n",
            "flint.toml:1: functions.orders.canary: `interval_ms` must be within 100..=86400000",
        ),
        (
            "[functions.orders]\ncomponent = \"o.wasm\"\nrelease = \"canary\"\ncanary = { max_error_rate = 2.0 }\n",
            "functions.orders.canary: `max_error_rate` must be within 0..=1",
        ),
        (
            "[functions.orders]\ncomponent = \"o.wasm\"\nrelease = \"blue-green\"\nalias = \"Prod\"\n",
            "flint.toml:1: functions.orders.alias: invalid alias name \"Prod\"",
        ),
        (
            "[functions.orders]\ncomponent = \"o.wasm\"\nalias = \"latest\"\n",
            "functions.orders.alias: `latest` is implicit",
        ),
        (
            "[functions.orders]\ncomponent = \"o.wasm\"\nconfig = { memory_mb = 4096 }\n",
            "flint.toml:1: functions.orders.config: invalid `memory_mb`: 4096 is out of range; allowed 1..=1024",
        ),
        (
            "[functions.orders]\ncomponent = \"o.wasm\"\n\n[env.prod.functions.orders.config]\ntimeout_ms = 0\n",
            "flint.toml:4: env.prod.functions.orders.config: invalid `timeout_ms`",
        ),
        (
            "[functions.orders]\ncomponent = \"o.wasm\"\n[env.prod.functions.ordres.config]\nmemory_mb = 64\n",
            "flint.toml:3: env.prod.functions.ordres: no function `ordres` is declared under [functions] (declared: orders)",
        ),
        (
            "[functions.Orders]\ncomponent = \"o.wasm\"\n",
            "flint.toml:1: functions.Orders: invalid function name \"Orders\": use 1-63 lowercase letters, digits or `-`",
        ),
        (
            "[functions.orders]\ncomponent = \"o.wasm\"\n[env.Prod]\n",
            "flint.toml:3: env.Prod: invalid environment name \"Prod\"",
        ),
        (
            "[functions.orders]\ncomponent = \"o.wasm\"\ntrigger = { queue = \"amq.x\" }\n",
            "flint.toml:1: functions.orders.trigger: invalid `queue`",
        ),
        (
            "[functions.orders]\ncomponent = \"o.wasm\"\n[env.prod.functions.orders.trigger]\nqueue = \"q\"\nconcurrency = 0\n",
            "flint.toml:3: env.prod.functions.orders.trigger: invalid `concurrency`",
        ),
        (
            "[functions.orders]\ncomponent = \"o.wasm\"\nschedule = { cron = \"61 * * * *\" }\n",
            "flint.toml:1: functions.orders.schedule: invalid `cron`: its minute field \"61\"",
        ),
        (
            "[functions.orders]\ncomponent = \"o.wasm\"\n[env.prod.functions.orders.schedule]\ncron = \"* * * * *\"\ntz = \"Nowhere\"\n",
            "flint.toml:3: env.prod.functions.orders.schedule: invalid `tz`",
        ),
        (
            "[functions.orders]\nbuild = { command = \" \", output = \"o.wasm\" }\n",
            "functions.orders.build.command: the command is empty",
        ),
        (
            "[functions.orders]\nbuild = { command = \"make\" }\n",
            "missing field `output`",
        ),
        (
            "[functions.orders]\ncomponent = \"o.wasm\"\nrelease = \"rolling\"\n",
            "unknown variant `rolling`",
        ),
    ];
    for (text, expected) in cases {
        let err = error(text);
        assert!(
            err.contains(expected),
            "{text}\nexpected: {expected}\ngot: {err}"
        );
    }
}

#[test]
fn unknown_environments_list_the_declared_ones() {
    let m = parse(FULL).unwrap();
    assert_eq!(
        m.resolve(Some("qa")).unwrap_err().to_string(),
        "flint.toml: unknown environment `qa`; declared: dev, prod, staging"
    );
    let m = parse("").unwrap();
    assert!(
        m.resolve(Some("qa"))
            .unwrap_err()
            .to_string()
            .contains("declares none"),
    );
}

#[test]
fn a_missing_manifest_suggests_flint_init() {
    let dir = tempfile::tempdir().unwrap();
    let err = Manifest::load(&dir.path().join(MANIFEST_FILE))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("cannot read "), "{err}");
    assert!(err.contains("flint.toml"), "{err}");
    assert!(err.contains("run `flint init`"), "{err}");
}

#[test]
fn load_reads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(MANIFEST_FILE);
    std::fs::write(&path, "[functions.hello]\ncomponent = \"h.wasm\"\n").unwrap();
    let m = Manifest::load(&path).unwrap();
    assert_eq!(m.origin(), path);
    assert_eq!(m.base_dir(), dir.path());
}

#[test]
fn an_overlay_replaces_the_base_schedule_whole() {
    let m = parse(
        r#"
[functions.report]
component = "r.wasm"

[functions.report.schedule]
cron = "0 9 * * *"
tz = "Europe/Berlin"
path = "/daily"
catch_up = "once"

[env.prod.functions.report.schedule]
cron = "0 6 * * *"
"#,
    )
    .unwrap();
    let base = m.resolve(None).unwrap();
    let schedule = base.functions["report"].schedule.as_ref().unwrap();
    assert_eq!(
        (
            schedule.cron.as_str(),
            schedule.tz.as_str(),
            schedule.catch_up
        ),
        ("0 9 * * *", "Europe/Berlin", crate::schedule::CatchUp::Once)
    );
    let prod = m.resolve(Some("prod")).unwrap();
    let schedule = prod.functions["report"].schedule.as_ref().unwrap();
    assert_eq!(
        (
            schedule.cron.as_str(),
            schedule.tz.as_str(),
            schedule.path.as_str()
        ),
        ("0 6 * * *", "UTC", "/"),
        "replaced whole, not merged"
    );
    let components = LoadedComponents {
        digests: BTreeMap::from([("report".to_owned(), "sha256:1".to_owned())]),
        files: BTreeMap::new(),
    };
    assert_eq!(
        prod.desired(&components).functions["report"].schedule,
        prod.functions["report"].schedule
    );
}
