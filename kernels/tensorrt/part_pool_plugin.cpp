// part_pool_plugin.cpp -- TensorRT 10 IPluginV3 plugin "SpotPartPool".
//
// Inputs part_maps (B, P, H, W), features (B, C, H, W); output (B, P, C): node-level part
// division and pooling (SPOT eq. 9). fp32 / fp16 / bf16, linear layout, one type for all
// tensors. Attribute: "eps" (float32, default 1e-6). Runs spot_part_pool().
#include "plugin_common.h"

#include <new>

namespace spot_edge {
namespace trt {
namespace {

using namespace nvinfer1;

class PartPoolPlugin final : public IPluginV3,
                             public IPluginV3OneCore,
                             public IPluginV3OneBuild,
                             public IPluginV3OneRuntime {
public:
    explicit PartPoolPlugin(float eps) noexcept : mEps(eps) { initFields(); }
    PartPoolPlugin(PartPoolPlugin const& other) noexcept : mEps(other.mEps) { initFields(); }
    PartPoolPlugin& operator=(PartPoolPlugin const&) = delete;
    ~PartPoolPlugin() noexcept override = default;

    // IPluginV3
    IPluginCapability* getCapabilityInterface(PluginCapabilityType type) noexcept override {
        switch (type) {
            case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
            case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
            case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
        }
        return nullptr;
    }
    IPluginV3* clone() noexcept override { return new (std::nothrow) PartPoolPlugin(*this); }

    // IPluginV3OneCore
    AsciiChar const* getPluginName() const noexcept override { return kPartPoolName; }
    AsciiChar const* getPluginVersion() const noexcept override { return kPluginVersion; }
    AsciiChar const* getPluginNamespace() const noexcept override { return kPluginNamespace; }

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override { return 1; }

    int32_t getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes,
                               int32_t nbInputs) const noexcept override {
        if (nbInputs != 2 || nbOutputs != 1) return -1;
        outputTypes[0] = inputTypes[1];
        return 0;
    }

    int32_t getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
                            int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs,
                            IExprBuilder& /*exprBuilder*/) noexcept override {
        if (nbInputs != 2 || nbOutputs != 1 || inputs[0].nbDims != 4 || inputs[1].nbDims != 4) return -1;
        outputs[0].nbDims = 3;
        outputs[0].d[0] = inputs[0].d[0];   // B
        outputs[0].d[1] = inputs[0].d[1];   // P
        outputs[0].d[2] = inputs[1].d[1];   // C
        return 0;
    }

    bool supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                   int32_t nbOutputs) noexcept override {
        if (nbInputs != 2 || nbOutputs != 1 || pos < 0 || pos >= 3) return false;
        return supportsLinearSameType(pos, inOut);
    }

    int32_t configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* /*out*/,
                            int32_t nbOutputs) noexcept override {
        if (nbInputs != 2 || nbOutputs != 1) return -1;
        return in[0].max.d[1] > spot_part_pool_max_parts() ? -1 : 0;
    }

    size_t getWorkspaceSize(DynamicPluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/,
                            DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept override {
        return 0;
    }

    // IPluginV3OneRuntime
    int32_t onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* /*out*/,
                          int32_t nbOutputs) noexcept override {
        if (nbInputs != 2 || nbOutputs != 1) return -1;
        return in[0].dims.d[1] > spot_part_pool_max_parts() ? -1 : 0;
    }

    int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
                    void const* const* inputs, void* const* outputs, void* /*workspace*/,
                    cudaStream_t stream) noexcept override {
        Dims const& maps = inputDesc[0].dims;       // (B, P, H, W)
        Dims const& features = inputDesc[1].dims;   // (B, C, H, W)
        int const dtype = toSpotDtype(inputDesc[0].type);
        if (dtype < 0) return SPOT_ERROR_INVALID_ARGUMENT;
        int64_t const nodes = maps.d[2] * maps.d[3];
        return spot_part_pool(inputs[0], inputs[1], outputs[0], maps.d[0], maps.d[1], features.d[1], nodes,
                              nullptr, nullptr, mEps, dtype, stream);
    }

    IPluginV3* attachToContext(IPluginResourceContext* /*context*/) noexcept override { return clone(); }

    PluginFieldCollection const* getFieldsToSerialize() noexcept override { return &mFieldCollection; }

private:
    void initFields() noexcept {
        mFields[0] = PluginField("eps", &mEps, PluginFieldType::kFLOAT32, 1);
        mFieldCollection.nbFields = 1;
        mFieldCollection.fields = mFields;
    }

    float mEps;
    PluginField mFields[1];
    PluginFieldCollection mFieldCollection{};
};

class PartPoolPluginCreator final : public IPluginCreatorV3One {
public:
    PartPoolPluginCreator() noexcept {
        mFields[0] = PluginField("eps", nullptr, PluginFieldType::kFLOAT32, 1);
        mFieldCollection.nbFields = 1;
        mFieldCollection.fields = mFields;
    }

    AsciiChar const* getPluginName() const noexcept override { return kPartPoolName; }
    AsciiChar const* getPluginVersion() const noexcept override { return kPluginVersion; }
    AsciiChar const* getPluginNamespace() const noexcept override { return kPluginNamespace; }
    PluginFieldCollection const* getFieldNames() noexcept override { return &mFieldCollection; }

    IPluginV3* createPlugin(AsciiChar const* /*name*/, PluginFieldCollection const* fc,
                            TensorRTPhase /*phase*/) noexcept override {
        float eps = 1e-6F;
        readFloatField(fc, "eps", eps);
        return new (std::nothrow) PartPoolPlugin(eps);
    }

private:
    PluginField mFields[1];
    PluginFieldCollection mFieldCollection{};
};

}  // namespace

IPluginCreatorInterface* partPoolCreator() noexcept {
    static PartPoolPluginCreator creator;
    return &creator;
}

}  // namespace trt
}  // namespace spot_edge
