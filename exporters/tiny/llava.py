"""Build the tiny LLaVA test bundle, its fixtures and goldens, and verify them.

Run from the repository root (``exporters/tiny/build.sh`` does it)::

    python -m exporters.tiny.llava

Writes (deterministically, fixed seeds):

* ``models/tiny/``: tokenizer.json (with the ``[IMG0]``…``[IMG3]`` signal tokens and
  the ``<audio>`` placeholder), vision_encoder.onnx, projector.onnx,
  audio_encoder.onnx, audio_projector.onnx (:mod:`exporters.tiny.audio`),
  embed.onnx, decoder.onnx (logits and the
  last hidden state), output_projector.onnx, generator_denoiser.onnx,
  generator_decoder.onnx, bundle.json;
* ``models/tiny-f16/``: the same bundle converted to float16, float
  inputs/outputs included (:mod:`exporters.tiny.f16`);
* ``tests/fixtures/images/*.png``: synthesized fixture images;
  ``tests/fixtures/audio/sweep_16k.wav``: a synthesized tone sweep;
* ``tests/golden/tiny.json``: PyTorch goldens;
* ``tests/golden/tiny_audio.json``: audio goldens (log-mel by transformers, audio
  embeddings and greedy ids of requests with audio, by PyTorch);
* ``tests/golden/any_to_any.json``: signal-token, output-projector and diffusers
  scheduler / pipeline goldens (:mod:`exporters.tiny.diffusion_goldens`).

Then runs the ONNX graphs with onnxruntime the way the Rust runtime does and
asserts they reproduce the PyTorch embeddings (1e-4) and greedy token ids;
the float16 bundle is checked within the tolerances of :mod:`exporters.tiny.f16`.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import LogitsProcessorList

from ..common.files import sha256_file
from ..common.manifest import (
    CLIP_MEAN,
    CLIP_STD,
    DecoderInputs,
    DecoderOutputs,
    Denoiser,
    DenoiserInputs,
    Embedding,
    Generation,
    ImageOutput,
    ImagePreprocess,
    InputProjector,
    KvCache,
    LatentDecoder,
    LlmDecoder,
    Manifest,
    ModalityEncoder,
    ModalityGenerator,
    OutputProjector,
    Stage,
)
from ..common.prompt import PromptFormat
from . import audio as tiny_audio
from . import diffusion_goldens, export, f16, fixtures, generator_export, goldens, signal_tokens
from .generator_model import GeneratorDims, build_output_projector, build_unet, build_vae
from .model import INITIALIZER_RANGE, TinyDims, build_model
from .ort_pipeline import OrtPipeline
from .stages import Decoder, Embed, Projector, VisionEncoder
from .tokenizer import build_tokenizer

BUNDLE_DIR = Path("models/tiny")
F16_BUNDLE_DIR = Path("models/tiny-f16")
GOLDEN_PATH = Path("tests/golden/tiny.json")
ANY_GOLDEN_PATH = Path("tests/golden/any_to_any.json")
AUDIO_GOLDEN_PATH = Path("tests/golden/tiny_audio.json")
EMBED_ATOL = 1e-4
LOGITS_ATOL = 1e-3

DESCRIPTION = (
    "Tiny random-weight LLaVA-style model (CLIP vision tower, MLP projector, "
    "Llama decoder with grouped KV heads), a Whisper-style audio encoder with an MLP projector, with NExT-GPT style image output "
    "(signal tokens, transformer output projector, UNet + VAE diffusion generator) for tests."
)
#: Projected conditioning of the output projector vs PyTorch, onnxruntime.
COND_ATOL = 1e-5
#: Final latents of the onnxruntime denoise loop vs the diffusers pipeline.
LATENTS_ATOL = 1e-3
GRAPHS = {
    "vision_encoder": "vision_encoder.onnx",
    "projector": "projector.onnx",
    "audio_encoder": "audio_encoder.onnx",
    "audio_projector": "audio_projector.onnx",
    "embed": "embed.onnx",
    "decoder": "decoder.onnx",
    **generator_export.GRAPHS,
}
GENERATION_DEFAULTS = Generation.greedy(max_new_tokens=24)
#: The tiny model's image preprocessing (CLIP normalisation, 32x32).
PREPROCESS = ImagePreprocess(shortest_edge=32, crop_width=32, crop_height=32, mean=CLIP_MEAN, std=CLIP_STD)


def generate_cases() -> list[goldens.GenerateCase]:
    """The golden generation requests."""
    image_dir = fixtures.FIXTURE_DIR.as_posix()
    a, b = f"{image_dir}/a_32.png", f"{image_dir}/b_32.png"
    return [
        goldens.GenerateCase("text_only", "Tell me a short story about a cat.", (), 16),
        goldens.GenerateCase("one_image", "Describe the image.", (a,), 16),
        goldens.GenerateCase("two_images", "Compare the two images.", (a, b), 16),
    ]


def audio_cases() -> list[tiny_audio.MediaCase]:
    """The golden requests with audio: alone, with text placing it, and with an image
    (placeholders in either order, or prepended: images first, then audio)."""
    a = f"{fixtures.FIXTURE_DIR.as_posix()}/a_32.png"
    sweep, speech = tiny_audio.SWEEP_FIXTURE.as_posix(), tiny_audio.SPEECH_FIXTURE.as_posix()
    Case = tiny_audio.MediaCase
    return [
        Case("audio_only", "Describe the sound.", (), (sweep,), 16),
        Case("audio_text", "What is said in <audio> here? Answer in one word.", (), (speech,), 16),
        Case("audio_then_image", "Listen to <audio> and look at <image>, then compare.", (a,), (sweep,), 16),
        Case("image_audio_prepended", "Describe both.", (a,), (speech,), 16),
    ]


def output_stages(gen: GeneratorDims) -> list[Stage]:
    """The ``output_projector`` and ``modality_generator`` stages of bundle.json."""
    return [
        OutputProjector(
            name="image_output_projector",
            modality="image",
            graph=GRAPHS["output_projector"],
            input="hidden_states",
            output="conditioning",
            signal_tokens=list(signal_tokens.SIGNAL_TOKENS),
        ),
        ModalityGenerator(
            name="image_generator",
            modality="image",
            denoiser=Denoiser(
                graph=GRAPHS["generator_denoiser"],
                inputs=DenoiserInputs(latents="latents", timestep="timestep", conditioning="conditioning"),
                output="noise_pred",
            ),
            decoder=LatentDecoder(graph=GRAPHS["generator_decoder"], input="latents", output="image"),
            scheduler=diffusion_goldens.manifest_scheduler("ddim"),
            latent_shape=[gen.latent_channels, gen.latent_size, gen.latent_size],
            steps=diffusion_goldens.DEFAULT_STEPS,
            guidance_scale=diffusion_goldens.DEFAULT_GUIDANCE,
            output=ImageOutput(format="png", value_range=(-1.0, 1.0)),
        ),
    ]


def audio_stages(adims: tiny_audio.AudioDims) -> list[Stage]:
    """The audio ``modality_encoder`` and ``input_projector`` stages of bundle.json."""
    return [
        ModalityEncoder(
            name="audio_encoder",
            modality="audio",
            graph=GRAPHS["audio_encoder"],
            input="input_features",
            output="audio_features",
            preprocess=adims.to_manifest(),
        ),
        InputProjector(
            name="audio_projector",
            modality="audio",
            graph=GRAPHS["audio_projector"],
            input="audio_features",
            output="audio_embeds",
        ),
    ]


def manifest(dims: TinyDims, prep: ImagePreprocess, fmt: PromptFormat, adims: tiny_audio.AudioDims) -> Manifest:
    """The bundle manifest (format, version and checksums are added by :meth:`Manifest.write`)."""
    return Manifest(
        name="tiny",
        description=DESCRIPTION,
        tokenizer="tokenizer.json",
        stages=[
            ModalityEncoder(
                name="vision_encoder",
                modality="image",
                graph=GRAPHS["vision_encoder"],
                input="pixel_values",
                output="image_features",
                preprocess=prep,
            ),
            InputProjector(
                name="projector",
                modality="image",
                graph=GRAPHS["projector"],
                input="image_features",
                output="image_embeds",
            ),
            *audio_stages(adims),
            LlmDecoder(
                name="decoder",
                embedding=Embedding(graph=GRAPHS["embed"], input="input_ids", output="inputs_embeds"),
                graph=GRAPHS["decoder"],
                inputs=DecoderInputs(
                    inputs_embeds="inputs_embeds",
                    attention_mask="attention_mask",
                    position_ids="position_ids",
                ),
                outputs=DecoderOutputs(logits="logits", hidden_states="last_hidden_state"),
                kv_cache=KvCache(num_layers=dims.text_layers),
                context_length=dims.context_length,
            ),
            *output_stages(GeneratorDims(d_llm=dims.text_hidden)),
        ],
        prompt=fmt.to_manifest(),
        generation=GENERATION_DEFAULTS,
    )


def export_graphs(model, dims: TinyDims, out_dir: Path, branch, adims: tiny_audio.AudioDims) -> list[str]:
    """Export the six input-side stage graphs; returns report lines of the decoder shape check."""
    export.export_vision_encoder(VisionEncoder(model), out_dir / GRAPHS["vision_encoder"], dims.image_size)
    export.export_projector(
        Projector(model), out_dir / GRAPHS["projector"], dims.tokens_per_image, dims.vision_hidden
    )
    tiny_audio.export_graphs(branch, adims, out_dir / GRAPHS["audio_encoder"], out_dir / GRAPHS["audio_projector"])
    export.export_embed(Embed(model), out_dir / GRAPHS["embed"])
    decoder = Decoder(model)
    path = out_dir / GRAPHS["decoder"]
    export.export_decoder(decoder, path, dims.text_kv_heads, dims.head_dim)
    return export.check_decoder_shapes(decoder, path, dims.text_kv_heads, dims.head_dim)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle-dir", type=Path, default=BUNDLE_DIR)
    parser.add_argument("--f16-bundle-dir", type=Path, default=F16_BUNDLE_DIR)
    parser.add_argument("--golden", type=Path, default=GOLDEN_PATH)
    parser.add_argument(
        "--verify-only",
        action="store_true",
        help="do not regenerate anything: check the committed bundle (checksums) and goldens with onnxruntime",
    )
    args = parser.parse_args(argv)
    if args.verify_only:
        return verify_committed(args.bundle_dir, args.f16_bundle_dir, args.golden)

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    out_dir: Path = args.bundle_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    dims, prep, fmt, adims = TinyDims(), PREPROCESS, PromptFormat(), tiny_audio.AudioDims()

    # 1. tokenizer (+ signal tokens), model (+ signal rows, alpha by search), fixtures
    tokenizer = build_tokenizer()
    bpe_vocab = tokenizer.get_vocab_size()
    signal_ids = signal_tokens.add_signal_tokens(tokenizer)
    base = build_model(bpe_vocab, dims)
    images = [p.as_posix() for p in fixtures.write_fixtures()]
    tiny_audio.write_fixtures(adims)

    def with_signal_rows(alpha: float):
        model = copy.deepcopy(base)
        signal_tokens.add_signal_rows(model, signal_ids, alpha, INITIALIZER_RANGE)
        return model.eval()

    alpha, model, signal_case, silent_case = signal_tokens.search(
        with_signal_rows, tokenizer, fmt, prep, dims.tokens_per_image, signal_ids
    )
    forcing = LogitsProcessorList([signal_tokens.ForceSignalRun(signal_ids)])
    # The audio placeholder comes after the signal tokens, so the signal search above is unchanged.
    audio_id = tiny_audio.add_audio_token(tokenizer)
    tiny_audio.add_audio_row(model, audio_id, INITIALIZER_RANGE)
    tokenizer.save(str(out_dir / "tokenizer.json"), pretty=True)
    fmt = dataclasses.replace(fmt, audio_token_id=audio_id)
    branch = tiny_audio.build_audio_branch(adims, dims.text_hidden, INITIALIZER_RANGE)
    gen_dims = GeneratorDims(d_llm=dims.text_hidden, signal_tokens=len(signal_ids))
    out_projector, unet, vae = build_output_projector(gen_dims), build_unet(gen_dims), build_vae(gen_dims)

    # 2. graphs + manifest
    decoder_report = export_graphs(model, dims, out_dir, branch, adims)
    generator_export.export_all(out_projector, unet, vae, gen_dims, out_dir)
    manifest(dims, prep, fmt, adims).write(out_dir, ["tokenizer.json", *GRAPHS.values()])

    # 3. PyTorch goldens
    square = [p for p in images if p.endswith("_32.png")]
    golden = {
        "preprocess": goldens.preprocess_goldens(images, prep),
        "embeddings": goldens.embedding_goldens(model, square, prep),
        "generate": [],
    }
    torch_logits = {}
    for case in generate_cases():
        ids, new_ids, logits = goldens.torch_generate(
            model, tokenizer, fmt, prep, case, dims.tokens_per_image, forcing
        )
        golden["generate"].append(goldens.generate_golden(case, ids, new_ids, tokenizer))
        torch_logits[case.name] = logits
    args.golden.parent.mkdir(parents=True, exist_ok=True)
    args.golden.write_text(json.dumps(golden, indent=1) + "\n")
    any_golden = any_to_any_goldens(
        model, tokenizer, fmt, prep, dims, signal_ids, alpha, (signal_case, silent_case), out_projector, unet, vae, gen_dims
    )
    ANY_GOLDEN_PATH.write_text(json.dumps(any_golden, indent=1) + "\n")
    audio_golden = tiny_audio.goldens(model, branch, tokenizer, fmt, prep, adims, audio_cases(), dims.tokens_per_image, forcing)
    AUDIO_GOLDEN_PATH.write_text(json.dumps(audio_golden, indent=1) + "\n")
    splice_check = check_splicing(model, branch, tokenizer, fmt, prep, adims, golden, dims, forcing)

    # 4. verify the bundle with onnxruntime, the way the Rust runtime runs it
    report = verify(out_dir, golden, torch_logits) + verify_output_side(out_dir, any_golden)
    report += [splice_check, *verify_audio(out_dir, audio_golden)]
    print_report(out_dir, args.golden, tokenizer.get_vocab_size(), dims, decoder_report, report)

    # 5. the float16 twin, derived from the float32 graphs and checked against the same goldens
    f16.export_f16(out_dir, args.f16_bundle_dir)
    f16.print_report(args.f16_bundle_dir, f16.verify(args.f16_bundle_dir, out_dir, golden))
    print("OK")
    return 0


@torch.no_grad()
def any_to_any_goldens(model, tokenizer, fmt, prep, dims, signal_ids, alpha, cases, out_projector, unet, vae, gen_dims) -> dict:
    """``tests/golden/any_to_any.json`` (layout in :mod:`exporters.tiny.diffusion_goldens`)."""
    requests = []
    for case in cases:
        result = signal_tokens.generate(model, tokenizer, fmt, prep, case, dims.tokens_per_image, signal_ids)
        if len(result.hidden):
            conditioning = out_projector(torch.from_numpy(result.hidden)).numpy()
        else:
            conditioning = np.zeros((0, gen_dims.n_cond, gen_dims.d_cond), dtype=np.float32)
        requests.append(
            {
                **goldens.generate_golden(case, result.input_ids, result.output_ids, tokenizer),
                "emits_signal": bool(len(result.hidden)),
                "hidden_shape": list(result.hidden.shape),
                "hidden": [float(v) for v in result.hidden.reshape(-1)],
                "conditioning_shape": list(conditioning.shape),
                "conditioning": [float(v) for v in conditioning.reshape(-1)],
            }
        )
    (signal_request,) = [r for r in requests if r["emits_signal"]]
    conditioning = torch.tensor(signal_request["conditioning"]).reshape(signal_request["conditioning_shape"])
    denoise = {}
    for name, kind, steps, guidance in diffusion_goldens.DENOISE_CASES:
        denoise[name] = diffusion_goldens.denoise_golden(unet, vae, conditioning, kind, steps, guidance, gen_dims.image_size)
    return {
        "signal": {
            "tokens": list(signal_tokens.SIGNAL_TOKENS),
            "ids": signal_ids,
            "alpha": alpha,
            "requests": requests,
        },
        **diffusion_goldens.schedule_goldens(),
        "denoise": denoise,
        "end_to_end": {"request": signal_request["name"], "denoise": "ddim_cfg"},
    }


def verify_output_side(bundle_dir: Path, any_golden: dict) -> list[str]:
    """The exported output projector and generator graphs against the PyTorch / diffusers goldens."""
    lines = []
    for request in any_golden["signal"]["requests"]:
        if not request["emits_signal"]:
            continue
        hidden = np.asarray(request["hidden"], dtype=np.float32).reshape(request["hidden_shape"])
        want = np.asarray(request["conditioning"], dtype=np.float32).reshape(request["conditioning_shape"])
        diff = float(np.abs(generator_export.ort_project(bundle_dir, hidden) - want).max())
        assert diff <= COND_ATOL, f"output projector differs by {diff}"
        lines.append(f"output projector ({request['name']}): max|ort-torch|={diff:.2e} (tol {COND_ATOL})")
        conditioning = want
    for name, case in any_golden["denoise"].items():
        latents, pixels = generator_export.ort_denoise(bundle_dir, conditioning, case)
        diff = float(np.abs(latents.reshape(-1) - np.asarray(case["latents"], dtype=np.float32)).max())
        px = int(np.abs(pixels.astype(int).reshape(-1) - np.asarray(case["pixels"])).max())
        assert diff <= LATENTS_ATOL and px <= 2, f"denoise {name}: latents differ by {diff}, pixels by {px}"
        lines.append(f"denoise {name}: final latents max|ort-diffusers|={diff:.2e} (tol {LATENTS_ATOL}), pixels max diff {px}/255")
    for entry in any_golden["signal"]["requests"]:
        lines.append(f"signal request {entry['name']!r} ({entry['prompt']!r}): emits signal tokens: {entry['emits_signal']}")
    return lines


def verify_committed(bundle_dir: Path, f16_dir: Path, golden_path: Path) -> int:
    """Check checksums and rerun the onnxruntime pipelines against existing goldens (no PyTorch)."""
    for directory in (bundle_dir, f16_dir):
        manifest_json = json.loads((directory / "bundle.json").read_text())
        for name, digest in manifest_json["checksums"].items():
            got = sha256_file(directory / name)
            assert got == digest, f"{directory / name}: sha256 {got} != manifest {digest}"
    golden = json.loads(golden_path.read_text())
    for line in verify(bundle_dir, golden, torch_logits=None):
        print(line)
    for line in verify_output_side(bundle_dir, json.loads(ANY_GOLDEN_PATH.read_text())):
        print(line)
    for line in verify_audio(bundle_dir, json.loads(AUDIO_GOLDEN_PATH.read_text())):
        print(line)
    for line in f16.verify(f16_dir, bundle_dir, golden):
        print(line)
    print("OK")
    return 0


def verify(bundle_dir: Path, golden: dict, torch_logits: dict[str, np.ndarray] | None) -> list[str]:
    """Assert the ONNX pipeline reproduces the goldens; returns report lines."""
    pipe = OrtPipeline(bundle_dir)
    lines = []
    for entry in golden["embeddings"]:
        got = pipe.image_embeds([entry["image"]])[0]
        want = np.asarray(entry["values"], dtype=np.float32).reshape(entry["shape"])
        diff = float(np.abs(got - want).max())
        assert diff <= EMBED_ATOL, f"{entry['image']}: image embeddings differ by {diff} > {EMBED_ATOL}"
        lines.append(f"embeddings {Path(entry['image']).name}: max|ort-torch|={diff:.2e} (tol {EMBED_ATOL})")
    for entry in golden["generate"]:
        result = pipe.generate(entry["prompt"], entry["images"], entry["max_new_tokens"])
        assert result.input_ids == entry["input_ids"], f"{entry['name']}: prompt ids differ"
        assert result.output_ids == entry["output_ids"], (
            f"{entry['name']}: greedy ids differ\n  ort:   {result.output_ids}\n  torch: {entry['output_ids']}"
        )
        logits_note = ""
        if torch_logits is not None:
            diff = float(np.abs(result.prefill_logits - torch_logits[entry["name"]]).max())
            assert diff <= LOGITS_ATOL, f"{entry['name']}: prefill logits differ by {diff}"
            logits_note = f"prefill logits max|ort-torch|={diff:.2e}; "
        lines.append(
            f"generate {entry['name']}: prompt {len(entry['input_ids'])} ids, "
            f"{len(result.output_ids)} new ids equal to torch generate(); {logits_note}text={entry['text']!r}"
        )
    return lines


def check_splicing(model, branch, tokenizer, fmt, prep, adims, golden: dict, dims: TinyDims, forcing) -> str:
    """The audio goldens splice rows into ``inputs_embeds`` by hand; on the image goldens
    that same splicing must reproduce LLaVA's own ``generate(pixel_values=…)`` ids."""
    for entry in golden["generate"]:
        case = tiny_audio.MediaCase(entry["name"], entry["prompt"], tuple(entry["images"]), (), entry["max_new_tokens"])
        ids, new_ids, _ = tiny_audio.torch_generate(model, branch, tokenizer, fmt, prep, adims, case, dims.tokens_per_image, forcing)
        assert ids == entry["input_ids"] and new_ids == entry["output_ids"], f"{entry['name']}: spliced generate() differs"
    return f"spliced inputs_embeds generate() == LLaVA generate() on {len(golden['generate'])} image requests"


