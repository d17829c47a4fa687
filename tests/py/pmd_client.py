"""A permessage-deflate client for tests/compression.rs, built on the `websockets` package
(an independent RFC 7692 implementation over CPython's zlib).

Reads one JSON job on stdin:
  {"url": "...",
   "offer": null | {"server_no_context_takeover": bool, "client_no_context_takeover": bool,
                    "server_max_window_bits": int|null, "client_max_window_bits": int|true|null},
   "raw_offer": null | "header value sent as is (no extension is then expected)",
   "steps": [{"send": text} | {"send_fragments": [text, ...]} | {"recv": n}
             | {"recv_until": text}]}
and prints one JSON line: {"extensions": header or null, "received": [text, ...],
"close_code": int or null}. Any failure of the client (a handshake it rejects, a frame it
cannot inflate) makes it exit non-zero with the error on stderr.
"""

import json
import sys

from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.sync.client import connect

TIMEOUT = 10


def main():
    job = json.load(sys.stdin)
    kwargs = {"open_timeout": TIMEOUT, "close_timeout": TIMEOUT, "max_size": 2**24}
    offer = job.get("offer")
    if offer is not None:
        kwargs["compression"] = None
        kwargs["extensions"] = [
            ClientPerMessageDeflateFactory(
                server_no_context_takeover=offer.get("server_no_context_takeover", False),
                client_no_context_takeover=offer.get("client_no_context_takeover", False),
                server_max_window_bits=offer.get("server_max_window_bits"),
                client_max_window_bits=offer.get("client_max_window_bits", True),
            )
        ]
    else:
        kwargs["compression"] = None
    if job.get("raw_offer"):
        kwargs["additional_headers"] = {"Sec-WebSocket-Extensions": job["raw_offer"]}
    received = []
    close_code = None
    with connect(job["url"], **kwargs) as ws:
        ext = ws.response.headers.get("Sec-WebSocket-Extensions")
        try:
            for step in job["steps"]:
                if "send" in step:
                    ws.send(step["send"])
                elif "send_fragments" in step:
                    # An iterable is sent as one fragmented message.
                    ws.send(iter(step["send_fragments"]))
                elif "recv" in step:
                    for _ in range(step["recv"]):
                        received.append(ws.recv(timeout=TIMEOUT))
                elif "recv_until" in step:
                    while True:
                        m = ws.recv(timeout=TIMEOUT)
                        received.append(m)
                        if step["recv_until"] in m:
                            break
        except ConnectionClosed as e:
            close_code = e.rcvd.code if e.rcvd is not None else None
    print(json.dumps({"extensions": ext, "received": received, "close_code": close_code}))


if __name__ == "__main__":
    main()
