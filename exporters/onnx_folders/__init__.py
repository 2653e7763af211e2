"""ONNX model folders as they arrive from other tools (onnxruntime-genai's model builder, Optimum's
exporter), built from the SmolLM2-135M-Instruct transformers checkpoint, and greedy references
computed by those tools' own runtimes, for mmrt's manifest inference (src/import/)."""
