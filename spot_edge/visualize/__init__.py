"""Pictures of what SPOT sees: activation overlays (Fig. 8), part maps, t-SNE (Fig. 9), retrievals.

- :mod:`.cam`       class-activation overlays, baseline vs SPOT on the same crops
- :mod:`.parts`     TPI part maps per person, the argmax node partition, ASR attention
- :mod:`.tsne`      t-SNE of embeddings, colour = identity, marker = modality
- :mod:`.retrieval` top-k gallery matches per query, green/red frames
- :mod:`.inputs`    crops + pose maps for a model; synthetic people for a quick look
- :mod:`.common`    overlays, captions, grids, atomic PNG writing

Every ``save_*`` function writes a PNG and returns its path; the ``*_panel`` functions return
the ``(H, W, 3)`` uint8 BGR picture.
"""

from spot_edge.visualize.cam import CAM_METHODS, activation_maps, cam_panel, save_cam_panel
from spot_edge.visualize.common import overlay_map, write_png
from spot_edge.visualize.inputs import modality_argument, model_inputs, pose_maps_from_keypoints, synthetic_people
from spot_edge.visualize.parts import (asr_attention_received, node_partition, part_maps, parts_panel,
                                       save_parts_panel)
from spot_edge.visualize.retrieval import rank_gallery, retrieval_panel, save_retrieval_panel
from spot_edge.visualize.tsne import plot_tsne, tsne_2d

__all__ = [
    "CAM_METHODS", "activation_maps", "cam_panel", "save_cam_panel",
    "part_maps", "node_partition", "asr_attention_received", "parts_panel", "save_parts_panel",
    "tsne_2d", "plot_tsne",
    "rank_gallery", "retrieval_panel", "save_retrieval_panel",
    "model_inputs", "modality_argument", "pose_maps_from_keypoints", "synthetic_people",
    "overlay_map", "write_png",
]
