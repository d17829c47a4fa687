#!/usr/bin/env python3
"""Two hostile-ish clients for scripts/soak.sh (Python 3 standard library only), each running for
--seconds against ws://127.0.0.1:PORT and printing JSON lines {"scenario","name","value","unit"}:

  malformed  one connection sending --rate bad messages a second (invalid JSON, a binary frame,
             an EVENT with a wrong id, REQ/CLOSE/COUNT of the wrong shape, an unknown verb), one
             at a time: each must earn an answer (NOTICE, OK false or CLOSED) within 5 s, and
             every 10th is followed by a valid REQ that must reach EOSE (the connection still
             works). answer_p50_ms/p99_ms; unanswered, wrong_answer, closed (by the relay) and
             bad_after are errors.
  slow       one connection with a 4 KiB receive buffer that opens 20 REQs of 5,000 stored
             events each (~100 MB of answers) and reads 64 KiB a second: the relay must stop
             producing for it (back-pressure) or close it past relay.maxPendingOutboundBytes; it
             reconnects 1 s after a close. Reports bytes read and the closes (neither is an error;
             the relay's RSS, sampled by soak.sh, is what must not grow).

Exit status 0 unless the client could not run at all (e.g. the handshake failed every time).
"""

import argparse
import importlib.util
import json
import os
import socket
import sys
import time

# The WebSocket client (handshake, masked frames) from scripts/probe-abuse.py.
_spec = importlib.util.spec_from_file_location(
    "probe_abuse", os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe-abuse.py")
)
_pa = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_pa)
Ws, WsClosed, frame = _pa.Ws, _pa.WsClosed, _pa.frame


def out(scenario, name, value, unit):
    print(json.dumps({"scenario": scenario, "name": name, "value": value, "unit": unit}), flush=True)


def pct(v, q):
    if not v:
        return None
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


BAD_ID = "ab" * 32
# (payload bytes, opcode, acceptable answer verbs)
BAD = [
    (b"this is not json", 1, {"NOTICE"}),
    (b'["EVENT",{"id":"00"}]', 1, {"NOTICE", "OK"}),
    (
        json.dumps(
            ["EVENT", {"id": BAD_ID, "pubkey": "cd" * 32, "created_at": 1700000000, "kind": 1,
                       "tags": [], "content": "soak", "sig": "ef" * 64}]
        ).encode(),
        1,
        {"OK", "NOTICE"},
    ),
    (b'["REQ"]', 1, {"NOTICE", "CLOSED"}),
    (b'["REQ","bad",{"kinds":"x"}]', 1, {"NOTICE", "CLOSED"}),
    (b'["COUNT","c",{"limit":-1,"authors":[1]}]', 1, {"NOTICE", "CLOSED"}),
    (b'["FOO","bar"]', 1, {"NOTICE"}),
    (b"\x00\x01\x02binary", 2, {"NOTICE"}),
    (b'{"not":"an array"}', 1, {"NOTICE"}),
    (b'["CLOSE"]', 1, {"NOTICE"}),
]


def malformed(port, seconds, rate):
    end = time.monotonic() + seconds
    lat, counts = [], {"sent": 0, "unanswered": 0, "wrong_answer": 0, "closed": 0, "bad_after": 0, "connect_failed": 0}
    ws, i = None, 0
    for _ in range(int(seconds * rate) + 10):
        if time.monotonic() >= end:
            break
        t0 = time.monotonic()
        try:
            if ws is None:
                ws = Ws(port, timeout=5.0)
            payload, op, ok = BAD[i % len(BAD)]
            ws.send_raw(frame(payload, opcode=op), timeout=5.0)
            counts["sent"] += 1
            for _ in range(20):  # skip what is left of the last liveness REQ
                msg = ws.recv(time.monotonic() + 5.0)
                if not (isinstance(msg, list) and len(msg) > 1 and msg[1] == "alive"):
                    break
            lat.append((time.monotonic() - t0) * 1000)
            if not (isinstance(msg, list) and msg and msg[0] in ok):
                counts["wrong_answer"] += 1
                print(f"soak-clients: {payload[:40]!r} answered {str(msg)[:120]}", file=sys.stderr)
            elif msg[0] == "OK" and msg[2] is not False:
                counts["wrong_answer"] += 1
            if i % 10 == 9:  # the connection still serves a valid REQ
                ws.send(["REQ", "alive", {"ids": ["00" * 32]}])  # matches nothing, ever
                for _ in range(5):
                    m = ws.recv(time.monotonic() + 5.0)
                    if isinstance(m, list) and m[:2] == ["EOSE", "alive"]:
                        break
                else:
                    counts["bad_after"] += 1
                ws.send(["CLOSE", "alive"])
        except socket.timeout:
            counts["unanswered"] += 1
            ws.close()
            ws = None
        except (WsClosed, OSError) as e:
            counts["closed" if ws is not None else "connect_failed"] += 1
            print(f"soak-clients: malformed: {e}", file=sys.stderr)
            if ws is not None:
                ws.close()
            ws = None
        i += 1
        time.sleep(max(0.0, 1.0 / rate - (time.monotonic() - t0)))
    if ws is not None:
        ws.close(polite=True)
    out("malformed", "answer_p50_ms", pct(lat, 0.5), "ms")
    out("malformed", "answer_p99_ms", pct(lat, 0.99), "ms")
    for k, v in counts.items():
        out("malformed", k, v, "messages" if k != "connect_failed" else "connections")
    return 0 if counts["sent"] else 1


def slow(port, seconds, subs=20, limit=5000, read_per_s=65536):
    end = time.monotonic() + seconds
    got, closes, conns, failed = 0, 0, 0, 0
    chunk = 8192
    for _ in range(1000):
        if time.monotonic() >= end:
            break
        try:
            # A small receive buffer, set before connecting, so TCP back-pressure starts early.
            orig = socket.create_connection

            def small(addr, timeout=None, *a, **k):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.settimeout(timeout)
                s.connect(addr)
                return s

            socket.create_connection = small
            try:
                ws = Ws(port, timeout=5.0)
            finally:
                socket.create_connection = orig
            conns += 1
            for k in range(subs):
                ws.send(["REQ", f"s{k}", {"limit": limit}])
            ws.sock.settimeout(0.5)
            while time.monotonic() < end:
                t0 = time.monotonic()
                try:
                    data = ws.sock.recv(chunk)
                except socket.timeout:
                    continue
                if not data:
                    raise WsClosed("eof")
                got += len(data)
                time.sleep(max(0.0, chunk / read_per_s - (time.monotonic() - t0)))
            ws.close()
        except (WsClosed, OSError) as e:
            if conns == 0 or isinstance(e, ConnectionRefusedError):
                failed += 1
            else:
                closes += 1
            time.sleep(1.0)
    out("slow", "bytes_read", got, "bytes")
    out("slow", "closed_by_relay", closes, "connections")
    out("slow", "connections", conns, "connections")
    out("slow", "connect_failed", failed, "connections")
    return 0 if conns else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["malformed", "slow"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rate", type=float, default=4, help="malformed: messages a second")
    a = ap.parse_args()
    if a.mode == "malformed":
        return malformed(a.port, a.seconds, a.rate)
    return slow(a.port, a.seconds)


if __name__ == "__main__":
    sys.exit(main())
