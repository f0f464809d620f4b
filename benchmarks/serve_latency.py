"""Latency of the explorer's live decoding: what a slider move costs, measured against localhost.

Starts `vaekit serve RUN` (port 0), waits for it, then sends `--requests` POST /api/decode requests one after
another on one keep-alive connection (http.client, TCP_NODELAY, as browsers use), each a new code (the previous one with one coordinate moved, as a slider
drag does), after `--warmup` untimed ones. Reports p50, p95 and max in milliseconds, for /api/decode and, with
fewer requests, for a 9-image /api/traverse strip. The target (issue): p95 under 100 ms for an MNIST-sized model.

    vaekit train --data mnist --epochs 5 --set model.latent_dim=16 --out runs/mnist-serve
    python benchmarks/serve_latency.py runs/mnist-serve --requests 500
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import statistics
import subprocess
import sys
import time

import numpy as np

from report_json import emit  # (benchmarks/report_json.py, beside this script)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def timed(client, path: str, bodies: list[dict]) -> list[float]:
    """Milliseconds of each POST, request sent to response read."""
    out = []
    for body in bodies:
        data = json.dumps(body).encode()
        start = time.perf_counter()
        client.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        response = client.getresponse()
        payload = response.read()
        out.append(1000 * (time.perf_counter() - start))
        if response.status != 200:
            sys.exit(f"{path} answered {response.status}: {payload[:200]!r}")
    return out


def main() -> None:
    import http.client
    from urllib.parse import urlparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--out", help="write the report as JSON here")
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-m", "vaekit", "serve", args.run], stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        match = re.search(r"http://\S+/", line)
        if not match:
            sys.exit(f"vaekit serve did not start: {line}")
        url = match.group(0)
        # http.client sends a small request's headers and body in one write, as browsers do (a client that writes
        # them separately waits ~40 ms per request for the server's delayed ACK: Nagle's algorithm, not the server)
        address = urlparse(url)
        client = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        client.connect()
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(50):
            try:
                client.request("GET", "/api/info")
                info = json.loads(client.getresponse().read())
                break
            except OSError:
                time.sleep(0.1)
                client.close()
                client.connect()
        if True:
            rng = np.random.default_rng(0)
            z = np.zeros(info["latent_dim"])
            bodies = []
            for _ in range(args.warmup + args.requests):
                z = z.copy()
                z[rng.integers(len(z))] = rng.uniform(-3, 3)
                bodies.append({"z": z.round(3).tolist()})
            timed(client, "/api/decode", bodies[: args.warmup])
            decode = timed(client, "/api/decode", bodies[args.warmup :])
            strips = [{"dim": int(rng.integers(len(z))), "z": b["z"], "steps": 9} for b in bodies[:100]]
            traverse = timed(client, "/api/traverse", strips)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    report = {"run": args.run, "latent_dim": info["latent_dim"], "event_shape": info["event_shape"],
              "requests": len(decode)}
    for name, values in (("decode", decode), ("traverse_9", traverse)):
        report[name] = {"p50_ms": round(statistics.median(values), 2), "p95_ms": round(percentile(values, 95), 2),
                        "max_ms": round(max(values), 2), "n": len(values)}
    emit(report, args.out)


if __name__ == "__main__":
    main()
