#!/usr/bin/env python3
"""Attacker probes against a wok relay: what a few hostile clients make it hold (issue 23).

Starts the given relay binary on a temp DB filled with `wok gen --count N --seed 1 | wok import`
(one fresh relay process per scenario, each on its own copy of that DB, on 127.0.0.1 and a free
port, with the binary's built-in default config), runs each scenario against it over raw sockets
(hand-written WebSocket handshake and masked client frames; Python 3 standard library only), and
prints one JSON line per scenario, then a table.

  garbage        C connections that never read, each sending K one-byte text frames ("x"), each of
                 which earns a NOTICE. Relay anonymous RSS (/proc/PID/status RssAnon) before, peak
                 (sampled every 100 ms; "held" once the relay has read every sent byte and gone
                 idle) and 5 s after closing them; how many connections the relay
                 closed (send error, or the socket no longer ESTABLISHED per TCP_INFO).
  tags           C connections each pipelining R REQs with one filter of V distinct `#t` values
                 ("~" + base 36, so none matches a stored event; each REQ under the relay's
                 maxWebsocketPayloadSize, 128 KiB); EOSE vs CLOSED counts, RSS
                 before/peak/after, a fresh small REQ's latency while they are held and right after
                 they close, relay CPU spent after closing. --tags-values takes a list: one run each.
  idle_filters   C connections x S subs x F filters {"until":1} (as many as accepted), then one
                 subscriber {"kinds":[1]} and an uploader publishing E kind-1 events (`wok gen
                 --seed 2, 3, ...`, created in the last two days): seconds from first publish until every
                 accepted event reached the subscriber, without the idle filters (baseline, same
                 relay process, before they are opened) and with them; also to the first delivery.
                 --idle-repeat N publishes N sets each way (medians); a delivery not complete within
                 --delivery-timeout is reported with complete=false and the timeout as its time.
  connect_flood  N WebSocket connect + handshake + close cycles from T threads, as fast as possible;
                 growth of the relay's log (its stdout+stderr, redirected to a file) in bytes/s
                 during the flood, and in total including the 11 s after it (periodic summaries).

Every loop is bounded by a count and a deadline; the relay is stopped (SIGTERM, then SIGKILL) at
the end of each scenario, and the temp dir removed unless --keep-tmp.

Usage:
  python3 scripts/probe-abuse.py --wok target/release/wok [--label after] [--only tags,garbage]
        [--events 20000] [--jsonl out.jsonl] [scenario flags, see --help]
  python3 scripts/probe-abuse.py --summarize before.jsonl after.jsonl   # medians per label

Defaults are scaled down from the issue so a full run takes a few minutes on 2 cores: 20k events,
garbage C=10 K=400k, tags C=2 R=200 V=16370 (and V=5000), idle_filters C=30 S=200 F=200 E=2000,
connect_flood N=3000 T=4.
"""

import argparse
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TCP_ESTABLISHED = 1


