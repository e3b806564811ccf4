// plugin_common.h -- names, dtype mapping and attribute parsing shared by the SPOT IPluginV3 plugins.
//
// The plugins wrap the C API of libspot_edge_kernels (kernels/cuda/spot_kernels.h); they are
// registered under the namespace "spot_edge", version "1", and match the ONNX nodes emitted by
// spot_edge.kernels.onnx_plugins (op_type = plugin name, attributes plugin_version /
// plugin_namespace, float attribute scale / eps).
#pragma once

#include "trt_compat.h"

#include <cstdint>
#include <cstring>
#include <string>

#include "spot_kernels.h"

namespace spot_edge {
namespace trt {

constexpr char const* kPluginNamespace = "spot_edge";
constexpr char const* kPluginVersion = "1";
constexpr char const* kStructureAttentionName = "SpotStructureAttention";
constexpr char const* kPartPoolName = "SpotPartPool";

// TensorRT data type -> spot_dtype code, or -1 when the kernels do not take it.
inline int toSpotDtype(nvinfer1::DataType type) noexcept {
    switch (type) {
        case nvinfer1::DataType::kFLOAT: return SPOT_DTYPE_FLOAT32;
        case nvinfer1::DataType::kHALF: return SPOT_DTYPE_FLOAT16;
        case nvinfer1::DataType::kBF16: return SPOT_DTYPE_BFLOAT16;
        default: return -1;
    }
}

// Linear layout, a kernel dtype, and (after the first tensor) the first tensor's dtype.
inline bool supportsLinearSameType(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut) noexcept {
    nvinfer1::PluginTensorDesc const& desc = inOut[pos].desc;
    if (desc.format != nvinfer1::TensorFormat::kLINEAR || toSpotDtype(desc.type) < 0) return false;
    return pos == 0 || desc.type == inOut[0].desc.type;
}

// Read one float attribute (ONNX float -> kFLOAT32; kFLOAT64 accepted too).
inline bool readFloatField(nvinfer1::PluginFieldCollection const* fc, char const* name, float& value) noexcept {
    if (fc == nullptr) return false;
    for (int32_t i = 0; i < fc->nbFields; ++i) {
        nvinfer1::PluginField const& field = fc->fields[i];
        if (field.name == nullptr || std::strcmp(field.name, name) != 0 || field.data == nullptr) continue;
        if (field.type == nvinfer1::PluginFieldType::kFLOAT32) {
            value = *static_cast<float const*>(field.data);
            return true;
        }
        if (field.type == nvinfer1::PluginFieldType::kFLOAT64) {
            value = static_cast<float>(*static_cast<double const*>(field.data));
            return true;
        }
    }
    return false;
}

// Creator entry points (defined next to each plugin), collected by plugin_registration.cpp.
nvinfer1::IPluginCreatorInterface* structureAttentionCreator() noexcept;
nvinfer1::IPluginCreatorInterface* partPoolCreator() noexcept;

}  // namespace trt
}  // namespace spot_edge
