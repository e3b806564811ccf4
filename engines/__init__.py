"""spot_edge.engines: ONNX export, TensorRT engines and their metadata.

- :mod:`.metadata`    what travels with a graph or engine (config, modality, preprocessing, GPU...)
- :mod:`.onnx_export` ``export_onnx`` and the TensorRT 10.3 operator check
- :mod:`.trt_builder` ONNX -> serialized TensorRT engine (``spot-edge build-engine``)
- :mod:`.trt_runtime` load a verified engine and run it on torch CUDA buffers
- :mod:`.triton_repo` a Triton Inference Server model repository

Heavy modules are imported lazily.
"""

from spot_edge._lazy import lazy_attributes

_LAZY = {
    "export_onnx": "spot_edge.engines.onnx_export",
    "export_both": "spot_edge.engines.onnx_export",
    "onnx_path_for": "spot_edge.engines.onnx_export",
    "check_onnx": "spot_edge.engines.onnx_export",
    "check_trt_operators": "spot_edge.engines.onnx_export",
    "unsupported_trt_operators": "spot_edge.engines.onnx_export",
    "trt_supported_operators": "spot_edge.engines.onnx_export",
    "onnx_operators": "spot_edge.engines.onnx_export",
    "UnsupportedOperatorError": "spot_edge.engines.onnx_export",
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
    "TensorRTUnavailableError": "spot_edge.engines.trt_builder",
    "TrtEngineRunner": "spot_edge.engines.trt_runtime",
    "export_triton_repo": "spot_edge.engines.triton_repo",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = list(_LAZY)
