#!/usr/bin/env python3
"""Decoding speed of hone beside llama.cpp (llama-cpp-python) on the same GGUF files: prompt
processing (one 512-token prompt) and batch-1 generation (128 tokens after a 32-token prompt,
greedy), 2 threads, medians of 3, with peak RSS; each side in its own process.

    pip install llama-cpp-python   # builds llama.cpp
    python scripts/bench_decode.py MODEL.gguf [MORE.gguf ...]

hone runs twice: with f32 weights, and with `--q8` (Q8_0 copies for decoding).
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(HERE, "target", "release", "examples", "bench_decode")


def llama_cpp_side(path):
    from llama_cpp import Llama

    t0 = time.time()
    llm = Llama(model_path=path, n_threads=2, n_threads_batch=2, n_ctx=1024, n_batch=512, verbose=False)
    load = time.time() - t0
    vocab = llm.n_vocab()
    prompt = lambda n: [100 + (i * 7919) % (vocab - 200) for i in range(n)]
    pp = []
    for _ in range(3):
        llm.reset()
        t = time.time()
        llm.eval(prompt(512))
        pp.append(512 / (time.time() - t))
    # Decoding reads the last position's logits, which the Python binding keeps only with
    # `logits_all` (without it, `scores` stays zero and every step would feed token 0); a second
    # instance, so that the prompt timing above computes the last position's logits only. Peak RSS
    # is taken before it: its logits for every position (the context times the vocabulary) are the
    # binding's, not llama.cpp's.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del llm
    llm = Llama(model_path=path, n_threads=2, n_threads_batch=2, n_ctx=1024, n_batch=512, logits_all=True,
                verbose=False)
    tg = []
    for _ in range(3):
        llm.reset()
        llm.eval(prompt(32))
        t = time.time()
        for _ in range(128):
            tok = int(llm.scores[llm.n_tokens - 1].argmax())
            llm.eval([tok])
        tg.append(128 / (time.time() - t))
    return {"load_s": load, "pp": statistics.median(pp), "tg": statistics.median(tg), "rss_mib": rss}


if len(sys.argv) > 1 and sys.argv[1] == "--llama-cpp":
    print(json.dumps(llama_cpp_side(sys.argv[2])))
    sys.exit(0)

# With the AVX-512 GEMM kernels, as the `hone` binary is built (they are used only where the CPU has them).
subprocess.run(["cargo", "build", "--release", "-p", "hone-model", "--features", "x86-v4", "--example", "bench_decode"],
               cwd=HERE, check=True)
print(open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": "))
flags = open("/proc/cpuinfo").read().split("flags")[1].split("\n")[0]
print("SIMD:", "avx512f" in flags and "AVX-512" or "avx2" in flags and "AVX2" or "baseline")
print(f"{'file':44} {'side':10} {'prompt 512 tok/s':>17} {'decode tok/s':>13} {'peak RSS MiB':>13}")


def hone(path, *flags):
    h = subprocess.run([BENCH, path, *flags], capture_output=True, text=True, check=True).stdout
    line = [l for l in h.splitlines() if l.startswith("hone")][0]
    pp = float(line.split("prompt 512: ")[1].split(" ")[0])
    tg = float(line.split("decode 128 after 32: ")[1].split(" ")[0])
    rss = float(line.split("peak RSS ")[1].split(" ")[0])
    return pp, tg, rss


for path in sys.argv[1:]:
    l = json.loads(subprocess.run([sys.executable, __file__, "--llama-cpp", path], capture_output=True, text=True,
                                  check=True).stdout)
    name = os.path.basename(path)
    for side, flags in [("hone", []), ("hone --q8", ["--q8"])]:
        pp, tg, rss = hone(path, *flags)
        print(f"{name:44} {side:10} {pp:17.1f} {tg:13.1f} {rss:13.0f}   ({pp / l['pp']:.2f}x, {tg / l['tg']:.2f}x)")
    print(f"{name:44} {'llama.cpp':10} {l['pp']:17.1f} {l['tg']:13.1f} {l['rss_mib']:13.0f}")
