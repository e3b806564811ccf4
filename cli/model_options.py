"""The model a command works on, from the options users give: a checkpoint, a config file or a preset."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from spot_edge.cli.common import CliError

__all__ = ["model_from_options"]


def model_from_options(preset_name: str, config: Optional[Path], checkpoint: Optional[Path]):
    """A :class:`spot_edge.model.SPOT` from ``checkpoint`` (its stored config), else ``config`` (a
    SpotConfig YAML/JSON file), else the named preset (random weights: fine for timing and
    counting). Paths are absolute already (``user_path``); giving both files is a usage error."""
    from spot_edge.model import SPOT, SpotConfig, load_checkpoint, preset

    if checkpoint is not None and config is not None:
        raise CliError("give --checkpoint or --config, not both (a checkpoint carries its config)")
    if checkpoint is not None:
        return load_checkpoint(checkpoint)
    return SPOT(SpotConfig.load(config) if config is not None else preset(preset_name))
