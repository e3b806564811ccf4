"""A small test double of the ``tensorrt`` Python module (TensorRT 10 API), for CPU-only CI.

Behaviour taken from the TensorRT 10 Python API documentation:

- ``Builder.create_network(flags)``; ``OnnxParser(network, logger).parse_from_file(path) -> bool``
  with ``num_errors`` / ``get_error(i)`` on failure (here: operators outside the TensorRT 10.3
  list fail to parse, as in the real parser).
- ``IBuilderConfig.set_memory_pool_limit``, ``set_flag``, ``create_timing_cache(bytes)``,
  ``set_timing_cache(cache, ignore_mismatch) -> bool``, ``get_timing_cache()``,
  ``add_optimization_profile(profile) -> index`` (-1 when the profile is invalid),
  ``int8_calibrator``, ``set_calibration_profile``.
- ``IOptimizationProfile.set_shape(name, min, opt, max)``: ``min <= opt <= max`` per dimension.
- ``Builder.build_serialized_network(network, config) -> IHostMemory | None`` (None when a dynamic
  input has no profile). With INT8 it asks the calibrator for its cache and, when there is none,
  pulls batches with ``get_batch(names)`` until it returns None, then ``write_calibration_cache``.
- ``Runtime.deserialize_cuda_engine(bytes) -> ICudaEngine | None`` (None for a plan from another
  TensorRT version: real engines are not portable across versions).
- ``ICudaEngine``: ``num_io_tensors``, ``get_tensor_name``, ``get_tensor_mode``, ``get_tensor_dtype``,
  ``num_optimization_profiles``, ``get_tensor_profile_shape(name, i) -> (min, opt, max)``,
  ``create_execution_context()``.
- ``IExecutionContext``: ``set_optimization_profile_async(i, stream) -> bool``,
  ``set_input_shape(name, shape) -> bool`` (False outside the active profile),
  ``set_tensor_address(name, ptr)``, ``get_tensor_shape(name)``, ``execute_async_v3(stream) -> bool``.

The "engine" is the ONNX graph itself, run with ONNX Runtime on the host memory the caller's
tensor addresses point to, so tests can compare numbers end to end (on CPU tensors).
"""

from __future__ import annotations

import ctypes
import enum
import json
import types

import numpy as np

__version__ = "10.3.0"
MAGIC = b"SPOT-TRT-DOUBLE\n"

calls: list[tuple] = []  # a log of notable calls, for assertions


class Logger:
    VERBOSE, INFO, WARNING, ERROR, INTERNAL_ERROR = range(5)

    def __init__(self, min_severity=WARNING) -> None:
        self.min_severity = min_severity


class IPluginRegistry:
    def load_library(self, path: str):
        """Returns a handle, or None when the library cannot be loaded (TensorRT 10)."""
        import os

        calls.append(("load_library", path))
        return object() if os.path.isfile(path) else None


_registry = IPluginRegistry()


def get_plugin_registry() -> IPluginRegistry:
    return _registry


def init_libnvinfer_plugins(logger, namespace) -> bool:
    calls.append(("init_libnvinfer_plugins", namespace))
    return True


class MemoryPoolType(enum.Enum):
    WORKSPACE = 0


class BuilderFlag(enum.Enum):
    FP16 = 0
    INT8 = 1
    TF32 = 2


class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class IInt8EntropyCalibrator2:
    def __init__(self) -> None:
        pass


class _Tensor:
    def __init__(self, name: str, shape: tuple[int, ...]) -> None:
        self.name, self.shape = name, tuple(shape)


class INetworkDefinition:
    def __init__(self) -> None:
        self.inputs: list[_Tensor] = []
        self.outputs: list[_Tensor] = []
        self.onnx_bytes: bytes | None = None

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def get_input(self, i: int) -> _Tensor:
        return self.inputs[i]

    def get_output(self, i: int) -> _Tensor:
        return self.outputs[i]


class _ParserError:
    def __init__(self, desc: str) -> None:
        self._desc = desc

    def desc(self) -> str:
        return self._desc

    def __str__(self) -> str:
        return self._desc


