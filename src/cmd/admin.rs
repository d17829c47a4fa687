//! `wok admin <method> [params…]`: NIP-86 relay management from the command line. Offline
//! (the default) it changes the DB named by the config directly — a running relay on the
//! same DB picks the change up within 100 ms; with `--url` it calls a running relay's NIP-86
//! endpoint, signed with NIP-98 by `--key` (or `WOK_ADMIN_KEY`).

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;
use wok::nostr::bech32;
use wok::nostr::hex;
use wok::nostr::sign::Keys;
use wok::policy::manage;

use super::Globals;

#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// NIP-86 method: supportedmethods, banpubkey, listbannedpubkeys, allowpubkey,
    /// listallowedpubkeys, banevent, allowevent, listbannedevents, changerelayname,
    /// changerelaydescription, changerelayicon, allowkind, disallowkind, listallowedkinds,
    /// blockip, unblockip (an address or a CIDR prefix: 203.0.113.0/24, 2001:db8::/32),
    /// listblockedips, …
    pub method: String,
    /// Its parameters: numbers and JSON values as given, anything else as a string; an npub
    /// is passed as hex
    pub params: Vec<String>,
    /// A running relay (ws://, wss://, http:// or https://) to call instead of the local DB
    #[arg(long)]
    pub url: Option<String>,
    /// With --url: the admin's secret key (64 hex digits or nsec) that signs the NIP-98
    /// authorization
    #[arg(long, env = "WOK_ADMIN_KEY", hide_env_values = true)]
    pub key: Option<String>,
}

/// One command-line parameter as a JSON value.
fn param(p: &str) -> Value {
    if p.starts_with("npub1") {
        if let Ok(pk) = bech32::parse_pubkey(p) {
            return Value::String(hex::encode(&pk));
        }
    }
    match serde_json::from_str::<Value>(p) {
        Ok(v @ (Value::Number(_) | Value::Array(_) | Value::Object(_) | Value::Bool(_))) => v,
        _ => Value::String(p.to_owned()),
    }
}

pub fn run(a: &AdminArgs, g: &Globals) -> ExitCode {
    let params: Vec<Value> = a.params.iter().map(|p| param(p)).collect();
    let result = match &a.url {
        None => offline(a, g, &params),
        Some(url) => remote(url, a.key.as_deref(), &a.method, &params),
    };
    match result {
        Ok(v) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: admin {}: {e}", a.method);
            ExitCode::FAILURE
        }
    }
}

fn offline(a: &AdminArgs, g: &Globals, params: &[Value]) -> Result<Value, String> {
    let Some((_cfg, store)) = g.open_store() else {
        return Err("no database".into());
    };
    manage::call(&store, &a.method, params)
}

fn secret(key: &str) -> Result<Keys, String> {
    let key = key.trim();
    let bytes = if key.starts_with("nsec1") {
        bech32::decode32(key, "nsec").map_err(|e| format!("--key: bad nsec ({e})"))?
    } else {
        hex::decode_any::<32>(key.as_bytes()).ok_or("--key: not 64 hex digits or an nsec")?
    };
    Keys::from_secret(bytes).ok_or_else(|| "--key: not a valid secret key".into())
}

/// POSTs the call to `url` with NIP-98 auth; the JSON-RPC `result`, or why not.
fn remote(url: &str, key: Option<&str>, method: &str, params: &[Value]) -> Result<Value, String> {
    let keys = secret(key.ok_or("--url needs --key (or WOK_ADMIN_KEY)")?)?;
    let (tls, rest) = if let Some(r) = url.strip_prefix("wss://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("ws://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!(
            "{url}: expected ws://, wss://, http:// or https://"
        ));
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let default_port = if tls { 443 } else { 80 };
    let bad_port = |p: &str| format!("{url}: bad port {p}");
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{url}: bad IPv6 host"))?;
        match after.strip_prefix(':') {
            Some(p) => (h, p.parse::<u16>().map_err(|_| bad_port(p))?),
            None => (h, default_port),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad_port(p))?),
            None => (authority, default_port),
        }
    };
    // The URL NIP-98 signs is the HTTP form of the one given.
    let http_url = format!("{}://{authority}{path}", if tls { "https" } else { "http" });
    let body = serde_json::json!({ "method": method, "params": params }).to_string();
    let auth = manage::nip98_header(&keys, &http_url, body.as_bytes(), wok::policy::now())?;
    let mut conn = wok::mesh::ws::open_stream(host, port, tls, Duration::from_secs(30))?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: {}\r\nAuthorization: {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        manage::CONTENT_TYPE,
        body.len()
    );
    conn.write_all(req.as_bytes())
        .and_then(|()| conn.flush())
        .map_err(|e| format!("sending to {url}: {e}"))?;
    let mut out = Vec::new();
    // The relay closes after answering; a TLS peer may end without close_notify.
    if let Err(e) = conn.take(1 << 24).read_to_end(&mut out) {
        if out.is_empty() {
            return Err(format!("reading from {url}: {e}"));
        }
    }
    let text = String::from_utf8_lossy(&out);
    let (head, answer) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).unwrap_or("?");
    if status != "200" {
        return Err(format!("{url} answered {status}: {}", answer.trim()));
    }
    let v: Value =
        serde_json::from_str(answer).map_err(|e| format!("{url}: answer is not JSON: {e}"))?;
    match v.get("error") {
        Some(Value::String(e)) => Err(e.clone()),
        _ => Ok(v.get("result").cloned().unwrap_or(Value::Null)),
    }
}
