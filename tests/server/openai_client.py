"""The official `openai` Python client against a running `mmrt serve`.

Every answer is compared with an independent path: `mmrt run` on the same
bundle and request (a separate process through the CLI), the WAV header as
the `wave` module reads it, the chat template as transformers renders it.
Run by tests/server_openai.rs, which starts the server; settings come from
the environment: MMRT_BASE_URL, MMRT_API_KEY, MMRT_BIN, MMRT_ROOT and, per
model served, MMRT_MODEL_<NAME>=<bundle dir> (TINY always; SMOL, WHISPER,
VOICE when those bundles are built). Exits non-zero at the first failure.
"""

import base64
import io
import json
import os
import subprocess
import sys
import wave

import urllib.error
import urllib.request

import openai

BASE = os.environ["MMRT_BASE_URL"]
KEY = os.environ["MMRT_API_KEY"]
MMRT = os.environ["MMRT_BIN"]
ROOT = os.environ["MMRT_ROOT"]
MODELS = {k[len("MMRT_MODEL_"):].lower(): v for k, v in os.environ.items() if k.startswith("MMRT_MODEL_")}
IMAGE = os.path.join(ROOT, "tests/fixtures/images/photo_97x61.png")
SPEECH = os.path.join(ROOT, "tests/fixtures/audio/speech_16k.wav")

client = openai.OpenAI(base_url=BASE + "/v1", api_key=KEY, max_retries=0, timeout=120)
checks = 0


def check(cond, what, detail=""):
    global checks
    if not cond:
        print(f"FAIL: {what}\n{detail}", file=sys.stderr)
        sys.exit(1)
    checks += 1
    print(f"ok: {what}")


def mmrt_run(bundle, *args):
    out = subprocess.run([MMRT, "run", "--bundle", bundle, "--json", *args], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr, file=sys.stderr)
        raise SystemExit(f"mmrt run {args} failed")
    return json.loads(out.stdout)


def data_uri(path, mime="image/png"):
    with open(path, "rb") as f:
        return f"data:{mime};base64," + base64.b64encode(f.read()).decode()


def chat(model, content, **kw):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}], **kw)


def streamed(model, content, **kw):
    pieces, finish, usage = [], None, None
    for chunk in client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}], stream=True,
                                                stream_options={"include_usage": True}, **kw):
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finish = choice.finish_reason or finish
    return "".join(pieces), finish, usage


