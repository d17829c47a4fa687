//! `wok upload <url>` (stdin JSONL → EVENTs, a window in flight, exit 0 once every OK is back)
//! and `wok download <url>` (one REQ, events to stdout as JSONL, exit 0 at EOSE), with
//! strfry's flags. Upload failures are counted and reported; a lost connection or a relay
//! that goes silent is a non-zero exit.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use wok::mesh::ws::{Recv, WsClient};
use wok::nostr::{Event, JsonParser, Limits};

use super::progress::{Progress, Total};
use super::util;
use super::Globals;

/// How long either command waits without hearing from the relay before giving up.
const SILENCE: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Args)]
pub struct UploadArgs {
    /// Relay URL (ws:// or wss://)
    url: String,
    /// EVENTs in flight
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pipeline: u64,
}

#[derive(Debug, clap::Args)]
pub struct DownloadArgs {
    /// Relay URL (ws:// or wss://)
    url: String,
    /// A filter object, or an array of filter objects
    #[arg(long, value_name = "FILTER", default_value = "{}")]
    filter: String,
    /// Time range relative to now, START-END, e.g. 2M- or 1Y-3w (units s m h d w M Y)
    #[arg(long, value_name = "RANGE")]
    range: Option<String>,
}

fn fail(cmd: &str, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {cmd}: {msg}");
    ExitCode::FAILURE
}

/// `["OK",<id>,<bool>,<msg>]` → (id, accepted, msg).
fn parse_ok(text: &str) -> Option<(String, bool, String)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    (v.get(0)?.as_str()? == "OK").then_some(())?;
    Some((
        v.get(1)?.as_str()?.to_owned(),
        v.get(2)?.as_bool()?,
        v.get(3).and_then(|m| m.as_str()).unwrap_or("").to_owned(),
    ))
}

pub fn upload(args: &UploadArgs, g: &Globals) -> ExitCode {
    let mut ws = match WsClient::connect(&args.url, 16 << 20) {
        Ok(ws) => ws,
        Err(e) => return fail("upload", e),
    };
    let window = usize::try_from(args.pipeline).unwrap_or(usize::MAX);
    let mut parser = JsonParser::new();
    let limits = Limits::default();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines().enumerate();
    let mut in_flight: HashMap<String, usize> = HashMap::new();
    // Events sent are counted by `progress` (its summary's first figure).
    let (mut accepted, mut refused, mut skipped) = (0u64, 0u64, 0u64);
    let mut eof = false;
    let mut heard = Instant::now();
    // A spinner on a terminal (stdin's length is unknown); dropped, it clears itself.
    let progress = Progress::start(g, "upload", "events", true, Total::Unknown);
    loop {
        while !eof && in_flight.len() < window {
            match lines.next() {
                None => eof = true,
                Some((_, Err(e))) => return fail("upload", format!("stdin: {e}")),
                Some((n, Ok(line))) => {
                    if line.trim().is_empty() {
                        continue;
                    }
                    // Checked here so a bad line is reported with its number, not by the relay.
                    let mut bytes = line.clone().into_bytes();
                    let ev = match Event::parse(&mut bytes, &mut parser, &limits) {
                        Ok(ev) => ev,
                        Err(e) => {
                            eprintln!("line {}: skipped: {e}", n + 1);
                            skipped += 1;
                            continue;
                        }
                    };
                    *in_flight.entry(ev.id_hex().to_owned()).or_default() += 1;
                    let text = format!("[\"EVENT\",{}]", String::from_utf8_lossy(ev.json()));
                    let len = text.len() as u64;
                    if let Err(e) = ws.send(text) {
                        return fail("upload", e);
                    }
                    progress.add(1, len);
                }
            }
        }
        if eof && in_flight.is_empty() {
            break;
        }
        match ws.recv(Duration::from_millis(200)) {
            Err(e) => return fail("upload", e),
            Ok(Recv::Idle) => {
                if heard.elapsed() > SILENCE {
                    return fail("upload", "no answer from the relay for 60 s");
                }
            }
            Ok(Recv::Text(t)) => {
                heard = Instant::now();
                let Some((id, ok, msg)) = parse_ok(&t) else {
                    continue;
                };
                match in_flight.get_mut(&id) {
                    Some(n) if *n > 1 => *n -= 1,
                    Some(_) => {
                        in_flight.remove(&id);
                    }
                    None => continue,
                }
                if ok {
                    accepted += 1;
                } else {
                    refused += 1;
                    log::info!("refused {id}: {msg}");
                }
            }
        }
    }
    ws.close();
    // `upload: 301 events, 92 KiB (301 accepted, 0 refused, 1 lines skipped) in 0.52 s (…)`
    progress.finish_with(&format!(
        " ({accepted} accepted, {refused} refused, {skipped} lines skipped)"
    ));
    ExitCode::SUCCESS
}

