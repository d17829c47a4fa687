#!/usr/bin/env node
// gen-id-vectors.mjs — generate Nostr event-id / signature test vectors with a
// real client library (nostr-tools v2) for wok's Rust tests.
//
// WHAT IT WRITES
//   tests/data/id_vectors.jsonl, one JSON object per line:
//     {"event": <signed event exactly as nostr-tools' finalizeEvent returns it>,
//      "serialized": <the id preimage string: JSON.stringify([0,pubkey,created_at,kind,tags,content])>,
//      "id": <event.id as claimed>,
//      "valid": true|false,
//      "note": <short description>,
//      "why": <negative lines only: what was tampered>,
//      "expected_id": <negative lines only: sha256(serialized), the id the event *should* have>,
//      "lone_surrogate": true <only on the one vector whose content has a lone UTF-16 surrogate>}
//   For valid lines the script asserts, before writing anything:
//     - serialized === nostr-tools serializeEvent(event)
//     - sha256(UTF-8 bytes of serialized) === id === getEventHash(event)   (node:crypto)
//     - verifyEvent(fresh copy parsed back from the written JSON) === true
//     - hand-written expectations about JSON.stringify escaping (e.g. U+0001 -> \u0001,
//       DEL / U+2028 / "/" / emoji emitted raw)
//   Negative lines are asserted to fail verifyEvent (on a fresh copy).
//   The "serialized" preimage is always well-formed UTF-8 (JSON.stringify escapes lone
//   surrogates as \udXXX since ES2019), so the Rust side can hash the UTF-8 bytes of the
//   decoded "serialized" string directly.
//
// DETERMINISM
//   Secret keys are fixed: sk_N = sha256("wok-vector-key-N"), N = 0..3. pubkey, created_at,
//   kind, tags and content are all fixed, so every id is identical across reruns.
//   Signatures are NOT: nostr-tools signs with BIP-340 fresh aux randomness, so "sig" changes
//   on every rerun (all of them verify). A rerun therefore shows a diff in sig fields only.
//
// GOTCHA (nostr-tools)
//   finalizeEvent() stamps the returned object with a hidden Symbol("verified") = true and
//   verifyEvent() returns that cached flag without re-checking. Tampering with a finalized
//   object in place and calling verifyEvent() on it still says true. This script always
//   verifies a fresh JSON.parse()d copy.
//
// HOW TO RERUN (from the repo root; needs node >= 18 and npm):
//   npm install --prefix /tmp/vecgen nostr-tools@2
//   NOSTR_TOOLS_DIR=/tmp/vecgen/node_modules/nostr-tools \
//     node scripts/gen-id-vectors.mjs tests/data/id_vectors.jsonl
//   With an output path the file is only (re)written after every assertion passed; without
//   one the lines go to stdout. NOSTR_TOOLS_DIR defaults to /tmp/vecgen/node_modules/nostr-tools.
//   (ESM ignores NODE_PATH, so the package is located through NOSTR_TOOLS_DIR and loaded by a
//   dynamic import() of the ESM entry named in its package.json "exports".)
//   Last generated with nostr-tools 2.25.2 on node 20.

