#!/usr/bin/env python3
"""Load on `hone serve`: `oha` (cargo install oha) at 1, 8 and 32 concurrent clients for 60 s each
on one model, fixed-length chat requests (`ignore_eos`, so every answer is the same number of
tokens); prints errors by status, p50/p99 latency, aggregate tokens/s and the server's RSS after
each minute; then checks that a 5-token request sent while a long one decodes finishes first.

    cargo build --release && cargo install oha
    python scripts/serve_load.py runs/default --model dpo [--seconds 60] [--tokens 64]
    python scripts/serve_load.py --model smol --file SmolLM2-135M-Instruct.Q4_1.gguf --clients 1,8

Prints the CPU model and SIMD level with the figures (they differ between machines of one kind).
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def post(url, body, stream=False):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    return urllib.request.urlopen(req, timeout=600)


def cpu():
    info = open("/proc/cpuinfo").read()
    model = info.split("model name")[1].split("\n")[0].strip(": ")
    flags = info.split("flags")[1].split("\n")[0]
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "baseline"
    return f"{model}, {simd}, {os.cpu_count()} cores"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run", nargs="?", help="a run folder to serve")
    ap.add_argument("--model", default="dpo")
    ap.add_argument("--file", help="serve this model file or folder as --model instead (e.g. a GGUF)")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--clients", default="1,8,32")
    a = ap.parse_args()
    port = free_port()
    what = ["-m", f"{a.model}={a.file}"] if a.file else [a.run]
    server = subprocess.Popen([os.path.join(HERE, "target/release/hone"), "serve", *what, "--port", str(port)],
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        print(cpu())
        body = {"model": a.model, "messages": [{"role": "user", "content": "Tell me about the capital of Varnok."}],
                "max_tokens": a.tokens, "ignore_eos": True, "temperature": 0.8}
        print(f"{'clients':>7} {'requests':>9} {'errors':>8} {'cut at end':>10} {'p50 ms':>8} {'p99 ms':>8} {'tokens/s':>9} {'RSS MiB':>8}")
        rates = {}
        for c in [int(x) for x in a.clients.split(",")]:
            out = subprocess.run(["oha", "-z", f"{a.seconds}s", "-c", str(c), "-m", "POST", "-H",
                                  "content-type: application/json", "-d", json.dumps(body), "--no-tui",
                                  "--output-format", "json", base + "/v1/chat/completions"],
                                 capture_output=True, text=True, check=True).stdout
            r = json.loads(out)
            codes = r.get("statusCodeDistribution", {})
            ok = sum(n for code, n in codes.items() if code.startswith("2"))
            errors = {k: v for k, v in codes.items() if not k.startswith("2")}
            # oha cuts the requests in flight when the time is up: the clients' doing, not errors.
            cut = 0
            for k, v in r.get("errorDistribution", {}).items():
                if "deadline" in k:
                    cut += v
                else:
                    errors[k] = v
            pct = r.get("latencyPercentiles", {})
            tps = ok * a.tokens / a.seconds
            rates[c] = tps
            print(f"{c:>7} {sum(codes.values()):>9} {json.dumps(errors) if errors else 0:>8} {cut:>10} {pct.get('p50', 0) * 1000:>8.0f} "
                  f"{pct.get('p99', 0) * 1000:>8.0f} {tps:>9.0f} {rss_mib(server.pid):>8.0f}")
        if 1 in rates and 8 in rates:
            print(f"8 clients / 1 client tokens/s: {rates[8] / rates[1]:.2f}x")

        # A short request sent while a long one decodes finishes first: the long one streams, and
        # the short one is sent once its first tokens have arrived.
        ctx = next(m["context"] for m in json.load(urllib.request.urlopen(base + "/v1/models"))["data"] if m["id"] == a.model)
        long_n = min(500, ctx - 32)
        done = {}

        def short():
            post(base + "/v1/chat/completions", dict(body, max_tokens=5)).read()
            done["short"] = time.time()

        resp = post(base + "/v1/chat/completions", dict(body, max_tokens=long_n, stream=True))
        t = None
        for line in resp:
            if t is None and line.startswith(b"data: {"):
                t = threading.Thread(target=short)
                t.start()
        done["long"] = time.time()
        t.join()
        first = "short" if done["short"] < done["long"] else "long"
        print(f"5-token request sent once a {long_n}-token one was streaming: the {first} one finished first "
              f"({abs(done['long'] - done['short']) * 1000:.0f} ms apart)")
        if first != "short":
            sys.exit("the short request waited for the long one")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
