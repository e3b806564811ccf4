"""Run a verified spot-edge TensorRT engine on torch CUDA buffers (TensorRT 10.3 to 11).

:class:`TrtEngine` is the one engine runtime: sidecar verification, deserialisation, one
execution context per optimisation profile, input shapes and tensor addresses, output buffers
sized from the context (dynamic batch and, for the pose network, dynamic height and width).
:class:`TrtEngineRunner` runs SPOT engines on it (batch profiles: split and pad);
:class:`~spot_edge.engines.trt_pose_runner.TrtPoseRunner` runs pose engines on it
(``(batch, height, width)`` profiles).

Load path (the same Python API in 10.3 and 11.1)::

    runtime = trt.Runtime(logger)
    engine  = runtime.deserialize_cuda_engine(plan_bytes)
    context = engine.create_execution_context()
    context.set_optimization_profile_async(index, stream)   # raises RuntimeError on failure
    context.set_input_shape("images", (B, 3, H, W)); context.set_input_shape("heatmaps", ...)
    context.set_tensor_address(name, tensor.data_ptr())   # inputs and the output
    context.execute_async_v3(stream)

Before deserialising, the JSON sidecar is checked against this machine (TensorRT version, GPU
compute capability, modality, plugins): a mismatch is an :class:`EngineMismatchError` that says
what to rebuild, never a crash inside TensorRT. Batches inside a profile run as they are; smaller
ones are padded up to the profile's minimum; larger ones are split. Plugin libraries are loaded
once per process (:mod:`spot_edge.engines.trt_plugins`): a visible and an infrared plugin engine,
or an engine built and then run in one process, share one registration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from spot_edge.device import resolve_device
from spot_edge.engines.metadata import (EMBEDDING_OUTPUT, HEATMAP_INPUT, IMAGE_INPUT, ArtifactError, BatchProfile,
                                        EngineMetadata, EngineMismatchError, GpuInfo)
from spot_edge.engines.trt_builder import current_gpu
from spot_edge.engines.trt_compat import import_tensorrt
from spot_edge.engines.trt_plugins import load_plugin_libraries
from spot_edge.errors import InputError

__all__ = ["TrtEngine", "TrtEngineRunner", "plan_chunks", "best_profile"]


def plan_chunks(batch: int, profiles: Sequence[BatchProfile]) -> list[tuple[int, int, int]]:
    """Split a batch into runs ``(start, size, profile_index)``; ``size`` may be below the profile's
    ``min`` (the runner pads it). Runs use the largest profile maximum; the tail goes to the
    profile that fits it best (smallest ``max`` that holds it, else the one with the smallest ``min``)."""
    if batch < 0:
        raise ValueError("batch must be >= 0")
    largest = max(range(len(profiles)), key=lambda i: profiles[i].max)
    step = profiles[largest].max
    runs = []
    for start in range(0, batch, step):
        size = min(step, batch - start)
        runs.append((start, size, best_profile(size, profiles)))
    return runs


def best_profile(size: int, profiles: Sequence[BatchProfile]) -> int:
    """Index of the profile to run ``size`` samples with."""
    fitting = [i for i, p in enumerate(profiles) if p.min <= size <= p.max]
    if fitting:
        return min(fitting, key=lambda i: (profiles[i].max, -profiles[i].opt))
    holding = [i for i, p in enumerate(profiles) if size <= p.max]  # size < min: pad
    return min(holding, key=lambda i: profiles[i].min)


class TrtEngine:
    """One verified engine with one execution context per optimisation profile.

    Args:
        engine_path: serialized engine with its ``<engine>.json`` sidecar.
        device: torch device of the buffers (``"cuda"``/``"cuda:N"``; tests use ``"cpu"`` with the
            TensorRT double).
        plugin_libraries: plugin libraries the engine needs (their versions are checked).
        gpu: override GPU detection (tests).
        modality: expected modality of a SPOT engine (checked against the metadata), or None.
        kind: ``"spot"`` or ``"pose"``: the kind of graph the engine must have been built from.
    """

    def __init__(self, engine_path: str | Path, device: str = "cuda", plugin_libraries: Sequence[str | Path] = (),
                 gpu: GpuInfo | None = None, modality: str | None = None, kind: str | None = None) -> None:
        self.engine_path = Path(engine_path)
        if not self.engine_path.is_file():
            raise FileNotFoundError(f"TensorRT engine not found: {self.engine_path}")
        self.metadata = EngineMetadata.load(self.engine_path)
        if kind is not None and self.metadata.kind != kind:
            what = {"pose": "a pose (OpenPose) engine", "spot": "a SPOT embedding engine"}
            raise EngineMismatchError(f"{self.engine_path} is {what[self.metadata.kind]}, not {what[kind]}")
        trt = import_tensorrt()
        self.trt = trt
        self.device = resolve_device(device)
        if gpu is None:
            gpu = current_gpu(self.device.index or 0)
        logger = trt.Logger(trt.Logger.WARNING)
        plugins = load_plugin_libraries(trt, logger, [Path(p) for p in plugin_libraries])
        self.metadata.verify(str(trt.__version__), gpu, modality, plugins, self.engine_path)

        self._runtime = trt.Runtime(logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            raise EngineMismatchError(f"TensorRT {trt.__version__} could not deserialize {self.engine_path} although "
                                      f"its metadata matches; the file may be corrupt: rebuild it with "
                                      f"`spot-edge build-engine`")
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in self.names if n not in self.inputs]
        self._contexts: dict[int, object] = {}

    def profile_shapes(self, name: str) -> list[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        """``(min, opt, max)`` shapes of input ``name`` in each optimisation profile."""
        return [tuple(tuple(int(d) for d in shape) for shape in self.engine.get_tensor_profile_shape(name, i))
                for i in range(self.engine.num_optimization_profiles)]

    def _torch_dtype(self, name: str):
        import torch

        dtype = self.engine.get_tensor_dtype(name)
        mapping = {self.trt.DataType.FLOAT: torch.float32, self.trt.DataType.HALF: torch.float16}
        if dtype not in mapping:
            raise ArtifactError(f"tensor {name} of {self.engine_path} has type {dtype}; expected FLOAT or HALF")
        return mapping[dtype]

    def _stream(self) -> int:
        import torch

        return torch.cuda.current_stream(self.device).cuda_stream if self.device.type == "cuda" else 0

    def _context(self, profile: int):
        if profile not in self._contexts:
            context = self.engine.create_execution_context()
            if context is None:
                raise RuntimeError(f"TensorRT could not create an execution context for {self.engine_path} "
                                   f"(out of GPU memory?)")
            try:
                selected = context.set_optimization_profile_async(profile, self._stream())
            except RuntimeError as exc:  # the binding raises when TensorRT refuses
                raise RuntimeError(f"cannot select optimisation profile {profile} of {self.engine_path}: {exc}") \
                    from None
            if not selected:
                raise RuntimeError(f"cannot select optimisation profile {profile} of {self.engine_path}")
            self._contexts[profile] = context
        return self._contexts[profile]

    def execute(self, feeds: dict, profile: int) -> dict:
        """Run the engine once with optimisation profile ``profile``: ``feeds`` ``{input name: tensor}``
        (moved to the device in the engine's dtype) -> ``{output name: float32 tensor}`` on the
        device, shaped as the context reports once every input shape is set."""
        import torch

        context = self._context(profile)
        alive = []
        for name in self.inputs:
            t = feeds[name].to(self.device, self._torch_dtype(name)).contiguous()
            if not context.set_input_shape(name, tuple(t.shape)):
                raise InputError(f"engine {self.engine_path.name} rejects shape {tuple(t.shape)} for its input "
                                 f"{name} (optimisation profile {profile})")
            context.set_tensor_address(name, int(t.data_ptr()))
            alive.append(t)
        results = {}
        for name in self.outputs:
            shape = tuple(int(d) for d in context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise ArtifactError(f"engine {self.engine_path.name} cannot tell the shape of its output {name} "
                                    f"({shape}); rebuild it from a current spot-edge export")
            results[name] = torch.empty(shape, dtype=self._torch_dtype(name), device=self.device)
            context.set_tensor_address(name, int(results[name].data_ptr()))
        if not context.execute_async_v3(self._stream()):
            raise RuntimeError(f"TensorRT execution of {self.engine_path.name} failed (see the TensorRT log)")
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()
        return {name: value.float() for name, value in results.items()}

    def close(self) -> None:
        self._contexts.clear()
        self.engine = None


class TrtEngineRunner(TrtEngine):
    """One SPOT engine (one modality): batches split and padded over its batch profiles.

    Args:
        engine_path: serialized engine with its ``<engine>.json`` sidecar.
        modality: expected modality (checked against the metadata), or None.
        device: torch device of the buffers (``"cuda"``/``"cuda:N"``; tests use ``"cpu"`` with the
            TensorRT double).
        plugin_libraries: plugin libraries the engine needs (their versions are checked).
        gpu: override GPU detection (tests).
    """

    def __init__(self, engine_path: str | Path, modality: str | None = None, device: str = "cuda",
                 plugin_libraries: Sequence[str | Path] = (), gpu: GpuInfo | None = None) -> None:
        super().__init__(engine_path, device, plugin_libraries, gpu, modality, kind="spot")
        if IMAGE_INPUT not in self.inputs or EMBEDDING_OUTPUT not in self.outputs:
            raise ArtifactError(f"{self.engine_path} has tensors {self.names}; a spot-edge engine has inputs "
                                f"{IMAGE_INPUT}, {HEATMAP_INPUT} and output {EMBEDDING_OUTPUT}")
        self.profiles = tuple(BatchProfile(*(shape[0] for shape in shapes)) for shapes in self.profile_shapes(IMAGE_INPUT))
        info = self.metadata.artifact
        self.modality = info.modality
        self.image_shape = info.image_shape
        self.heatmap_shape = info.heatmap_shape
        self.embedding_dim = info.embedding_dim

    @property
    def max_batch(self) -> int:
        return max(p.max for p in self.profiles)

    def run(self, images, heatmaps):
        """``images (B, 3, H, W)``, ``heatmaps (B, K_S, Hs, Ws)`` torch tensors -> ``(B, D)`` float32 on ``device``."""
        import torch

        batch = int(images.shape[0])
        if tuple(images.shape[1:]) != self.image_shape or tuple(heatmaps.shape[1:]) != self.heatmap_shape \
                or heatmaps.shape[0] != batch:
            raise InputError(f"engine {self.engine_path.name} takes images (B, {self.image_shape}) and heatmaps "
                             f"(B, {self.heatmap_shape}); got {tuple(images.shape)} and {tuple(heatmaps.shape)}")
        if batch == 0:
            return torch.zeros((0, self.embedding_dim), dtype=torch.float32, device=self.device)
        out = torch.empty((batch, self.embedding_dim), dtype=torch.float32, device=self.device)
        for start, size, profile in plan_chunks(batch, self.profiles):
            rows = slice(start, start + size)
            out[rows] = self._run_chunk(images[rows], heatmaps[rows], profile)[:size]
        return out

    def _run_chunk(self, images, heatmaps, profile_index: int):
        size = int(images.shape[0])
        padded = max(size, self.profiles[profile_index].min)
        feeds = {name: pad_batch(t, padded) for name, t in ((IMAGE_INPUT, images), (HEATMAP_INPUT, heatmaps))
                 if name in self.inputs}
        result = self.execute(feeds, profile_index)[EMBEDDING_OUTPUT]
        if tuple(result.shape) != (padded, self.embedding_dim):
            raise ArtifactError(f"engine {self.engine_path.name} reports output shape {tuple(result.shape)}, "
                                f"expected {(padded, self.embedding_dim)}; rebuild it from a current spot-edge export")
        return result


def pad_batch(t, size: int):
    """``t`` with its last sample repeated up to ``size`` rows (a profile's minimum batch; the extra
    rows' results are dropped)."""
    import torch

    if t.shape[0] >= size:
        return t
    return torch.cat([t, t[-1:].expand(size - t.shape[0], *t.shape[1:])], dim=0)