class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger: Logger) -> None:
        self.network = network
        self.errors: list[_ParserError] = []

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, i: int) -> _ParserError:
        return self.errors[i]

    def parse_from_file(self, path: str) -> bool:
        import onnx

        from spot_edge.engines.onnx_export import unsupported_trt_operators

        try:
            model = onnx.load(path)
        except Exception as exc:
            self.errors.append(_ParserError(f"failed to load {path}: {exc}"))
            return False
        plugin_libraries = [c[1] for c in calls if c[0] == "load_library"]
        for op in unsupported_trt_operators(model):
            if "::" in op and plugin_libraries:  # a plugin node, its library loaded
                continue
            self.errors.append(_ParserError(f"No importer registered for op: {op}"))
        if self.errors:
            return False
        dims = lambda vi: tuple(d.dim_value if d.HasField("dim_value") else -1  # noqa: E731
                                for d in vi.type.tensor_type.shape.dim)
        initializers = {i.name for i in model.graph.initializer}
        self.network.inputs = [_Tensor(i.name, dims(i)) for i in model.graph.input if i.name not in initializers]
        self.network.outputs = [_Tensor(o.name, dims(o)) for o in model.graph.output]
        self.network.onnx_bytes = model.SerializeToString()
        return True


class IOptimizationProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[tuple, tuple, tuple]] = {}

    def set_shape(self, name: str, min, opt, max) -> None:
        mn, op, mx = tuple(min), tuple(opt), tuple(max)
        if not (len(mn) == len(op) == len(mx)) or any(not a <= b <= c for a, b, c in zip(mn, op, mx)):
            raise ValueError(f"invalid profile shapes for {name}: {mn} {op} {mx}")
        self.shapes[name] = (mn, op, mx)


class ITimingCache:
    def __init__(self, data: bytes) -> None:
        self.entries = json.loads(data.decode()) if data else {"builds": 0}

    def serialize(self) -> bytes:
        return json.dumps(self.entries).encode()


class IBuilderConfig:
    def __init__(self) -> None:
        self.pool_limits: dict = {}
        self.flags: set = set()
        self.profiles: list[IOptimizationProfile] = []
        self.timing_cache: ITimingCache | None = None
        self.int8_calibrator = None
        self.calibration_profile = None
        self.builder_optimization_level = 3

    def set_memory_pool_limit(self, pool, size: int) -> None:
        self.pool_limits[pool] = int(size)

    def set_flag(self, flag) -> None:
        self.flags.add(flag)

    def get_flag(self, flag) -> bool:
        return flag in self.flags

    def create_timing_cache(self, data: bytes) -> ITimingCache:
        return ITimingCache(bytes(data))

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        self.timing_cache = cache
        return True

    def get_timing_cache(self) -> ITimingCache | None:
        return self.timing_cache

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        if not profile.shapes:
            return -1
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def set_calibration_profile(self, profile: IOptimizationProfile) -> bool:
        self.calibration_profile = profile
        return True


class Builder:
    platform_has_fast_fp16 = True

    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        return INetworkDefinition()

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig()

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig):
        if network.onnx_bytes is None:
            return None
        dynamic = [t for t in network.inputs if -1 in t.shape]
        if dynamic and not config.profiles:
            return None
        for profile in config.profiles:
            for t in network.inputs:
                if t.name not in profile.shapes:
                    return None
                for shape in profile.shapes[t.name]:
                    if len(shape) != len(t.shape) or any(d != -1 and d != s for d, s in zip(t.shape, shape)):
                        return None
        if BuilderFlag.INT8 in config.flags and config.int8_calibrator is not None:
            calibrator = config.int8_calibrator
            if calibrator.read_calibration_cache() is None:
                names = [t.name for t in network.inputs]
                batches = 0
                while (pointers := calibrator.get_batch(names)) is not None:
                    assert len(pointers) == len(names) and all(isinstance(p, int) for p in pointers)
                    batches += 1
                calibrator.write_calibration_cache(f"double-calibration batches={batches}".encode())
        if config.timing_cache is not None:
            config.timing_cache.entries["builds"] = config.timing_cache.entries.get("builds", 0) + 1
        header = {"version": __version__, "flags": sorted(f.name for f in config.flags),
                  "profiles": [{k: [list(s) for s in v] for k, v in p.shapes.items()} for p in config.profiles],
                  "inputs": [t.name for t in network.inputs], "outputs": [[t.name, list(t.shape)] for t in network.outputs]}
        head = json.dumps(header).encode()
        calls.append(("build", header["flags"]))
        return memoryview(MAGIC + len(head).to_bytes(8, "little") + head + network.onnx_bytes)


