#!/usr/bin/env python3
"""Bytes on the wire and relay CPU, compressed vs not (permessage-deflate).

Three `wok relay` processes on three copies of one DB: compression off, on with the
sliding window, on without it (copies, so each round publishes the same new events to all). Rounds alternate between them; each figure is the median
over rounds. Clients are Python `websockets` (pip install websockets), counting the bytes
their sockets receive; relay CPU is utime+stime from /proc for the round.

  scenarios:  req     20 REQs each returning 500 stored kind-1 events ({"kinds":[1],"limit":500})
              fanout  1000 subscribers, 20 new kind-1 events each delivered to all of them

Usage: python3 scripts/bench-deflate.py [--wok target/release/wok] [--rounds 5]
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from websockets.asyncio.client import ClientConnection, connect

TICK = os.sysconf("SC_CLK_TCK")


class Counting(ClientConnection):
    received = 0

    def data_received(self, data):
        Counting.received += len(data)
        super().data_received(data)


def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / TICK


def io_cpu(pid):
    """CPU seconds of the relay's io thread (named "Websocket") alone."""
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                head, tail = f.read().rsplit(")", 1)
        except OSError:
            continue
        if head.endswith("(Websocket"):
            parts = tail.split()
            return (int(parts[11]) + int(parts[12])) / TICK
    return 0.0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_relay(wok, db, enabled, sliding):
    port = free_port()
    args = [wok, "relay", "--verbosity", "WARN",
            "--set", f"db={db}", "--set", f"relay.port={port}", "--set", "relay.bind=127.0.0.1",
            "--set", "relay.nofiles=0",
            "--set", f"relay.compression.enabled={'true' if enabled else 'false'}",
            "--set", f"relay.compression.slidingWindow={'true' if sliding else 'false'}"]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return p, f"ws://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    raise SystemExit("relay did not start")


async def req_round(url):
    for i in range(20):
        async with connect(url, create_connection=Counting, max_size=2**24) as ws:
            await ws.send(json.dumps(["REQ", f"r{i}", {"kinds": [1], "limit": 500}]))
            n = 0
            while True:
                m = await ws.recv()
                if m.startswith('["EOSE"'):
                    break
                n += 1
            assert n == 500, n


async def fanout_round(url, events, pid, subs=1000):
    since = min(json.loads(e)["created_at"] for e in events)
    conns = []
    sem = asyncio.Semaphore(100)

    async def sub(i):
        async with sem:
            ws = await connect(url, create_connection=Counting, max_size=2**24)
            await ws.send(json.dumps(["REQ", "live", {"kinds": [1], "since": since}]))
            while not (await ws.recv()).startswith('["EOSE"'):
                pass
            conns.append(ws)

    await asyncio.gather(*(sub(i) for i in range(subs)))
    Counting.received = 0
    start = time.monotonic()
    io0 = io_cpu(pid)

    async def drain(ws):
        got = 0
        while got < len(events):
            if (await ws.recv()).startswith('["EVENT"'):
                got += 1

    async with connect(url, max_size=2**24) as pub:
        waiters = [asyncio.create_task(drain(ws)) for ws in conns]
        for e in events:
            await pub.send(f'["EVENT",{e}]')
        await asyncio.wait_for(asyncio.gather(*waiters), 120)
    elapsed = time.monotonic() - start
    io_s = io_cpu(pid) - io0
    received = Counting.received
    await asyncio.gather(*(ws.close() for ws in conns))
    return received, elapsed, io_s


def gen(wok, seed, count, start, span):
    out = subprocess.run([wok, "gen", "--seed", str(seed), "--count", str(count),
                          "--start", str(start), "--span", str(span)],
                         capture_output=True, check=True, text=True).stdout
    return [l for l in out.split("\n") if l]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wok", default="target/release/wok")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    d = tempfile.mkdtemp()
    stored = gen(a.wok, 1, 3000, 1700000000, 86400)
    modes = {"off": (False, False), "sliding": (True, True), "no-sliding": (True, False)}
    relays = {}
    for m, v in modes.items():
        db = os.path.join(d, m)
        os.makedirs(db)
        subprocess.run([a.wok, "import", "--set", f"db={db}", "--verbosity", "WARN"],
                       input="\n".join(stored) + "\n", text=True, check=True)
        relays[m] = start_relay(a.wok, db, *v)
    res = {m: {"req_bytes": [], "req_cpu": [], "fan_bytes": [], "fan_cpu": [], "fan_io": [],
               "fan_s": []} for m in modes}
    try:
        for r in range(a.rounds):
            seed = 100 + r
            now = int(time.time()) - 30
            evs = [e for e in gen(a.wok, seed, 200, now, 20) if '"kind":1,' in e][:20]
            for m, (p, url) in relays.items():
                Counting.received = 0
                c0 = cpu(p.pid)
                asyncio.run(req_round(url))
                res[m]["req_cpu"].append(cpu(p.pid) - c0)
                res[m]["req_bytes"].append(Counting.received / 20)
                c0 = cpu(p.pid)
                received, secs, io_s = asyncio.run(fanout_round(url, evs, p.pid))
                res[m]["fan_cpu"].append(cpu(p.pid) - c0)
                res[m]["fan_io"].append(io_s)
                res[m]["fan_s"].append(secs)
                res[m]["fan_bytes"].append(received / len(evs))
                print(f"round {r} {m}: req {res[m]['req_bytes'][-1]:.0f} B, "
                      f"{res[m]['req_cpu'][-1]:.2f} s; fanout {res[m]['fan_bytes'][-1]:.0f} B/event, "
                      f"{res[m]['fan_cpu'][-1]:.2f} s, io thread {io_s:.2f} s, {secs:.2f} s wall",
                      file=sys.stderr)
    finally:
        for p, _ in relays.values():
            p.terminate()
            p.wait()
    med = statistics.median
    print("mode        REQ(500) bytes  relay CPU/20 REQs   fanout bytes/event(1000 subs)  "
          "relay CPU/20 events  io thread/20 events  wall/20 events")
    for m, v in res.items():
        print(f"{m:<11} {med(v['req_bytes']):>14.0f}  {med(v['req_cpu']):>14.2f} s   "
              f"{med(v['fan_bytes']):>26.0f}  {med(v['fan_cpu']):>16.2f} s  "
              f"{med(v['fan_io']):>16.2f} s  {med(v['fan_s']):>12.2f} s")


if __name__ == "__main__":
    main()
