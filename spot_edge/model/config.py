"""``SpotConfig``: every choice that shapes a SPOT network, and the paper's ablation rows.

Each row of the paper's Tables I-III (and the part-count sweep of Fig. 6) is a
configuration of the one model; :func:`preset` names Table I's six indices and
:func:`paper_table_configs` enumerates every row. Where the paper is silent the choice is
ours, and it is a named field here (documented per field).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from spot_edge.atomic import atomic_write_text
from spot_edge.hashing import sha256_bytes
from spot_edge.model.config_checks import ConfigError, field_type_errors, read_config_file, shown
from spot_edge.preprocessing import PreprocessSpec

__all__ = ["SpotConfig", "ConfigError", "preset", "preset_names", "paper_table_configs", "BACKBONES", "FUSIONS",
           "EMBEDDINGS", "FIG7_LAMBDAS"]

BACKBONES = {"resnet18": (64, 128, 256, 512), "resnet34": (64, 128, 256, 512),
             "resnet50": (256, 512, 1024, 2048), "resnet101": (256, 512, 1024, 2048)}
FUSIONS = ("none", "concat", "max", "mean", "weighted")
EMBEDDINGS = ("auto", "base", "is", "ip", "if", "concat", "base+is", "base+ip")
#: Branches each explicit embedding concatenates (in this order), before the L2 normalisation.
EMBEDDING_BRANCHES = {"base": ("base",), "is": ("is",), "ip": ("ip",), "if": ("if",), "concat": ("is", "ip"),
                      "base+is": ("base", "is"), "base+ip": ("base", "ip")}
#: Values of lambda_1 (lambda_2 = 0.5) and lambda_2 (lambda_1 = 0.6) swept in Fig. 7.
FIG7_LAMBDAS = tuple(round(0.1 * i, 1) for i in range(11))
#: Fields added after configurations were first fingerprinted: left out of :meth:`SpotConfig.fingerprint`
#: while they hold their default, so that models, exports and galleries made before keep their identity.
_LATER_FIELDS = ("injection_bn_init", "transformer_norm", "asr_pooling")


@dataclass(frozen=True)
class SpotConfig:
    """Configuration of a :class:`spot_edge.model.SPOT` network.

    Backbone ("B", Sec. III-C):
        backbone: torchvision ResNet variant. The paper uses ``resnet50``.
        last_stride: stride of layer4 (1 in the paper, giving an 18x9 map at 288x144).
        num_classes: training identities (395 for SYSU-MM01, 206 for RegDB).
        preprocessing: input size, mean/std and channel order (single source of truth).

    Structure ("S", eq. 1):
        num_pose_maps: K_S, OpenPose maps per image (18 keypoints + 38 PAF = 56).
        relation_channels: output channels of the relation network's four conv layers; the
            last is C_S. Layer o runs at the resolution of ResNet layer o (two poolings).
        inject_structure: add structure to the backbone (Table I "S").
        inject_layer: i of "B+S_i" (Table II); 2 = input of the modality-shared part.
        structure_source: ``"relation"`` (relation-network feature F_S^i) or ``"keypoints"``
            (raw heatmaps, "B+K_i").
        injection_mode: ``"add"`` (1x1 conv-BN projection, added) or ``"concat"``
            (concatenate, then 1x1 conv-BN-ReLU back to the layer's width).
        injection_bn_init: initial scale (gamma) of the projection's BN in ``"add"`` mode.
            ``"one"`` (PyTorch's default): the pretrained layer after the injection receives
            a unit-variance structure term from the first step. ``"zero"``: the injected term
            is exactly zero at the start and grows as gamma is learned (gamma still receives
            gradients), the convention of the AGW and DDAG code bases for branches added to
            pretrained features. ``"zero"`` needs ``injection_mode="add"``.

    ASR (eqs. 3-6):
        use_asr: build ASR and train it with L_IS.
        asr_key_dim: width of K(.) and Q(.) (eq. 4); the paper does not state it.
        asr_attention_scale: multiplies K^T Q before the softmax. Eq. 4 has none (1.0).

    TPI (eqs. 7-10):
        use_tpi: build TPI and train it with L_IP.
        num_parts: p, part maps (eq. 8); 7 in the paper, 2..9 in Fig. 6.
        pe_base: Q of eq. 7 (10000).
        transformer_layers / transformer_heads: L = 1, h = 8 (Sec. IV-A).
        transformer_ffn_dim: hidden width of the feed-forward sub-layer (not stated).
        transformer_dropout: dropout inside the encoder layer during training.
        transformer_norm: ``"post"`` (LayerNorm after each residual sum, Vaswani et al. and
            the paper's Fig. 4) or ``"pre"`` (LayerNorm at the input of each sub-layer, plus a
            final LayerNorm after the last layer: the pre-LN form, easier to optimise from
            scratch).

    Fusion and heads (eqs. 11-14):
        fusion: ``"concat"`` (eq. 12, the paper's), ``"max"``, ``"mean"``, ``"weighted"``
            (Table III) or ``"none"`` (Table I index 5).
        pooling: ``"gem"`` (generalised-mean, as the AGW code base) or ``"avg"``: pooling of
            the baseline feature map into F_B.
        asr_pooling: pooling of the ASR output map into F_IS: ``"avg"`` (spatial mean) or
            ``"gem"``. F_IS (eq. 6) is signed, and GeM pools ``max(x, eps)``: with ``"gem"``
            the negative part of the map does not contribute.
        gem_p: exponent of GeM pooling (both poolings).
        lambda_is, lambda_ip: lambda_1 and lambda_2 of eq. 13.
        embedding: retrieval embedding at test time. ``"auto"``: the fused feature when
            fusion is on, else the concatenation of the ASR and TPI features when both
            exist, else whichever exists, else the baseline feature. Explicit choices:
            ``"base"``, ``"is"``, ``"ip"``, ``"if"``, ``"concat"`` (F_IS and F_IP), and for
            the single-branch rows of Table I (#3, #4) ``"base+is"`` / ``"base+ip"``: the
            branch feature concatenated with the baseline feature (2C wide). The paper
            does not say which rows #3 and #4 were evaluated with.
        embedding_after_bn: take the embedding after its BN neck (as AGW does).
    """

    backbone: str = "resnet50"
    last_stride: int = 1
    num_classes: int = 395
    preprocessing: PreprocessSpec = field(default_factory=PreprocessSpec)

    num_pose_maps: int = 56
    relation_channels: tuple[int, int, int, int] = (64, 128, 256, 256)
    inject_structure: bool = True
    inject_layer: int = 2
    structure_source: str = "relation"
    injection_mode: str = "add"
    injection_bn_init: str = "one"

    use_asr: bool = True
    asr_key_dim: int = 256
    asr_attention_scale: float = 1.0

    use_tpi: bool = True
    num_parts: int = 7
    pe_base: float = 10000.0
    transformer_layers: int = 1
    transformer_heads: int = 8
    transformer_ffn_dim: int = 2048
    transformer_dropout: float = 0.1
    transformer_norm: str = "post"

    fusion: str = "concat"
    pooling: str = "gem"
    asr_pooling: str = "avg"
    gem_p: float = 3.0
    lambda_is: float = 0.6
    lambda_ip: float = 0.5
    embedding: str = "auto"
    embedding_after_bn: bool = True

    def __post_init__(self) -> None:
        problems = field_type_errors(type(self), {f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        if problems:
            raise ConfigError("invalid SpotConfig: " + "; ".join(problems))
        if isinstance(self.preprocessing, dict):
            try:
                spec = PreprocessSpec.from_dict(self.preprocessing)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"invalid SpotConfig: preprocessing: {exc}") from None
            object.__setattr__(self, "preprocessing", spec)
        object.__setattr__(self, "relation_channels", tuple(int(c) for c in self.relation_channels))
        errors = []
        if self.backbone not in BACKBONES:
            errors.append(f"backbone must be one of {sorted(BACKBONES)}, got {self.backbone!r}")
        if self.last_stride not in (1, 2):
            errors.append(f"last_stride must be 1 or 2, got {self.last_stride}")
        if self.num_classes < 1:
            errors.append(f"num_classes must be >= 1, got {self.num_classes}")
        if self.num_pose_maps < 1:
            errors.append(f"num_pose_maps must be >= 1, got {self.num_pose_maps}")
        if len(self.relation_channels) != 4 or min(self.relation_channels) < 1:
            errors.append(f"relation_channels needs 4 positive widths, got {self.relation_channels}")
        if self.inject_layer not in (1, 2, 3, 4):
            errors.append(f"inject_layer must be 1..4, got {self.inject_layer}")
        if self.structure_source not in ("relation", "keypoints"):
            errors.append(f"structure_source must be 'relation' or 'keypoints', got {self.structure_source!r}")
        if self.injection_mode not in ("add", "concat"):
            errors.append(f"injection_mode must be 'add' or 'concat', got {self.injection_mode!r}")
        if self.injection_bn_init not in ("one", "zero"):
            errors.append(f"injection_bn_init must be 'one' or 'zero', got {self.injection_bn_init!r}")
        elif self.injection_bn_init == "zero" and self.injection_mode != "add":
            errors.append("injection_bn_init 'zero' needs injection_mode 'add' (in 'concat' mode the BN also "
                          "carries the appearance feature)")
        if self.transformer_norm not in ("post", "pre"):
            errors.append(f"transformer_norm must be 'post' or 'pre', got {self.transformer_norm!r}")
        if self.num_parts < 1:
            errors.append(f"num_parts must be >= 1, got {self.num_parts}")
        for name in ("asr_key_dim", "transformer_layers", "transformer_heads", "transformer_ffn_dim"):
            if getattr(self, name) < 1:
                errors.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("pe_base", "gem_p", "asr_attention_scale"):
            if not getattr(self, name) > 0:
                errors.append(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("lambda_is", "lambda_ip"):
            if not getattr(self, name) >= 0:
                errors.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.transformer_dropout < 1:
            errors.append(f"transformer_dropout must be in [0, 1), got {self.transformer_dropout}")
        if self.fusion not in FUSIONS:
            errors.append(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.fusion != "none" and not (self.use_asr and self.use_tpi):
            errors.append(f"fusion {self.fusion!r} combines ASR and TPI: it needs use_asr and use_tpi")
        for name in ("pooling", "asr_pooling"):
            if getattr(self, name) not in ("gem", "avg"):
                errors.append(f"{name} must be 'gem' or 'avg', got {getattr(self, name)!r}")
        if self.embedding not in EMBEDDINGS:
            errors.append(f"embedding must be one of {EMBEDDINGS}, got {self.embedding!r}")
        if self.backbone in BACKBONES and self.use_tpi and self.transformer_heads >= 1 and \
                self.feature_dim % self.transformer_heads:
            errors.append(f"transformer_heads={self.transformer_heads} must divide the feature width {self.feature_dim}")
        missing = [b for b in EMBEDDING_BRANCHES.get(self.embedding, ()) if b not in self.branches]
        if missing:
            errors.append(f"embedding {self.embedding!r} needs the branch(es) {', '.join(missing)}, which this "
                          f"configuration does not have (branches {self.branches})")
        if errors:
            raise ConfigError("invalid SpotConfig: " + "; ".join(errors))

    # ---------------------------------------------------------------- derived facts
    @property
    def layer_channels(self) -> tuple[int, int, int, int]:
        """Output channels of ResNet layer1..layer4."""
        return BACKBONES[self.backbone]

    @property
    def feature_dim(self) -> int:
        """C = C_I, the appearance feature width (2048 for ResNet-50)."""
        return self.layer_channels[3]

    @property
    def needs_relation_network(self) -> bool:
        return (self.inject_structure and self.structure_source == "relation") or self.use_asr or self.use_tpi

    @property
    def relation_depth(self) -> int:
        """Relation-network layers this configuration reads: 4 when ASR or TPI use F_S."""
        if self.use_asr or self.use_tpi:
            return 4
        return self.inject_layer if self.needs_relation_network else 0

    @property
    def needs_pose_maps(self) -> bool:
        return self.inject_structure or self.use_asr or self.use_tpi

    @property
    def branches(self) -> tuple[str, ...]:
        """Feature branches trained with their own BN neck and classifier."""
        out = ["base"]
        if self.use_asr:
            out.append("is")
        if self.use_tpi:
            out.append("ip")
        if self.fusion != "none":
            out.append("if")
        return tuple(out)

    @property
    def loss_weights(self) -> dict[str, float]:
        """Weight of each branch's identity loss in eq. 13 (the triplet loss is on "base")."""
        weights = {"base": 1.0, "is": self.lambda_is, "ip": self.lambda_ip, "if": 1.0}
        return {b: weights[b] for b in self.branches}

    @property
    def resolved_embedding(self) -> str:
        if self.embedding != "auto":
            return self.embedding
        if self.fusion != "none":
            return "if"
        if self.use_asr and self.use_tpi:
            return "concat"
        if self.use_asr:
            return "is"
        if self.use_tpi:
            return "ip"
        return "base"

    @property
    def embedding_branches(self) -> tuple[str, ...]:
        """Branch features concatenated (in this order) into the retrieval embedding."""
        return EMBEDDING_BRANCHES[self.resolved_embedding]

    @property
    def embedding_dim(self) -> int:
        return len(self.embedding_branches) * self.feature_dim

    # ---------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, PreprocessSpec):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SpotConfig":
        if not isinstance(data, Mapping):
            raise ConfigError(f"a SpotConfig must be a mapping of fields, got {shown(data)}")
        _check_field_names(data)
        return cls(**data)

    def replace(self, **changes: Any) -> "SpotConfig":
        _check_field_names(changes)
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def fingerprint(self) -> str:
        """Short hash of the configuration (recorded in exported models, engines and galleries).

        Fields added later are hashed only when they differ from their default, so the
        fingerprint of a configuration that existed before them does not change.
        """
        data = self.to_dict()
        for name in _LATER_FIELDS:
            if data[name] == _DEFAULTS[name]:
                del data[name]
        return sha256_bytes(json.dumps(data, sort_keys=True).encode())[:16]

    def save(self, path: str | Path) -> None:
        """Write as YAML (``.yaml``/``.yml``) or JSON (anything else)."""
        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        else:
            text = json.dumps(self.to_dict(), indent=2)
        atomic_write_text(path, text)

    @classmethod
    def load(cls, path: str | Path) -> "SpotConfig":
        """Read a YAML (``.yaml``/``.yml``) or JSON file of fields, a ``preset`` plus overrides, or
        a training config (its ``model`` section)."""
        data = read_config_file(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{path} does not hold a mapping of SpotConfig fields")
        if "model" in data and isinstance(data["model"], dict):  # a training config
            data = data["model"]
        if "preset" in data:
            data = dict(data)
            return preset(data.pop("preset"), **data)
        return cls.from_dict(data)

    def differences(self, other: "SpotConfig") -> dict[str, tuple[Any, Any]]:
        """Fields whose values differ: ``{name: (self_value, other_value)}``."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b.get(k)}


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(SpotConfig) if f.default is not dataclasses.MISSING}


def _check_field_names(names: Mapping[str, Any] | Any) -> None:
    known = {f.name for f in dataclasses.fields(SpotConfig)}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ConfigError(f"unknown SpotConfig fields: {unknown}; known: {', '.join(sorted(known))}")


# ---------------------------------------------------------------------- presets
_BASELINE = dict(inject_structure=False, use_asr=False, use_tpi=False, fusion="none")

#: Table I of the paper, indices 1-6, by name.
TABLE1 = {
    "baseline": dict(_BASELINE),                                                  # 1: B
    "structure": dict(inject_structure=True, use_asr=False, use_tpi=False, fusion="none"),  # 2: B+S
    "asr": dict(inject_structure=True, use_asr=True, use_tpi=False, fusion="none"),   # 3: + L_IS
    "tpi": dict(inject_structure=True, use_asr=False, use_tpi=True, fusion="none"),   # 4: + L_IP
    "asr-tpi": dict(inject_structure=True, use_asr=True, use_tpi=True, fusion="none"),  # 5
    "spot": dict(inject_structure=True, use_asr=True, use_tpi=True, fusion="concat"),  # 6: SPOT
}
TABLE1_INDEX = {str(i + 1): name for i, name in enumerate(TABLE1)}

#: A small configuration for CPUs (ResNet-18, 128x64 input, narrower heads).
SMALL = dict(backbone="resnet18", preprocessing=PreprocessSpec(height=128, width=64, heatmap_stride=4),
             relation_channels=(32, 64, 128, 128), asr_key_dim=64, transformer_ffn_dim=512)


def preset_names() -> list[str]:
    return [*TABLE1, *(f"{n}-small" for n in TABLE1)]


def preset(name: str, **overrides: Any) -> SpotConfig:
    """A named configuration.

    Names: Table I's ``baseline`` (1), ``structure`` (2), ``asr`` (3), ``tpi`` (4),
    ``asr-tpi`` (5), ``spot`` (6), also by index ``"1"``..``"6"`` or ``"table1-<i>"``; each with a
    ``-small`` suffix for the CPU-sized network (ResNet-18, 128x64).
    """
    if not isinstance(name, str):
        raise ConfigError(f"preset must be a string (one of {', '.join(preset_names())}), got {shown(name)}")
    _check_field_names(overrides)
    key = name.lower().strip()
    small = key.endswith("-small")
    if small:
        key = key[: -len("-small")]
    key = TABLE1_INDEX.get(key.removeprefix("table1-"), key)
    if key not in TABLE1:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(preset_names())}")
    values = dict(TABLE1[key])
    if small:
        values.update(SMALL)
    values.update(overrides)
    return SpotConfig(**values)


def paper_table_configs(**overrides: Any) -> dict[str, SpotConfig]:
    """Every row of Tables I-III, the part sweep of Fig. 6 and the lambda sweeps of Fig. 7
    (lambda_1 from 0 to 1 at lambda_2 = 0.5, then lambda_2 from 0 to 1 at lambda_1 = 0.6; SPOT,
    Table I #6), labelled as in the paper."""
    rows: dict[str, SpotConfig] = {}
    labels = ["B", "B+S", "B+S+L_IS", "B+S+L_IP", "B+S+L_IS+L_IP", "SPOT (B+S+L_IS+L_IP+L_IF)"]
    for i, (name, label) in enumerate(zip(TABLE1, labels), start=1):
        rows[f"Table I #{i}: {label}"] = preset(name, **overrides)
    rows["Table II: B"] = preset("baseline", **overrides)
    for layer in (1, 2, 3, 4):
        rows[f"Table II: B+S_{layer}"] = preset("structure", inject_layer=layer, **overrides)
    rows["Table II: B+K_2"] = preset("structure", structure_source="keypoints", inject_layer=2, **overrides)
    rows["Table III: No fusion"] = preset("asr-tpi", **overrides)
    for fusion in ("max", "mean", "weighted", "concat"):
        rows[f"Table III: Fusion_{fusion}"] = preset("spot", fusion=fusion, **overrides)
    for p in range(2, 10):
        rows[f"Fig. 6: p={p}"] = preset("tpi", num_parts=p, **overrides)
    fixed = {k: v for k, v in overrides.items() if k not in ("lambda_is", "lambda_ip")}
    for value in FIG7_LAMBDAS:
        rows[f"Fig. 7(a): lambda_1={value}"] = preset("spot", **{**fixed, "lambda_is": value, "lambda_ip": 0.5})
    for value in FIG7_LAMBDAS:
        rows[f"Fig. 7(c): lambda_2={value}"] = preset("spot", **{**fixed, "lambda_is": 0.6, "lambda_ip": value})
    return rows
