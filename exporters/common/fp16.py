"""Float16 conversion of ONNX graphs, float inputs and outputs included.

Every graph is converted with onnxruntime's
``onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=False)``:
weights, computation *and* the float inputs/outputs become float16; integer
inputs (token ids, masks, positions) keep their type. The conversion is a pure
function of the float32 graph, so the output is deterministic.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnxruntime.transformers.float16 import convert_float_to_float16

from .manifest import Manifest


def convert_graph(src: Path, dst: Path) -> onnx.ModelProto:
    """Convert one float32 graph to float16, float inputs/outputs included."""
    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=False)
    onnx.checker.check_model(model, full_check=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(dst), save_as_external_data=False)
    return model


def check_io_types(bundle_dir: Path) -> str:
    """Assert every float graph input/output of the bundle is float16; returns a report line."""
    count = 0
    for graph in Manifest.read(bundle_dir).graphs():
        model = onnx.load(str(bundle_dir / graph), load_external_data=False)
        for value in [*model.graph.input, *model.graph.output]:
            elem = value.type.tensor_type.elem_type
            assert elem != onnx.TensorProto.FLOAT, f"{graph}: {value.name} is still float32"
            count += elem == onnx.TensorProto.FLOAT16
    return f"float16 inputs/outputs: {count} (no float32 left)"
