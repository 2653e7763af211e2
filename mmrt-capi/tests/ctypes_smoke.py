#!/usr/bin/env python3
"""Smoke test of libmmrt_c from Python's ctypes (stdlib only): load, generate
with a streaming callback, compare with `mmrt run --json`, and error paths.

usage: ctypes_smoke.py LIBMMRT_C MMRT_BIN BUNDLE IMAGE   (MMRT_ORT_LIB names ONNX Runtime)
"""
import ctypes as C
import json
import subprocess
import sys

lib_path, mmrt_bin, bundle, image = sys.argv[1:5]
lib = C.CDLL(lib_path)

MMRT_OK, MMRT_ERROR_NULL_ARGUMENT, MMRT_ERROR_INVALID_HANDLE, MMRT_ERROR_CANCELLED = 0, 1, 2, 11


class ModelOptions(C.Structure):
    _fields_ = [("bundle_path", C.c_char_p), ("provider", C.c_char_p), ("strict_provider", C.c_int32), ("threads", C.c_uint32)]


class Timings(C.Structure):
    _fields_ = [(name, C.c_double) for name in ("ttft_ms", "prefill_ms", "decode_ms", "total_ms", "tokens_per_s")] + [
        ("prompt_tokens", C.c_size_t),
        ("generated_tokens", C.c_size_t),
    ]


CALLBACK = C.CFUNCTYPE(C.c_int32, C.POINTER(C.c_char), C.c_size_t, C.c_void_p)
H = C.c_void_p
for name, args in {
    "mmrt_runtime_new": [C.c_char_p, C.POINTER(H)],
    "mmrt_model_options_init": [C.POINTER(ModelOptions)],
    "mmrt_model_load": [H, C.POINTER(ModelOptions), C.POINTER(H)],
    "mmrt_model_free": [H],
    "mmrt_runtime_free": [H],
    "mmrt_request_new": [C.c_char_p, C.POINTER(H)],
    "mmrt_request_free": [H],
    "mmrt_request_add_image_file": [H, C.c_char_p],
    "mmrt_request_set_prompt": [H, C.c_char_p],
    "mmrt_request_add_stop": [H, C.c_char_p],
    "mmrt_generate": [H, H, CALLBACK, C.c_void_p, C.POINTER(C.c_int32), C.POINTER(H)],
    "mmrt_result_text": [H, C.POINTER(C.c_char_p), C.POINTER(C.c_size_t)],
    "mmrt_result_token_ids": [H, C.POINTER(C.c_uint32), C.c_size_t, C.POINTER(C.c_size_t)],
    "mmrt_result_timings": [H, C.POINTER(Timings)],
    "mmrt_result_free": [H],
}.items():
    f = getattr(lib, name)
    f.argtypes, f.restype = args, C.c_int32
lib.mmrt_last_error.restype = C.c_char_p
lib.mmrt_version.restype = C.c_char_p


def check(status, what):
    if status != MMRT_OK:
        raise SystemExit(f"FAIL {what}: status {status}: {lib.mmrt_last_error().decode()}")


def mmrt_run(prompt, images):
    cmd = [mmrt_bin, "run", "--bundle", bundle, "--prompt", prompt, "--threads", "1", "--json"]
    for i in images:
        cmd += ["--image", i]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True).stdout)


print("libmmrt_c", lib.mmrt_version().decode())
rt, model = H(), H()
check(lib.mmrt_runtime_new(None, C.byref(rt)), "runtime")
opts = ModelOptions()
check(lib.mmrt_model_options_init(C.byref(opts)), "options")
opts.bundle_path, opts.threads = bundle.encode(), 1
check(lib.mmrt_model_load(rt, C.byref(opts), C.byref(model)), "load")

failures = 0
for prompt, images in [("Once upon a time", []), ("Describe the image.", [image])]:
    req, res = H(), H()
    check(lib.mmrt_request_new(prompt.encode(), C.byref(req)), "request")
    for i in images:
        check(lib.mmrt_request_add_image_file(req, i.encode()), "image")
    pieces = []
    on_piece = CALLBACK(lambda p, n, _: pieces.append(C.string_at(p, n)) or 0)
    check(lib.mmrt_generate(model, req, on_piece, None, None, C.byref(res)), "generate")
    count = C.c_size_t()
    lib.mmrt_result_token_ids(res, None, 0, C.byref(count))
    ids = (C.c_uint32 * count.value)()
    check(lib.mmrt_result_token_ids(res, ids, count.value, C.byref(count)), "ids")
    text, n = C.c_char_p(), C.c_size_t()
    check(lib.mmrt_result_text(res, C.byref(text), C.byref(n)), "text")
    t = Timings()
    check(lib.mmrt_result_timings(res, C.byref(t)), "timings")
    want = mmrt_run(prompt, images)
    got = {"token_ids": list(ids), "text": C.string_at(text, n.value).decode(), "prompt_tokens": t.prompt_tokens}
    for key in got:
        if got[key] != want[key]:
            print(f"FAIL {prompt!r}: {key}: ctypes {got[key]!r} vs mmrt run {want[key]!r}")
            failures += 1
    if b"".join(pieces).decode() != got["text"]:
        print(f"FAIL {prompt!r}: streamed pieces differ from the result text")
        failures += 1
    # Cancel from the callback via the flag.
    flag = C.c_int32(0)
    raise_flag = CALLBACK(lambda p, n, _: setattr(flag, "value", 1) or 0)
    status = lib.mmrt_generate(model, req, raise_flag, None, C.byref(flag), None)
    if status != MMRT_ERROR_CANCELLED:
        print(f"FAIL cancel flag: status {status}")
        failures += 1
    check(lib.mmrt_result_free(res), "free result")
    check(lib.mmrt_request_free(req), "free request")
    # Freed handles and NULLs are error codes.
    if lib.mmrt_request_set_prompt(req, b"x") != MMRT_ERROR_INVALID_HANDLE:
        print("FAIL freed request not reported")
        failures += 1
    print(f"ok {prompt!r}: {len(ids)} tokens, {t.tokens_per_s:.0f} tokens/s")

bad = [
    ("NULL model", lib.mmrt_generate(None, None, CALLBACK(0), None, None, None), MMRT_ERROR_NULL_ARGUMENT),
    ("garbage model", lib.mmrt_generate(0xDEADBEEF, None, CALLBACK(0), None, None, None), MMRT_ERROR_INVALID_HANDLE),
    ("runtime as model", lib.mmrt_model_free(rt), MMRT_ERROR_INVALID_HANDLE),
    ("NULL prompt", lib.mmrt_request_new(b"x", None), MMRT_ERROR_NULL_ARGUMENT),
]
for what, status, want in bad:
    if status != want:
        print(f"FAIL {what}: status {status}, expected {want}")
        failures += 1
    elif not lib.mmrt_last_error():
        print(f"FAIL {what}: no last error message")
        failures += 1
check(lib.mmrt_model_free(model), "free model")
check(lib.mmrt_runtime_free(rt), "free runtime")
print(f"{4 + len(bad) - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
