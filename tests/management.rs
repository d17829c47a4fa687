//! NIP-86 relay management over real HTTP: NIP-98 authorization (each refusal and its
//! status, a token good for one request), every method's effect on a running relay, 413,
//! and persistence across a restart.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::{http_request, keys, note, now, TestRelay, WAIT};
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::Message;
use wok::nostr::hex;
use wok::nostr::sign::Keys;
use wok::policy::manage::nip98_header;

const CT: &str = "Content-Type: application/nostr+json+rpc\r\n";

fn admin() -> Keys {
    keys(42)
}

fn managed(tweak: impl FnOnce(&mut wok::config::Config)) -> TestRelay {
    TestRelay::with(|c| {
        c.relay.management.admin_pubkeys = hex::encode(&admin().pubkey);
        tweak(c);
    })
}

fn http_url(relay: &TestRelay) -> String {
    format!("http://{}/", relay.url.trim_start_matches("ws://"))
}

/// One signed call; the status and the body.
fn call_as(relay: &TestRelay, k: &Keys, method: &str, params: Value) -> (u16, String) {
    let body = json!({ "method": method, "params": params }).to_string();
    let auth = nip98_header(k, &http_url(relay), body.as_bytes(), now()).expect("sign");
    let (status, _, answer) = http_request(
        &relay.url,
        "POST",
        "/",
        &format!("{CT}Authorization: {auth}\r\n"),
        body.as_bytes(),
    );
    (status, answer)
}

/// A call by the admin that must succeed; its `result`.
fn call(relay: &TestRelay, method: &str, params: Value) -> Value {
    let (status, body) = call_as(relay, &admin(), method, params);
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON-RPC answer");
    assert!(v.get("error").is_none_or(Value::is_null), "{v}");
    v["result"].clone()
}

fn ok_of(c: &mut common::Client, ev: &wok::nostr::Event) -> (bool, String) {
    let r = c.publish(ev);
    (r[2] == true, r[3].as_str().unwrap_or("").to_owned())
}

#[test]
fn authorization_statuses() {
    let relay = managed(|_| {});
    let body = br#"{"method":"supportedmethods","params":[]}"#;
    let url = http_url(&relay);

    // No token, a garbage token.
    let (s, _, b) = http_request(&relay.url, "POST", "/", CT, body);
    assert_eq!(s, 401);
    assert!(b.contains("missing Authorization"), "{b}");
    let (s, _, b) = http_request(
        &relay.url,
        "POST",
        "/",
        &format!("{CT}Authorization: Nostr !!!\r\n"),
        body,
    );
    assert_eq!(s, 401);
    assert!(b.contains("base64"), "{b}");
    // Signed for another body, another URL, too long ago.
    let bad = [
        (nip98_header(&admin(), &url, b"{}", now()), "payload"),
        (
            nip98_header(&admin(), "http://elsewhere.example/", body, now()),
            "u tag",
        ),
        (
            nip98_header(&admin(), &url, body, now() - 120),
            "created_at",
        ),
    ];
    for (auth, why) in bad {
        let auth = auth.expect("sign");
        let (s, _, b) = http_request(
            &relay.url,
            "POST",
            "/",
            &format!("{CT}Authorization: {auth}\r\n"),
            body,
        );
        assert_eq!(s, 401, "{why}: {b}");
        assert!(b.contains(why), "{why}: {b}");
    }
    // A valid token from someone who is not an admin.
    let (s, b) = call_as(&relay, &keys(7), "supportedmethods", json!([]));
    assert_eq!(s, 403, "{b}");
    // The admin: methods, an unknown method and bad params as JSON-RPC errors.
    let methods = call(&relay, "supportedmethods", json!([]));
    assert!(methods
        .as_array()
        .expect("list")
        .contains(&json!("banpubkey")));
    for (m, p) in [
        ("nosuchmethod", json!([])),
        ("banpubkey", json!(["not hex"])),
        ("allowkind", json!(["one"])),
        ("blockip", json!([12])),
    ] {
        let (s, b) = call_as(&relay, &admin(), m, p);
        assert_eq!(s, 200, "{b}");
        let v: Value = serde_json::from_str(&b).expect("json");
        assert!(v["error"].is_string(), "{m}: {v}");
    }
    // Too large: 413 before the body is read.
    let big = vec![b' '; 70_000];
    let (s, _, _) = http_request(&relay.url, "POST", "/", CT, &big);
    assert_eq!(s, 413);
}

