"""Read (and write) Caffe ``.caffemodel`` files without Caffe.

A ``.caffemodel`` is a serialised ``caffe.NetParameter`` protobuf. This module declares the few
messages and fields needed to get at the weights (a subset of Caffe's ``caffe.proto``, field
numbers unchanged) through the ``protobuf`` package's descriptor API, so no ``protoc`` and no
Caffe are needed. Unknown fields (solver state, layer parameters) are skipped by the parser.

Subset of ``caffe.proto`` used::

    message BlobShape { repeated int64 dim = 1 [packed = true]; }
    message BlobProto {
      optional int32 num = 1; optional int32 channels = 2;     // legacy 4-D shape
      optional int32 height = 3; optional int32 width = 4;
      repeated float data = 5 [packed = true];
      optional BlobShape shape = 7;
      repeated double double_data = 8 [packed = true];
    }
    message LayerParameter {                                   // current format
      optional string name = 1; optional string type = 2; repeated BlobProto blobs = 7;
    }
    message V1LayerParameter {                                 // pre-2015 format
      optional string name = 4; optional int32 type = 5; repeated BlobProto blobs = 6;
    }
    message NetParameter {
      optional string name = 1; repeated V1LayerParameter layers = 2; repeated LayerParameter layer = 100;
    }

The OpenPose COCO body model (``pose_iter_440000.caffemodel``) converts to the PyTorch port's
layout: ``<layer>.weight`` = blob 0 ``(out, in, kh, kw)``, ``<layer>.bias`` = blob 1.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from pathlib import Path

import numpy as np

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


class CaffeModelError(ValueError):
    """The file is not a readable Caffe model, or its blobs are inconsistent."""


_F = descriptor_pb2.FieldDescriptorProto


def _field(msg, name: str, number: int, ftype, label=_F.LABEL_OPTIONAL, type_name: str | None = None,
           packed: bool = False) -> None:
    f = msg.field.add(name=name, number=number, type=ftype, label=label)
    if type_name:
        f.type_name = type_name
    if packed:
        f.options.packed = True


@functools.lru_cache(maxsize=1)
def _messages() -> dict[str, type]:
    fd = descriptor_pb2.FileDescriptorProto(name="spot_edge_caffe_subset.proto", package="spot_edge_caffe",
                                            syntax="proto2")
    rep = _F.LABEL_REPEATED
    shape = fd.message_type.add(name="BlobShape")
    _field(shape, "dim", 1, _F.TYPE_INT64, rep, packed=True)
    blob = fd.message_type.add(name="BlobProto")
    for i, n in enumerate(("num", "channels", "height", "width"), start=1):
        _field(blob, n, i, _F.TYPE_INT32)
    _field(blob, "data", 5, _F.TYPE_FLOAT, rep, packed=True)
    _field(blob, "shape", 7, _F.TYPE_MESSAGE, type_name=".spot_edge_caffe.BlobShape")
    _field(blob, "double_data", 8, _F.TYPE_DOUBLE, rep, packed=True)
    layer = fd.message_type.add(name="LayerParameter")
    _field(layer, "name", 1, _F.TYPE_STRING)
    _field(layer, "type", 2, _F.TYPE_STRING)
    _field(layer, "blobs", 7, _F.TYPE_MESSAGE, rep, type_name=".spot_edge_caffe.BlobProto")
    v1 = fd.message_type.add(name="V1LayerParameter")
    _field(v1, "name", 4, _F.TYPE_STRING)
    _field(v1, "type", 5, _F.TYPE_INT32)
    _field(v1, "blobs", 6, _F.TYPE_MESSAGE, rep, type_name=".spot_edge_caffe.BlobProto")
    net = fd.message_type.add(name="NetParameter")
    _field(net, "name", 1, _F.TYPE_STRING)
    _field(net, "layers", 2, _F.TYPE_MESSAGE, rep, type_name=".spot_edge_caffe.V1LayerParameter")
    _field(net, "layer", 100, _F.TYPE_MESSAGE, rep, type_name=".spot_edge_caffe.LayerParameter")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"spot_edge_caffe.{n}"))
            for n in ("BlobShape", "BlobProto", "LayerParameter", "V1LayerParameter", "NetParameter")}


def _blob_array(blob, layer_name: str, index: int) -> np.ndarray:
    if len(blob.shape.dim):
        shape = tuple(int(d) for d in blob.shape.dim)
    else:
        shape = tuple(int(v) for v in (blob.num, blob.channels, blob.height, blob.width))
        # legacy blobs pad the shape with leading 1s; a bias is (1, 1, 1, n)
    values = np.asarray(blob.data, dtype=np.float32) if len(blob.data) else np.asarray(blob.double_data, dtype=np.float32)
    if int(np.prod(shape)) != values.size:
        raise CaffeModelError(
            f"blob {index} of layer {layer_name!r} declares shape {shape} ({int(np.prod(shape))} values) "
            f"but holds {values.size}: the file is truncated or corrupt")
    return values.reshape(shape)


def read_caffemodel(path_or_bytes) -> "OrderedDict[str, list[np.ndarray]]":
    """All layers with blobs: ``{layer_name: [blob0, blob1, ...]}`` as float32 arrays, in file order."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
        where = "<bytes>"
    else:
        path = Path(path_or_bytes)
        if not path.is_file():
            raise FileNotFoundError(f"Caffe model not found: {path}")
        data = path.read_bytes()
        where = str(path)
    net = _messages()["NetParameter"]()
    try:
        net.ParseFromString(data)
    except Exception as exc:  # protobuf raises its own DecodeError
        raise CaffeModelError(f"{where} is not a Caffe NetParameter protobuf ({exc}); pass the .caffemodel "
                              "(binary weights), not the .prototxt") from exc
    layers: OrderedDict[str, list[np.ndarray]] = OrderedDict()
    for layer in list(net.layer) + list(net.layers):
        if len(layer.blobs) == 0:
            continue
        if layer.name in layers:
            raise CaffeModelError(f"{where}: layer {layer.name!r} appears twice")
        layers[layer.name] = [_blob_array(b, layer.name, i) for i, b in enumerate(layer.blobs)]
    if not layers:
        raise CaffeModelError(f"{where} holds no layers with weights; is it a .caffemodel?")
    return layers