import { createHash } from "node:crypto";
import { readFileSync, writeFileSync, renameSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

// ---------------------------------------------------------------- load nostr-tools
const NT_DIR = resolve(process.env.NOSTR_TOOLS_DIR || "/tmp/vecgen/node_modules/nostr-tools");
let ntPkg;
try {
  ntPkg = JSON.parse(readFileSync(join(NT_DIR, "package.json"), "utf8"));
} catch (e) {
  console.error(`cannot read ${join(NT_DIR, "package.json")}: set NOSTR_TOOLS_DIR to an installed nostr-tools@2 package dir`);
  console.error("e.g.  npm install --prefix /tmp/vecgen nostr-tools@2 && NOSTR_TOOLS_DIR=/tmp/vecgen/node_modules/nostr-tools node scripts/gen-id-vectors.mjs tests/data/id_vectors.jsonl");
  process.exit(2);
}
if (ntPkg.name !== "nostr-tools" || !/^2\./.test(ntPkg.version)) {
  console.error(`expected nostr-tools 2.x at ${NT_DIR}, found ${ntPkg.name}@${ntPkg.version}`);
  process.exit(2);
}
const pureEntry = ntPkg.exports?.["./pure"]?.import ?? "./lib/esm/pure.js";
const NT = await import(pathToFileURL(join(NT_DIR, pureEntry)).href);
const { finalizeEvent, getEventHash, verifyEvent, serializeEvent, getPublicKey } = NT;
console.error(`using nostr-tools ${ntPkg.version} from ${NT_DIR}`);

// ---------------------------------------------------------------- helpers
const sha256hex = (s) => createHash("sha256").update(Buffer.from(s, "utf8")).digest("hex");
const sha256bytes = (s) => new Uint8Array(createHash("sha256").update(s, "utf8").digest());
function assert(cond, msg) {
  if (!cond) throw new Error("assertion failed: " + msg);
}
const preimage = (e) => JSON.stringify([0, e.pubkey, e.created_at, e.kind, e.tags, e.content]);
const fresh = (e) => JSON.parse(JSON.stringify(e)); // drops nostr-tools' cached verified flag

const SK = [0, 1, 2, 3].map((n) => sha256bytes(`wok-vector-key-${n}`));
const PK = SK.map((sk) => getPublicKey(sk));
const hex64 = (label) => sha256hex(label); // stable fake 32-byte hex values

const lines = [];
const signed = []; // valid events, in order, for later reference (threads, negatives)

function addValid({ kind = 1, created_at = 1700000000, tags = [], content = "", key = 0, note, expect = [], extra = {} }) {
  const tmpl = { kind, created_at, tags: structuredClone(tags), content };
  const ev = finalizeEvent(tmpl, SK[key]);
  const serialized = preimage(ev);
  assert(serialized === serializeEvent(ev), `${note}: serializeEvent mismatch`);
  assert(sha256hex(serialized) === ev.id, `${note}: sha256(serialized) != id`);
  assert(getEventHash(fresh(ev)) === ev.id, `${note}: getEventHash != id`);
  assert(ev.pubkey === PK[key], `${note}: pubkey`);
  // round-trip through the exact text we write, then verify without the cached flag
  const evJson = JSON.stringify(ev);
  const back = JSON.parse(evJson);
  assert(back.content === content, `${note}: content round-trip`);
  assert(JSON.stringify(back.tags) === JSON.stringify(tags), `${note}: tags round-trip`);
  assert(verifyEvent(back) === true, `${note}: verifyEvent(fresh copy) failed`);
  for (const sub of expect) {
    assert(serialized.includes(sub), `${note}: serialized lacks ${JSON.stringify(sub)}: ${serialized}`);
  }
  lines.push({ event: ev, serialized, id: ev.id, valid: true, note, ...extra });
  signed.push(ev);
  return ev;
}

function addInvalid(base, note, why, mutate) {
  const ev = fresh(base);
  mutate(ev);
  const serialized = preimage(ev);
  const expected_id = sha256hex(serialized);
  assert(verifyEvent(fresh(ev)) === false, `${note}: tampered event still verifies`);
  lines.push({ event: ev, serialized, id: ev.id, valid: false, note, why, expected_id });
}

const flipHex = (h, i) => h.slice(0, i) + (h[i] === "0" ? "1" : "0") + h.slice(i + 1);

// ---------------------------------------------------------------- 1. every C0 control
const SHORT = { 0x08: "\\b", 0x09: "\\t", 0x0a: "\\n", 0x0c: "\\f", 0x0d: "\\r" };
for (let c = 0; c <= 0x1f; c++) {
  const ch = String.fromCharCode(c);
  const esc = SHORT[c] ?? "\\u" + c.toString(16).padStart(4, "0"); // lowercase hex
  const hex = "U+" + c.toString(16).toUpperCase().padStart(4, "0");
  addValid({
    kind: 1,
    created_at: 1700000000 + c,
    tags: [["t", `tag${ch}value`], ["x", ch]],
    content: `before${ch}after ${ch}`,
    key: c % 4,
    note: `C0 control ${hex} in content and tag values; JSON.stringify emits ${esc}`,
    // the escape must appear, and the raw control char must not
    expect: [`before${esc}after ${esc}`, `"tag${esc}value"`, `["x","${esc}"]`],
  });
  assert(!lines.at(-1).serialized.includes(ch), `raw ${hex} leaked into serialized`);
}

// ---------------------------------------------------------------- 2. non-ASCII, specials
addValid({
  content: "DEL:\x7f|", tags: [["t", "\x7f"]],
  note: "U+007F DEL: JSON.stringify emits it raw (byte 0x7f), not escaped",
  expect: ["DEL:\x7f|", '["t","\x7f"]'],
});
addValid({
  content: "C1:\u0080\u0085\u009f|", tags: [["t", "\u0080"], ["t", "\u009f"]],
  note: "C1 controls U+0080 U+0085 U+009F: raw UTF-8 (c2 80 / c2 85 / c2 9f)",
  expect: ["C1:\u0080\u0085\u009f|"],
});
addValid({
  content: "no\u00a0break\u00a0space", tags: [["t", "a\u00a0b"]],
  note: "U+00A0 NO-BREAK SPACE raw",
  expect: ["no\u00a0break"],
});
addValid({
  content: "line\u2028separator and para\u2029separator", tags: [["t", "\u2028"], ["t", "\u2029"]],
  note: "U+2028 / U+2029: JSON.stringify emits them raw (e2 80 a8 / e2 80 a9), not \\u2028",
  expect: ["line\u2028separator", "para\u2029separator"],
});
addValid({
  content: "\ufeffstarts with BOM, and \ufeff inside", tags: [["t", "\ufeff"]],
  note: "U+FEFF BOM at start of content and inside: raw, must not be stripped",
  expect: ['"\ufeffstarts with BOM'],
});
addValid({
  content: "emoji 😀 flag 🏳️‍🌈 skin 👍🏽 family 👨‍👩‍👧‍👦 keycap 1️⃣",
  tags: [["t", "😀"], ["emoji", "🏳️‍🌈", "https://example.com/🏳️‍🌈.png"]],
  note: "astral-plane emoji, ZWJ sequences, variation selectors, skin tones: raw 4-byte UTF-8, never \\ud83d\\ude00",
  expect: ["😀", "🏳️‍🌈"],
});
addValid({
  content: "日本語のノート。中文笔记。한국어 메모。",
  tags: [["t", "日本語"], ["subject", "中文"]],
  note: "CJK (Japanese, Chinese, Korean) raw",
  expect: ["日本語のノート"],
});
addValid({
  content: "NFD: e\u0301 a\u0308 n\u0303 | NFC: \u00e9 \u00e4 \u00f1 | stacked: Z\u0351\u0362\u0334a\u0358\u0317lgo\u0335",
  tags: [["t", "cafe\u0301"], ["t", "caf\u00e9"]],
  note: "combining characters; NFD and NFC forms differ byte-wise and must not be normalized",
  expect: ["e\u0301", "\u00e9", '["t","cafe\u0301"],["t","caf\u00e9"]'],
});
addValid({
  content: "עברית: שלום עולם. العربية: مرحبا بالعالم. mixed \u202eRLO override\u202c \u200fRLM\u200e LRM \u2066isolate\u2069",
  tags: [["t", "שלום"], ["t", "مرحبا"]],
  note: "RTL text (Hebrew, Arabic) with bidi controls U+202E U+202C U+200F U+200E U+2066 U+2069, all raw",
  expect: ["\u202eRLO", "\u2066isolate\u2069"],
});
addValid({
  content: 'He said "hi" and left a path C:\\Users\\nostr\\ and a trailing backslash \\',
  tags: [["t", '"quoted"'], ["t", "back\\slash"], ["t", "\\"]],
  note: "double quotes and backslashes: escaped as \\\" and \\\\",
  expect: ['He said \\"hi\\"', "C:\\\\Users\\\\nostr\\\\", '["t","\\\\"]'],
});
addValid({
  content: "urls https://example.com/a/b?c=d/e and </script> and a lone / slash",
  tags: [["r", "wss://relay.example.com/"], ["t", "/"]],
  note: "forward slash: JSON.stringify does NOT escape / (no \\/), including in </script>",
  expect: ["https://example.com/a/b?c=d/e", "</script>", '["t","/"]'],
});
addValid({
  content: "literal escapes: \\n \\t \\u0000 \\\" \\/ \\\\ end",
  tags: [["t", "\\n"], ["t", "\\u0041"]],
  note: "text that looks like escapes (literal backslash + letters): each backslash doubled",
  expect: ["\\\\n \\\\t \\\\u0000 \\\\\\\" \\\\/ \\\\\\\\ end", '["t","\\\\u0041"]'],
});
addValid({
  content: "all C0 in one tag and here too: " + Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join(""),
  tags: [["c0", Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join("")]],
  note: "all 32 C0 controls concatenated in content and in one tag value",
  expect: ["\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f"],
});
addValid({
  content: "max BMP \uffff and \ufffd replacement char and noncharacter \ufdd0, astral max \u{10ffff}",
  tags: [["t", "\u{10ffff}"]],
  note: "U+FFFF, U+FFFD, U+FDD0 noncharacter, U+10FFFF (valid scalar values, raw UTF-8)",
  expect: ["\uffff", "\u{10ffff}"],
});

// ---------------------------------------------------------------- 3. content / tag shapes
addValid({ content: "", tags: [], note: "empty content and empty tags", expect: [",1,[],\"\"]"] });
addValid({ content: "", tags: [["t", "only-tags"]], note: "empty content with a tag" });
addValid({ content: "0", tags: [], note: "content is the string \"0\"", expect: [',[],"0"]'] });
addValid({ content: " leading and trailing spaces \u0020", tags: [], note: "leading/trailing whitespace preserved" });
addValid({
  content: "tag with many elements",
  tags: [["x", ...Array.from({ length: 40 }, (_, i) => `v${i}`)]],
  note: "one tag with 41 elements",
});
addValid({
  content: "many tags",
  tags: Array.from({ length: 120 }, (_, i) => ["t", `topic${i}`]),
  note: "120 tags",
});
addValid({
  content: "empty strings in tags",
  tags: [[""], ["e", ""], ["p", "", ""], ["", "value"], ["t", "a", "", "b"]],
  note: "tags containing empty strings, including an empty tag name",
  expect: ['[[""],["e",""],["p","",""],["","value"],["t","a","","b"]]'],
});
addValid({
  content: "zero-length tag array",
  tags: [[], ["t", "x"]],
  note: "a zero-length tag [] (nostr-tools accepts it; relay policy may differ)",
  expect: ["[[],[\"t\",\"x\"]]"],
});
addValid({
  content: "multi-letter tag names",
  tags: [["client", "wok-tests", "31990:" + PK[1] + ":app"], ["alt", "A short note"], ["subject", "Re: vectors"], ["proxy", "https://example.com/x", "web"], ["L", "ISO-639-1"], ["l", "en", "ISO-639-1"]],
  note: "multi-letter tag names (client, alt, subject, proxy) plus L/l labels",
});
addValid({
  content: "e/p tags with 64-hex values",
  tags: [
    ["e", hex64("event-a"), "wss://relay.example.com", "root"],
    ["e", hex64("event-b"), "", "reply"],
    ["p", PK[1]],
    ["p", PK[2], "wss://relay.example.org"],
  ],
  note: "e tags (with relay hint and marker) and p tags with 64-hex values",
});
addValid({
  content: "expires soon",
  tags: [["expiration", "1700003600"]],
  note: "NIP-40 expiration tag",
});

// ---------------------------------------------------------------- 4. kinds and created_at
addValid({
  kind: 0, created_at: 1700000100,
  content: JSON.stringify({ name: "wok tester", about: "line1\nline2 \"quoted\" 😀", picture: "https://example.com/a.png", nip05: "_@example.com" }),
  note: "kind 0 metadata; content is itself JSON, so escapes are doubled",
  expect: ['\\"about\\":\\"line1\\\\nline2 \\\\\\"quoted\\\\\\" 😀\\"'],
});
addValid({
  kind: 3, created_at: 1700000200,
  tags: [["p", PK[1], "wss://relay.example.com", "alice"], ["p", PK[2]], ["p", PK[3], "", "carol"]],
  content: "",
  note: "kind 3 contact list",
});
addValid({
  kind: 5, created_at: 1700000300,
  tags: [["e", hex64("deleted-1")], ["e", hex64("deleted-2")], ["k", "1"]],
  content: "posted by mistake",
  note: "kind 5 deletion request",
});
addValid({
  kind: 7, created_at: 1700000400,
  tags: [["e", hex64("liked")], ["p", PK[2]], ["k", "1"]],
  content: "+",
  note: "kind 7 reaction",
});
addValid({
  kind: 7, created_at: 1700000401,
  tags: [["e", hex64("liked")], ["p", PK[2]], ["emoji", "soapbox", "https://example.com/soapbox.png"]],
  content: ":soapbox:",
  note: "kind 7 custom-emoji reaction",
});
addValid({
  kind: 1059, created_at: 1699990000, key: 3,
  tags: [["p", PK[0]]],
  content: "AqZ3a1Rk9xq8nX0b+/w7Jm5cV1QvS2FyZHMgbm90IHJlYWwgY2lwaGVydGV4dA==" + "A".repeat(200) + "==",
  note: "kind 1059 gift wrap (base64-looking content with + and /)",
  expect: ["+/w7"],
});
addValid({
  kind: 10002, created_at: 1700000500,
  tags: [["r", "wss://relay.example.com"], ["r", "wss://write.example.com", "write"], ["r", "wss://read.example.com", "read"]],
  content: "",
  note: "kind 10002 relay list (replaceable)",
});
addValid({
  kind: 20001, created_at: 1700000600, tags: [["t", "ephemeral"]], content: "ephemeral ping",
  note: "kind 20001 (ephemeral range)",
});
addValid({
  kind: 30023, created_at: 1700000700,
  tags: [["d", "my-article"], ["title", "Canonical JSON in Nostr"], ["published_at", "1700000000"], ["t", "nostr"]],
  content: "# Canonical JSON\n\nThe id is `sha256(JSON.stringify([0, pubkey, created_at, kind, tags, content]))`.\n",
  note: "kind 30023 long-form with d tag (addressable)",
});
addValid({
  kind: 30023, created_at: 1700000701, tags: [["d", ""]], content: "empty d tag",
  note: "kind 30023 with empty d tag value",
});
addValid({
  kind: 39999, created_at: 1700000800, tags: [["d", "edge/ü/😀"]], content: "top of the addressable range",
  note: "kind 39999 (last addressable kind) with non-ASCII d tag",
});
addValid({
  kind: 65535, created_at: 1700000900, tags: [], content: "max kind",
  note: "kind 65535 (max kind in NIP-01)",
  expect: [",65535,[]"],
});
for (const [ts, what] of [[0, "0"], [1, "1"], [1700000000, "1700000000"], [4294967295, "2^32-1"], [9007199254740991, "2^53-1 (Number.MAX_SAFE_INTEGER)"]]) {
  addValid({
    kind: 1, created_at: ts, tags: [], content: `created_at = ${what}`,
    note: `created_at ${what}`,
    expect: [`,${ts},1,`],
  });
}

// ---------------------------------------------------------------- 5. realistic notes
const realistic = [
  {
    key: 1, created_at: 1718012345,
    content:
      "Finally got my relay running behind a reverse proxy. A few things I learned the hard way:\n\n" +
      "1. Make sure the proxy forwards the Upgrade and Connection headers, otherwise websockets silently fail.\n" +
      "2. Set a sane max message size — some clients send 500 KB contact lists.\n" +
      "3. NIP-11 info doc should be served on the same URL with Accept: application/nostr+json.\n\n" +
      "Next up: rate limiting per IP and per pubkey. #nostr #relay",
    tags: [["t", "nostr"], ["t", "relay"], ["client", "Damus"]],
    note: "realistic kind 1 note with hashtags",
  },
  {
    key: 2, created_at: 1718012400,
    content:
      "Agreed on the message size limit. We hit exactly this: a kind 3 with ~2,000 p tags was ~160 KB and got cut off by the default 128 KiB frame limit. " +
      "Bumped it to 512 KiB and added a per-kind limit instead. nostr:npub1sn0wdenkukak0d9dfczzeacvhkrgz92ak56egt7vdgzn8pv2wfqqhrjdv9 you had the same issue, right? 🤔",
    tags: () => [
      ["e", signed.at(-1).id, "wss://relay.example.com", "root", PK[1]],
      ["p", PK[1], "wss://relay.example.com"],
      ["p", hex64("snowden")],
    ],
    note: "realistic kind 1 reply (NIP-10 root marker, e tag points at previous vector's id)",
  },
  {
    key: 3, created_at: 1718012999,
    content:
      "日曜日のベンチマーク結果 📊\n\n" +
      "- 書き込み: 12,400 events/s\n- 読み込み (REQ, limit 500): p99 3.2 ms\n- メモリ: 180 MB\n\n" +
      "Still slower than strfry on large filters, but catching up. Graph: https://example.com/bench/2024-06-09.png\n\n" +
      "「速さは正義」とは限らないけど、嬉しい。",
    tags: () => [
      ["e", signed.at(-2).id, "", "root"],
      ["e", signed.at(-1).id, "", "reply"],
      ["p", PK[1]], ["p", PK[2]],
      ["imeta", "url https://example.com/bench/2024-06-09.png", "m image/png", "dim 1200x800", "x " + hex64("bench.png")],
      ["t", "benchmark"],
    ],
    note: "realistic kind 1 note, mixed Japanese/English, imeta tag, NIP-10 root+reply",
  },
  {
    key: 0, created_at: 1718013500,
    content:
      "PSA for client devs: when you build the id preimage, don't hand-roll the JSON escaping. " +
      "JSON.stringify escapes U+0000–U+001F as \\u00XX (except \\b \\t \\n \\f \\r), leaves U+007F and U+2028 alone, and never escapes \"/\". " +
      "If your language's serializer escapes \"/\" as \"\\/\" or emits \\u2028, your ids won't match and relays will reject your events with \"invalid: event id does not match\". " +
      "Test with tabs, emoji 🏳️‍🌈, and a literal backslash \\ before shipping.",
    tags: [["t", "nostrdev"], ["alt", "Note about canonical JSON for event ids"]],
    note: "realistic kind 1 note about escaping, containing quotes and backslashes",
  },
];
for (const r of realistic) {
  const ev = addValid({ kind: 1, created_at: r.created_at, key: r.key, content: r.content, tags: typeof r.tags === "function" ? r.tags() : r.tags, note: r.note });
  const n = Buffer.byteLength(ev.content, "utf8");
  assert(n >= 300 && n <= 1024, `${r.note}: content is ${n} bytes, want 300..1024`);
}

// ~4 KB long note
const longParas = [
  "Running a Nostr relay: notes from the first month",
  "When I started, I assumed the hard part would be the websocket plumbing. It wasn't. The hard part was everything around the event itself: deciding what counts as a valid event, what to store, for how long, and how to answer REQ filters quickly without letting a single client monopolise the machine.",
  "Validation comes first. Every event carries an id, which is the SHA-256 of a very specific JSON array: [0, pubkey, created_at, kind, tags, content]. \"Very specific\" means the exact bytes that JavaScript's JSON.stringify would produce. No whitespace. Control characters below 0x20 become \\n, \\t, \\r, \\b, \\f or \\u00XX. The forward slash is left alone. Non-ASCII text — ü, 日本語, 🏳️‍🌈 — is written as raw UTF-8, never as \\u escapes. If the relay re-serializes with a library that differs on any of these, perfectly good events get rejected.",
  "Then the signature: BIP-340 Schnorr over secp256k1, with the 32-byte id as the message and the x-only pubkey. Verification is cheap enough (tens of microseconds) that it is not worth caching, but it is worth doing before touching the database.",
  "Storage was the next surprise. Replaceable kinds (0, 3, 10000–19999) keep only the newest event per pubkey and kind; addressable kinds (30000–39999) keep the newest per pubkey, kind and d tag. Ties on created_at are broken by the lowest id. Ephemeral kinds (20000–29999) are never stored at all, only fanned out to live subscriptions.",
  "Deletion requests (kind 5) are politely honoured for events by the same author. Expiration tags (NIP-40) are checked on write and on read, and a background task sweeps them out. Gift wraps (kind 1059) are just opaque blobs addressed by a p tag; the relay cannot and should not look inside.",
  "Filters are where performance lives. A REQ can ask for ids, authors, kinds, #e/#p/#t tags, since, until and limit, and a single subscription may carry several filters that are OR-ed together. Indexes on (kind, created_at), (pubkey, created_at) and (tag name, tag value, created_at) cover almost everything real clients send. The rest is a scan with a limit, which is fine as long as the limit is enforced.",
  "Finally, limits. Max message size, max subscriptions per connection, max filters per REQ, max tags per event, max content length, and a rate limit per IP. Every one of them exists because some client, somewhere, sent something enormous by accident. Publish them in the NIP-11 document so clients can adapt.",
  "Observability deserves its own paragraph. I log one line per rejected event with the reason string that goes back to the client in the OK message (\"invalid: bad signature\", \"blocked: rate limited\", \"duplicate: already have this event\"), and count them per reason. Within a day it was obvious that most rejections came from three misbehaving bots re-sending the same events every few seconds, not from real users. Without the counters I would have spent a week tuning the wrong thing.",
  "Backups are boring and therefore easy to forget. The database is append-mostly, so a nightly snapshot plus a stream of new events is enough, and restoring is just replaying events through the normal validation path. That replay doubles as a regression test: if a new version of the relay rejects an event it accepted last month, something changed in the canonical serialization or the signature check, and I want to know before users do.",
  "A word on clocks. created_at is whatever the client says it is. Some clients are minutes off, some send 0, and at least one sent a timestamp in milliseconds. I reject events more than fifteen minutes in the future and accept anything in the past, but I store created_at as an unsigned 64-bit integer anyway, because JSON numbers up to 2^53 − 1 are perfectly legal and somebody will send one.",
  "Would I do it again? Absolutely. It is a small protocol with sharp edges, and the edges are exactly where the interesting work is. 🚀",
];
{
  const content = longParas.join("\n\n");
  const n = Buffer.byteLength(content, "utf8");
  assert(n >= 3500 && n <= 4700, `long note is ${n} bytes`);
  addValid({
    kind: 1, created_at: 1718020000, key: 2,
    content,
    tags: [["t", "nostr"], ["t", "relay"], ["t", "longread"], ["p", PK[0]], ["client", "wok-tests"]],
    note: `realistic long kind 1 note, ${n} bytes of content`,
  });
}

// ---------------------------------------------------------------- 6. lone surrogate
addValid({
  kind: 1, created_at: 1700001000,
  content: "lone high surrogate \ud800 and lone low \udc00 here",
  tags: [["t", "x\udfffy"]],
  note: "lone UTF-16 surrogates: JSON.stringify (ES2019 well-formed) emits \\ud800 / \\udc00 / \\udfff as ASCII escapes; the relay may reject this, decided in Rust (serde_json refuses lone surrogate escapes in strings by default)",
  expect: ["surrogate \\ud800 and lone low \\udc00 here", '"x\\udfffy"'],
  extra: { lone_surrogate: true },
});

// ---------------------------------------------------------------- 7. negative vectors
const base = addValid({
  kind: 1, created_at: 1700002000, key: 1,
  content: "base event for the negative vectors: caf\u00e9 / cafe\u0301",
  tags: [["t", "negative-base"], ["p", PK[2]]],
  note: "valid base event from which the negative vectors below are derived",
});
const other = signed[0];
addInvalid(base, "id tampered", "one hex digit of id changed; id != sha256(serialized)", (e) => { e.id = flipHex(e.id, 10); });
addInvalid(base, "sig tampered", "one hex digit of sig changed; id is correct, Schnorr verification fails", (e) => { e.sig = flipHex(e.sig, 70); });
addInvalid(base, "content changed after signing", "content edited after signing; id no longer matches", (e) => { e.content += "!"; });
addInvalid(base, "content NFC-normalized after signing", "content Unicode-normalized (NFD e\u0301 -> NFC \u00e9) after signing; a relay must never normalize", (e) => { e.content = e.content.normalize("NFC"); });
addInvalid(base, "tag changed after signing", "tag value edited after signing; id no longer matches", (e) => { e.tags[0][1] = "negative-basE"; });
addInvalid(base, "created_at changed after signing", "created_at incremented after signing; id no longer matches", (e) => { e.created_at += 1; });
addInvalid(base, "sig from another event", "sig is a valid BIP-340 signature, but over a different event's id; id is correct", (e) => { e.sig = other.sig; });
addInvalid(base, "uppercase id", "id is the right hash but in uppercase hex; NIP-01 requires lowercase and nostr-tools rejects it", (e) => { e.id = e.id.toUpperCase(); });

// ---------------------------------------------------------------- write
const ids = new Set(lines.filter((l) => l.valid).map((l) => l.id));
assert(ids.size === lines.filter((l) => l.valid).length, "duplicate ids among valid vectors");
const out = lines.map((l) => JSON.stringify(l)).join("\n") + "\n";
const target = process.argv[2];
if (target) {
  const tmp = target + ".tmp";
  writeFileSync(tmp, out);
  renameSync(tmp, target);
} else {
  process.stdout.write(out);
}
console.error(`${lines.length} vectors (${lines.filter((l) => l.valid).length} valid, ${lines.filter((l) => !l.valid).length} negative) with nostr-tools ${ntPkg.version}`);
