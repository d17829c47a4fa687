//! Integration tests for `wok::config`: real strfry.conf compatibility,
//! the embedded default config, unknown and mistyped keys, `--set`, lookup
//! order and reload diffs.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use wok::config::{
    apply_overrides, diff_reload, keys, load, load_source, no_reload_keys, parse_str, render_conf,
    resolve_path, Config, ConfigSource, ErrorKind, LoadOptions, Setting, EMBEDDED_CONF,
    EMBEDDED_NAME,
};

fn manifest_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A scratch directory under the target dir, unique per test.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wok-config-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// wok's defaults with strfry's two NIP-11 texts: what strfry's shipped config sets.
fn strfry_defaults() -> Config {
    let mut c = Config::default();
    c.relay.info.name = "strfry default".into();
    c.relay.info.description = "This is a strfry instance.".into();
    c
}

#[test]
fn strfry_shipped_conf_is_exactly_the_defaults() {
    let path = manifest_path("tests/data/strfry.conf");
    let text = std::fs::read_to_string(&path).expect("read tests/data/strfry.conf");
    let (cfg, warnings) = parse_str(&text, "strfry.conf").expect("strfry.conf parses");
    assert!(warnings.is_empty(), "unexpected warnings: {warnings:?}");
    // Every default is strfry's but the two texts that name the software.
    assert_eq!(cfg, strfry_defaults());
    assert_eq!(
        (
            cfg.relay.info.name.as_str(),
            cfg.relay.info.description.as_str()
        ),
        ("strfry default", "This is a strfry instance.")
    );

    // And through the file loader, with the source recorded.
    let loaded = load(&LoadOptions {
        config_path: Some(path.clone()),
        overrides: vec![],
    })
    .expect("load strfry.conf");
    assert_eq!(loaded.config, strfry_defaults());
    assert_eq!(loaded.source, ConfigSource::File(path));
    assert!(loaded.warnings.is_empty());
}

#[test]
fn strfry_conf_sets_every_key() {
    // Every strfry key in the table appears in strfry's own file, and nothing else does
    // (wok's own keys are the rest of the table).
    let text = std::fs::read_to_string(manifest_path("tests/data/strfry.conf")).expect("read");
    let tree = wok::config::tao::parse(&text, "strfry.conf").expect("parses");
    let mut found = HashSet::new();
    fn collect(obj: &wok::config::tao::Object, prefix: &str, out: &mut HashSet<String>) {
        for (k, m) in obj {
            let name = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match &m.value.kind {
                wok::config::tao::ValueKind::Object(o) => collect(o, &name, out),
                _ => {
                    out.insert(name);
                }
            }
        }
    }
    collect(&tree, "", &mut found);
    let table: HashSet<String> = keys()
        .iter()
        .filter(|k| k.origin == wok::config::KeyOrigin::Strfry)
        .map(|k| k.name.to_string())
        .collect();
    assert_eq!(found, table);
}

#[test]
fn embedded_compat_conf_is_exactly_the_defaults() {
    let (cfg, warnings) = parse_str(EMBEDDED_CONF, EMBEDDED_NAME).expect("embedded conf parses");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(cfg, Config::default());

    let on_disk = std::fs::read_to_string(manifest_path("strfry-compat.conf")).expect("read");
    assert_eq!(on_disk, EMBEDDED_CONF);

    // Every key is documented in it, restart keys say so.
    for k in keys() {
        let leaf = k.name.rsplit('.').next().unwrap_or(k.name);
        // retention.rules is a block of named rules: `rules {}`.
        assert!(
            EMBEDDED_CONF.contains(&format!("{leaf} = "))
                || EMBEDDED_CONF.contains(&format!("{leaf} {{")),
            "{} missing",
            k.name
        );
    }
    let restart_notes = EMBEDDED_CONF
        .lines()
        .filter(|l| l.trim_start().starts_with('#') && l.ends_with(" (restart required)"))
        .count();
    assert_eq!(restart_notes, no_reload_keys().count());
}

#[test]
fn compat_conf_is_generated_from_the_table() {
    // strfry-compat.conf is render_conf(&Config::default()). After changing the
    // key table, regenerate it with: WOK_BLESS=1 cargo test --test config
    let rendered = render_conf(&Config::default());
    let path = manifest_path("strfry-compat.conf");
    if std::env::var_os("WOK_BLESS").is_some() {
        std::fs::write(&path, &rendered).expect("write strfry-compat.conf");
        return;
    }
    let on_disk = std::fs::read_to_string(&path).expect("read strfry-compat.conf");
    assert!(
        on_disk == rendered,
        "strfry-compat.conf is out of date; run: WOK_BLESS=1 cargo test --test config"
    );
}

