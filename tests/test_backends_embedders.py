"""The Embedder interface: PyTorch, ONNX Runtime and TensorRT (double) agree; inputs are checked."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import trt_double
from engines_helpers import random_inputs, small_exports, small_model, small_prefix, torch_reference, workdir

from spot_edge.backends import BackendUnavailableError, Embedder, InputError, create_embedder
from spot_edge.backends.onnxruntime_backend import OnnxRuntimeEmbedder, choose_providers
from spot_edge.backends.torch_backend import TorchEmbedder
from spot_edge.device import DeviceError


@pytest.fixture(scope="module")
def ort_embedder():
    return create_embedder(small_prefix(), threads=2)


def test_auto_picks_onnxruntime_for_onnx_and_loads_both_modalities(ort_embedder):
    assert isinstance(ort_embedder, OnnxRuntimeEmbedder) and ort_embedder.name == "onnxruntime"
    assert ort_embedder.modalities == ("visible", "infrared")
    config = small_model().config
    assert ort_embedder.embedding_dim == config.embedding_dim
    assert ort_embedder.preprocessing == config.preprocessing
    assert ort_embedder.config_fingerprint == config.fingerprint()
    assert "CPUExecutionProvider" in ort_embedder.providers
    # a directory and an explicit mapping find the same graphs
    assert create_embedder(small_prefix().parent, threads=1).modalities == ("visible", "infrared")
    single = create_embedder(small_exports()["visible"], threads=1)
    assert single.modalities == ("visible",)
    with pytest.raises(InputError, match="cannot embed 'infrared'"):
        single.embed(*random_inputs(config, 1), "infrared")


@pytest.mark.parametrize("modality", ["visible", "infrared"])
def test_backends_agree_with_the_pytorch_reference(ort_embedder, modality):
    model = small_model()
    torch_embedder = create_embedder(model, device="cpu", max_batch=4)
    assert isinstance(torch_embedder, TorchEmbedder)
    images, heatmaps = random_inputs(model.config, 9, seed=3)
    expected = torch_reference(model, images, heatmaps, modality)
    for embedder in (torch_embedder, ort_embedder):
        got = embedder.embed(images, heatmaps, modality)
        assert got.dtype == np.float32 and got.shape == expected.shape
        assert np.abs(got - expected).max() < 1e-4
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_empty_batch_and_splitting(ort_embedder):
    config = small_model().config
    empty = ort_embedder.embed(*random_inputs(config, 0), "visible")
    assert empty.shape == (0, config.embedding_dim) and empty.dtype == np.float32
    images, heatmaps = random_inputs(config, 7, seed=9)
    small_batches = OnnxRuntimeEmbedder(small_prefix(), threads=1, max_batch=3)
    np.testing.assert_allclose(small_batches.embed(images, heatmaps, "infrared"),
                               ort_embedder.embed(images, heatmaps, "infrared"), atol=1e-5)


def _bad(kind: str):
    """Inputs of one family of mistakes for spot-small (each refused by Embedder.embed)."""
    import torch

    config = small_model().config
    images, heatmaps = random_inputs(config, 2)
    nan, inf = images.copy(), heatmaps.copy()
    nan[0, 0, 0, 0] = np.nan
    inf[1, 3, 2, 1] = np.inf
    cases = {
        "uint8 images": (images.astype(np.uint8), heatmaps, "visible"),
        "int64 images": (images.astype(np.int64), heatmaps, "visible"),
        "float16 images": (images.astype(np.float16), heatmaps, "visible"),
        "float16 torch heatmaps": (images, torch.from_numpy(heatmaps).half(), "visible"),
        "bfloat16 torch images": (torch.from_numpy(images).bfloat16(), heatmaps, "visible"),
        "images of another size": (images[:, :, :64], heatmaps, "visible"),
        "3-d images": (images[0], heatmaps, "visible"),
        "18 pose maps": (images, heatmaps[:, :18], "visible"),
        "batch sizes differ": (images, heatmaps[:1], "visible"),
        "NaN image": (nan, heatmaps, "visible"),
        "Inf pose map": (images, inf, "visible"),
        "raw 0..255 float pixels": (images * 0 + 200.0, heatmaps, "visible"),
        "huge finite images": (images * 1e30, heatmaps, "visible"),
        "huge pose maps": (images, heatmaps * 1e6, "visible"),
        "unknown modality": (images, heatmaps, "thermal"),
        "modality given as an index": (images, heatmaps, 0),
    }
    return cases[kind]


BAD_INPUTS = [
    ("uint8 images", "uint8; normalise"), ("int64 images", "must be float32"), ("float16 images", "float16"),
    ("float16 torch heatmaps", "float16"), ("bfloat16 torch images", "bfloat16"),
    ("images of another size", r"images must be \(B, 3, 128, 64\)"), ("3-d images", "images must be"),
    ("18 pose maps", r"heatmaps must be \(B, 56, 32, 16\)"), ("batch sizes differ", "batch sizes differ"),
    ("NaN image", "NaN or Inf"), ("Inf pose map", "NaN or Inf"), ("raw 0..255 float pixels", "normalise"),
    ("huge finite images", "far outside"), ("huge pose maps", "far outside"), ("unknown modality", "thermal"),
    ("modality given as an index", "cannot embed 0"),
]


@pytest.mark.parametrize("kind, message", BAD_INPUTS)
def test_bad_inputs_are_refused_with_input_error(ort_embedder, kind, message):
    with pytest.raises(InputError, match=message):
        ort_embedder.embed(*_bad(kind))


def test_accepted_conversions(ort_embedder):
    """float64 arrays and float32 torch tensors are the same inputs."""
    import torch

    images, heatmaps = random_inputs(small_model().config, 2)
    a = ort_embedder.embed(images.astype(np.float64), torch.from_numpy(heatmaps), "visible")
    np.testing.assert_allclose(a, ort_embedder.embed(images, heatmaps, "visible"), atol=1e-6)


def test_a_non_finite_embedding_is_refused():
    """An overflow inside the network that the input checks let through is still not returned."""
    class Overflowing(Embedder):
        name = "overflowing"
        preprocessing = small_model().config.preprocessing
        embedding_dim = 4
        modalities = ("visible",)

        def _embed_batch(self, images, heatmaps, modality):
            out = np.ones((images.shape[0], 4), np.float32)
            out[-1] = np.nan
            return out

    with pytest.raises(InputError, match="1 of 3 inputs .* not finite"):
        Overflowing().embed(*random_inputs(small_model().config, 3), "visible")


@pytest.mark.parametrize("make, error, message", [
    (lambda tmp: create_embedder(small_prefix(), backend="tflite"), InputError, "unknown backend"),
    (lambda tmp: create_embedder(small_prefix(), backend="pytorch"), InputError, "cannot run a onnx"),
    (lambda tmp: create_embedder(tmp / "nothing"), FileNotFoundError, "no checkpoint"),
    (lambda tmp: create_embedder(small_model(), device="tpu"), DeviceError, "unknown device"),
    (lambda tmp: create_embedder(small_prefix(), device="npu"), InputError, "unknown device"),
    (lambda tmp: create_embedder(small_prefix(), threads=0), InputError, "threads"),
    (lambda tmp: create_embedder(small_prefix(), max_batch=0), InputError, "max_batch"),
    (lambda tmp: TorchEmbedder(small_model(), device="cpu", fp16=True), BackendUnavailableError, "fp16"),
    (lambda tmp: TorchEmbedder(small_model(), device="cpu", cuda_graphs=True), BackendUnavailableError, "cuda_graphs"),
])
def test_factory_errors(tmp_path, make, error, message):
    with pytest.raises(error, match=message):
        make(tmp_path)


def test_cuda_without_a_gpu_is_a_device_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        create_embedder(small_model(), device="cuda")


def test_provider_choice():
    assert choose_providers("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers("auto", ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]) \
        == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("auto", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(BackendUnavailableError, match="onnxruntime-gpu"):
        choose_providers("cuda", ["CPUExecutionProvider"])


def test_mismatched_graphs_are_refused(tmp_path):
    import shutil

    from spot_edge.engines import export_onnx

    from spot_edge.model import SPOT, preset

    shutil.copyfile(small_exports()["visible"], tmp_path / "m.visible.onnx")
    other = SPOT(preset("spot-small", num_classes=7)).eval()
    export_onnx(other, tmp_path / "m.infrared.onnx", "infrared", check=False)
    with pytest.raises(ValueError, match="different models"):
        create_embedder(tmp_path / "m")


def test_checkpoint_runs_on_pytorch_and_onnxruntime(tmp_path):
    from spot_edge.model import save_checkpoint

    model = small_model()
    checkpoint = save_checkpoint(model, tmp_path / "spot.safetensors")
    images, heatmaps = random_inputs(model.config, 3, seed=4)
    expected = torch_reference(model, images, heatmaps, "infrared")
    auto = create_embedder(checkpoint, device="cpu")
    assert auto.name == "pytorch"
    assert np.abs(auto.embed(images, heatmaps, "infrared") - expected).max() < 1e-4
    exported = create_embedder(checkpoint, backend="onnxruntime", device="cpu", threads=1,
                               export_dir=tmp_path / "onnx")
    assert exported.name == "onnxruntime" and sorted(p.name for p in (tmp_path / "onnx").iterdir()) == [
        "spot.infrared.onnx", "spot.visible.onnx"]
    assert np.abs(exported.embed(images, heatmaps, "infrared") - expected).max() < 1e-4


def test_tensorrt_backend_with_the_double(monkeypatch, tmp_path):
    from spot_edge.engines import BatchProfile, BuildOptions, GpuInfo, build_engine

    monkeypatch.setitem(sys.modules, "tensorrt", trt_double.as_module("11.1"))
    gpu = GpuInfo("Orin", (8, 7))
    for modality, onnx_path in small_exports().items():
        build_engine(onnx_path, tmp_path / f"spot.{modality}.fp16.engine",
                     BuildOptions(profiles=(BatchProfile(1, 2, 4),)), gpu=gpu)
    embedder = create_embedder(tmp_path / "spot", device="cpu", gpu=gpu)
    assert embedder.name == "tensorrt" and embedder.modalities == ("visible", "infrared")
    assert embedder.max_batch == 4
    model = small_model()
    images, heatmaps = random_inputs(model.config, 6, seed=8)
    for modality in ("visible", "infrared"):
        expected = torch_reference(model, images, heatmaps, modality)
        assert np.abs(embedder.embed(images, heatmaps, modality) - expected).max() < 1e-4
    assert embedder.describe()["engines"]["visible"]["profiles"] == [[1, 2, 4]]


def test_tensorrt_backend_unavailable_is_clear(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(BackendUnavailableError, match="TensorRT is not installed"):
        create_embedder(workdir() / "none.engine", backend="tensorrt")


def test_embedder_is_an_abc_others_can_implement():
    class Constant(Embedder):
        name = "constant"
        preprocessing = small_model().config.preprocessing
        embedding_dim = 4
        modalities = ("visible",)
        max_batch = 2

        def _embed_batch(self, images, heatmaps, modality):
            return np.tile(np.array([1.0, 0, 0, 0], np.float32), (images.shape[0], 1))

    out = Constant().embed(*random_inputs(small_model().config, 5), "visible")
    assert out.shape == (5, 4)
    with pytest.raises(TypeError):
        Embedder()


def test_cuda_graph_runner_needs_a_cuda_model():
    from spot_edge.backends.cuda_graphs import CudaGraphRunner

    with pytest.raises(ValueError, match="CUDA device"):
        CudaGraphRunner(small_model())


@pytest.mark.gpu
def test_cuda_graph_replay_matches_eager():
    import torch

    from spot_edge.backends.cuda_graphs import CudaGraphRunner
    from spot_edge.model import SPOT, preset

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    model = SPOT(preset("spot-small")).eval().cuda()
    images, heatmaps = (torch.from_numpy(a).cuda() for a in random_inputs(model.config, 4, seed=3))
    runner = CudaGraphRunner(model)
    with torch.inference_mode():
        eager = model(images, heatmaps, "visible")
    replayed = runner(images, heatmaps, "visible").clone()
    torch.testing.assert_close(replayed, eager, atol=1e-4, rtol=1e-4)
    static_images, _ = runner.static_inputs(images, heatmaps, "visible")
    static_images.copy_(images.flip(0))
    torch.testing.assert_close(runner(static_images, heatmaps.flip(0), "visible"), eager.flip(0), atol=1e-4, rtol=1e-4)