def verify_audio(bundle_dir: Path, audio_golden: dict) -> list[str]:
    """The exported audio graphs and the audio requests, in onnxruntime, against the PyTorch goldens."""
    pipe = OrtPipeline(bundle_dir)
    lines = []
    for entry in audio_golden["audio"]:
        got = pipe.audio_embeds(entry["file"])
        want = np.asarray(entry["embeds"], dtype=np.float32).reshape(entry["embeds_shape"])
        diff = float(np.abs(got - want).max())
        assert diff <= EMBED_ATOL, f"{entry['file']}: audio embeddings differ by {diff} > {EMBED_ATOL}"
        lines.append(f"audio embeddings {Path(entry['file']).name} {list(want.shape)}: max|ort-torch|={diff:.2e} (tol {EMBED_ATOL})")
    for entry in audio_golden["generate"]:
        result = pipe.generate(entry["prompt"], entry["images"], entry["max_new_tokens"], tuple(entry["audio"]))
        assert result.input_ids == entry["input_ids"], f"{entry['name']}: prompt ids differ"
        assert result.output_ids == entry["output_ids"], (
            f"{entry['name']}: greedy ids differ\n  ort:   {result.output_ids}\n  torch: {entry['output_ids']}"
        )
        lines.append(f"generate {entry['name']}: prompt {len(entry['input_ids'])} ids, {len(result.output_ids)} new ids equal to torch; text={entry['text']!r}")
    return lines


def print_report(bundle_dir: Path, golden_path: Path, vocab: int, dims: TinyDims, decoder_report, report) -> None:
    print(f"bundle {bundle_dir}:")
    for path in sorted(bundle_dir.iterdir()):
        print(f"  {path.name:22s} {path.stat().st_size:>9,d} bytes")
    print(f"golden {golden_path}: {golden_path.stat().st_size:,d} bytes")
    print(f"vocab {vocab}, tokens per image {dims.tokens_per_image}, kv heads {dims.text_kv_heads}, head dim {dims.head_dim}")
    print("decoder graph vs torch (past_seq=0 included):")
    for line in decoder_report:
        print(f"  {line}")
    print("onnxruntime pipeline vs PyTorch goldens:")
    for line in report:
        print(f"  {line}")
    print("OK")


if __name__ == "__main__":
    sys.exit(main())