#[test]
fn unknown_key_is_a_warning_with_its_line() {
    let text = "db = \"./strfry-db/\"\n\nrelay {\n    bind = \"127.0.0.1\"\n    prot = 7778\n}\nrelay.info.nmae = \"x\"\n";
    let (cfg, warnings) = parse_str(text, "strfry.conf").expect("parses");
    assert_eq!(cfg, Config::default(), "unknown keys change nothing");
    assert_eq!(
        warnings,
        [
            "strfry.conf:5: unknown config key 'relay.prot' (ignored); did you mean 'relay.port'?",
            "strfry.conf:7: unknown config key 'relay.info.nmae' (ignored); did you mean 'relay.info.name'?",
        ]
    );
}

#[test]
fn wrong_type_is_an_error_naming_the_key() {
    let text = "relay {\n    bind = \"0.0.0.0\"\n\n\n\n\n\n    port = \"7777\"\n}\n";
    let err = parse_str(text, "strfry.conf").expect_err("type error");
    assert_eq!(err.kind, ErrorKind::Type);
    assert_eq!(err.key.as_deref(), Some("relay.port"));
    assert_eq!(
        err.to_string(),
        "strfry.conf:8:12: relay.port: expected a non-negative integer, got string"
    );

    let err = parse_str("relay.auth.enabled = \"yes\"", "c.conf").expect_err("bool");
    assert_eq!(
        err.to_string(),
        "c.conf:1:22: relay.auth.enabled: expected true or false, got string"
    );
    let err = parse_str("relay { info = [] }", "c.conf").expect_err("section");
    assert_eq!(
        err.to_string(),
        "c.conf:1:16: relay.info: expected an object (a section of keys), got array"
    );
    let err = parse_str("relay.info.name { x = 1 }", "c.conf").expect_err("object for scalar");
    assert_eq!(
        err.to_string(),
        "c.conf:1:17: relay.info.name: expected a string, got object"
    );
}

#[test]
fn syntax_errors_have_positions() {
    let err = parse_str(
        "relay {\n  port = 7777\n  bind = 0.0.0.0\n}\n",
        "strfry.conf",
    )
    .expect_err("syntax");
    assert_eq!(err.kind, ErrorKind::Syntax);
    assert!(
        err.to_string()
            .starts_with("strfry.conf:3:10: invalid number"),
        "{err}"
    );
    let err = parse_str("db = (env \"DB\")", "x.conf").expect_err("unsupported");
    assert_eq!(
        err.to_string(),
        "x.conf:1:6: unsupported taoCONFIG feature: extension (env ...)"
    );
}

#[test]
fn taoconfig_forms_load_into_config() {
    let text = r#"
        // JSON-ish with comments and quoted names
        "db": './other-db/',
        relay { bind = "0.0.0.0"  port = 7777  info { name = "x" } }
        relay.info.description = "y"          # dotted form merges into the block
        relay { maxFilterLimit: 1000, }       /* ':' and trailing comma */
        relay.port = 4000
        relay.port = 4001                     # last one wins
        relay.info.contact = "me"
        relay.info.contact = delete           # back to the default
        events += { maxNumTags = 10 }
    "#;
    let (cfg, warnings) = parse_str(text, "forms.conf").expect("parses");
    assert!(warnings.is_empty(), "{warnings:?}");
    let mut want = Config {
        db: "./other-db/".into(),
        ..Config::default()
    };
    want.relay.bind = "0.0.0.0".into();
    want.relay.port = 4001;
    want.relay.info.name = "x".into();
    want.relay.info.description = "y".into();
    want.relay.max_filter_limit = 1000;
    want.events.max_num_tags = 10;
    assert_eq!(cfg, want);
}

#[test]
fn set_overrides_dotted_and_internal_forms() {
    let mut cfg = Config::default();
    apply_overrides(
        &mut cfg,
        &strings(&[
            "relay.port=9999",
            "relay__info__name=My Relay",
            "relay.auth.enabled=off",
            "relay__logging__dbScanPerf=YES",
            "relay.info.description",
            "two strings form",
        ]),
    )
    .expect("overrides apply");
    assert_eq!(cfg.relay.port, 9999);
    assert_eq!(cfg.relay.info.name, "My Relay");
    assert!(!cfg.relay.auth.enabled);
    assert!(cfg.relay.logging.db_scan_perf);
    assert_eq!(cfg.relay.info.description, "two strings form");
}

