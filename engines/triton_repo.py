"""A Triton Inference Server model repository: one model per modality, dynamic batching.

Layout written by :func:`export_triton_repo`::

    repo/
      spot_visible/
        config.pbtxt          platform onnxruntime_onnx | tensorrt_plan, dynamic_batching
        spot_edge.json        spot-edge metadata (config, preprocessing, engine facts)
        1/model.onnx | 1/model.plan
      spot_infrared/ ...

``config.pbtxt`` is protobuf text format of Triton's ``inference.ModelConfig``;
:func:`validate_model_config` parses it with the server's schema (``model_config_pb2`` as shipped
in the ``tritonclient`` package) so that a field typo fails here, not when the server loads it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Mapping

from spot_edge.atomic import atomic_path, atomic_write_json, atomic_write_text
from spot_edge.engines.metadata import (EMBEDDING_OUTPUT, HEATMAP_INPUT, IMAGE_INPUT, ArtifactInfo, EngineMetadata,
                                        read_onnx_info)

PLATFORMS = {"onnx": ("onnxruntime_onnx", "model.onnx"), "engine": ("tensorrt_plan", "model.plan")}


class TritonSchemaUnavailable(RuntimeError):
    """Triton's model-config schema is not installed (pip install tritonclient[grpc])."""


def model_config_text(name: str, kind: str, info: ArtifactInfo, max_batch_size: int,
                      preferred_batch_sizes: tuple[int, ...] = (), max_queue_delay_us: int = 1000,
                      instance_count: int = 1, instance_kind: str = "KIND_GPU",
                      has_heatmaps: bool = True) -> str:
    """The ``config.pbtxt`` text of one model (protobuf text format of ``inference.ModelConfig``)."""
    platform, filename = PLATFORMS[kind]
    if max_batch_size < 1:
        raise ValueError("max_batch_size must be >= 1 (Triton's dynamic batcher needs a batch dimension)")
    if instance_kind not in ("KIND_GPU", "KIND_CPU", "KIND_AUTO"):
        raise ValueError(f"instance_kind must be KIND_GPU, KIND_CPU or KIND_AUTO, got {instance_kind!r}")
    preferred = [b for b in preferred_batch_sizes if 1 <= b <= max_batch_size]
    dims = lambda shape: ", ".join(str(int(d)) for d in shape)  # noqa: E731
    inputs = [f'  {{\n    name: "{IMAGE_INPUT}"\n    data_type: TYPE_FP32\n    dims: [ {dims(info.image_shape)} ]\n  }}']
    if has_heatmaps:
        inputs.append(f'  {{\n    name: "{HEATMAP_INPUT}"\n    data_type: TYPE_FP32\n    dims: [ {dims(info.heatmap_shape)} ]\n  }}')
    params = {"spot_edge.modality": info.modality, "spot_edge.config_fingerprint": info.config_fingerprint,
              "spot_edge.preprocessing": json.dumps(info.preprocessing.to_dict(), sort_keys=True),
              "spot_edge.normalization": info.normalization, "spot_edge.precision": info.precision}
    parameters = "\n".join(f'parameters {{\n  key: "{k}"\n  value {{ string_value: {json.dumps(v)} }}\n}}'
                           for k, v in params.items())
    batching = "dynamic_batching {\n"
    if preferred:
        batching += f"  preferred_batch_size: [ {dims(preferred)} ]\n"
    batching += f"  max_queue_delay_microseconds: {int(max_queue_delay_us)}\n}}"
    return (f'name: "{name}"\nplatform: "{platform}"\ndefault_model_filename: "{filename}"\n'
            f"max_batch_size: {int(max_batch_size)}\n"
            f"input [\n" + ",\n".join(inputs) + "\n]\n"
            f'output [\n  {{\n    name: "{EMBEDDING_OUTPUT}"\n    data_type: TYPE_FP32\n'
            f"    dims: [ {info.embedding_dim} ]\n  }}\n]\n"
            f"{batching}\n"
            f"instance_group [\n  {{\n    count: {int(instance_count)}\n    kind: {instance_kind}\n  }}\n]\n"
            f"{parameters}\n")