def raw(method, path, body=None, key=KEY):
    """A request without the client library: (status, body text)."""
    req = urllib.request.Request(BASE + path, data=body, method=method, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def status_of(call):
    try:
        call()
    except openai.APIStatusError as e:
        return e.status_code, e.body
    return 200, None


def models():
    ids = sorted(m.id for m in client.models.list().data)
    check(ids == sorted(MODELS), "GET /v1/models lists every served model", f"{ids} vs {sorted(MODELS)}")


def tiny():
    tiny = MODELS["tiny"]
    prompt = "Describe the picture."
    ref = mmrt_run(tiny, "--prompt", prompt, "--max-tokens", "12")
    got = chat("tiny", prompt, max_tokens=12)
    check(got.choices[0].message.content == ref["text"], "tiny chat text equals mmrt run's", f"{got.choices[0].message.content!r} vs {ref['text']!r}")
    check(got.usage.completion_tokens == len(ref["token_ids"]) and got.usage.prompt_tokens == ref["prompt_tokens"],
          "usage counts equal mmrt run's", f"{got.usage} vs {len(ref['token_ids'])}/{ref['prompt_tokens']}")
    check(got.choices[0].finish_reason == "length", "finish_reason is length at max_tokens")

    ref = mmrt_run(tiny, "--prompt", prompt, "--image", IMAGE, "--max-tokens", "12")
    parts = [{"type": "image_url", "image_url": {"url": data_uri(IMAGE)}}, {"type": "text", "text": prompt}]
    got = chat("tiny", parts, max_tokens=12)
    check(got.choices[0].message.content == ref["text"], "tiny chat with an image (data URI) equals mmrt run --image",
          f"{got.choices[0].message.content!r} vs {ref['text']!r}")
    file_parts = [{"type": "image_url", "image_url": {"url": "file://" + IMAGE}}, {"type": "text", "text": prompt}]
    check(chat("tiny", file_parts, max_tokens=12).choices[0].message.content == ref["text"], "a file:// URL inside --allow-file-dir gives the same")

    ref = mmrt_run(tiny, "--prompt", "What is said?", "--audio", SPEECH, "--max-tokens", "12")
    with open(SPEECH, "rb") as f:
        wav64 = base64.b64encode(f.read()).decode()
    parts = [{"type": "input_audio", "input_audio": {"data": wav64, "format": "wav"}}, {"type": "text", "text": "What is said?"}]
    got = chat("tiny", parts, max_tokens=12)
    check(got.choices[0].message.content == ref["text"], "tiny chat with input_audio (base64 WAV) equals mmrt run --audio",
          f"{got.choices[0].message.content!r} vs {ref['text']!r}")

    sampled = dict(max_tokens=16, temperature=0.8, top_p=0.95, seed=7)
    whole = chat("tiny", prompt, **sampled)
    text, finish, usage = streamed("tiny", prompt, **sampled)
    check(text == whole.choices[0].message.content, "streamed text equals the non-streamed text (sampled, same seed)", f"{text!r} vs {whole.choices[0].message.content!r}")
    check(finish == whole.choices[0].finish_reason and usage.completion_tokens == whole.usage.completion_tokens, "stream's finish_reason and usage chunk match")
    ref = mmrt_run(tiny, "--prompt", prompt, "--max-tokens", "16", "--temperature", "0.8", "--top-p", "0.95", "--seed", "7")
    check(text == ref["text"], "sampled text equals mmrt run's with the same seed", f"{text!r} vs {ref['text']!r}")

    # A stop string from the middle of the greedy text: both sides end before it.
    full = mmrt_run(tiny, "--prompt", prompt, "--max-tokens", "24")["text"]
    stop = full[len(full) // 2: len(full) // 2 + 2]
    ref = mmrt_run(tiny, "--prompt", prompt, "--max-tokens", "24", "--stop", stop)
    got = chat("tiny", prompt, max_tokens=24, stop=[stop])
    check(got.choices[0].message.content == ref["text"] and stop not in ref["text"] and got.choices[0].finish_reason == "stop",
          f"stop={stop!r} ends the text before it, as mmrt run --stop", f"{got.choices[0].message.content!r} vs {ref['text']!r}")
    text, finish, _ = streamed("tiny", prompt, max_tokens=24, stop=[stop])
    check(text == ref["text"] and finish == "stop", "streamed text with a stop string never shows it")

    comp = client.completions.create(model="tiny", prompt=prompt, max_tokens=10)
    ref = mmrt_run(tiny, "--prompt", prompt, "--max-tokens", "10")
    check(comp.choices[0].text == ref["text"], "/v1/completions text equals mmrt run's")
    pieces = [c.choices[0].text for c in client.completions.create(model="tiny", prompt=prompt, max_tokens=10, stream=True) if c.choices]
    check("".join(pieces) == ref["text"], "streamed /v1/completions equals its non-streamed text")


def smol():
    if "smol" not in MODELS:
        print("skip: no SmolLM2 bundle")
        return
    smol = MODELS["smol"]
    question = "What is the capital of France?"
    ref = mmrt_run(smol, "--chat", "--prompt", question, "--max-tokens", "24")
    got = chat("smol", question, max_tokens=24)
    check(got.choices[0].message.content == ref["text"], "SmolLM2 chat equals mmrt run --chat", f"{got.choices[0].message.content!r} vs {ref['text']!r}")
    # A conversation is rendered by the bundle's Jinja template as transformers renders the GGUF's.
    from transformers import PreTrainedTokenizerFast
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(smol, "tokenizer.json"))
    with open(os.path.join(smol, "chat_template.jinja")) as f:
        tok.chat_template = f.read()
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi!"},
                {"role": "assistant", "content": "Hello."}, {"role": "user", "content": question}]
    expected = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(expected, dict) or hasattr(expected, "input_ids"):
        expected = expected["input_ids"]
    got = client.chat.completions.create(model="smol", messages=messages, max_tokens=4)
    check(got.usage.prompt_tokens == len(expected), "a 4-message conversation's prompt is transformers' apply_chat_template",
          f"{got.usage.prompt_tokens} vs {len(expected)}")


