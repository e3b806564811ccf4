// structure_attention_plugin.cpp -- TensorRT 10 IPluginV3 plugin "SpotStructureAttention".
//
// Inputs q (B, N, Dk), k (B, N, Dk), v (B, N, Dv); output (B, N, Dv) =
// softmax(scale q k^T) v (SPOT eqs. 4-5). fp32 / fp16 / bf16, linear layout, all tensors of
// one type. Attribute: "scale" (float32, default 1). Runs spot_structure_attention().
#include "plugin_common.h"

#include <new>

namespace spot_edge {
namespace trt {
namespace {

using namespace nvinfer1;

class StructureAttentionPlugin final : public IPluginV3,
                                       public IPluginV3OneCore,
                                       public IPluginV3OneBuild,
                                       public IPluginV3OneRuntime {
public:
    explicit StructureAttentionPlugin(float scale) noexcept : mScale(scale) { initFields(); }
    StructureAttentionPlugin(StructureAttentionPlugin const& other) noexcept : mScale(other.mScale) { initFields(); }
    StructureAttentionPlugin& operator=(StructureAttentionPlugin const&) = delete;
    ~StructureAttentionPlugin() noexcept override = default;

    // IPluginV3
    IPluginCapability* getCapabilityInterface(PluginCapabilityType type) noexcept override {
        switch (type) {
            case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
            case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
            case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
        }
        return nullptr;
    }
    IPluginV3* clone() noexcept override { return new (std::nothrow) StructureAttentionPlugin(*this); }

    // IPluginV3OneCore
    AsciiChar const* getPluginName() const noexcept override { return kStructureAttentionName; }
    AsciiChar const* getPluginVersion() const noexcept override { return kPluginVersion; }
    AsciiChar const* getPluginNamespace() const noexcept override { return kPluginNamespace; }

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override { return 1; }

    int32_t getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes,
                               int32_t nbInputs) const noexcept override {
        if (nbInputs != 3 || nbOutputs != 1) return -1;
        outputTypes[0] = inputTypes[2];
        return 0;
    }

    int32_t getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
                            int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs,
                            IExprBuilder& /*exprBuilder*/) noexcept override {
        if (nbInputs != 3 || nbOutputs != 1 || inputs[0].nbDims != 3 || inputs[2].nbDims != 3) return -1;
        outputs[0].nbDims = 3;
        outputs[0].d[0] = inputs[0].d[0];   // B
        outputs[0].d[1] = inputs[0].d[1];   // N
        outputs[0].d[2] = inputs[2].d[2];   // Dv
        return 0;
    }

    bool supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                   int32_t nbOutputs) noexcept override {
        if (nbInputs != 3 || nbOutputs != 1 || pos < 0 || pos >= 4) return false;
        return supportsLinearSameType(pos, inOut);
    }

    int32_t configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* /*out*/,
                            int32_t nbOutputs) noexcept override {
        if (nbInputs != 3 || nbOutputs != 1) return -1;
        // N is fixed by the model (18 x 9 nodes); refuse profiles that exceed the kernel's tile.
        int64_t const maxNodes = in[0].max.d[1];
        return (maxNodes > spot_structure_attention_max_nodes()) ? -1 : 0;
    }

    size_t getWorkspaceSize(DynamicPluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/,
                            DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept override {
        return 0;
    }

    // IPluginV3OneRuntime
    int32_t onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* /*out*/,
                          int32_t nbOutputs) noexcept override {
        if (nbInputs != 3 || nbOutputs != 1) return -1;
        return in[0].dims.d[1] > spot_structure_attention_max_nodes() ? -1 : 0;
    }

    int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
                    void const* const* inputs, void* const* outputs, void* /*workspace*/,
                    cudaStream_t stream) noexcept override {
        Dims const& q = inputDesc[0].dims;
        Dims const& v = inputDesc[2].dims;
        int const dtype = toSpotDtype(inputDesc[0].type);
        if (dtype < 0) return SPOT_ERROR_INVALID_ARGUMENT;
        // Linear (contiguous) tensors: null strides.
        return spot_structure_attention(inputs[0], inputs[1], inputs[2], outputs[0], q.d[0], q.d[1], q.d[2], v.d[2],
                                        nullptr, nullptr, nullptr, mScale, dtype, stream);
    }

    IPluginV3* attachToContext(IPluginResourceContext* /*context*/) noexcept override { return clone(); }

    PluginFieldCollection const* getFieldsToSerialize() noexcept override { return &mFieldCollection; }

private:
    void initFields() noexcept {
        mFields[0] = PluginField("scale", &mScale, PluginFieldType::kFLOAT32, 1);
        mFieldCollection.nbFields = 1;
        mFieldCollection.fields = mFields;
    }

    float mScale;
    PluginField mFields[1];
    PluginFieldCollection mFieldCollection{};
};

class StructureAttentionPluginCreator final : public IPluginCreatorV3One {
public:
    StructureAttentionPluginCreator() noexcept {
        mFields[0] = PluginField("scale", nullptr, PluginFieldType::kFLOAT32, 1);
        mFieldCollection.nbFields = 1;
        mFieldCollection.fields = mFields;
    }

    AsciiChar const* getPluginName() const noexcept override { return kStructureAttentionName; }
    AsciiChar const* getPluginVersion() const noexcept override { return kPluginVersion; }
    AsciiChar const* getPluginNamespace() const noexcept override { return kPluginNamespace; }
    PluginFieldCollection const* getFieldNames() noexcept override { return &mFieldCollection; }

    IPluginV3* createPlugin(AsciiChar const* /*name*/, PluginFieldCollection const* fc,
                            TensorRTPhase /*phase*/) noexcept override {
        float scale = 1.0F;
        readFloatField(fc, "scale", scale);   // absent -> eq. 4 has no scale (1.0)
        return new (std::nothrow) StructureAttentionPlugin(scale);
    }

private:
    PluginField mFields[1];
    PluginFieldCollection mFieldCollection{};
};

}  // namespace

IPluginCreatorInterface* structureAttentionCreator() noexcept {
    static StructureAttentionPluginCreator creator;
    return &creator;
}

}  // namespace trt
}  // namespace spot_edge
