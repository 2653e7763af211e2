"""Load on a running `mmrt serve`, through the official client (AsyncOpenAI).

Phase "load": REQUESTS chat requests at CONCURRENCY (every fourth streamed),
each answer checked for shape (text, finish reason, usage; a stream's chunks
assembled); latency percentiles and token throughput reported; the server's
resident memory read from /proc after the first CHECKPOINT answers (50) and at the end.
Phase "disconnect": CLIENTS raw connections that start a stream, read its
first chunk and hang up; then /metrics must show the queue drained, nothing
running and the cancellations, and a fresh request must still be answered.

Prints one JSON object; exits non-zero on a failed or malformed answer.
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
import urllib.request

import openai

PROMPTS = ["Describe the picture.", "What is the capital of France?", "Write a haiku about rain.", "List three colors."]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def percentile(values, q):
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def metrics(base, key):
    req = urllib.request.Request(base + "/metrics", headers={"Authorization": f"Bearer {key}"})
    text = urllib.request.urlopen(req, timeout=30).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


async def one(client, model, i, max_tokens, problems):
    prompt = PROMPTS[i % len(PROMPTS)]
    stream = i % 4 == 3
    start = time.perf_counter()
    try:
        if stream:
            text, finish, tokens = [], None, 0
            response = await client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens,
                                                            stream=True, stream_options={"include_usage": True})
            async for chunk in response:
                if chunk.usage:
                    tokens = chunk.usage.completion_tokens
                for c in chunk.choices:
                    text.append(c.delta.content or "")
                    finish = c.finish_reason or finish
            ok = finish in ("stop", "length") and tokens > 0
            what = f"stream finish={finish} tokens={tokens}"
        else:
            r = await client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens)
            tokens = r.usage.completion_tokens
            ok = isinstance(r.choices[0].message.content, str) and r.choices[0].finish_reason in ("stop", "length") and tokens > 0
            what = f"finish={r.choices[0].finish_reason} tokens={tokens}"
        if not ok:
            problems.append(f"request {i}: malformed answer ({what})")
        return time.perf_counter() - start, tokens, None
    except openai.APIStatusError as e:
        if e.status_code in (429, 503):
            return time.perf_counter() - start, 0, e.status_code
        problems.append(f"request {i}: HTTP {e.status_code}: {e.message}")
    except Exception as e:  # noqa: BLE001 - every failure is reported
        problems.append(f"request {i}: {type(e).__name__}: {e}")
    return time.perf_counter() - start, 0, None


async def load(args):
    client = openai.AsyncOpenAI(base_url=args.base + "/v1", api_key=args.key, max_retries=0, timeout=300)
    problems, latencies, tokens, refused = [], [], 0, 0
    done = 0
    rss_after_checkpoint = None
    queue = asyncio.Queue()
    for i in range(args.requests):
        queue.put_nowait(i)

    async def worker():
        nonlocal tokens, refused, done, rss_after_checkpoint
        while not queue.empty():
            i = queue.get_nowait()
            latency, n, status = await one(client, args.model, i, args.max_tokens, problems)
            done += 1
            if status:
                refused += 1
            else:
                latencies.append(latency)
                tokens += n
            if done == args.rss_checkpoint:
                rss_after_checkpoint = rss_mib(args.pid)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    wall = time.perf_counter() - start
    rss_end = rss_mib(args.pid)
    await client.close()
    return {
        "model": args.model, "requests": args.requests, "concurrency": args.concurrency, "max_tokens": args.max_tokens,
        "failed": len(problems), "problems": problems[:10], "refused_429_503": refused,
        "latency_s": {"p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95), "p99": percentile(latencies, 0.99),
                      "min": min(latencies), "max": max(latencies), "mean": statistics.fmean(latencies)},
        "completion_tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall, "requests_per_s": len(latencies) / wall,
        "rss_checkpoint": args.rss_checkpoint, "rss_mib_at_checkpoint": rss_after_checkpoint, "rss_mib_end": rss_end,
        "rss_growth": (rss_end - rss_after_checkpoint) / rss_after_checkpoint if rss_after_checkpoint else None,
    }


async def hang_up(host, port, key, model, max_tokens):
    reader, writer = await asyncio.open_connection(host, port)
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Tell me a long story."}], "max_tokens": max_tokens,
                       "ignore_eos": True, "stream": True}).encode()
    writer.write(f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    got = b""
    while b"data:" not in got:
        chunk = await asyncio.wait_for(reader.read(4096), 120)
        if not chunk:
            break
        got += chunk
    writer.close()
    return got.split(b" ", 2)[1] if got.startswith(b"HTTP/1.1") else b"none"


async def disconnect(args):
    host, port = args.base.removeprefix("http://").rsplit(":", 1)
    before = metrics(args.base, args.key)
    sem = asyncio.Semaphore(args.concurrency)

    async def limited():
        async with sem:
            return await hang_up(host, int(port), args.key, args.model, args.max_tokens)

    statuses = await asyncio.gather(*(limited() for _ in range(args.clients)))
    start = time.perf_counter()
    while True:
        m = metrics(args.base, args.key)
        queued = m.get(f'mmrt_queue_depth{{model="{args.model}"}}', -1)
        running = m.get(f'mmrt_running{{model="{args.model}"}}', -1)
        if queued == 0 and running == 0:
            break
        if time.perf_counter() - start > 60:
            return {"drained": False, "queued": queued, "running": running}
        await asyncio.sleep(0.1)
    drain_s = time.perf_counter() - start
    cancelled = m.get("mmrt_cancelled_total", 0) - before.get("mmrt_cancelled_total", 0)
    client = openai.AsyncOpenAI(base_url=args.base + "/v1", api_key=args.key, max_retries=0, timeout=120)
    after = await client.chat.completions.create(model=args.model, messages=[{"role": "user", "content": "Hello"}], max_tokens=4)
    await client.close()
    return {"clients": args.clients, "http_200": sum(s == b"200" for s in statuses), "drained": True, "drain_s": drain_s,
            "cancelled": cancelled, "answered_after": after.usage.completion_tokens > 0, "rss_mib": rss_mib(args.pid)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("phase", choices=["load", "disconnect"])
    p.add_argument("--base", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--rss-checkpoint", type=int, default=50, help="answers after which RSS is read the first time")
    args = p.parse_args()
    result = asyncio.run(load(args) if args.phase == "load" else disconnect(args))
    print(json.dumps(result))
    bad = result.get("failed") or not result.get("drained", True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
