"""Export a ``torch.nn.Module`` to one standalone ONNX graph (:func:`export_module`).

Graphs use ``torch.onnx.export(..., dynamo=True)`` with named dynamic
dimensions, opset :data:`OPSET`, fp32, and weights embedded in the file (no
external data). Exporter metadata (Python stack traces, FX node names) is
stripped so the files are smaller and do not depend on the local paths.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import onnx
import torch

OPSET = 18

# The exporter warns once per export that optional torchvision ops are unavailable; irrelevant here.
logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)


def _strip_metadata(model: onnx.ModelProto) -> None:
    """Drop exporter debug metadata (stack traces, FX names) from every node and value."""

    def clear(items) -> None:
        for item in items:
            del item.metadata_props[:]
            if hasattr(item, "doc_string"):
                item.doc_string = ""

    graph = model.graph
    clear(graph.node)
    clear(graph.input)
    clear(graph.output)
    clear(graph.value_info)
    clear(graph.initializer)
    del graph.metadata_props[:]
    del model.metadata_props[:]
    model.doc_string = ""


def export_module(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    dynamic_shapes,
) -> onnx.ModelProto:
    """Export ``module(*args)`` to ``path`` as one self-contained ONNX file."""
    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # axis-renaming chatter of the dynamo exporter
        program = torch.onnx.export(
            module,
            args,
            None,
            dynamo=True,
            opset_version=OPSET,
            input_names=input_names,
            output_names=output_names,
            dynamic_shapes=dynamic_shapes,
            optimize=True,
            verbose=False,
        )
    model = program.model_proto
    _strip_metadata(model)
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path), save_as_external_data=False)
    return model