pub fn download(args: &DownloadArgs, g: &Globals) -> ExitCode {
    let filters = match util::filters_with_range(&args.filter, args.range.as_deref()) {
        Ok(f) => f,
        Err(e) => return fail("download", e),
    };
    let mut ws = match WsClient::connect(&args.url, 64 << 20) {
        Ok(ws) => ws,
        Err(e) => return fail("download", e),
    };
    let list: Vec<String> = filters.iter().map(|f| f.to_json()).collect();
    if let Err(e) = ws.send(format!("[\"REQ\",\"dl\",{}]", list.join(","))) {
        return fail("download", e);
    }
    let mut out = util::stdout_writer();
    let mut parser = JsonParser::new();
    let mut n = 0u64;
    let mut heard = Instant::now();
    // On stderr only: stdout is the JSONL stream.
    let progress = Progress::start(g, "download", "events", true, Total::Unknown);
    loop {
        match ws.recv(Duration::from_millis(200)) {
            Err(e) => return fail("download", e),
            Ok(Recv::Idle) => {
                if heard.elapsed() > SILENCE {
                    return fail("download", "no EOSE from the relay after 60 s of silence");
                }
            }
            Ok(Recv::Text(t)) => {
                heard = Instant::now();
                let mut bytes = t.into_bytes();
                let parsed = parser.parse(&mut bytes, |v| {
                    let mut items = v.array()?;
                    let verb = items.next()?.as_str()?.to_owned();
                    let _sub = items.next();
                    let third = items.next();
                    Some(match verb.as_str() {
                        "EVENT" => {
                            let ev = third.map(|e| Event::from_json(e, &Limits::default()));
                            (verb, ev.and_then(Result::ok), String::new())
                        }
                        _ => (
                            verb,
                            None,
                            third.and_then(|m| m.as_str()).unwrap_or("").to_owned(),
                        ),
                    })
                });
                match parsed {
                    Ok(Some((verb, ev, msg))) => match verb.as_str() {
                        "EVENT" => {
                            // Events are checked as they arrive: a relay could send anything.
                            match ev.filter(|e| wok::nostr::verify::check_event(e).is_ok()) {
                                Some(e) => {
                                    if util::write_line(&mut out, e.json()).is_err() {
                                        return ExitCode::SUCCESS; // closed pipe: done
                                    }
                                    n += 1;
                                    progress.add(1, e.json().len() as u64 + 1);
                                }
                                None => eprintln!("dropping an invalid event from the relay"),
                            }
                        }
                        "EOSE" => break,
                        "CLOSED" => {
                            return fail("download", format!("relay closed the REQ: {msg}"))
                        }
                        "NOTICE" => eprintln!("relay says: {msg}"),
                        _ => {}
                    },
                    _ => eprintln!("ignoring a message that is not JSON"),
                }
            }
        }
    }
    let _ = out.flush();
    ws.close();
    debug_assert_eq!(progress.items(), n);
    progress.finish();
    ExitCode::SUCCESS
}
