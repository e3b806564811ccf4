"""Latency and throughput of SPOT inference, per stage and end to end (``spot-edge bench``).

- :mod:`.settings`  what to measure (:class:`BenchSettings`), the stages, backends and targets
- :mod:`.timing`    per-call latency (CUDA events on a GPU) and back-to-back throughput
- :mod:`.runners`   what the embed stages time: the PyTorch network (eager or a CUDA graph) and
  the :mod:`spot_edge.backends` embedders
- :mod:`.benchmark` the run over stages, backends, precisions and batch sizes (:func:`run_benchmark`)
- :mod:`.report`    targets, the PNG chart, JSON and Markdown outputs

Targets (datacenter GPU, PyTorch CUDA FP16 + CUDA graphs, 288x144 crops): under 2 ms at batch 1
and over 10,000 crops/s at batch 64; :func:`check_targets` reports them when they apply.
"""

from spot_edge.latency.benchmark import machine_info, random_crops, random_pose_maps, run_benchmark
from spot_edge.latency.report import check_targets, markdown_table, plot_report, write_report
from spot_edge.latency.runners import EmbedderRunner, TorchRunner, make_runner
from spot_edge.latency.settings import (BENCH_BACKENDS, DEFAULT_STAGES, PRECISIONS, REPORT_FORMAT, STAGES, TARGETS,
                                        BenchmarkError, BenchSettings)
from spot_edge.latency.timing import Timer, latency_stats

__all__ = ["STAGES", "DEFAULT_STAGES", "BENCH_BACKENDS", "PRECISIONS", "REPORT_FORMAT", "TARGETS", "BenchSettings",
           "BenchmarkError", "Timer", "TorchRunner", "EmbedderRunner", "make_runner", "latency_stats",
           "run_benchmark", "check_targets", "plot_report", "write_report", "markdown_table", "machine_info",
           "random_crops", "random_pose_maps"]
