"""Small generated OpenPose networks for the pose tests (helpers, not tests)."""

from __future__ import annotations

import torch

from spot_edge.pose.network import OpenPoseBody, PoseNetConfig
from spot_edge.pose.parse import ParseConfig
from spot_edge.pose.weights import load_pose_weights

ONE_STAGE = PoseNetConfig(name="test_1stage", num_stages=1)
LOOSE = ParseConfig(min_parts=2, min_mean_score=0.0)  # people out of random maps


def scaled_random_network(config: PoseNetConfig = ONE_STAGE, seed: int = 0, gain: float = 30.0) -> OpenPoseBody:
    """Random weights, "loaded", with the output layers scaled so that the maps reach the
    parser's thresholds (random maps are otherwise below 0.1)."""
    torch.manual_seed(seed)
    net = OpenPoseBody(config).eval()
    weights = {k: v * gain if k.startswith("conv5_5_CPM") else v.clone() for k, v in net.state_dict().items()}
    load_pose_weights(net, weights)
    return net
