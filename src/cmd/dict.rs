//! `wok dict stats | train | compress | decompress`: strfry's zstd-dictionary tools for the
//! EventPayload table. Every subcommand works on the events matching `--filter` (default
//! `{}`); rewrites commit every 10,000 events, so a long run can be stopped and resumed.
//! strfry's output lines are kept as they are; progress and a summary line are added on
//! stderr (`super::progress`).

use std::process::ExitCode;

use indicatif::HumanBytes;

use wok::store::dict::{self, DictId};
use wok::store::payload::{self, Payload};
use wok::store::{LevId, Store, StoreError};

use super::progress::{Progress, Total};
use super::util;
use super::Globals;

/// Events rewritten per write transaction.
const CHUNK: usize = 10_000;

#[derive(Debug, clap::Subcommand)]
pub enum DictCmd {
    /// How many matching events are compressed, their sizes, and events per dictId
    Stats {
        /// A filter object or an array of them
        #[arg(long, value_name = "FILTER", default_value = "{}")]
        filter: String,
    },
    /// Train a zstd dictionary on (a random sample of) the matching events and store it
    Train {
        #[arg(long, value_name = "FILTER", default_value = "{}")]
        filter: String,
        /// Train on at most this many randomly chosen events [default: all]
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// Largest dictionary, in bytes
        #[arg(long = "dictSize", value_name = "BYTES", default_value_t = 100_000,
              value_parser = clap::value_parser!(u64).range(256..=(1 << 30)))]
        dict_size: u64,
    },
    /// Store the matching events compressed with dictionary --dictId (where that is smaller)
    Compress {
        #[arg(long, value_name = "FILTER", default_value = "{}")]
        filter: String,
        /// The dictionary to use (see `dict stats`)
        #[arg(long = "dictId", value_name = "ID")]
        dict_id: Option<u64>,
        /// zstd compression level
        #[arg(long, value_name = "L", default_value_t = dict::DEFAULT_LEVEL,
              allow_negative_numbers = true)]
        level: i32,
    },
    /// Store the matching events uncompressed again
    Decompress {
        #[arg(long, value_name = "FILTER", default_value = "{}")]
        filter: String,
    },
}

pub fn run(c: &DictCmd, g: &Globals) -> ExitCode {
    let filter = match c {
        DictCmd::Stats { filter }
        | DictCmd::Train { filter, .. }
        | DictCmd::Compress { filter, .. }
        | DictCmd::Decompress { filter } => filter,
    };
    let filters = match util::parse_filters(filter) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: bad filter: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let DictCmd::Compress { dict_id: None, .. } = c {
        eprintln!("error: specify --dictId or --decompress (dict compress needs a dictionary; `wok dict stats` lists them)");
        return ExitCode::FAILURE;
    }
    let Some((_cfg, store)) = g.open_store() else {
        return ExitCode::FAILURE;
    };
    let what = match c {
        DictCmd::Stats { .. } => "dict stats",
        DictCmd::Train { .. } => "dict train",
        DictCmd::Compress { .. } => "dict compress",
        DictCmd::Decompress { .. } => "dict decompress",
    };
    // Matching has no known total (a spinner); each subcommand then restarts the bar over
    // the events it reads or rewrites, counting their JSON bytes.
    let p = Progress::start(g, what, "events", true, Total::Unknown);
    p.message("matching");
    let res = matching(&store, filters, &p).and_then(|levs| {
        log::info!("Filter matched {} records", levs.len());
        match c {
            DictCmd::Stats { .. } => stats(&store, &levs, &p).map(|()| String::new()),
            DictCmd::Train {
                limit, dict_size, ..
            } => train(&store, levs, *limit, *dict_size, &p),
            DictCmd::Compress { dict_id, level, .. } => {
                compress(&store, &levs, dict_id.unwrap_or(0), *level, &p)
            }
            DictCmd::Decompress { .. } => rewrite(&store, &levs, None, &p).map(|_| String::new()),
        }
    });
    match res {
        Ok(extra) => {
            p.finish_with(&extra);
            ExitCode::SUCCESS
        }
        Err(e) => {
            p.clear();
            eprintln!("error: dict: {e}");
            ExitCode::FAILURE
        }
    }
}

/// levIds of the matching events, in the query engine's order.
fn matching(
    store: &Store,
    filters: Vec<wok::nostr::Filter>,
    p: &Progress,
) -> Result<Vec<LevId>, String> {
    let mut levs = Vec::new();
    util::run_query(store, filters, 1_000_000, |_, found| {
        levs.extend_from_slice(found);
        p.add(found.len() as u64, 0);
        Ok::<(), StoreError>(())
    })
    .map_err(|e| e.to_string())?;
    Ok(levs)
}

fn stats(store: &Store, levs: &[LevId], p: &Progress) -> Result<(), String> {
    p.restart(Total::Items(levs.len() as u64));
    p.message("");
    let txn = store.read_txn().map_err(|e| e.to_string())?;
    // Every dictionary is listed, even one no event uses yet.
    let mut per_dict: std::collections::BTreeMap<DictId, u64> = store
        .dictionaries(&txn)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(id, _)| (id, 0))
        .collect();
    let (mut json_bytes, mut stored_bytes, mut compressed) = (0u64, 0u64, 0u64);
    for &lev in levs {
        let Some(raw) = store.raw_payload(&txn, lev).map_err(|e| e.to_string())? else {
            continue;
        };
        let json = store
            .payload(&txn, lev)
            .map_err(|e| format!("levId {lev}: {e}"))?
            .map_or(0, |j| j.len() as u64);
        json_bytes += json;
        p.add(1, json);
        match payload::parse(raw).map_err(|e| e.to_string())? {
            Payload::Raw(_) => stored_bytes += json,
            Payload::Zstd { dict, frame } => {
                compressed += 1;
                stored_bytes += frame.len() as u64;
                *per_dict.entry(dict).or_insert(0) += 1;
            }
        }
    }
    let saved = if json_bytes == 0 {
        0.0
    } else {
        100.0 * (1.0 - stored_bytes as f64 / json_bytes as f64)
    };
    println!("Num compressed: {compressed} / {}", levs.len());
    println!("Uncompressed size: {}", render_size(json_bytes));
    println!(
        "Compressed size:   {} ({saved:.1}%)",
        render_size(stored_bytes)
    );
    println!("\ndictId : events");
    for (id, n) in per_dict {
        println!("  {id} : {n}");
    }
    Ok(())
}

