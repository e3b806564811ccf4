"""spot_edge.training: data, training loop and evaluation protocols.

- :mod:`.datasets`       SYSU-MM01 / RegDB readers reproducing the community protocol
- :mod:`.synthetic_dataset` synthetic cross-modality ReID set in the SYSU-MM01 layout (writing)
- :mod:`.synthetic_identity` who a synthetic person is (appearance drawn from a seed)
- :mod:`.synthetic_render`  one image of a synthetic person (3-D body model, colour / thermal)
- :mod:`.heatmap_cache`  pose maps per image, built once, memory-mapped, with a manifest
- :mod:`.sampler`        identity sampler (N ids x K visible + K infrared per batch)
- :mod:`.augment`        flip / pad-crop applied to image and pose maps alike, random erasing
- :mod:`.data`           image store and augmented cross-modality batches
- :mod:`.losses`         eq. 13: BN-neck cross-entropies + batch-hard triplet
- :mod:`.config`         the YAML training configuration
- :mod:`.loop`           the training loop: resume / one epoch / save (``Trainer``)
- :mod:`.train_state`    the training state for an exact resume, without pickle
- :mod:`.run_context`    rank, world size, device; RNG seeding and states
- :mod:`.optimizer`      SGD with parameter groups (backbone, new modules, heads), warm-up, step
                         decays, gradient clipping
- :mod:`.progress`       the progress bar
- :mod:`.evaluation`     SYSU all/indoor x 10 trials, RegDB both directions x 10 splits, and the
                         same code on a validation split of training identities
- :mod:`.selection`      best epoch on the validation split (``run.select: best-val``)
- :mod:`.run_log`        metrics.jsonl and the loss/accuracy plot

Submodules are imported on use (torch is not loaded by ``import spot_edge.training``).
"""
