"""The end-to-end demo on the embedded default (synthetic data, small SPOT, ONNX Runtime)."""
