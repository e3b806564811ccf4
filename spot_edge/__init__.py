"""spot-edge: SPOT visible-infrared person re-identification for edge and datacenter GPUs.

One import namespace. The top-level folders of the repository map to subpackages:

- ``spot_edge.model``     the SPOT network (paper Sec. III)
- ``spot_edge.pose``      OpenPose heatmaps: network, rendering, parsing, file interop
- ``spot_edge.training``  (folder ``training/``) data, training loop, evaluation protocols
- ``spot_edge.kernels``   (folder ``kernels/``) fused structure attention and part pooling
- ``spot_edge.engines``   (folder ``engines/``) ONNX export and TensorRT engines
- ``spot_edge.cli``       (folder ``cli/``) the ``spot-edge`` command

Heavy modules (torch) are imported lazily so that ``spot-edge --version`` stays fast.
"""


from spot_edge._lazy import lazy_attributes

__version__ = "0.1.0"

_LAZY = {
    "SPOT": "spot_edge.model",
    "SpotConfig": "spot_edge.model",
    "PreprocessSpec": "spot_edge.preprocessing",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = ["__version__", *_LAZY]