def model_config_schema():
    """Triton's ``ModelConfig`` message class (from ``tritonclient``'s bundled ``model_config_pb2``)."""
    try:
        from tritonclient.grpc import model_config_pb2
    except ImportError as exc:
        raise TritonSchemaUnavailable("validating config.pbtxt needs Triton's model-config schema: "
                                      "pip install 'tritonclient[grpc]'") from exc
    return model_config_pb2.ModelConfig


def validate_model_config(text: str):
    """Parse ``config.pbtxt`` text with Triton's schema; ``ValueError`` naming the problem otherwise."""
    from google.protobuf import text_format

    schema = model_config_schema()
    try:
        return text_format.Parse(text, schema())
    except text_format.ParseError as exc:
        raise ValueError(f"config.pbtxt does not follow Triton's model-config schema: {exc}") from exc


def export_triton_repo(models: Mapping[str, str | Path], repo: str | Path, name_prefix: str = "spot",
                       max_batch_size: int | None = None, preferred_batch_sizes: tuple[int, ...] = (4, 8),
                       max_queue_delay_us: int = 1000, instance_count: int = 1, instance_kind: str | None = None,
                       validate: bool = True, overwrite: bool = False) -> dict[str, Path]:
    """Write a Triton model repository from ``{modality: ONNX or engine path}``.

    ONNX models get ``platform: onnxruntime_onnx`` and instances of ``KIND_AUTO`` (GPU when the
    server has one); engines get ``tensorrt_plan``, ``KIND_GPU`` and a ``max_batch_size`` of at most
    the engine profiles' maximum. ``instance_kind`` overrides the kind. Returns
    ``{modality: model directory}``.
    """
    repo = Path(repo)
    out: dict[str, Path] = {}
    for modality, source in models.items():
        source = Path(source)
        if not source.is_file():
            raise FileNotFoundError(f"model for {modality} not found: {source}")
        if source.suffix == ".onnx":
            kind, info, extra = "onnx", read_onnx_info(source), {}
            batch_limit = max_batch_size or 32
            import onnx

            graph_inputs = {i.name for i in onnx.load(str(source), load_external_data=False).graph.input}
            has_heatmaps = HEATMAP_INPUT in graph_inputs
        else:
            meta = EngineMetadata.load(source)
            kind, info, extra = "engine", meta.artifact, meta.to_dict()
            if max_batch_size is not None and max_batch_size > meta.max_batch:
                raise ValueError(f"max_batch_size {max_batch_size} exceeds the engine's largest profile "
                                 f"({meta.max_batch}); rebuild with a larger --max-batch or lower it")
            batch_limit = max_batch_size or meta.max_batch
            has_heatmaps = True
        if info.modality != modality:
            raise ValueError(f"{source} holds the {info.modality} graph, but was given for {modality}")
        name = f"{name_prefix}_{modality}"
        model_dir = repo / name
        if model_dir.exists():
            if not overwrite:
                raise FileExistsError(f"{model_dir} exists; pass overwrite=True (--overwrite) to replace it")
            shutil.rmtree(model_dir)
        (model_dir / "1").mkdir(parents=True)
        kind_default = "KIND_GPU" if kind == "engine" else "KIND_AUTO"
        text = model_config_text(name, kind, info, batch_limit, tuple(preferred_batch_sizes), max_queue_delay_us,
                                 instance_count, instance_kind or kind_default, has_heatmaps)
        if validate:
            validate_model_config(text)
        with atomic_path(model_dir / "1" / PLATFORMS[kind][1]) as tmp:
            shutil.copyfile(source, tmp)
        atomic_write_text(model_dir / "config.pbtxt", text)
        atomic_write_json(model_dir / "spot_edge.json", {"artifact": info.to_dict(), "engine": extra or None})
        out[modality] = model_dir
    return out
