"""spot_edge.engines: ONNX export (fp32 / fp16 / int8 graphs), TensorRT engines and their metadata.

- :mod:`.metadata`    what travels with a graph or engine (config, modality, preprocessing, precision...)
- :mod:`.onnx_export` ``export_onnx(model, path, modality, precision=..., calibration=...)``
- :mod:`.precision`   a graph's precision read from the graph, checked against its metadata
- :mod:`.fp16`, :mod:`.int8`  the FP16 conversion (FP32 islands) and the Q/DQ INT8 quantisation
- :mod:`.trt_ops`     the TensorRT 10.3 ONNX-parser operator list and the graph check
- :mod:`.trt_compat`  every TensorRT version difference (10.3 to 11), in one place
- :mod:`.trt_plugins` the plugin library, loaded once per process
- :mod:`.trt_builder` ONNX -> serialized TensorRT engine (``spot-edge build-engine``)
- :mod:`.trt_runtime` load a verified engine and run it on torch CUDA buffers
- :mod:`.triton_repo` a Triton Inference Server model repository

The engines import neither the backends nor the training code (the backends import the engines).
Heavy modules are imported lazily.
"""

from spot_edge._lazy import lazy_attributes

_LAZY = {
    "export_onnx": "spot_edge.engines.onnx_export",
    "export_both": "spot_edge.engines.onnx_export",
    "onnx_path_for": "spot_edge.engines.onnx_export",
    "check_onnx": "spot_edge.engines.onnx_export",
    "check_trt_operators": "spot_edge.engines.trt_ops",
    "unsupported_trt_operators": "spot_edge.engines.trt_ops",
    "trt_supported_operators": "spot_edge.engines.trt_ops",
    "onnx_operators": "spot_edge.engines.trt_ops",
    "UnsupportedOperatorError": "spot_edge.engines.trt_ops",
    "graph_precision": "spot_edge.engines.precision",
    "check_graph_precision": "spot_edge.engines.precision",
    "PRECISIONS": "spot_edge.engines.metadata",
    "ArtifactInfo": "spot_edge.engines.metadata",
    "ArtifactError": "spot_edge.engines.metadata",
    "EngineMetadata": "spot_edge.engines.metadata",
    "EngineMismatchError": "spot_edge.engines.metadata",
    "BatchProfile": "spot_edge.engines.metadata",
    "GpuInfo": "spot_edge.engines.metadata",
    "read_onnx_info": "spot_edge.engines.metadata",
    "build_engine": "spot_edge.engines.trt_builder",
    "BuildOptions": "spot_edge.engines.trt_builder",
    "load_target": "spot_edge.engines.trt_builder",
    "TensorRTUnavailableError": "spot_edge.engines.trt_compat",
    "TrtEngineRunner": "spot_edge.engines.trt_runtime",
    "export_triton_repo": "spot_edge.engines.triton_repo",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = list(_LAZY)