def whisper():
    if "whisper" not in MODELS:
        print("skip: no Whisper bundle")
        return
    ref = mmrt_run(MODELS["whisper"], "--audio", SPEECH)
    with open(SPEECH, "rb") as f:
        got = client.audio.transcriptions.create(model="whisper", file=f)
    check(got.text == ref["text"], "transcription equals mmrt run --audio", f"{got.text!r} vs {ref['text']!r}")


def voice():
    if "voice" not in MODELS:
        print("skip: no voice bundle")
        return
    text = "Hello there. The server speaks."
    audio = client.audio.speech.create(model="voice", voice="default", input=text, response_format="wav")
    with wave.open(io.BytesIO(audio.content)) as w:
        rate, frames, width = w.getframerate(), w.getnframes(), w.getsampwidth()
    check(rate == 22050 and width == 2 and frames > rate // 2, f"speech is a 16-bit WAV at 22050 Hz ({frames / rate:.2f} s)")
    # Without noise the voice is deterministic: the server's WAV is mmrt run's, byte for byte.
    quiet = client.audio.speech.create(model="voice", voice="default", input=text, response_format="wav",
                                       extra_body={"noise_scale": 0.0, "noise_w": 0.0})
    out_dir = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"mmrt-serve-voice-{os.getpid()}")
    subprocess.run([MMRT, "run", "--bundle", MODELS["voice"], "--prompt", text, "--noise-scale", "0", "--noise-w", "0", "--out-dir", out_dir],
                   cwd=ROOT, check=True, capture_output=True)
    with open(os.path.join(out_dir, "speech.wav"), "rb") as f:
        ref = f.read()
    check(quiet.content == ref, "noise-free speech equals mmrt run's WAV byte for byte", f"{len(quiet.content)} vs {len(ref)} bytes")


def errors():
    bad = openai.OpenAI(base_url=BASE + "/v1", api_key="wrong", max_retries=0)
    code, body = status_of(lambda: bad.models.list())
    check(code == 401 and body["code"] == "invalid_api_key", "a wrong key is 401 (AuthenticationError)", f"{code} {body}")
    code, body = status_of(lambda: chat("no-such-model", "hi"))
    check(code == 404 and body["code"] == "model_not_found", "an unknown model is 404", f"{code} {body}")
    big = "x" * (5 << 20)
    code, body = status_of(lambda: chat("tiny", big))
    check(code == 413 and body["code"] == "body_too_large", "an oversized body is 413", f"{code} {body}")
    code, text = raw("POST", "/v1/chat/completions", b'{"model": "tiny", "messages": [')
    check(code == 400 and json.loads(text)["error"]["code"] == "invalid_json", "malformed JSON is 400 in OpenAI's error shape", text)
    code, body = status_of(lambda: chat("tiny", "hi", n=2))
    check(code == 400 and body["param"] == "n", "n=2 is refused (400), not ignored", f"{code} {body}")
    code, body = status_of(lambda: chat("tiny", "hi", max_tokens=10 ** 6))
    check(code == 400 and "max-tokens-cap" in body["message"], "max_tokens above the cap is 400", f"{code} {body}")
    outside = [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}, {"type": "text", "text": "hi"}]
    code, body = status_of(lambda: chat("tiny", outside))
    check(code == 400 and body["code"] == "file_url_refused", "a file URL outside the allowed directory is 400", f"{code} {body}")
    code, body = status_of(lambda: chat("tiny", [{"type": "image_url", "image_url": {"url": "data:image/png;base64,bm90IGFuIGltYWdl"}}]))
    check(code == 400 and body["code"] == "invalid_image", "bytes that are no image are 400", f"{code} {body}")
    if "voice" in MODELS:
        code, body = status_of(lambda: chat("voice", "hi"))
        check(code == 400 and body["code"] == "model_not_supported", "chat on a voice model is 400")
    metrics = raw("GET", "/metrics")[1]
    check('mmrt_requests_total{route="/v1/chat/completions",status="200"}' in metrics and "mmrt_time_to_first_token_seconds_bucket" in metrics,
          "/metrics reports requests and time-to-first-token histograms")


if __name__ == "__main__":
    models()
    tiny()
    smol()
    whisper()
    voice()
    errors()
    print(f"all {checks} checks passed")
