"""The SPOT network (Chen, Ye et al., IEEE TIP 2022) as plain, readable nn.Modules.

- :mod:`.config`     ``SpotConfig``, presets for Table I, every row of Tables I-III
- :mod:`.config_checks` field type/range checks and reading config files (file:line errors)
- :mod:`.backbone`   dual-path ResNet (modality-specific stem..layer2, shared layer3..layer4)
- :mod:`.structure`  relation network (eq. 1) and structure injection ("B+S_i")
- :mod:`.asr`        attended structure representation (eqs. 3-6)
- :mod:`.tpi`        transformer-based part interaction (eqs. 7-10)
- :mod:`.heads`      pooling, fusion block (eq. 12), BN-neck classifiers
- :mod:`.spot`       the assembled ``SPOT`` network
- :mod:`.checkpoint` safetensors checkpoints with the config stored beside the weights
"""

from spot_edge.model.backbone import MODALITIES, DualPathResNet
from spot_edge.model.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from spot_edge.model.config import ConfigError, SpotConfig, paper_table_configs, preset, preset_names
from spot_edge.model.spot import SPOT, InputError, modality_index

__all__ = [
    "SPOT", "SpotConfig", "ConfigError", "InputError", "CheckpointError", "MODALITIES", "DualPathResNet",
    "preset", "preset_names", "paper_table_configs", "save_checkpoint", "load_checkpoint", "read_checkpoint",
    "modality_index",
]