#[test]
fn set_bool_spellings() {
    for (v, want) in [
        ("1", true),
        ("0", false),
        ("true", true),
        ("False", false),
        ("YES", true),
        ("no", false),
        ("On", true),
        ("OFF", false),
    ] {
        let mut cfg = Config::default();
        cfg.relay.negentropy.enabled = !want;
        apply_overrides(&mut cfg, &[format!("relay.negentropy.enabled={v}")]).expect(v);
        assert_eq!(cfg.relay.negentropy.enabled, want, "{v}");
    }
    let err = apply_overrides(
        &mut Config::default(),
        &strings(&["relay.negentropy.enabled=maybe"]),
    )
    .expect_err("bad bool");
    assert_eq!(err.kind, ErrorKind::BadOverride);
    assert_eq!(err.key.as_deref(), Some("relay.negentropy.enabled"));
}

#[test]
fn set_bad_uint_and_unknown_key() {
    for v in ["12a", "-5", "", "1.0", " 7", "99999999999999999999"] {
        let err =
            apply_overrides(&mut Config::default(), &[format!("relay.port={v}")]).expect_err(v);
        assert_eq!(err.kind, ErrorKind::BadOverride, "{v}");
        assert!(
            err.to_string().starts_with("relay.port: --set value"),
            "{err}"
        );
    }
    let err = apply_overrides(&mut Config::default(), &strings(&["relay.nosuch=1"]))
        .expect_err("unknown");
    assert_eq!(err.kind, ErrorKind::UnknownOverride);
    assert_eq!(
        err.to_string(),
        "unknown config key for --set override: relay.nosuch"
    );
    let err = apply_overrides(&mut Config::default(), &strings(&["relay__nosuch=1"]))
        .expect_err("unknown");
    assert_eq!(
        err.to_string(),
        "unknown config key for --set override: relay__nosuch"
    );
}

#[test]
fn overrides_apply_after_the_file() {
    let dir = scratch_dir("overrides");
    let path = dir.join("strfry.conf");
    std::fs::write(&path, "relay { port = 1111 info.name = 'file' }\n").expect("write");
    let loaded = load(&LoadOptions {
        config_path: Some(path.clone()),
        overrides: strings(&["relay.port=2222"]),
    })
    .expect("load");
    assert_eq!(loaded.config.relay.port, 2222);
    assert_eq!(loaded.config.relay.info.name, "file");

    let err = load(&LoadOptions {
        config_path: Some(path),
        overrides: strings(&["nope=1"]),
    })
    .expect_err("unknown override");
    assert_eq!(err.kind, ErrorKind::UnknownOverride);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lookup_order() {
    let none = |_: &Path| false;
    let all = |_: &Path| true;
    let only_local = |p: &Path| p == Path::new("./strfry.conf");

    // --config wins over everything, even if the file does not exist.
    assert_eq!(
        resolve_path(
            Some(Path::new("/x/given.conf")),
            Some(OsStr::new("/env.conf")),
            all
        ),
        ConfigSource::File("/x/given.conf".into())
    );
    // Then $STRFRY_CONFIG (not checked for existence either).
    assert_eq!(
        resolve_path(None, Some(OsStr::new("/env.conf")), none),
        ConfigSource::File("/env.conf".into())
    );
    // An empty $STRFRY_CONFIG counts as unset.
    assert_eq!(
        resolve_path(None, Some(OsStr::new("")), all),
        ConfigSource::File("/etc/strfry.conf".into())
    );
    // Then /etc/strfry.conf, then ./strfry.conf.
    assert_eq!(
        resolve_path(None, None, all),
        ConfigSource::File("/etc/strfry.conf".into())
    );
    assert_eq!(
        resolve_path(None, None, only_local),
        ConfigSource::File("./strfry.conf".into())
    );
    // Otherwise the embedded config.
    assert_eq!(resolve_path(None, None, none), ConfigSource::Embedded);
}

#[test]
fn embedded_source_loads_defaults_with_a_notice() {
    let loaded =
        load_source(&ConfigSource::Embedded, &strings(&["relay.port=1"])).expect("embedded");
    assert_eq!(loaded.source, ConfigSource::Embedded);
    assert_eq!(
        loaded.config,
        Config {
            relay: wok::config::RelayConfig {
                port: 1,
                ..Default::default()
            },
            ..Default::default()
        }
    );
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].contains("using built-in defaults"));
}

