#!/usr/bin/env python3
"""Checks `hone serve` with the official OpenAI Python client.

Start a server (`hone serve runs/default --port 8080`), then:

    pip install openai
    python scripts/serve_clients.py --base-url http://127.0.0.1:8080/v1 --chat-model sft --base-model pretrain [--api-key K]

Checks, in order: chat completions without and with streaming; completions without and with streaming;
chat log-probabilities (`logprobs=True, top_logprobs=3`: every token's log-probability is <= 0 and has 3
alternatives); prompt scoring (`echo=True, logprobs=1, max_tokens=0`: one entry per prompt token, the
first None); `n=2` with a seed; the same seed twice giving the same text; `models.list()` holding both
models; an unknown model refused with a message. Then times 10 streamed chat requests and prints the
median time to first token and decode speed (one streamed chunk counted as one token).

Prints `ok NAME` per check (the speed line adds its numbers) and exits non-zero at the first failure.
"""
import argparse
import statistics
import sys
import time

import openai

QUESTION = "What is the capital of France?"
PROMPT = "Once upon a time"


class CheckFailed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


def chat(args, client):
    r = client.chat.completions.create(
        model=args.chat_model,
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=32,
        temperature=0,
    )
    expect(r.object == "chat.completion", f"object is {r.object!r}, not 'chat.completion'")
    expect(len(r.choices) == 1, f"{len(r.choices)} choices, expected 1")
    choice = r.choices[0]
    expect(choice.message.role == "assistant", f"message role is {choice.message.role!r}")
    expect(choice.message.content, "empty message content")
    expect(choice.finish_reason in ("stop", "length"), f"finish_reason is {choice.finish_reason!r}")
    expect(r.usage and r.usage.completion_tokens > 0, f"usage missing or zero: {r.usage}")


def chat_stream(args, client):
    chunks = list(client.chat.completions.create(
        model=args.chat_model,
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=32,
        temperature=0,
        stream=True,
    ))
    expect(chunks, "the stream had no chunks")
    expect(all(c.object == "chat.completion.chunk" for c in chunks), "a chunk is not 'chat.completion.chunk'")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    expect(text, "the streamed pieces join to an empty text")
    last = [c for c in chunks if c.choices][-1]
    expect(last.choices[0].finish_reason in ("stop", "length"),
           f"the last chunk's finish_reason is {last.choices[0].finish_reason!r}")


def completion(args, client):
    r = client.completions.create(model=args.base_model, prompt=PROMPT, max_tokens=24, temperature=0)
    expect(r.object == "text_completion", f"object is {r.object!r}, not 'text_completion'")
    expect(len(r.choices) == 1, f"{len(r.choices)} choices, expected 1")
    expect(r.choices[0].text, "empty completion text")
    expect(r.choices[0].finish_reason in ("stop", "length"), f"finish_reason is {r.choices[0].finish_reason!r}")


def completion_stream(args, client):
    chunks = list(client.completions.create(
        model=args.base_model, prompt=PROMPT, max_tokens=24, temperature=0, stream=True,
    ))
    expect(chunks, "the stream had no chunks")
    text = "".join(c.choices[0].text or "" for c in chunks if c.choices)
    expect(text, "the streamed pieces join to an empty text")
    last = [c for c in chunks if c.choices][-1]
    expect(last.choices[0].finish_reason in ("stop", "length"),
           f"the last chunk's finish_reason is {last.choices[0].finish_reason!r}")


def chat_logprobs(args, client):
    r = client.chat.completions.create(
        model=args.chat_model,
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=8,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
    )
    lp = r.choices[0].logprobs
    expect(lp and lp.content, "no logprobs.content in the answer")
    for i, token in enumerate(lp.content):
        expect(token.logprob <= 1e-6, f"token {i} ({token.token!r}) has logprob {token.logprob} > 0")
        expect(len(token.top_logprobs) == 3, f"token {i} has {len(token.top_logprobs)} top_logprobs, expected 3")
        expect(all(t.logprob <= 1e-6 for t in token.top_logprobs), f"token {i} has a top logprob > 0")
    if r.usage:
        expect(len(lp.content) == r.usage.completion_tokens,
               f"{len(lp.content)} logprob entries for {r.usage.completion_tokens} completion tokens")


