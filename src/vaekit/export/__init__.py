"""Export for deployment: a trained model's encoder and decoder as ONNX or TorchScript files with a dynamic batch
size, and export.json describing their inputs, outputs and distributions (`export_model`).

    encoder   x (B, *event) [, y (B,) int64]  ->  q(z|x)'s parameters (a diagonal Gaussian: loc, scale)
    decoder   z (B, D)      [, y (B,) int64]  ->  p(x|z)'s parameters (e.g. Bernoulli logits) and its mean

ONNX needs the `export` extra (onnx, onnxscript, onnxruntime), imported only when used.
"""

from .exporter import MANIFEST_FILE, export_model, plugins_of
from .formats import FORMATS

__all__ = ["FORMATS", "MANIFEST_FILE", "export_model", "plugins_of"]