class Runtime:
    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    def deserialize_cuda_engine(self, data: bytes):
        data = bytes(data)
        if not data.startswith(MAGIC):
            return None
        n = int.from_bytes(data[len(MAGIC):len(MAGIC) + 8], "little")
        header = json.loads(data[len(MAGIC) + 8:len(MAGIC) + 8 + n])
        if header["version"] != __version__:
            return None  # "The engine plan file is not compatible with this version of TensorRT"
        return ICudaEngine(header, data[len(MAGIC) + 8 + n:])


_sessions: dict[str, object] = {}  # ONNX Runtime sessions by graph hash (tests build many engines)


def _session(onnx_bytes: bytes):
    import hashlib

    import onnxruntime as ort

    key = hashlib.sha1(onnx_bytes).hexdigest()
    if key not in _sessions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        _sessions[key] = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    return _sessions[key]


class ICudaEngine:
    def __init__(self, header: dict, onnx_bytes: bytes) -> None:
        self.header = header
        self.names = header["inputs"] + [o[0] for o in header["outputs"]]
        self.output_dims = {o[0]: o[1] for o in header["outputs"]}
        self.onnx_bytes = onnx_bytes

    @property
    def session(self):
        """ONNX Runtime session of the graph, made on first execution (plugin graphs never run)."""
        return _session(self.onnx_bytes)

    @property
    def num_io_tensors(self) -> int:
        return len(self.names)

    @property
    def num_optimization_profiles(self) -> int:
        return len(self.header["profiles"])

    def get_tensor_name(self, i: int) -> str:
        return self.names[i]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return TensorIOMode.INPUT if name in self.header["inputs"] else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType.FLOAT

    def get_tensor_profile_shape(self, name: str, profile_index: int):
        return [tuple(s) for s in self.header["profiles"][profile_index][name]]

    def create_execution_context(self) -> "IExecutionContext":
        return IExecutionContext(self)


class IExecutionContext:
    def __init__(self, engine: ICudaEngine) -> None:
        self.engine = engine
        self.profile = 0
        self.shapes: dict[str, tuple] = {}
        self.addresses: dict[str, int] = {}

    def set_optimization_profile_async(self, index: int, stream) -> bool:
        if not 0 <= index < self.engine.num_optimization_profiles:
            return False
        self.profile = index
        return True

    def set_input_shape(self, name: str, shape) -> bool:
        shape = tuple(shape)
        mn, _, mx = self.engine.get_tensor_profile_shape(name, self.profile)
        if len(shape) != len(mn) or any(not a <= s <= b for a, s, b in zip(mn, shape, mx)):
            return False
        self.shapes[name] = shape
        return True

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.addresses[name] = int(address)
        return True

    def get_tensor_shape(self, name: str) -> tuple:
        if name in self.shapes:
            return self.shapes[name]
        batch = next(iter(self.shapes.values()))[0] if self.shapes else -1
        dims = self.engine.output_dims[name]
        if -1 in dims[1:]:
            raise AssertionError(f"output {name} has dynamic non-batch dims {dims}; the double cannot size it")
        return tuple([batch, *dims[1:]])

    def execute_async_v3(self, stream_handle: int) -> bool:
        inputs = self.engine.header["inputs"]
        if any(n not in self.shapes or n not in self.addresses for n in inputs):
            return False
        feeds = {n: _read(self.addresses[n], self.shapes[n]) for n in inputs}
        outputs = self.engine.session.run(None, feeds)
        for (name, _), value in zip(self.engine.header["outputs"], outputs):
            if name not in self.addresses:
                return False
            _write(self.addresses[name], np.ascontiguousarray(value, np.float32))
        calls.append(("execute", {n: self.shapes[n][0] for n in inputs}))
        return True


def _read(address: int, shape: tuple) -> np.ndarray:
    count = int(np.prod(shape))
    buffer = (ctypes.c_float * count).from_address(address)
    return np.ctypeslib.as_array(buffer).reshape(shape).copy()


def _write(address: int, value: np.ndarray) -> None:
    ctypes.memmove(address, value.ctypes.data, value.nbytes)


def as_module() -> types.ModuleType:
    """This double as a fresh module object named ``tensorrt`` (for ``sys.modules``)."""
    import importlib.machinery
    import sys

    module = types.ModuleType("tensorrt")
    module.__dict__.update({k: v for k, v in sys.modules[__name__].__dict__.items() if not k.startswith("__")})
    module.__version__ = __version__
    module.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    return module