def echo_logprobs(args, client):
    r = client.completions.create(
        model=args.base_model, prompt=PROMPT, max_tokens=0, echo=True, logprobs=1, temperature=0,
    )
    lp = r.choices[0].logprobs
    expect(lp and lp.token_logprobs, "no logprobs.token_logprobs in the answer")
    n = len(lp.token_logprobs)
    expect(lp.tokens and len(lp.tokens) == n, f"{len(lp.tokens or [])} tokens for {n} token_logprobs")
    if r.usage:
        expect(n == r.usage.prompt_tokens, f"{n} token_logprobs for {r.usage.prompt_tokens} prompt tokens")
    expect(lp.token_logprobs[0] is None, f"the first token_logprob is {lp.token_logprobs[0]!r}, not None")
    rest = lp.token_logprobs[1:]
    expect(all(x is not None and x <= 1e-6 for x in rest), f"a token_logprob after the first is None or > 0: {rest}")


def n_two(args, client):
    r = client.chat.completions.create(
        model=args.chat_model,
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=16,
        temperature=0.8,
        seed=1,
        n=2,
    )
    expect(len(r.choices) == 2, f"{len(r.choices)} choices for n=2")
    expect(sorted(c.index for c in r.choices) == [0, 1], f"choice indexes {[c.index for c in r.choices]}")


def same_seed(args, client):
    def sample():
        r = client.chat.completions.create(
            model=args.chat_model,
            messages=[{"role": "user", "content": QUESTION}],
            max_tokens=24,
            temperature=1.0,
            seed=42,
        )
        return r.choices[0].message.content

    first, second = sample(), sample()
    expect(first == second, f"seed 42 gave two texts:\n  {first!r}\n  {second!r}")


def models(args, client):
    ids = [m.id for m in client.models.list()]
    for want in (args.chat_model, args.base_model):
        expect(want in ids, f"{want!r} is not in models.list(): {ids}")


def unknown_model(args, client):
    try:
        client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": QUESTION}], max_tokens=4,
        )
    except (openai.NotFoundError, openai.BadRequestError) as e:
        body = e.body if isinstance(e.body, dict) else {}
        message = body.get("message") or body.get("error", {}).get("message")
        expect(message, f"the {e.status_code} answer has no error.message: {e.body!r}")
        return
    raise CheckFailed("an unknown model was accepted")


def speed(args, client, requests=10):
    ttft, rates = [], []
    for i in range(requests):
        start = time.perf_counter()
        first = None
        pieces = 0
        for chunk in client.chat.completions.create(
            model=args.chat_model,
            messages=[{"role": "user", "content": QUESTION}],
            max_tokens=64,
            temperature=0.7,
            seed=i,
            stream=True,
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                pieces += 1
                if first is None:
                    first = time.perf_counter()
        end = time.perf_counter()
        expect(first is not None, f"streamed request {i} produced no text")
        ttft.append((first - start) * 1000)
        if pieces > 1 and end > first:
            rates.append((pieces - 1) / (end - first))
    rate = f"{statistics.median(rates):.1f} tokens/s" if rates else "n/a tokens/s (one-token answers)"
    return f"median TTFT {statistics.median(ttft):.1f} ms, median decode {rate} over {requests} streams"


CHECKS = [
    ("chat", chat),
    ("chat_stream", chat_stream),
    ("completions", completion),
    ("completions_stream", completion_stream),
    ("chat_logprobs", chat_logprobs),
    ("echo_logprobs", echo_logprobs),
    ("n_2", n_two),
    ("same_seed", same_seed),
    ("models_list", models),
    ("unknown_model", unknown_model),
    ("speed", speed),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    parser.add_argument("--chat-model", default="sft")
    parser.add_argument("--base-model", default="pretrain")
    parser.add_argument("--api-key", default="none", help="sent as `Authorization: Bearer KEY`")
    args = parser.parse_args()
    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=120)

    for name, check in CHECKS:
        try:
            detail = check(args, client)
        except CheckFailed as e:
            sys.exit(f"FAIL {name}: {e}")
        except openai.APIConnectionError as e:
            sys.exit(f"FAIL {name}: cannot reach {args.base_url} ({e}); is `hone serve` running?")
        except openai.APIStatusError as e:
            sys.exit(f"FAIL {name}: {e.message}")
        print(f"ok {name}" + (f": {detail}" if detail else ""), flush=True)
    print("all checks passed")


if __name__ == "__main__":
    main()