/// A NIP-98 token is good for one request: the same header sent again is refused with 401
/// and the reason, also after the change it made was undone (a captured `banpubkey`
/// replayed after an `unbanpubkey`); copies sent at once get one 200 between them; the
/// same call signed anew works.
#[test]
fn a_token_is_good_for_one_request() {
    let relay = managed(|_| {});
    let target = hex::encode(&keys(5).pubkey);
    let body = json!({ "method": "banpubkey", "params": [target, "spam"] }).to_string();
    let auth = nip98_header(&admin(), &http_url(&relay), body.as_bytes(), now()).expect("sign");
    let send = |auth: &str| {
        let (status, _, answer) = http_request(
            &relay.url,
            "POST",
            "/",
            &format!("{CT}Authorization: {auth}\r\n"),
            body.as_bytes(),
        );
        (status, answer)
    };
    let (s, b) = send(&auth);
    assert_eq!(s, 200, "{b}");
    let (s, b) = send(&auth);
    assert_eq!(s, 401, "the same token twice: {b}");
    assert!(b.contains("already used"), "{b}");

    call(&relay, "unbanpubkey", json!([target]));
    let (s, b) = send(&auth);
    assert_eq!(s, 401, "the captured ban replayed: {b}");
    assert!(b.contains("already used"), "{b}");
    assert_eq!(call(&relay, "listbannedpubkeys", json!([])), json!([]));

    // Copies of a fresh token at once: one is served, the others refused.
    let unban = json!({ "method": "unbanpubkey", "params": [target] }).to_string();
    let auth = nip98_header(&admin(), &http_url(&relay), unban.as_bytes(), now()).expect("sign");
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let sends: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    http_request(
                        &relay.url,
                        "POST",
                        "/",
                        &format!("{CT}Authorization: {auth}\r\n"),
                        unban.as_bytes(),
                    )
                    .0
                })
            })
            .collect();
        sends.into_iter().map(|h| h.join().expect("send")).collect()
    });
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 401).count(),
        5,
        "{statuses:?}"
    );

    // The same ban, signed anew (within the same second, too): a new token, served.
    assert_eq!(
        call(&relay, "banpubkey", json!([target, "spam"])),
        json!(true)
    );
    assert_eq!(
        call(&relay, "banpubkey", json!([target, "spam"])),
        json!(true)
    );
    assert_eq!(
        call(&relay, "listbannedpubkeys", json!([])),
        json!([{ "pubkey": target, "reason": "spam" }])
    );
}

