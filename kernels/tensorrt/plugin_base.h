// plugin_base.h -- the IPluginV3 boilerplate both SPOT plugins share.
//
// A SPOT plugin has one output, one float attribute (serialised as its only field), no workspace,
// linear tensors of one kernel dtype, and a size limit of its kernel on dimension 1 of its first
// input (N nodes for the attention, P parts for the pooling). SingleAttributePlugin<Derived>
// implements everything else of IPluginV3 / IPluginV3OneCore / OneBuild / OneRuntime from a few
// static members of Derived:
//
//   static constexpr char const* kName;       // creator / ONNX op_type
//   static constexpr char const* kAttribute;  // the float field ("scale", "eps")
//   static constexpr float kDefault;          // its value when the ONNX node omits it
//   static constexpr int32_t kNbInputs;
//   static constexpr int32_t kTypeInput;      // the output takes this input's data type
//   static int64_t maxDim1();                 // kernel limit on inputs[0] dimension 1
//
// and Derived implements getOutputShapes and enqueue. SingleAttributeCreator<Derived> is the
// matching IPluginCreatorV3One. Both check at compile time that they are concrete (every pure
// virtual method of the interfaces overridden).
#pragma once

#include <new>
#include <type_traits>

#include "plugin_common.h"

namespace spot_edge {
namespace trt {

template <typename Derived>
class SingleAttributePlugin : public nvinfer1::IPluginV3,
                              public nvinfer1::IPluginV3OneCore,
                              public nvinfer1::IPluginV3OneBuild,
                              public nvinfer1::IPluginV3OneRuntime {
public:
    explicit SingleAttributePlugin(float value) noexcept : mValue(value) { initFields(); }
    SingleAttributePlugin(SingleAttributePlugin const& other) noexcept : mValue(other.mValue) { initFields(); }
    SingleAttributePlugin& operator=(SingleAttributePlugin const&) = delete;
    ~SingleAttributePlugin() noexcept override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override {
        switch (type) {
            case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
            case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
            case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
        }
        return nullptr;
    }
    nvinfer1::IPluginV3* clone() noexcept override {
        static_assert(!std::is_abstract<Derived>::value,
                      "the plugin must override every pure virtual method of IPluginV3 and IPluginV3One*");
        return new (std::nothrow) Derived(static_cast<Derived const&>(*this));
    }

    // IPluginV3OneCore
    nvinfer1::AsciiChar const* getPluginName() const noexcept override { return Derived::kName; }
    nvinfer1::AsciiChar const* getPluginVersion() const noexcept override { return kPluginVersion; }
    nvinfer1::AsciiChar const* getPluginNamespace() const noexcept override { return kPluginNamespace; }

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override { return 1; }

    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs, nvinfer1::DataType const* inputTypes,
                               int32_t nbInputs) const noexcept override {
        if (nbInputs != Derived::kNbInputs || nbOutputs != 1) return -1;
        outputTypes[0] = inputTypes[Derived::kTypeInput];
        return 0;
    }

    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                   int32_t nbOutputs) noexcept override {
        if (nbInputs != Derived::kNbInputs || nbOutputs != 1 || pos < 0 || pos > Derived::kNbInputs) return false;
        return supportsLinearSameType(pos, inOut);
    }

    // Refuse profiles whose largest shape exceeds the kernel's limit.
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept override {
        if (nbInputs != Derived::kNbInputs || nbOutputs != 1) return -1;
        return in[0].max.d[1] > Derived::maxDim1() ? -1 : 0;
    }

    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/,
                            nvinfer1::DynamicPluginTensorDesc const* /*outputs*/,
                            int32_t /*nbOutputs*/) const noexcept override {
        return 0;
    }

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
                          nvinfer1::PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept override {
        if (nbInputs != Derived::kNbInputs || nbOutputs != 1) return -1;
        return in[0].dims.d[1] > Derived::maxDim1() ? -1 : 0;
    }

    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept override {
        return clone();
    }

    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override { return &mFieldCollection; }

protected:
    float attribute() const noexcept { return mValue; }

private:
    void initFields() noexcept {
        mFields[0] = nvinfer1::PluginField(Derived::kAttribute, &mValue, nvinfer1::PluginFieldType::kFLOAT32, 1);
        mFieldCollection.nbFields = 1;
        mFieldCollection.fields = mFields;
    }

    float mValue;
    nvinfer1::PluginField mFields[1];
    nvinfer1::PluginFieldCollection mFieldCollection{};
};

template <typename Plugin>
class SingleAttributeCreator final : public nvinfer1::IPluginCreatorV3One {
public:
    SingleAttributeCreator() noexcept {
        mFields[0] = nvinfer1::PluginField(Plugin::kAttribute, nullptr, nvinfer1::PluginFieldType::kFLOAT32, 1);
        mFieldCollection.nbFields = 1;
        mFieldCollection.fields = mFields;
    }

    nvinfer1::AsciiChar const* getPluginName() const noexcept override { return Plugin::kName; }
    nvinfer1::AsciiChar const* getPluginVersion() const noexcept override { return kPluginVersion; }
    nvinfer1::AsciiChar const* getPluginNamespace() const noexcept override { return kPluginNamespace; }
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override { return &mFieldCollection; }

    // Build phase: fields from the ONNX node's attributes; runtime phase: from getFieldsToSerialize.
    nvinfer1::IPluginV3* createPlugin(nvinfer1::AsciiChar const* /*name*/, nvinfer1::PluginFieldCollection const* fc,
                                      nvinfer1::TensorRTPhase /*phase*/) noexcept override {
        float value = Plugin::kDefault;
        readFloatField(fc, Plugin::kAttribute, value);
        return new (std::nothrow) Plugin(value);
    }

    // The process-wide instance getCreators() hands to TensorRT.
    static nvinfer1::IPluginCreatorInterface* instance() noexcept {
        static_assert(!std::is_abstract<SingleAttributeCreator>::value,
                      "the creator must override every pure virtual method of IPluginCreatorV3One");
        static SingleAttributeCreator creator;
        return &creator;
    }

private:
    nvinfer1::PluginField mFields[1];
    nvinfer1::PluginFieldCollection mFieldCollection{};
};

}  // namespace trt
}  // namespace spot_edge
