"""When a running pipeline is healthy: the rule behind ``/healthz``.

A run is *unhealthy* when

- a camera was given up (status ``failed``: it never came, or stayed down past the reconnect
  timeout, or its file could not be read), or
- a camera has been down (reconnecting, or not opened yet after a failed attempt) for longer than
  the *grace* (seconds), or
- the run stopped on an error (the embedder or an output failed).

A camera that is reconnecting within the grace, or a file that ended (``finished``), is healthy.
:func:`assess_health` is a pure function of what the pipeline reports, so the rule is tested
without threads or clocks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: Camera statuses during which a source delivers no frames (see ``spot_edge.pipeline.reconnecting``).
DOWN_STATUSES = ("starting", "reconnecting")


@dataclass(frozen=True)
class CameraHealth:
    """One camera as the health check sees it.

    Attributes:
        name: the source's name.
        status: ``starting``, ``running``, ``reconnecting``, ``finished``, ``stopped`` or ``failed``.
        down_for_s: seconds since it last stopped delivering frames (``None`` while it delivers).
        healthy: whether this camera is fine.
        problem: why not (``None`` when healthy).
    """

    name: str
    status: str
    down_for_s: float | None
    healthy: bool
    problem: str | None = None


@dataclass(frozen=True)
class HealthReport:
    """The answer of ``/healthz``: ``healthy`` (HTTP 200) or not (HTTP 503), and why."""

    healthy: bool
    cameras: list[CameraHealth] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def http_status(self) -> int:
        return 200 if self.healthy else 503

    def to_dict(self) -> dict[str, Any]:
        return {"status": "ok" if self.healthy else "unhealthy", "problems": list(self.problems),
                "cameras": {c.name: {k: v for k, v in asdict(c).items() if k != "name"} for c in self.cameras}}


def camera_health(name: str, status: str, down_for_s: float | None, grace_s: float,
                  last_error: str | None = None) -> CameraHealth:
    """The health of one camera (see the module docstring)."""
    down = None if down_for_s is None else round(float(down_for_s), 3)
    if status == "failed":
        why = f"{name}: given up" + (f" ({last_error})" if last_error else "")
        return CameraHealth(name, status, down, False, why)
    if status in DOWN_STATUSES and down is not None and down > grace_s:
        why = f"{name}: no frame for {down:.1f} s (grace {grace_s:g} s)" + (f"; last error: {last_error}"
                                                                             if last_error else "")
        return CameraHealth(name, status, down, False, why)
    return CameraHealth(name, status, down, True)


def assess_health(sources: dict[str, dict[str, Any]], down_for: dict[str, float | None], grace_s: float,
                  stop_reason: str | None = None, errors: list[str] | None = None) -> HealthReport:
    """The health of a run.

    Args:
        sources: per camera, its counters (``status``, ``last_error``), as
            :meth:`spot_edge.pipeline.stats.Counters.to_dict` gives them.
        down_for: per camera, seconds it has been down (``None``: delivering).
        grace_s: how long a camera may be down before the run is unhealthy.
        stop_reason: the pipeline's stop reason; ``"error"`` (the embedder or an output failed) is
            unhealthy.
        errors: the run's errors so far (reported with an ``"error"`` stop).
    """
    cameras = [camera_health(name, c.get("status", "starting"), down_for.get(name), grace_s, c.get("last_error"))
               for name, c in sources.items()]
    problems = [c.problem for c in cameras if c.problem]
    if stop_reason == "error":
        problems.append("the run stopped on an error" + (f": {errors[-1]}" if errors else ""))
    return HealthReport(healthy=not problems, cameras=cameras, problems=problems)


__all__ = ["CameraHealth", "HealthReport", "assess_health", "camera_health", "DOWN_STATUSES"]