#[test]
fn unreadable_files_are_errors() {
    let dir = scratch_dir("io");
    let missing = dir.join("missing.conf");
    let err = load_source(&ConfigSource::File(missing.clone()), &[]).expect_err("missing");
    assert_eq!(err.kind, ErrorKind::Io);
    assert!(
        err.to_string()
            .starts_with(&format!("{}: cannot read config file", missing.display())),
        "{err}"
    );

    let bad = dir.join("latin1.conf");
    std::fs::write(&bad, b"relay.info.name = \"caf\xe9\"\n").expect("write");
    let err = load_source(&ConfigSource::File(bad), &[]).expect_err("not utf-8");
    assert!(err.to_string().contains("not valid UTF-8"), "{err}");

    let err = load_source(&ConfigSource::File(dir.clone()), &[]).expect_err("a directory");
    assert_eq!(err.kind, ErrorKind::Io);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn warnings_carry_the_file_path() {
    let dir = scratch_dir("warn");
    let path = dir.join("strfry.conf");
    std::fs::write(&path, "relay {\n  prot = 1\n}\n").expect("write");
    let loaded = load_source(&ConfigSource::File(path.clone()), &[]).expect("load");
    assert_eq!(
        loaded.warnings,
        [format!(
            "{}:2: unknown config key 'relay.prot' (ignored); did you mean 'relay.port'?",
            path.display()
        )]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn diff_reload_keeps_no_reload_keys() {
    let old = parse_str("relay { port = 7777 info.name = 'a' }", "old")
        .expect("old")
        .0;
    let new = parse_str(
        "db = './elsewhere' relay { port = 7778 info.name = 'b' maxFilterLimit = 100 compression.enabled = false }",
        "new",
    )
    .expect("new")
    .0;
    let (effective, log) = diff_reload(&old, &new);
    assert_eq!(effective.db, "./strfry-db/");
    assert_eq!(effective.relay.port, 7777);
    assert!(effective.relay.compression.enabled);
    assert_eq!(effective.relay.info.name, "b");
    assert_eq!(effective.relay.max_filter_limit, 100);
    assert_eq!(
        log,
        [
            "'db' changed but is a noReload field. Ignoring.",
            "'relay.port' changed but is a noReload field. Ignoring.",
            "'relay.maxFilterLimit' changed from '500' to '100'",
            "'relay.info.name' changed from 'a' to 'b'",
            "'relay.compression.enabled' changed but is a noReload field. Ignoring.",
        ]
    );
    // Reloading the effective config again changes nothing further.
    let (again, log2) = diff_reload(&effective, &effective.clone());
    assert_eq!(again, effective);
    assert!(log2.is_empty());
}

#[test]
fn no_reload_keys_are_strfrys() {
    let mut r: Vec<&str> = no_reload_keys().collect();
    r.sort_unstable();
    let mut want = vec![
        "db",
        "dbParams.mapsize",
        "dbParams.maxreaders",
        "dbParams.noReadAhead",
        "relay.autoPingSeconds",
        "relay.bind",
        "relay.compression.enabled",
        "relay.compression.slidingWindow",
        "relay.maxWebsocketPayloadSize",
        "relay.nofiles",
        "relay.numThreads.ingester",
        "relay.numThreads.negentropy",
        "relay.numThreads.reqMonitor",
        "relay.numThreads.reqWorker",
        "relay.port",
    ];
    want.sort_unstable();
    assert_eq!(r, want);
}

#[test]
fn get_display_uses_the_table() {
    let cfg = Config::default();
    assert_eq!(cfg.get_display("relay.port").as_deref(), Some("7777"));
    assert_eq!(cfg.get_display("relay__port").as_deref(), Some("7777"));
    assert_eq!(
        cfg.get_display("dbParams.mapsize").as_deref(),
        Some("10995116277760")
    );
    assert_eq!(
        cfg.get_display("relay.auth.enabled").as_deref(),
        Some("true")
    );
    assert_eq!(cfg.get_display("relay.info.name").as_deref(), Some("wok"));
    assert_eq!(
        cfg.get_display("relay.auth.restrictedReadKinds").as_deref(),
        Some("4, 1059")
    );
    assert_eq!(cfg.get_display("relay.info.self").as_deref(), Some(""));
    assert_eq!(cfg.get_display("relay"), None);
    assert_eq!(cfg.get_display("nope"), None);
    assert_eq!(
        cfg.get_setting("relay.maxFilterLimit"),
        Some(Setting::U64(500))
    );
}

#[test]
fn defaults_match_the_reference() {
    let c = Config::default();
    assert_eq!(c.db, "./strfry-db/");
    assert_eq!(
        (
            c.db_params.maxreaders,
            c.db_params.mapsize,
            c.db_params.no_read_ahead
        ),
        (256, 10_995_116_277_760, false)
    );
    let e = &c.events;
    assert_eq!(
        (
            e.max_event_size,
            e.reject_events_newer_than_seconds,
            e.reject_events_older_than_seconds
        ),
        (65536, 900, 94_608_000)
    );
    assert_eq!(
        (
            e.reject_ephemeral_events_older_than_seconds,
            e.ephemeral_events_lifetime_seconds,
            e.max_num_tags,
            e.max_tag_val_size
        ),
        (60, 300, 2000, 1024)
    );
    let r = &c.relay;
    assert_eq!(
        (
            r.bind.as_str(),
            r.port,
            r.nofiles,
            r.real_ip_header.as_str()
        ),
        ("127.0.0.1", 7777, 524_288, "")
    );
    assert_eq!(
        (
            r.max_websocket_payload_size,
            r.max_req_filter_size,
            r.auto_ping_seconds
        ),
        (131_072, 200, 55)
    );
    assert!(!r.enable_tcp_keepalive);
    assert_eq!(
        (
            r.query_timeslice_budget_microseconds,
            r.max_filter_limit,
            r.max_tags_per_filter,
            r.max_filter_limit_count
        ),
        (10_000, 500, 3, 1_000_000)
    );
    assert_eq!(
        (r.max_subs_per_connection, r.max_pending_outbound_bytes),
        (200, 33_554_432)
    );
    assert!(r.auth.enabled && r.auth.restrict_read_to_involved_pubkey);
    assert_eq!(
        (
            r.auth.service_url.as_str(),
            r.auth.restricted_read_kinds.as_str()
        ),
        ("", "4, 1059")
    );
    // wok's own words where strfry's would misname the relay.
    assert_eq!(
        (r.info.name.as_str(), r.info.description.as_str()),
        ("wok", "A Nostr relay running wok.")
    );
    for s in [
        &r.info.pubkey,
        &r.info.self_pubkey,
        &r.info.contact,
        &r.info.icon,
        &r.info.banner,
        &r.info.privacy,
        &r.info.terms,
        &r.info.nips,
    ] {
        assert_eq!(s, "");
    }
    assert_eq!(
        (
            r.write_policy.plugin.as_str(),
            r.write_policy.timeout_seconds
        ),
        ("", 10)
    );
    assert!(r.compression.enabled && r.compression.sliding_window);
    let l = &r.logging;
    assert!(
        !l.dump_in_all
            && !l.dump_in_events
            && !l.dump_in_reqs
            && !l.db_scan_perf
            && l.invalid_events
    );
    let t = &r.num_threads;
    assert_eq!(
        (t.ingester, t.req_worker, t.req_monitor, t.negentropy),
        (3, 3, 3, 2)
    );
    assert!(r.negentropy.enabled);
    assert_eq!(r.negentropy.max_sync_events, 1_000_000);
    assert_eq!(r.negentropy.idle_timeout_seconds, 300);
    let f = &r.filter_validation;
    assert!(!f.enabled && !f.require_author_or_tag);
    assert_eq!(
        (
            f.max_filters_per_req,
            f.min_filters_per_req,
            f.max_kinds_per_filter,
            f.allowed_kinds.as_str()
        ),
        (3, 1, 3, "")
    );
}

#[test]
fn hostile_inputs_fail_cleanly() {
    for text in [
        "{".repeat(1_000_000),
        "[".repeat(1_000_000),
        format!("a = {}", "[".repeat(1_000_000)),
        "a.".repeat(100_000) + "b = 1",
        "\"".to_string(),
        "/*".to_string(),
        "\u{0}\u{1}\u{2}".to_string(),
        "relay { port = 18446744073709551616 }".to_string(),
    ] {
        assert!(parse_str(&text, "hostile").is_err());
    }
}
