"""The SPOT network (paper Fig. 5): dual-path backbone + structure + ASR + TPI + fusion."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Union

import torch
from torch import Tensor, nn

from spot_edge.errors import InputError
from spot_edge.modality import MODALITIES, check_modality, modality_index
from spot_edge.model.asr import AttendedStructureRepresentation
from spot_edge.model.backbone import DualPathResNet
from spot_edge.model.config import SpotConfig
from spot_edge.model.heads import BNNeckClassifier, FusionBlock, GlobalPool, l2_normalize
from spot_edge.model.structure import RelationNetwork, StructureInjection, resize_to
from spot_edge.model.tpi import TransformerPartInteraction

Modality = Union[str, Tensor]

__all__ = ["SPOT", "InputError", "modality_index", "Modality"]


def _is_exporting() -> bool:
    return torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export() or \
        torch.compiler.is_compiling()


class SPOT(nn.Module):
    """Structure-Aware Positional Transformer for visible-infrared person ReID.

    ``forward(images, heatmaps, modality)``:

    - ``images``: ``(B, 3, H, W)`` float, normalised as ``config.preprocessing`` says
      (288 x 144 in the paper).
    - ``heatmaps``: ``(B, K_S, Hs, Ws)`` OpenPose maps (18 keypoints then 38 PAF channels) at any
      resolution; may be ``None`` for configurations that use no structure (the baseline).
    - ``modality``: ``"visible"`` or ``"infrared"`` for the whole batch, or a ``(B,)`` integer
      tensor with 0 (visible) / 1 (infrared) per sample.

    Returns, in training mode, ``{"features": {branch: (B, C)}, "bn_features": {...},
    "logits": {branch: (B, num_classes)}}`` with branches among ``"base"`` (L_B), ``"is"``
    (L_IS), ``"ip"`` (L_IP), ``"if"`` (L_IF); in eval mode the retrieval embedding
    ``(B, D)``, L2-normalised.

    ``forward`` never synchronises with the host on the string-modality path (CUDA graphs,
    ``torch.compile``): outside tracing/export it checks only what the tensors' metadata says
    (shapes, dtypes against the weights, the modality name; :meth:`check_structure`), raising
    :class:`InputError`. Value checks (NaN/Inf) need the values on the host, so they belong at
    the boundary where inputs arrive: :meth:`check_inputs` (the ``Embedder`` and the command
    line call it). ``validate_inputs = False`` skips the metadata checks too. A per-sample
    modality tensor is checked for 0/1 values in ``forward``: that path indexes by value and
    synchronises anyway.
    """

    def __init__(self, config: SpotConfig | None = None, imagenet_weights: str | Path | None = None) -> None:
        super().__init__()
        self.config = config = config or SpotConfig()
        channels = config.layer_channels
        dim = config.feature_dim
        self.backbone = DualPathResNet(config.backbone, config.last_stride)
        self.relation = (RelationNetwork(config.num_pose_maps, config.relation_channels, config.relation_depth)
                         if config.needs_relation_network else None)
        self.injection = None
        if config.inject_structure:
            i = config.inject_layer
            structure_width = (config.relation_channels[i - 1] if config.structure_source == "relation"
                               else config.num_pose_maps)
            self.injection = StructureInjection(channels[i - 1], structure_width, config.injection_mode,
                                                config.injection_bn_init)
        c_s = config.relation_channels[3]
        self.asr = (AttendedStructureRepresentation(dim, c_s, config.asr_key_dim, config.asr_attention_scale)
                    if config.use_asr else None)
        self.tpi = (TransformerPartInteraction(dim, c_s, config.num_parts, config.transformer_heads,
                                               config.transformer_layers, config.transformer_ffn_dim,
                                               config.transformer_dropout, config.pe_base,
                                               norm=config.transformer_norm)
                    if config.use_tpi else None)
        self.fusion = FusionBlock(dim, config.fusion) if config.fusion != "none" else None
        self.pool = GlobalPool(config.pooling, config.gem_p)
        self.is_pool = GlobalPool(config.asr_pooling, config.gem_p)   # F_IS from the ASR map (no weights)
        self.heads = nn.ModuleDict({b: BNNeckClassifier(dim, config.num_classes) for b in config.branches})
        self.validate_inputs = True
        if imagenet_weights is not None:
            self.backbone.load_imagenet(imagenet_weights)

    # ------------------------------------------------------------------ options
    def set_kernel_backend(self, backend: str) -> None:
        """Pick the implementation of the fused kernels (``"auto"``, ``"reference"``, ``"triton"``, ``"cuda"``)."""
        from spot_edge.kernels import BACKENDS

        if backend not in BACKENDS:
            raise ValueError(f"unknown kernel backend {backend!r}; choose one of {BACKENDS}")
        for module in (self.asr, self.tpi):
            if module is not None:
                module.kernel_backend = backend

    @property
    def embedding_dim(self) -> int:
        return self.config.embedding_dim

    # ------------------------------------------------------------------ checks
    def check_structure(self, images: Tensor, heatmaps: Tensor | None, modality: Modality) -> None:
        """:class:`InputError` for inputs of the wrong form, from tensor metadata only (no sync):
        shapes, batch sizes, dtypes (floating, and the weights' dtype: an fp16 tensor into an
        fp32 model is refused), the modality name or the modality tensor's shape."""
        c = self.config
        if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise InputError(f"images must be a (B, 3, H, W) tensor; got {shape}")
        if not images.is_floating_point():
            raise InputError(f"images must be floating point (normalised), got {images.dtype}; "
                             f"use spot_edge.preprocessing.PreprocessSpec to convert uint8 images")
        weights = self._weight_dtype()
        if images.dtype != weights and not torch.is_autocast_enabled(images.device.type):
            raise InputError(f"images are {images.dtype} but the model's weights are {weights}; convert the "
                             f"inputs (images.to({weights})) or the model (model.to({images.dtype}))")
        if images.shape[0] == 0:
            raise InputError("empty batch")
        if images.shape[2] < 32 or images.shape[3] < 16:
            raise InputError(f"images of {images.shape[2]}x{images.shape[3]} are too small (at least 32x16)")
        batch = images.shape[0]
        if c.needs_pose_maps or heatmaps is not None:
            if heatmaps is None:
                raise InputError(f"this configuration needs pose heatmaps of shape (B, {c.num_pose_maps}, Hs, Ws)")
            if not isinstance(heatmaps, Tensor) or heatmaps.dim() != 4 or heatmaps.shape[1] != c.num_pose_maps:
                shape = tuple(heatmaps.shape) if isinstance(heatmaps, Tensor) else type(heatmaps).__name__
                raise InputError(f"heatmaps must be a (B, {c.num_pose_maps}, Hs, Ws) tensor "
                                 f"(18 keypoint maps then 38 PAF channels); got {shape}")
            if heatmaps.shape[0] != batch:
                raise InputError(f"batch sizes differ: {batch} images, {heatmaps.shape[0]} heatmaps")
            if not heatmaps.is_floating_point():
                raise InputError(f"heatmaps must be floating point, got {heatmaps.dtype}")
            if heatmaps.dtype != images.dtype:
                raise InputError(f"heatmaps are {heatmaps.dtype} but images are {images.dtype}; use one dtype")
        if isinstance(modality, str):
            check_modality(modality)
        elif isinstance(modality, Tensor):
            if modality.shape != (batch,):
                raise InputError(f"a per-sample modality tensor must have shape ({batch},); got {tuple(modality.shape)}")
            if modality.is_floating_point():
                raise InputError("a per-sample modality tensor must hold integers 0 (visible) or 1 (infrared)")
        else:
            raise InputError(f"modality must be 'visible', 'infrared' or a (B,) tensor; got {modality!r}")

    def check_inputs(self, images: Tensor, heatmaps: Tensor | None, modality: Modality) -> None:
        """:meth:`check_structure` plus the value checks (NaN/Inf, modality values): what the
        boundary runs once per batch. The value checks synchronise with the device."""
        self.check_structure(images, heatmaps, modality)
        if isinstance(modality, Tensor):
            self._check_modality_values(modality)
        if not torch.isfinite(images).all():
            raise InputError("images contain NaN or Inf values; SPOT refuses non-finite input")
        if heatmaps is not None and not torch.isfinite(heatmaps).all():
            raise InputError("heatmaps contain NaN or Inf values; SPOT refuses non-finite input")

    @staticmethod
    def _check_modality_values(modality: Tensor) -> None:
        if ((modality != 0) & (modality != 1)).any():
            raise InputError("a per-sample modality tensor must hold integers 0 (visible) or 1 (infrared)")

    def _weight_dtype(self) -> torch.dtype:
        return next(self.backbone.parameters()).dtype

    # ------------------------------------------------------------------ forward
    def forward(self, images: Tensor, heatmaps: Tensor | None, modality: Modality):
        if self.validate_inputs and not _is_exporting():
            self.check_structure(images, heatmaps, modality)
            if isinstance(modality, Tensor):  # this path indexes by value: it synchronises anyway
                self._check_modality_values(modality)
        features = self.extract_features(images, heatmaps, modality, training=self.training)
        if self.training:
            bn_features, logits = {}, {}
            for branch, head in self.heads.items():
                bn_features[branch], logits[branch] = head(features[branch])
            return {"features": features, "bn_features": bn_features, "logits": logits}
        return self.embed_features(features)

    def embed_features(self, features: dict[str, Tensor]) -> Tensor:
        """Eval-mode embedding from branch features: ``(B, D)``, L2-normalised."""
        names = self.config.embedding_branches
        parts = [self.heads[n].bn(features[n]) if self.config.embedding_after_bn else features[n] for n in names]
        return l2_normalize(parts[0] if len(parts) == 1 else torch.cat(parts, dim=1))

    def extract_features(self, images: Tensor, heatmaps: Tensor | None, modality: Modality,
                         training: bool = True) -> dict[str, Tensor]:
        """Pooled branch features ``{branch: (B, C)}`` before the BN necks.

        With ``training=False`` only the branches the embedding needs are computed.
        """
        c = self.config
        feature_map, structure = self.feature_maps(images, heatmaps, modality)
        needed = set(c.branches) if training else self._embedding_branches()
        out: dict[str, Tensor] = {}
        if "base" in needed:
            out["base"] = self.pool(feature_map)
        if {"is", "if"} & needed:
            out["is"] = self.is_pool(self.asr(feature_map, structure))
        if {"ip", "if"} & needed:
            out["ip"] = self.tpi(feature_map, structure)
        if "if" in needed:
            out["if"] = self.fusion(out["is"], out["ip"])
        return out

    def _embedding_branches(self) -> set[str]:
        return set(self.config.embedding_branches)

    def feature_maps(self, images: Tensor, heatmaps: Tensor | None, modality: Modality
                     ) -> tuple[Tensor, Tensor | None]:
        """Backbone with structure injection: ``F_I (B, C, h, w)`` and ``F_S (B, C_S, h, w)`` (or None)."""
        paths = self.backbone.specific
        x = self._per_modality(images, modality, lambda m, t: paths[m].layer1(paths[m].stem(t)))
        structure_maps: list[Tensor] | None = None
        if self.relation is not None:
            structure_maps = self.relation(heatmaps, tuple(x.shape[-2:]))
        x = self._inject(1, x, heatmaps, structure_maps)
        x = self._per_modality(x, modality, lambda m, t: paths[m].layer2(t))
        x = self._inject(2, x, heatmaps, structure_maps)
        x = self._inject(3, self.backbone.layer3(x), heatmaps, structure_maps)
        x = self._inject(4, self.backbone.layer4(x), heatmaps, structure_maps)
        structure = None
        if structure_maps is not None and len(structure_maps) == 4:
            structure = resize_to(structure_maps[3], tuple(x.shape[-2:]))
        return x, structure

    def _inject(self, layer: int, x: Tensor, heatmaps: Tensor | None, structure_maps: list[Tensor] | None) -> Tensor:
        if self.injection is None or self.config.inject_layer != layer:
            return x
        source = structure_maps[layer - 1] if self.config.structure_source == "relation" else heatmaps
        return self.injection(x, source)

    @staticmethod
    def _per_modality(x: Tensor, modality: Modality, fn: Callable[[str, Tensor], Tensor]) -> Tensor:
        """Apply ``fn(modality_name, x_subset)`` to each modality's samples and reassemble in order."""
        if isinstance(modality, str):
            return fn(modality, x)
        out = None
        for index, name in enumerate(MODALITIES):
            rows = (modality == index).nonzero().flatten()
            if rows.numel() == 0:
                continue
            y = fn(name, x.index_select(0, rows))
            if out is None:
                out = y.new_zeros((x.shape[0], *y.shape[1:]))
            out = out.index_copy(0, rows, y)
        return out

    # ------------------------------------------------------------------ introspection
    def part_maps(self, images: Tensor, heatmaps: Tensor, modality: Modality) -> Tensor:
        """TPI part maps M (eq. 8) for visualisation: ``(B, p, h, w)``."""
        if self.tpi is None:
            raise ValueError("this configuration has no TPI (use_tpi=False)")
        _, structure = self.feature_maps(images, heatmaps, modality)
        return self.tpi.part_probabilities(structure)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