/// Sizes as strfry prints them: bytes below 1 KiB, else two decimals and K/M/G/T.
fn render_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["K", "M", "G", "T"];
    if n < 1024 {
        return format!("{n}b");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2}{}", UNITS[unit])
}

fn train(
    store: &Store,
    mut levs: Vec<LevId>,
    limit: Option<u64>,
    dict_size: u64,
    p: &Progress,
) -> Result<String, String> {
    if levs.is_empty() {
        return Err("no events match the filter: nothing to train on".into());
    }
    if let Some(limit) = limit {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        if levs.len() > limit {
            log::info!("Randomly selecting {limit} records");
            sample(&mut levs, limit);
        }
    }
    p.restart(Total::Items(levs.len() as u64));
    p.message("reading samples");
    let txn = store.read_txn().map_err(|e| e.to_string())?;
    let mut samples = Vec::new();
    let mut sizes = Vec::with_capacity(levs.len());
    for &lev in &levs {
        if let Some(json) = store
            .payload(&txn, lev)
            .map_err(|e| format!("levId {lev}: {e}"))?
        {
            samples.extend_from_slice(&json);
            sizes.push(json.len());
            p.add(1, json.len() as u64);
        }
    }
    drop(txn);
    log::info!("Performing zstd training...");
    p.message("zstd training");
    let size = usize::try_from(dict_size).unwrap_or(usize::MAX);
    let trained = dict::train(&samples, &sizes, size).map_err(|e| {
        format!(
            "{e} ({} events; zstd needs more, or more varied, samples)",
            sizes.len()
        )
    })?;
    let id = store.add_dictionary(&trained).map_err(|e| e.to_string())?;
    println!("Saved new dictionary, dictId = {id}");
    log::info!("dictionary {id}: {} bytes", trained.len());
    Ok(format!(
        ", dictionary {id} of {}",
        HumanBytes(trained.len() as u64)
    ))
}

/// Keeps a uniformly random `k` of `levs` (partial Fisher-Yates), seeded from the clock:
/// which events train the dictionary does not need to be reproducible.
fn sample(levs: &mut Vec<LevId>, k: usize) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    let mut rng = wok::gen::Rng::new(seed);
    for i in 0..k {
        let j = i + rng.below((levs.len() - i) as u64) as usize;
        levs.swap(i, j);
    }
    levs.truncate(k);
}

fn compress(
    store: &Store,
    levs: &[LevId],
    id: u64,
    level: i32,
    p: &Progress,
) -> Result<String, String> {
    let id = DictId::try_from(id).map_err(|_| format!("couldn't find dictId {id}"))?;
    let dict = {
        let txn = store.read_txn().map_err(|e| e.to_string())?;
        match store.dictionary(&txn, id) {
            Ok(d) => d,
            Err(StoreError::MissingDictionary(_)) => {
                return Err(format!("couldn't find dictId {id}"))
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let r = rewrite(store, levs, Some((&dict, level)), p)?;
    log::info!("Original event sizes: {}", r.json_bytes);
    log::info!("New event sizes:      {}", r.stored_bytes);
    log::info!("{} of {} events stored compressed", r.compressed, r.events);
    Ok(format!(
        ", {} stored compressed, now {}",
        r.compressed,
        HumanBytes(r.stored_bytes)
    ))
}

fn rewrite(
    store: &Store,
    levs: &[LevId],
    to: Option<(&dict::Dictionary, i32)>,
    p: &Progress,
) -> Result<dict::Recoded, String> {
    p.restart(Total::Items(levs.len() as u64));
    p.message("");
    let mut total = dict::Recoded::default();
    let mut done = 0usize;
    for chunk in levs.chunks(CHUNK) {
        let r = store
            .recode_payloads(chunk, to)
            .map_err(|e| format!("{e} (after {done} events were rewritten)"))?;
        done += chunk.len();
        total.events += r.events;
        total.compressed += r.compressed;
        total.json_bytes += r.json_bytes;
        total.stored_bytes += r.stored_bytes;
        p.add(r.events, r.json_bytes);
        if done < levs.len() {
            log::info!("Progress: {done}/{}", levs.len());
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_render_like_strfry() {
        assert_eq!(render_size(0), "0b");
        assert_eq!(render_size(1023), "1023b");
        assert_eq!(render_size(1024), "1.00K");
        assert_eq!(render_size(10_660), "10.41K");
        assert_eq!(render_size(5 << 20), "5.00M");
    }

    #[test]
    fn sample_keeps_k_distinct() {
        let mut v: Vec<LevId> = (1..=100).collect();
        sample(&mut v, 10);
        assert_eq!(v.len(), 10);
        let mut s = v.clone();
        s.sort_unstable();
        s.dedup();
        assert_eq!(s.len(), 10);
        assert!(v.iter().all(|l| (1..=100).contains(l)));
    }
}
