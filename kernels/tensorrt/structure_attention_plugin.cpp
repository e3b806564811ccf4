// structure_attention_plugin.cpp -- IPluginV3 plugin "SpotStructureAttention" (TensorRT 10.3 to 11).
//
// Inputs q (B, N, Dk), k (B, N, Dk), v (B, N, Dv); output (B, N, Dv) =
// softmax(scale q k^T) v (SPOT eqs. 4-5). fp32 / fp16 / bf16, linear layout, all tensors of
// one type. Attribute: "scale" (float32, default 1). Runs spot_structure_attention().
#include "plugin_base.h"

namespace spot_edge {
namespace trt {
namespace {

using namespace nvinfer1;

class StructureAttentionPlugin final : public SingleAttributePlugin<StructureAttentionPlugin> {
public:
    static constexpr char const* kName = kStructureAttentionName;
    static constexpr char const* kAttribute = "scale";
    static constexpr float kDefault = 1.0F;             // eq. 4 has no scale
    static constexpr int32_t kNbInputs = 3;
    static constexpr int32_t kTypeInput = 2;            // the output has v's type
    static int64_t maxDim1() noexcept { return spot_structure_attention_max_nodes(); }   // N

    using SingleAttributePlugin::SingleAttributePlugin;

    int32_t getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
                            int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs,
                            IExprBuilder& /*exprBuilder*/) noexcept override {
        if (nbInputs != kNbInputs || nbOutputs != 1 || inputs[0].nbDims != 3 || inputs[2].nbDims != 3) return -1;
        outputs[0].nbDims = 3;
        outputs[0].d[0] = inputs[0].d[0];   // B
        outputs[0].d[1] = inputs[0].d[1];   // N
        outputs[0].d[2] = inputs[2].d[2];   // Dv
        return 0;
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
                                        nullptr, nullptr, nullptr, nullptr, attribute(), dtype, stream);
    }
};

}  // namespace

IPluginCreatorInterface* structureAttentionCreator() noexcept {
    return SingleAttributeCreator<StructureAttentionPlugin>::instance();
}

}  // namespace trt
}  // namespace spot_edge