#[test]
fn pubkey_event_and_kind_methods_take_effect_at_once() {
    let relay = managed(|_| {});
    let mut c = relay.client();
    let (spammer, someone) = (keys(1), keys(2));

    // banpubkey: the next EVENT is blocked.
    assert!(ok_of(&mut c, &note(&spammer, "first")).0);
    let sp = hex::encode(&spammer.pubkey);
    assert_eq!(call(&relay, "banpubkey", json!([sp, "spam"])), json!(true));
    let (ok, why) = ok_of(&mut c, &note(&spammer, "second"));
    assert!(!ok);
    assert!(why.starts_with("blocked:"), "{why}");
    assert_eq!(
        call(&relay, "listbannedpubkeys", json!([])),
        json!([{ "pubkey": sp, "reason": "spam" }])
    );
    call(&relay, "unbanpubkey", json!([sp]));
    assert!(ok_of(&mut c, &note(&spammer, "third")).0);

    // banevent: deleted from the store and refused when sent again.
    let ev = note(&someone, "to be banned");
    assert!(ok_of(&mut c, &ev).0);
    let id = ev.id_hex().to_owned();
    assert_eq!(c.req("a", &format!(r#"{{"ids":["{id}"]}}"#)).len(), 1);
    call(&relay, "banevent", json!([id, "illegal"]));
    assert!(c.req("b", &format!(r#"{{"ids":["{id}"]}}"#)).is_empty());
    let (ok, why) = ok_of(&mut c, &ev);
    assert!(!ok);
    assert!(why.starts_with("blocked:"), "{why}");
    assert_eq!(
        call(&relay, "listbannedevents", json!([])),
        json!([{ "id": id, "reason": "illegal" }])
    );
    assert_eq!(
        call(&relay, "listeventsneedingmoderation", json!([])),
        json!([])
    );
    call(&relay, "allowevent", json!([id]));
    assert!(ok_of(&mut c, &ev).0);

    // allowpubkey: once the allowlist has someone, only they (and admins) write.
    let sk = hex::encode(&someone.pubkey);
    call(&relay, "allowpubkey", json!([sk, "friend"]));
    assert_eq!(
        call(&relay, "listallowedpubkeys", json!([])),
        json!([{ "pubkey": sk, "reason": "friend" }])
    );
    assert!(ok_of(&mut c, &note(&someone, "allowed")).0);
    let (ok, why) = ok_of(&mut c, &note(&keys(3), "not allowed"));
    assert!(!ok);
    assert!(why.starts_with("restricted:"), "{why}");
    call(&relay, "disallowpubkey", json!([sk]));
    assert!(ok_of(&mut c, &note(&keys(3), "open again")).0);

    // Kinds: allowkind makes an allow list, disallowkind a deny entry.
    call(&relay, "allowkind", json!([1]));
    call(&relay, "allowkind", json!([7]));
    assert_eq!(call(&relay, "listallowedkinds", json!([])), json!([1, 7]));
    let (ok, why) = ok_of(&mut c, &common::sign(&someone, now(), 30023, &[], "x"));
    assert!(!ok);
    assert!(why.contains("kind 30023"), "{why}");
    call(&relay, "disallowkind", json!([7]));
    assert_eq!(call(&relay, "listallowedkinds", json!([])), json!([1]));
    let (ok, _) = ok_of(&mut c, &common::sign(&someone, now(), 7, &[], "+"));
    assert!(!ok);
}

#[test]
fn relay_info_changes_show_in_nip11() {
    let relay = managed(|_| {});
    call(&relay, "changerelayname", json!(["Managed"]));
    call(&relay, "changerelaydescription", json!(["Run over NIP-86"]));
    call(
        &relay,
        "changerelayicon",
        json!(["https://example.com/i.png"]),
    );
    let doc = common::nip11_of(&relay.url);
    assert!(doc["supported_nips"]
        .as_array()
        .expect("nips")
        .contains(&json!(86)));
    assert_eq!(doc["limitation"]["restricted_writes"], false);
    assert_eq!(doc["name"], "Managed");
    assert_eq!(doc["description"], "Run over NIP-86");
    assert_eq!(doc["icon"], "https://example.com/i.png");
    // An allowlist entry restricts writes: NIP-11 says so.
    call(&relay, "allowpubkey", json!([hex::encode(&keys(1).pubkey)]));
    assert_eq!(
        common::nip11_of(&relay.url)["limitation"]["restricted_writes"],
        true
    );
}

/// A WebSocket client whose socket is bound to `ip` (127.0.0.x).
fn connect_from(url: &str, ip: &str) -> tungstenite::WebSocket<MaybeTlsStream<TcpStream>> {
    let addr: std::net::SocketAddr = url.trim_start_matches("ws://").parse().expect("addr");
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let from: std::net::SocketAddr = format!("{ip}:0").parse().expect("from");
    sock.bind(&from.into()).expect("bind");
    sock.connect(&addr.into()).expect("connect");
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let (ws, _) = tungstenite::client(url, MaybeTlsStream::Plain(s)).expect("handshake");
    ws
}

#[test]
fn blocked_ip_is_disconnected_and_refused() {
    let relay = managed(|_| {});
    let mut victim = connect_from(&relay.url, "127.0.0.2");
    let mut bystander = relay.client();
    call(&relay, "blockip", json!(["127.0.0.2", "abuse"]));
    assert!(
        common::closed_by_relay(&mut victim).is_some(),
        "blocked IP still connected"
    );
    assert_eq!(
        call(&relay, "listblockedips", json!([])),
        json!([{ "ip": "127.0.0.2", "reason": "abuse" }])
    );
    // New connections from it fail; others are untouched.
    let addr = relay.url.trim_start_matches("ws://");
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let from: std::net::SocketAddr = "127.0.0.2:0".parse().expect("from");
    sock.bind(&from.into()).expect("bind");
    let target: std::net::SocketAddr = addr.parse().expect("addr");
    sock.connect(&target.into()).expect("connect");
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    assert!(tungstenite::client(relay.url.as_str(), s).is_err());
    assert!(ok_of(&mut bystander, &note(&keys(1), "still here")).0);
    call(&relay, "unblockip", json!(["127.0.0.2"]));
    let mut back = connect_from(&relay.url, "127.0.0.2");
    back.send(Message::text(r#"["REQ","x",{"limit":1}]"#))
        .expect("send");
}

/// Whether a new WebSocket from `ip` gets through the handshake (a blocked one is dropped
/// at accept, so the handshake fails).
fn connects_from(url: &str, ip: &str) -> bool {
    let addr: std::net::SocketAddr = url.trim_start_matches("ws://").parse().expect("addr");
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let from: std::net::SocketAddr = format!("{ip}:0").parse().expect("from");
    sock.bind(&from.into()).expect("bind");
    if sock.connect(&addr.into()).is_err() {
        return false;
    }
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    tungstenite::client(url, s).is_ok()
}

/// `blockip` with a CIDR prefix: open connections inside it are closed, new ones refused,
/// addresses just outside untouched; a /32 is one address; a bad prefix is a JSON-RPC
/// error; `wok admin` offline takes prefixes too.
#[test]
fn blocked_cidr_range_is_disconnected_and_refused() {
    let relay = managed(|_| {});
    let mut inside = connect_from(&relay.url, "127.0.0.5");
    let mut outside = connect_from(&relay.url, "127.0.0.3");
    call(&relay, "blockip", json!(["127.0.0.4/30", "range"]));
    assert!(
        common::closed_by_relay(&mut inside).is_some(),
        "a connection inside the range is still open"
    );
    assert!(!connects_from(&relay.url, "127.0.0.6"));
    assert!(!connects_from(&relay.url, "127.0.0.7"));
    assert!(connects_from(&relay.url, "127.0.0.3"));
    assert!(connects_from(&relay.url, "127.0.0.8"));
    outside
        .send(Message::text(r#"["REQ","x",{"limit":1}]"#))
        .expect("send");
    // The connection outside the range is still served (its EOSE comes back).
    assert!(outside.read().expect("still open").is_text());
    // A /32 is the one address: 127.0.0.2 out, its neighbour 127.0.0.3 in.
    let mut two = connect_from(&relay.url, "127.0.0.2");
    call(&relay, "blockip", json!(["127.0.0.2/32"]));
    assert!(common::closed_by_relay(&mut two).is_some());
    assert!(!connects_from(&relay.url, "127.0.0.2"));
    assert!(connects_from(&relay.url, "127.0.0.3"));
    assert_eq!(
        call(&relay, "listblockedips", json!([])),
        json!([
            { "ip": "127.0.0.2", "reason": "" },
            { "ip": "127.0.0.4/30", "reason": "range" },
        ])
    );
    // Host bits past the prefix, or a prefix too long: refused, with the reason.
    for bad in ["127.0.0.5/30", "127.0.0.0/33", "127.0.0.0/x"] {
        let (status, body) = call_as(&relay, &admin(), "blockip", json!([bad]));
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("JSON-RPC answer");
        let e = v["error"].as_str().unwrap_or("");
        assert!(e.starts_with("params[0]: "), "{bad}: {v}");
    }
    let (_, body) = call_as(&relay, &admin(), "blockip", json!(["127.0.0.5/30"]));
    assert!(body.contains("did you mean 127.0.0.4/30"), "{body}");
    call(&relay, "unblockip", json!(["127.0.0.4/30"]));
    assert!(connects_from(&relay.url, "127.0.0.6"));
    // Offline, through the DB: the running relay applies it within its 100 ms poll.
    let mut victim = connect_from(&relay.url, "127.0.0.9");
    let o = wok_admin(relay.dir.path(), &["blockip", "127.0.0.8/29"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(
        common::closed_by_relay(&mut victim).is_some(),
        "offline CIDR block not applied"
    );
    let o = wok_admin(relay.dir.path(), &["blockip", "10.0.0.1/8"]);
    assert!(!o.status.success());
    assert!(stderr_of(&o).contains("10.0.0.0/8"), "{}", stderr_of(&o));
}

#[test]
fn state_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let start = || {
        let mut cfg = wok::config::Config::default();
        cfg.relay.port = 0;
        cfg.relay.management.admin_pubkeys = hex::encode(&admin().pubkey);
        let store = wok::store::Store::open(
            dir.path(),
            &wok::store::StoreOptions {
                map_size: 1 << 30,
                ..Default::default()
            },
        )
        .expect("store");
        let relay = wok::relay::Relay::start(cfg, store).expect("start");
        TestRelay {
            url: format!("ws://{}", relay.addr),
            relay: Some(relay),
            dir: tempfile::tempdir().expect("tmp"),
        }
    };
    let banned = keys(9);
    {
        let relay = start();
        call(
            &relay,
            "banpubkey",
            json!([hex::encode(&banned.pubkey), "gone"]),
        );
        call(&relay, "changerelayname", json!(["Kept"]));
    }
    let relay = start();
    let mut c = relay.client();
    let (ok, why) = ok_of(&mut c, &note(&banned, "back?"));
    assert!(!ok);
    assert!(why.starts_with("blocked:"), "{why}");
    assert_eq!(common::nip11_of(&relay.url)["name"], "Kept");
}

/// `wok admin …` with the DB of `relay` (offline) or extra args; its output.
fn wok_admin(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_wok"));
    c.arg("--set")
        .arg(format!("db={}/", dir.display()))
        .arg("admin")
        .args(args)
        .env_remove("STRFRY_CONFIG")
        .env_remove("WOK_ADMIN_KEY")
        .current_dir(dir);
    common::run_within(&mut c, b"", common::RUN_LIMIT)
}

fn stdout_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn wok_admin_against_a_running_relay() {
    let relay = managed(|_| {});
    let dir = relay.dir.path().to_path_buf();
    let target = keys(11);
    let secret = hex::encode(&[42u8; 32]);
    let npub_free = hex::encode(&target.pubkey);
    let o = wok_admin(
        &dir,
        &[
            "--url",
            &relay.url,
            "--key",
            &secret,
            "banpubkey",
            &npub_free,
            "spam",
        ],
    );
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(stdout_of(&o).trim(), "true");
    let mut c = relay.client();
    let (ok, why) = ok_of(&mut c, &note(&target, "hi"));
    assert!(!ok);
    assert!(why.starts_with("blocked:"), "{why}");
    let o = wok_admin(
        &dir,
        &["--url", &relay.url, "--key", &secret, "listbannedpubkeys"],
    );
    assert!(stdout_of(&o).contains(&npub_free), "{}", stdout_of(&o));
    // Not an admin: 403, non-zero exit, said on stderr.
    let o = wok_admin(
        &dir,
        &[
            "--url",
            &relay.url,
            "--key",
            &hex::encode(&[7u8; 32]),
            "listbannedpubkeys",
        ],
    );
    assert!(!o.status.success());
    assert!(stderr_of(&o).contains("403"), "{}", stderr_of(&o));
    // No key.
    let o = wok_admin(&dir, &["--url", &relay.url, "supportedmethods"]);
    assert!(!o.status.success());
    assert!(stderr_of(&o).contains("--key"), "{}", stderr_of(&o));
    // A JSON-RPC error is an error too.
    let o = wok_admin(
        &dir,
        &["--url", &relay.url, "--key", &secret, "allowkind", "x"],
    );
    assert!(!o.status.success());
    assert!(stderr_of(&o).contains("kind number"), "{}", stderr_of(&o));
}

/// `wok admin` offline, on the DB a relay is serving: the relay sees the change (it polls
/// the management generation every 100 ms; the wait is bounded).
#[test]
fn wok_admin_offline_reaches_a_running_relay() {
    let relay = managed(|_| {});
    let dir = relay.dir.path().to_path_buf();
    let mut victim = connect_from(&relay.url, "127.0.0.3");
    let o = wok_admin(&dir, &["blockip", "127.0.0.3", "from the shell"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(
        common::closed_by_relay(&mut victim).is_some(),
        "offline blockip not applied"
    );
    let o = wok_admin(&dir, &["changerelayname", "Offline name"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(
        common::eventually(WAIT, || common::nip11_of(&relay.url)["name"]
            == "Offline name"),
        "offline rename not applied"
    );
    let o = wok_admin(&dir, &["listblockedips"]);
    let v: Value = serde_json::from_str(&stdout_of(&o)).expect("JSON on stdout");
    assert_eq!(
        v,
        json!([{ "ip": "127.0.0.3", "reason": "from the shell" }])
    );
    let o = wok_admin(&dir, &["nosuchmethod"]);
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains("unknown method"),
        "{}",
        stderr_of(&o)
    );
}

/// Behind a proxy the blocked address is the one in `relay.realIpHeader`: its upgrade is
/// refused with 403 while other clients through the same proxy address get in.
#[test]
fn blocked_real_ip_behind_a_proxy_is_refused() {
    let relay = managed(|c| c.relay.real_ip_header = "x-real-ip".into());
    call(&relay, "blockip", json!(["203.0.113.9"]));
    let upgrade = |real: &str| {
        let (status, _, _) = http_request(
            &relay.url,
            "GET",
            "/",
            &format!(
                "X-Real-IP: {real}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            ),
            b"",
        );
        status
    };
    assert_eq!(upgrade("203.0.113.9"), 403);
    // http_request reads to EOF, so an accepted upgrade would hang: check the head only.
    let addr = relay.url.trim_start_matches("ws://");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    use std::io::{Read, Write};
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nX-Real-IP: 203.0.113.10\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    )
    .expect("write");
    let mut head = [0u8; 12];
    s.read_exact(&mut head).expect("read");
    assert_eq!(&head, b"HTTP/1.1 101");
}