def log(*a):
    print("[probe]", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- WebSocket client


class WsClosed(Exception):
    pass


def mask_payload(payload, key):
    n = len(payload)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def frame(payload, opcode=1, key=None):
    """One masked, final client frame."""
    key = key or os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + key + mask_payload(payload, key)


CLOSE_FRAME = frame(struct.pack("!H", 1000), opcode=8, key=b"\x11\x22\x33\x44")


class Ws:
    """A blocking WebSocket client on a raw socket. One thread may read while another sends."""

    def __init__(self, port, timeout=10.0):
        deadline = time.monotonic() + timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.lock = threading.Lock()
        key = base64.b64encode(os.urandom(16)).decode()
        req = (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(req.encode())
        buf = bytearray()
        for _ in range(1000):
            if b"\r\n\r\n" in buf or len(buf) > 65536 or time.monotonic() > deadline:
                break
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            if not data:
                break
            buf += data
        head, sep, rest = bytes(buf).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if not sep or " 101 " not in lines[0] + " ":
            self.sock.close()
            raise WsClosed(f"handshake failed: {lines[0]!r}")
        want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if not any(l.lower().startswith("sec-websocket-accept:") and l.split(":", 1)[1].strip() == want for l in lines):
            self.sock.close()
            raise WsClosed("handshake: bad Sec-WebSocket-Accept")
        self.buf = bytearray(rest)
        self.frags = None
        self.sock.settimeout(timeout)

    def send_raw(self, data, timeout=30.0):
        with self.lock:
            self.sock.settimeout(timeout)
            self.sock.sendall(data)

    def send(self, obj, timeout=30.0):
        self.send_raw(frame(json.dumps(obj, separators=(",", ":")).encode()), timeout)

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("deadline")
            self.sock.settimeout(left)
            data = self.sock.recv(262144)
            if not data:
                raise WsClosed("eof")
            self.buf += data

    def _frame(self, deadline):
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        if b1 & 0x80:
            off += 4  # servers do not mask; tolerate it anyway
        self._need(off + n, deadline)
        payload = bytes(self.buf[off : off + n])
        if b1 & 0x80:
            payload = mask_payload(payload, bytes(self.buf[off - 4 : off]))
        del self.buf[: off + n]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv(self, deadline):
        """The next text message as parsed JSON; raises socket.timeout past deadline, WsClosed."""
        for _ in range(100000):
            fin, op, payload = self._frame(deadline)
            if op == 9:
                self.send_raw(frame(payload, opcode=10))
                continue
            if op == 10:
                continue
            if op == 8:
                raise WsClosed("close frame")
            if op == 0:
                if self.frags is None:
                    continue
                self.frags += payload
                if not fin:
                    continue
                payload, self.frags = bytes(self.frags), None
            elif not fin:
                self.frags = bytearray(payload)
                continue
            try:
                return json.loads(payload)
            except ValueError:
                return None
        raise WsClosed("too many control frames")

    def tcp_state(self):
        try:
            return self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
        except OSError:
            return -1

    def close(self, polite=False):
        try:
            if polite:
                self.send_raw(CLOSE_FRAME, timeout=1.0)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- the relay process


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def clean_env():
    env = dict(os.environ)
    env.pop("STRFRY_CONFIG", None)
    return env


class Relay:
    def __init__(self, wok, db, workdir, sets, name):
        self.port = free_port()
        self.logpath = os.path.join(workdir, f"relay-{name}.log")
        self.logf = open(self.logpath, "wb")
        cmd = [wok, "--set", f"relay.port={self.port}", "--set", "relay.bind=127.0.0.1", "--set", f"db={db}/"]
        for s in sets:
            cmd += ["--set", s]
        cmd.append("relay")
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir, env=clean_env())
        self.pid = self.proc.pid
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"relay exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("relay did not listen within 60 s")

    def log_tail(self, n=2000):
        try:
            with open(self.logpath, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def rss_mb(self):
        """Anonymous resident memory, MB (RssAnon); None once the process is gone."""
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def cpu(self):
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
            return (int(parts[11]) + int(parts[12])) / TICK
        except OSError:
            return 0.0

    def log_bytes(self):
        try:
            return os.path.getsize(self.logpath)
        except OSError:
            return 0

    def log_lines(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().count(b"\n")
        except OSError:
            return 0

    def metrics(self):
        """GET /metrics as {name: summed value}; {} if unavailable."""
        out = {}
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            s.sendall(f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nConnection: close\r\n\r\n".encode())
            data = bytearray()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and len(data) < 4 << 20:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            s.close()
            body = bytes(data).partition(b"\r\n\r\n")[2].decode("utf-8", "replace")
            for line in body.splitlines():
                if not line or line.startswith("#"):
                    continue
                parts = line.rsplit(None, 1)
                if len(parts) != 2:
                    continue
                name = parts[0].split("{", 1)[0]
                try:
                    out[name] = out.get(name, 0.0) + float(parts[1])
                except ValueError:
                    pass
        except OSError:
            pass
        return out

    def wait_idle(self, max_s, window=0.5, frac=0.1):
        """Wait until the relay uses < frac of a core over `window`; returns seconds waited."""
        t0 = time.monotonic()
        prev = self.cpu()
        while time.monotonic() - t0 < max_s and self.alive():
            time.sleep(window)
            c = self.cpu()
            if c - prev < window * frac:
                break
            prev = c
        return time.monotonic() - t0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.logf.close()
        return self.proc.returncode


class RssSampler:
    def __init__(self, relay, period=0.1):
        self.relay, self.period = relay, period
        self.peak = relay.rss_mb() or 0.0
        self.stop_ev = threading.Event()
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        # bounded: at most one hour of samples
        for _ in range(int(3600 / self.period)):
            if self.stop_ev.wait(self.period):
                return
            r = self.relay.rss_mb()
            if r is None:
                return
            self.peak = max(self.peak, r)

    def stop(self):
        self.stop_ev.set()
        self.th.join(timeout=5)
        return self.peak


def tcp_queues(port):
    """{(local port, remote port): (tx_queue, rx_queue)} of loopback TCP sockets touching port."""
    out = {}
    try:
        with open("/proc/net/tcp") as f:
            for line in list(f)[1:]:
                parts = line.split()
                lp, rp = int(parts[1].split(":")[1], 16), int(parts[2].split(":")[1], 16)
                if port in (lp, rp):
                    tx, rx = parts[4].split(":")
                    out[(lp, rp)] = (int(tx, 16), int(rx, 16))
    except OSError:
        pass
    return out


def wait_drained(relay, conns, max_s):
    """Wait until every byte the clients sent has been read by the relay (client send queues and
    the relay's receive queues empty, or the connection gone); returns seconds waited. On a busy
    machine the relay may pause for a while, which an idle-CPU test alone mistakes for done."""
    t0 = time.monotonic()
    ours = [ws.sock.getsockname()[1] for ws in conns]
    for _ in range(int(max_s / 0.1) + 1):
        q = tcp_queues(relay.port)
        busy = 0
        for p in ours:
            busy += q.get((p, relay.port), (0, 0))[0] + q.get((relay.port, p), (0, 0))[1]
        if busy == 0 or time.monotonic() - t0 > max_s:
            break
        time.sleep(0.1)
    return time.monotonic() - t0


def r1(x):
    return None if x is None else round(x, 1)


def run_threads(targets, join_s):
    ths = [threading.Thread(target=t, daemon=True) for t in targets]
    for t in ths:
        t.start()
    deadline = time.monotonic() + join_s
    for t in ths:
        t.join(timeout=max(0.1, deadline - time.monotonic()))
    return sum(t.is_alive() for t in ths)


def fresh_req_ms(port, timeout=30.0):
    """Milliseconds from sending a small REQ on a new connection to its EOSE (None on timeout)."""
    try:
        ws = Ws(port)
    except (OSError, WsClosed):
        return None
    try:
        t0 = time.monotonic()
        ws.send(["REQ", "probe", {"kinds": [1], "limit": 1}])
        deadline = t0 + timeout
        for _ in range(1000):
            m = ws.recv(deadline)
            if isinstance(m, list) and m and m[0] in ("EOSE", "CLOSED") and m[1] == "probe":
                return round((time.monotonic() - t0) * 1000, 1)
    except (OSError, WsClosed):
        return None
    finally:
        ws.close(polite=True)
    return None


# ---------------------------------------------------------------- DB and events


def gen_cmd(wok, count, seed, start, span):
    return [wok, "gen", "--count", str(count), "--seed", str(seed), "--start", str(start), "--span", str(span)]


def make_db(wok, db, count, workdir):
    os.makedirs(db, exist_ok=True)
    now = int(time.time())
    t0 = time.monotonic()
    gen = subprocess.Popen(gen_cmd(wok, count, 1, now - 60 * 86400, 30 * 86400), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=workdir, env=clean_env())
    imp = subprocess.Popen([wok, "--set", f"db={db}/", "import"], stdin=gen.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=workdir, env=clean_env())
    gen.stdout.close()
    try:
        _, err = imp.communicate(timeout=600)
        gen.wait(timeout=60)
    except subprocess.TimeoutExpired:
        gen.kill()
        imp.kill()
        raise RuntimeError("gen | import took over 10 minutes")
    if imp.returncode != 0 or gen.returncode != 0:
        raise RuntimeError(f"gen | import failed ({gen.returncode}, {imp.returncode}): {err[-1000:]!r}")
    log(f"DB: {count} events generated and imported in {time.monotonic() - t0:.1f} s")


def kind1_events(wok, n, seed, workdir):
    """n validly signed kind-1 events created in the last two days, none with a NIP-40 expiration
    tag (some of gen's have one already past): [(id, json line)]."""
    now = int(time.time())
    out = subprocess.run(gen_cmd(wok, 2 * n + 200, seed, now - 2 * 86400, 86400), capture_output=True, timeout=600, cwd=workdir, env=clean_env())
    evs = []
    for line in out.stdout.splitlines():
        e = json.loads(line)
        if e["kind"] == 1 and not any(t[:1] == ["expiration"] for t in e["tags"]):
            evs.append((e["id"], line))
            if len(evs) == n:
                break
    if len(evs) < n:
        raise RuntimeError(f"gen gave only {len(evs)} kind-1 events for {n}")
    return evs


def copy_db(src, dst):
    subprocess.run(["cp", "-a", "--sparse=always", src, dst], check=True, timeout=300)


# ---------------------------------------------------------------- scenarios


def sc_garbage(relay, a):
    C, K = a.garbage_conns, a.garbage_frames
    m0 = relay.metrics()
    rss0 = relay.rss_mb()
    samp = RssSampler(relay)
    conns = [Ws(relay.port) for _ in range(C)]
    one = frame(b"x", key=b"\x01\x02\x03\x04")
    chunk_frames = 5000
    chunk = one * chunk_frames
    sent = [0] * C
    fate = ["done"] * C
    deadline = time.monotonic() + a.garbage_seconds

    def flood(i):
        ws = conns[i]
        for _ in range(K // chunk_frames + 2):
            n = min(chunk_frames, K - sent[i])
            if n <= 0:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                fate[i] = "deadline"
                return
            try:
                ws.send_raw(chunk[: n * len(one)], timeout=min(left, a.stall_seconds))
            except socket.timeout:
                fate[i] = "stalled"  # the relay stopped reading from it
                return
            except OSError:
                fate[i] = "send_error"  # reset by the relay
                return
            sent[i] += n

    t0 = time.monotonic()
    run_threads([lambda i=i: flood(i) for i in range(C)], a.garbage_seconds + a.stall_seconds + 5)
    send_s = time.monotonic() - t0
    drain_s = wait_drained(relay, conns, 120)
    idle_s = relay.wait_idle(60)
    states = [ws.tcp_state() for ws in conns]
    closed = sum(1 for i in range(C) if fate[i] == "send_error" or states[i] != TCP_ESTABLISHED)
    peak_held = samp.peak
    for ws in conns:
        ws.close()
    time.sleep(5)
    rss_after = relay.rss_mb()
    peak = samp.stop()
    m1 = relay.metrics()
    slow = None
    if "strfry_slow_client_terminations_total" in m1:
        slow = m1["strfry_slow_client_terminations_total"] - m0.get("strfry_slow_client_terminations_total", 0)
    return dict(
        connections=C, frames_per_conn=K, frames_sent=sum(sent), send_s=round(send_s, 2), drain_s=round(drain_s, 2), settle_s=round(idle_s, 2),
        rss_before_mb=r1(rss0), rss_peak_mb=r1(peak), rss_peak_before_close_mb=r1(peak_held), rss_after_mb=r1(rss_after),
        closed_by_relay=closed, stalled=fate.count("stalled"), slow_client_terminations=slow,
    )


def b36(i, width):
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    s = ""
    for _ in range(width):
        i, d = divmod(i, 36)
        s = digits[d] + s
    return s


def sc_tags(relay, a, V):
    C, R = a.tags_conns, a.tags_reqs
    width = 1
    while 36**width < V:
        width += 1
    vals = ["~" + b36(i, width) for i in range(V)]  # "~": no stored event has such a tag, no REQ returns events
    body = json.dumps({"#t": vals}, separators=(",", ":"))
    reqs = [[f'["REQ","t{c}_{i}",{body}]'.encode() for i in range(R)] for c in range(C)]
    req_bytes = max(len(r) for rs in reqs for r in rs)
    if req_bytes >= a.max_payload:
        raise RuntimeError(f"a REQ with {V} values is {req_bytes} bytes, over {a.max_payload}")
    rss0 = relay.rss_mb()
    cpu0 = relay.cpu()
    samp = RssSampler(relay)
    conns = [Ws(relay.port) for _ in range(C)]
    eose, closed, noans, reasons, examples = [0] * C, [0] * C, [0] * C, {}, set()
    deadline = time.monotonic() + a.tags_seconds

    def sender(c):
        for r in reqs[c]:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                conns[c].send_raw(frame(r), timeout=left)
            except OSError:
                return

    def reader(c):
        pending = {f"t{c}_{i}" for i in range(R)}
        for _ in range(600 * R + 1000):  # EVENTs too, should a REQ match stored events
            if not pending:
                break
            try:
                m = conns[c].recv(deadline)
            except (OSError, WsClosed):
                break
            if not isinstance(m, list) or len(m) < 2 or m[1] not in pending:
                continue
            if m[0] == "EOSE":
                eose[c] += 1
                pending.discard(m[1])
            elif m[0] == "CLOSED":
                closed[c] += 1
                pending.discard(m[1])
                text = str(m[2]) if len(m) > 2 else ""
                why = text.split(":", 1)[0]
                reasons[why] = reasons.get(why, 0) + 1
                if len(examples) < 10:
                    examples.add(text[:100])
        noans[c] = len(pending)

    t0 = time.monotonic()
    targets = [lambda c=c: sender(c) for c in range(C)] + [lambda c=c: reader(c) for c in range(C)]
    run_threads(targets, a.tags_seconds + 10)
    answer_s = time.monotonic() - t0
    relay.wait_idle(60)
    held_ms = fresh_req_ms(relay.port)
    rss_held = relay.rss_mb()
    cpu_c = relay.cpu()
    for ws in conns:
        ws.close(polite=True)
    after_close_ms = fresh_req_ms(relay.port)
    close_idle_s = relay.wait_idle(60)
    close_cpu = relay.cpu() - cpu_c
    time.sleep(5)
    rss_after = relay.rss_mb()
    peak = samp.stop()
    return dict(
        variant=f"V={V}", connections=C, reqs_per_conn=R, values_per_filter=V, req_bytes=req_bytes,
        sent_mb=r1(C * R * req_bytes / 1e6), answer_s=round(answer_s, 2),
        eose=sum(eose), closed=sum(closed), no_answer=sum(noans), closed_reasons=reasons, closed_examples=sorted(examples)[:3],
        rss_before_mb=r1(rss0), rss_peak_mb=r1(peak), rss_held_mb=r1(rss_held), rss_after_mb=r1(rss_after),
        fresh_req_ms_held=held_ms, fresh_req_ms_after_close=after_close_ms,
        close_cpu_s=round(close_cpu, 2), close_settle_s=round(close_idle_s, 2), cpu_total_s=round(relay.cpu() - cpu0, 2),
    )


def deliver(relay, events, timeout):
    """Publish events on one connection, watch a {"kinds":[1]} subscriber; timings in seconds."""
    sub = Ws(relay.port)
    up = Ws(relay.port)
    try:
        sub.send(["REQ", "live", {"kinds": [1]}])
        d = time.monotonic() + 60
        for _ in range(100000):
            m = sub.recv(d)
            if isinstance(m, list) and m[:2] in (["EOSE", "live"], ["CLOSED", "live"]):
                break
        want = {i for i, _ in events}
        got = {}
        oks = {}
        refused = {}
        deadline = time.monotonic() + timeout + 5

        def sub_reader():
            for _ in range(10 * len(events) + 1000):
                if len(got) >= len(want):
                    return
                try:
                    m = sub.recv(deadline)
                except (OSError, WsClosed):
                    return
                if isinstance(m, list) and len(m) >= 3 and m[0] == "EVENT" and isinstance(m[2], dict):
                    i = m[2].get("id")
                    if i in want and i not in got:
                        got[i] = time.monotonic()

        def up_reader():
            for _ in range(10 * len(events) + 1000):
                if len(oks) >= len(events):
                    return
                try:
                    m = up.recv(deadline)
                except (OSError, WsClosed):
                    return
                if isinstance(m, list) and len(m) >= 3 and m[0] == "OK":
                    msg = str(m[3] if len(m) > 3 else "")
                    good = bool(m[2]) and not msg.startswith("duplicate")
                    oks[m[1]] = (good, time.monotonic())
                    if not good:
                        key = msg.split(":", 1)[0] if m[2] else msg[:60]
                        refused[key] = refused.get(key, 0) + 1

        ths = [threading.Thread(target=sub_reader, daemon=True), threading.Thread(target=up_reader, daemon=True)]
        for t in ths:
            t.start()
        frames = [frame(b'["EVENT",' + line + b"]") for _, line in events]
        t0 = time.monotonic()
        for f in frames:
            up.send_raw(f, timeout=max(1.0, deadline - time.monotonic()))
        for _ in range(int((timeout + 10) / 0.01)):
            if time.monotonic() > t0 + timeout:
                break
            if len(oks) >= len(events):
                acc = [i for i, (ok, _) in oks.items() if ok]
                if all(i in got for i in acc):
                    break
            time.sleep(0.01)
        acc = [i for i, (ok, _) in oks.items() if ok]
        delivered = [got[i] for i in acc if i in got]
        complete = len(oks) >= len(events) and len(delivered) == len(acc)
        return dict(
            published=len(events), accepted=len(acc), refused=refused, delivered=len(delivered), complete=complete,
            ok_s=round(max((t for _, t in oks.values()), default=t0) - t0, 3),
            delivery_s=round((max(delivered) if complete and delivered else time.monotonic()) - t0, 3),
            first_s=round(min(delivered) - t0, 3) if delivered else None,
        )
    finally:
        sub.close(polite=True)
        up.close(polite=True)


def sc_idle_filters(relay, a, sets):
    C, S, F = a.idle_conns, a.idle_subs, a.idle_filters
    n = len(sets) // 2
    bases = []
    for evs in sets[:n]:
        bases.append(deliver(relay, evs, a.delivery_timeout))
        log(f"  baseline: {bases[-1]}")
    rss0 = relay.rss_mb()
    filt = ",".join(['{"until":1}'] * F)
    conns = []
    for _ in range(C):
        conns.append(Ws(relay.port))
    eose, closed, reasons = [0] * C, [0] * C, {}
    deadline = time.monotonic() + a.idle_seconds
    done = threading.Event()  # the readers keep reading (answering pings) until the end
    alive = [True] * C
    # bounded: registration, every delivery, slack
    end = time.monotonic() + a.idle_seconds + len(sets) * (a.delivery_timeout + 70) + 120

    def sender(c):
        for i in range(S):
            try:
                conns[c].send_raw(frame(f'["REQ","i{c}_{i}",{filt}]'.encode()), timeout=max(0.1, deadline - time.monotonic()))
            except OSError:
                return

    def reader(c):
        pending = {f"i{c}_{i}" for i in range(S)}
        for _ in range(600 * S + 1000):
            if not pending:
                break
            try:
                m = conns[c].recv(deadline)
            except (OSError, WsClosed):
                alive[c] = False
                return
            if isinstance(m, list) and len(m) >= 2 and m[1] in pending:
                pending.discard(m[1])
                if m[0] == "EOSE":
                    eose[c] += 1
                else:
                    closed[c] += 1
                    why = str(m[2] if len(m) > 2 else "").split(":", 1)[0]
                    reasons[why] = reasons.get(why, 0) + 1
        # then like a live client: read on, so the relay's pings get their pongs
        for _ in range(int((end - time.monotonic()) / 0.5) + 2):
            if done.is_set() or time.monotonic() > end:
                return
            try:
                conns[c].recv(min(end, time.monotonic() + 0.5))
            except socket.timeout:
                continue
            except (OSError, WsClosed):
                alive[c] = False
                return

    t0 = time.monotonic()
    readers = [threading.Thread(target=reader, args=(c,), daemon=True) for c in range(C)]
    for t in readers:
        t.start()
    run_threads([lambda c=c: sender(c) for c in range(C)], a.idle_seconds + 10)
    for _ in range(int((a.idle_seconds + 10) / 0.05)):
        if sum(eose) + sum(closed) >= C * S or time.monotonic() > deadline or not any(alive):
            break
        time.sleep(0.05)
    register_s = time.monotonic() - t0
    relay.wait_idle(60)
    rss1 = relay.rss_mb()
    log(f"  {sum(eose)} subs accepted ({sum(eose) * F} filters), {sum(closed)} refused, in {register_s:.1f} s")
    loads = []
    for evs in sets[n:]:
        loads.append(deliver(relay, evs, a.delivery_timeout))
        log(f"  loaded: {loads[-1]}")

    def med(runs, k):
        vals = [r[k] for r in runs if r[k] is not None]
        return round(statistics.median(vals), 3) if vals else None

    base = dict(delivery_s=med(bases, "delivery_s"), first_s=med(bases, "first_s"), ok_s=med(bases, "ok_s"),
                delivered=sum(r["delivered"] for r in bases), accepted=sum(r["accepted"] for r in bases),
                refused=[r["refused"] for r in bases], complete=all(r["complete"] for r in bases))
    loaded = dict(delivery_s=med(loads, "delivery_s"), first_s=med(loads, "first_s"), ok_s=med(loads, "ok_s"),
                  delivered=sum(r["delivered"] for r in loads), accepted=sum(r["accepted"] for r in loads),
                  refused=[r["refused"] for r in loads], complete=all(r["complete"] for r in loads))
    still_open = sum(1 for c in range(C) if alive[c] and conns[c].tcp_state() == TCP_ESTABLISHED)
    done.set()
    for t in readers:
        t.join(timeout=2)
    for ws in conns:
        ws.close(polite=True)
    return dict(
        idle_conns_open_at_end=still_open,
        connections=C, subs_per_conn=S, filters_per_sub=F, subs_accepted=sum(eose), subs_refused=sum(closed),
        filters_accepted=sum(eose) * F, refused_reasons=reasons, register_s=round(register_s, 2),
        rss_before_mb=r1(rss0), rss_with_filters_mb=r1(rss1),
        repeats=n, baseline_s=base["delivery_s"], loaded_s=loaded["delivery_s"],
        loaded_s_each=[r["delivery_s"] for r in loads], baseline_s_each=[r["delivery_s"] for r in bases],
        baseline_first_s=base["first_s"], loaded_first_s=loaded["first_s"],
        ratio=round(loaded["delivery_s"] / base["delivery_s"], 2) if base["delivery_s"] else None,
        baseline_delivered=f'{base["delivered"]}/{base["accepted"]}', loaded_delivered=f'{loaded["delivered"]}/{loaded["accepted"]}',
        baseline_ok_s=base["ok_s"], loaded_ok_s=loaded["ok_s"], upload_refused=[base["refused"], loaded["refused"]], complete=base["complete"] and loaded["complete"],
    )


def sc_connect_flood(relay, a):
    N, T = a.flood_cycles, a.flood_threads
    time.sleep(1)
    b0, l0 = relay.log_bytes(), relay.log_lines()
    ok, fail = [0] * T, [0] * T
    deadline = time.monotonic() + a.flood_seconds

    def cycle(t):
        for _ in range(N // T + (1 if t < N % T else 0)):
            if time.monotonic() > deadline:
                return
            try:
                ws = Ws(relay.port, timeout=5)
                ws.close(polite=True)
                ok[t] += 1
            except (OSError, WsClosed):
                fail[t] += 1

    t0 = time.monotonic()
    run_threads([lambda t=t: cycle(t) for t in range(T)], a.flood_seconds + 10)
    flood_s = time.monotonic() - t0
    b1, l1 = relay.log_bytes(), relay.log_lines()
    time.sleep(11)
    b2, l2 = relay.log_bytes(), relay.log_lines()
    return dict(
        cycles=N, threads=T, ok=sum(ok), failed=sum(fail), flood_s=round(flood_s, 2), cycles_per_s=round(sum(ok) / flood_s, 1),
        log_bytes_flood=b1 - b0, log_Bps_flood=round((b1 - b0) / flood_s, 1), log_lines_flood=l1 - l0,
        log_bytes_incl_11s=b2 - b0, log_Bps_incl_11s=round((b2 - b0) / (flood_s + 11), 1), log_lines_incl_11s=l2 - l0,
        log_bytes_per_conn=round((b1 - b0) / max(1, sum(ok)), 1),
    )


# ---------------------------------------------------------------- table

TABLE = {
    "garbage": ["rss_before_mb", "rss_peak_mb", "rss_after_mb", "closed_by_relay", "slow_client_terminations", "frames_sent", "send_s"],
    "tags": ["rss_before_mb", "rss_peak_mb", "rss_after_mb", "eose", "closed", "no_answer", "fresh_req_ms_held", "fresh_req_ms_after_close", "close_cpu_s"],
    "idle_filters": ["filters_accepted", "idle_conns_open_at_end", "register_s", "rss_with_filters_mb", "baseline_s", "loaded_s", "ratio", "baseline_first_s", "loaded_first_s", "baseline_delivered", "loaded_delivered", "complete"],
    "connect_flood": ["ok", "cycles_per_s", "log_bytes_flood", "log_Bps_flood", "log_bytes_per_conn", "log_Bps_incl_11s", "log_lines_incl_11s"],
}


def median_of(vals):
    nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if all(isinstance(v, bool) for v in vals):
        return f"{sum(vals)}/{len(vals)} true"
    if nums and len(nums) == len(vals):
        m = statistics.median(nums)
        if isinstance(m, float) and m.is_integer() and all(isinstance(v, int) for v in nums):
            return int(m)
        return round(m, 2) if isinstance(m, float) else m
    uniq = []
    for v in vals:
        if str(v) not in uniq:
            uniq.append(str(v))
    return " ; ".join(uniq)


def table(rows):
    """rows: result dicts. One column per label (median over its rounds, with n)."""
    labels = []
    for r in rows:
        if r.get("label") not in labels:
            labels.append(r.get("label"))
    keys = []
    for r in rows:
        k = (r["scenario"], r.get("variant", ""))
        if k not in keys:
            keys.append(k)
    out = []
    head = ["scenario", "metric"] + [str(l) for l in labels]
    out.append(head)
    for sc, var in keys:
        line = [f"{sc} {var}".strip(), "runs (median of)"]
        for l in labels:
            line.append(str(sum(1 for r in rows if r.get("label") == l and r["scenario"] == sc and r.get("variant", "") == var and "error" not in r)))
        out.append(line)
        for metric in TABLE.get(sc, []):
            line = [f"{sc} {var}".strip(), metric]
            for l in labels:
                vals = [r.get(metric) for r in rows if r.get("label") == l and r["scenario"] == sc and r.get("variant", "") == var and "error" not in r]
                line.append("-" if not vals else str(median_of(vals)))
            out.append(line)
        for l in labels:
            for r in rows:
                if r.get("label") == l and r["scenario"] == sc and r.get("variant", "") == var and "error" in r:
                    out.append([f"{sc} {var}".strip(), "ERROR", f"{l}: {r['error'][:100]}"])
    widths = [max(len(row[i]) for row in out if i < len(row)) for i in range(len(head))]
    lines = []
    for n, row in enumerate(out):
        lines.append(" | ".join(c.ljust(widths[i]) if i < len(widths) else c for i, c in enumerate(row)))
        if n == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------- main

SCENARIOS = ["garbage", "tags", "idle_filters", "connect_flood"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--wok", help="the wok binary to start")
    p.add_argument("--label", default=None, help="label for the JSON lines and the table column (default: the binary's --version)")
    p.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios: " + ",".join(SCENARIOS))
    p.add_argument("--events", type=int, default=20000, help="events in the DB (wok gen --seed 1)")
    p.add_argument("--jsonl", help="also append the JSON lines to this file")
    p.add_argument("--relay-set", action="append", default=[], metavar="KEY=VALUE", help="extra --set for the relay, repeatable")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (DBs, relay logs)")
    p.add_argument("--max-payload", type=int, default=131072, help="the relay's maxWebsocketPayloadSize (REQ size check)")
    p.add_argument("--stall-seconds", type=float, default=10, help="a send blocked this long counts as the relay not reading")
    p.add_argument("--garbage-conns", type=int, default=10)
    p.add_argument("--garbage-frames", type=int, default=400000, help="one-byte frames per connection (the first ~90k of NOTICEs sit in kernel socket buffers)")
    p.add_argument("--garbage-seconds", type=float, default=90, help="deadline for sending")
    p.add_argument("--tags-conns", type=int, default=2)
    p.add_argument("--tags-reqs", type=int, default=200, help="REQs per connection")
    p.add_argument("--tags-values", default="16370,5000", help="comma-separated #t values per filter; one run each")
    p.add_argument("--tags-seconds", type=float, default=90)
    p.add_argument("--idle-conns", type=int, default=30)
    p.add_argument("--idle-subs", type=int, default=200)
    p.add_argument("--idle-filters", type=int, default=200)
    p.add_argument("--idle-events", type=int, default=2000, help="events published (and delivered) per measurement")
    p.add_argument("--idle-seconds", type=float, default=120, help="deadline for opening the idle subscriptions")
    p.add_argument("--idle-repeat", type=int, default=1, help="publish this many event sets without and with the idle filters (medians)")
    p.add_argument("--delivery-timeout", type=float, default=120, help="seconds; a delivery past it is reported incomplete")
    p.add_argument("--flood-cycles", type=int, default=3000)
    p.add_argument("--flood-threads", type=int, default=4)
    p.add_argument("--flood-seconds", type=float, default=60)
    p.add_argument("--summarize", nargs="+", metavar="JSONL", help="print the median table of earlier runs and exit")
    a = p.parse_args()

    if a.summarize:
        rows = []
        for path in a.summarize:
            with open(path) as f:
                rows += [json.loads(l) for l in f if l.strip()]
        print(table(rows))
        return
    if not a.wok:
        p.error("--wok is required")
    wok = os.path.abspath(a.wok)
    only = [s.strip() for s in a.only.split(",") if s.strip()]
    for s in only:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s}")
    version = subprocess.run([wok, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    label = a.label or version
    machine = dict(nproc=os.cpu_count(), loadavg=os.getloadavg()[0])
    work = tempfile.mkdtemp(prefix="probe-abuse-")
    log(f"{version}; temp dir {work}")
    rows = []
    jf = open(a.jsonl, "a") if a.jsonl else None
    try:
        db0 = os.path.join(work, "db0")
        make_db(wok, db0, a.events, work)
        sets = []
        if "idle_filters" in only:
            sets = [kind1_events(wok, a.idle_events, 2 + i, work) for i in range(2 * a.idle_repeat)]
        runs = []
        for s in only:
            if s == "tags":
                for v in [int(x) for x in a.tags_values.split(",") if x.strip()]:
                    runs.append((s, f"V={v}", lambda r, v=v: sc_tags(r, a, v)))
            elif s == "garbage":
                runs.append((s, "", lambda r: sc_garbage(r, a)))
            elif s == "idle_filters":
                runs.append((s, "", lambda r: sc_idle_filters(r, a, sets)))
            else:
                runs.append((s, "", lambda r: sc_connect_flood(r, a)))
        for n, (s, var, fn) in enumerate(runs):
            db = os.path.join(work, f"db{n + 1}")
            copy_db(db0, db)
            log(f"{s} {var}: starting relay")
            res = dict(scenario=s, label=label)
            if var:
                res["variant"] = var
            t0 = time.monotonic()
            relay = None
            try:
                relay = Relay(wok, db, work, a.relay_set, f"{n + 1}-{s}")
                res.update(fn(relay))
                res["relay_alive"] = relay.alive()
            except Exception as e:  # report and go on with the next scenario
                res["error"] = f"{type(e).__name__}: {e}"
                if relay:
                    res["relay_log_tail"] = relay.log_tail(500)
            finally:
                if relay:
                    res["relay_exit"] = relay.stop()
                shutil.rmtree(db, ignore_errors=True)
            res.update(seconds=round(time.monotonic() - t0, 1), version=version, **machine)
            rows.append(res)
            line = json.dumps(res)
            print(line, flush=True)
            if jf:
                jf.write(line + "\n")
                jf.flush()
    finally:
        if jf:
            jf.close()
        if a.keep_tmp:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
