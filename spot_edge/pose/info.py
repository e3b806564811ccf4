"""Parameter and compute counts of the pose network, next to the published model's."""

from __future__ import annotations

from dataclasses import dataclass

from spot_edge.pose.network import BACKBONE_LAYERS, PoseNetConfig, get_pose_config, stage_layers

# The CMU COCO body model (pose_iter_440000.caffemodel, 6 stages); this module counts its MACs.
PUBLISHED_PARAMS = 52_311_446
PUBLISHED_GMAC = {(368, 368): 136.0, (288, 144): 42.0}


@dataclass(frozen=True)
class PoseNetCost:
    params: int
    backbone_params: int
    macs: int  # multiply-accumulates at the given input size
    backbone_macs: int
    input_hw: tuple[int, int]


def count_cost(config: str | PoseNetConfig = "openpose_coco", input_hw: tuple[int, int] = (368, 368)) -> PoseNetCost:
    """Analytic parameters and MACs of a configuration at a (padded) input size.

    Convolutions only (ReLU/pool/concat are not MACs). The backbone is conv1_1 .. conv4_4_CPM.
    """
    cfg = get_pose_config(config)
    h, w = input_hw
    params = macs = 0
    level = 0
    for name, cin, cout, k, pool in BACKBONE_LAYERS:
        n = cin * cout * k * k
        params += n + cout
        macs += n * (h // 2 ** level) * (w // 2 ** level)
        level += int(pool)
    backbone_params, backbone_macs = params, macs
    hw8 = (h // 8) * (w // 8)
    for stage in range(1, cfg.num_stages + 1):
        for branch in (1, 2):
            for name, cin, cout, k in stage_layers(stage, branch):
                n = cin * cout * k * k
                params += n + cout
                macs += n * hw8
    return PoseNetCost(params, backbone_params, macs, backbone_macs, (h, w))


def cost_table(configs=("openpose_coco", "openpose_coco_lite"), sizes=((368, 368), (288, 144))) -> list[dict]:
    """Rows (config, input, params, GMAC, VGG share, published params/GMAC) for printing."""
    rows = []
    for name in configs:
        cfg = get_pose_config(name)
        for size in sizes:
            c = count_cost(cfg, size)
            full = cfg.num_stages == 6
            rows.append({
                "config": cfg.name, "stages": cfg.num_stages, "input": f"{size[0]}x{size[1]}",
                "params_M": c.params / 1e6, "gmac": c.macs / 1e9, "backbone_share": c.backbone_macs / c.macs,
                "published_params_M": PUBLISHED_PARAMS / 1e6 if full else None,
                "published_gmac": PUBLISHED_GMAC.get(tuple(size)) if full else None,
            })
    return rows


__all__ = ["PUBLISHED_PARAMS", "PUBLISHED_GMAC", "PoseNetCost", "count_cost", "cost_table"]
