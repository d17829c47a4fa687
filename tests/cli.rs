//! The real `wok` binary: global flags, exit codes and messages.

mod common;

use std::process::{Command, Output};

fn wok(args: &[&str]) -> Output {
    common::run(
        Command::new(env!("CARGO_BIN_EXE_wok"))
            .args(args)
            .env_remove("STRFRY_CONFIG")
            .current_dir(env!("CARGO_MANIFEST_DIR")),
    )
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_lists_working_commands() {
    let out = wok(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for s in ["config", "--config", "--set", "--verbosity"] {
        assert!(help.contains(s), "help lacks {s}: {help}");
    }
    // No arguments: help on stderr and a failing exit, like strfry.
    assert!(!wok(&[]).status.success());
}

#[test]
fn strfrys_own_config_checks_clean() {
    let out = wok(&["--config", "tests/data/strfry.conf", "config", "check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("ok (0 warning(s))"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn set_overrides_and_show() {
    let out = wok(&[
        "--config",
        "tests/data/strfry.conf",
        "--set",
        "relay__port=7778",
        "config",
        "show",
        "relay.port",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "7778");
    let out = wok(&["--set", "relay.nope=1", "config", "check"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown config key for --set override: relay.nope"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_files_fail_with_position_and_key() {
    let dir = std::env::temp_dir().join(format!("wok-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let f = dir.join("bad.conf");
    std::fs::write(&f, "relay {\n  port = \"x\"\n}\n").expect("write");
    let out = wok(&["--config", f.to_str().expect("utf8"), "config", "check"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("bad.conf:2:10: relay.port"),
        "{}",
        text(&out.stderr)
    );

    // A strfry key that does nothing in wok, set away from its default: warned about.
    std::fs::write(&f, "events {\n  ephemeralEventsLifetimeSeconds = 60\n}\n").expect("write");
    let out = wok(&["--config", f.to_str().expect("utf8"), "config", "check"]);
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains(
            "bad.conf:2: events.ephemeralEventsLifetimeSeconds has no effect in wok: ephemeral \
             events are delivered live and never stored"
        ),
        "{}",
        text(&out.stderr)
    );

    std::fs::write(&f, "relay {\n  prot = 1\n}\n").expect("write");
    let out = wok(&["--config", f.to_str().expect("utf8"), "config", "check"]);
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("bad.conf:2: unknown config key 'relay.prot'") && err.contains("relay.port"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_verbosity_is_refused() {
    assert!(!wok(&["--verbosity", "loud", "config", "check"])
        .status
        .success());
}

#[test]
fn set_before_and_after_the_command_both_apply() {
    let out = wok(&[
        "--set",
        "db=/tmp/wok-set-test/",
        "config",
        "show",
        "--set",
        "relay.port=1234",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("db = \"/tmp/wok-set-test/\""), "{text}");
    assert!(text.contains("port = 1234"), "{text}");
}

#[test]
fn version_names_the_commit() {
    let out = wok(&["--version"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    // `wok 0.1.0 (abc1234)`, or `(unknown)` when built without git.
    let rest = line
        .strip_prefix(&format!("wok {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(")\n"))
        .unwrap_or_else(|| panic!("unexpected --version output: {line:?}"));
    assert!(
        rest == "unknown" || (rest.len() >= 7 && rest.bytes().all(|b| b.is_ascii_hexdigit())),
        "{line:?}"
    );
    // Built from this checkout: the commit git reports here (when there is a checkout and
    // git is available).
    let checkout = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".git");
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success() && checkout.exists());
    if let Some(head) = head {
        assert_eq!(rest, text(&head.stdout).trim(), "{line:?}");
    }
}