def caffemodel_to_state_dict(path_or_bytes) -> "OrderedDict[str, 'torch.Tensor']":
    """Convert a Caffe model's conv/inner-product blobs to a PyTorch state dict.

    ``<layer>.weight`` gets blob 0 (its own shape; legacy 4-D biases are flattened) and
    ``<layer>.bias`` blob 1. For the OpenPose COCO body model the result has the keys of the
    PyTorch port's ``body_pose_model.pth``.
    """
    import torch

    sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    for name, blobs in read_caffemodel(path_or_bytes).items():
        if len(blobs) > 2:
            raise CaffeModelError(f"layer {name!r} has {len(blobs)} blobs; only conv/fc layers (weight, bias) "
                                  "are supported (BatchNorm/Scale layers are not part of the OpenPose model)")
        sd[f"{name}.weight"] = torch.from_numpy(np.ascontiguousarray(blobs[0]))
        if len(blobs) == 2:
            sd[f"{name}.bias"] = torch.from_numpy(np.ascontiguousarray(blobs[1].reshape(-1)))
    return sd


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _packed_floats_field(number: int, arr: np.ndarray) -> bytes:
    """Wire encoding of ``repeated float <number> [packed = true]`` holding ``arr``."""
    payload = np.ascontiguousarray(arr, dtype="<f4").tobytes()
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def state_dict_to_caffemodel(state_dict, name: str = "net", legacy: bool = False) -> bytes:
    """Serialise ``{layer.weight, layer.bias}`` tensors as a ``.caffemodel`` (used by tests and for
    interop). ``legacy=True`` writes the pre-2015 ``layers``/num-channels-height-width form."""
    msgs = _messages()
    net = msgs["NetParameter"](name=name)
    layer_names: list[str] = []
    for key in state_dict:
        stem = key.rsplit(".", 1)[0]
        if stem not in layer_names:
            layer_names.append(stem)
    for stem in layer_names:
        layer = net.layers.add(name=stem, type=4) if legacy else net.layer.add(name=stem, type="Convolution")
        for suffix in ("weight", "bias"):
            key = f"{stem}.{suffix}"
            if key not in state_dict:
                continue
            arr = np.asarray(state_dict[key].detach().cpu().numpy() if hasattr(state_dict[key], "detach")
                             else state_dict[key], dtype=np.float32)
            blob = layer.blobs.add()
            if legacy:
                dims = (1,) * (4 - arr.ndim) + arr.shape
                blob.num, blob.channels, blob.height, blob.width = (int(d) for d in dims)
            else:
                blob.shape.dim.extend(int(d) for d in arr.shape)
            blob.MergeFromString(_packed_floats_field(5, arr))  # data, without a Python float list
    return net.SerializeToString()


__all__ = ["CaffeModelError", "read_caffemodel", "caffemodel_to_state_dict", "state_dict_to_caffemodel"]
