"""TensorRT plugin libraries, loaded once per process.

``IPluginRegistry.load_library(path)`` registers a library's plugin creators and returns a handle;
it returns **None** when the library cannot be opened *or when any of its plugins is already
registered* (TensorRT 10.3 and 11.1 docstrings). So the second load in one process (building and
then running an engine; a visible and an infrared plugin engine) must not be treated as a
failure. :func:`load_plugin_libraries` therefore:

- loads each library (by real path) at most once per ``tensorrt`` module, remembering its version;
- when ``load_library`` returns None, asks the registry whether the library's creators are
  registered (``get_creator(name, version, namespace)`` for the spot-edge plugins of
  ``spot_edge.kernels.onnx_plugins``): yes means "loaded before in this process", no is an error;
- registers TensorRT's own plugins (``init_libnvinfer_plugins``) once.
"""

from __future__ import annotations

import ctypes
import os
import weakref
from pathlib import Path
from typing import Sequence

from spot_edge.errors import SpotEdgeError

__all__ = ["PluginLoadError", "load_plugin_libraries", "kernels_plugin_version", "spot_edge_creators"]


class PluginLoadError(SpotEdgeError, RuntimeError):
    """A plugin library could not be loaded into TensorRT's plugin registry."""


class _ProcessState:
    def __init__(self) -> None:
        self.libraries: dict[str, str] = {}  # real path -> version
        self.builtin_registered = False


#: per ``tensorrt`` module object (one in a real process; tests swap module doubles)
_STATES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def kernels_plugin_version() -> str:
    """The version the spot-edge plugin creators register under."""
    from spot_edge.kernels.onnx_plugins import PLUGIN_VERSION

    return str(PLUGIN_VERSION)


def spot_edge_creators() -> list[tuple[str, str, str]]:
    """``(name, version, namespace)`` of the spot-edge plugin creators."""
    from spot_edge.kernels import onnx_plugins

    return [(name, str(onnx_plugins.PLUGIN_VERSION), onnx_plugins.PLUGIN_NAMESPACE)
            for name in onnx_plugins.PLUGIN_OP_TYPES]


def _library_version(path: str) -> str:
    """``spot_edge_plugin_version()`` when the library exports it, else the kernels' version."""
    try:
        getter = getattr(ctypes.CDLL(path), "spot_edge_plugin_version", None)
    except OSError:
        getter = None
    if getter is None:
        return kernels_plugin_version()
    getter.restype = ctypes.c_char_p
    return getter().decode()


def _registered(registry) -> bool:
    return all(registry.get_creator(name, version, namespace) is not None
               for name, version, namespace in spot_edge_creators())


def load_plugin_libraries(trt, logger, libraries: Sequence[str | os.PathLike]) -> dict[str, str]:
    """Load ``libraries`` into TensorRT's plugin registry (each once per process) and register
    TensorRT's own plugins; returns ``{library file name: version}`` for the engine metadata."""
    state = _STATES.setdefault(trt, _ProcessState())
    registry = trt.get_plugin_registry()
    loaded: dict[str, str] = {}
    for library in libraries:
        path = Path(library)
        if not path.is_file():
            raise FileNotFoundError(f"plugin library not found: {path}")
        real = os.path.realpath(path)
        if real not in state.libraries:
            handle = registry.load_library(real)
            if handle is None and not _registered(registry):
                raise PluginLoadError(f"TensorRT could not load the plugin library {path} (load_library returned "
                                      f"None and the spot-edge plugin creators are not registered): is it built for "
                                      f"TensorRT {trt.__version__} and this GPU? See spot_edge/kernels")
            state.libraries[real] = _library_version(real)
        loaded[path.name] = state.libraries[real]
    if not state.builtin_registered:
        trt.init_libnvinfer_plugins(logger, "")
        state.builtin_registered = True
    return loaded
