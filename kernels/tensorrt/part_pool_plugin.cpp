// part_pool_plugin.cpp -- IPluginV3 plugin "SpotPartPool" (TensorRT 10.3 to 11).
//
// Inputs part_maps (B, P, H, W), features (B, C, H, W); output (B, P, C): node-level part
// division and pooling (SPOT eq. 9). fp32 / fp16 / bf16, linear layout, one type for all
// tensors. Attribute: "eps" (float32, default 1e-6). Runs spot_part_pool().
#include "plugin_base.h"

namespace spot_edge {
namespace trt {
namespace {

using namespace nvinfer1;

class PartPoolPlugin final : public SingleAttributePlugin<PartPoolPlugin> {
public:
    static constexpr char const* kName = kPartPoolName;
    static constexpr char const* kAttribute = "eps";
    static constexpr float kDefault = 1e-6F;
    static constexpr int32_t kNbInputs = 2;
    static constexpr int32_t kTypeInput = 1;            // the output has the features' type
    static int64_t maxDim1() noexcept { return spot_part_pool_max_parts(); }   // P

    using SingleAttributePlugin::SingleAttributePlugin;

    int32_t getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
                            int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs,
                            IExprBuilder& /*exprBuilder*/) noexcept override {
        if (nbInputs != kNbInputs || nbOutputs != 1 || inputs[0].nbDims != 4 || inputs[1].nbDims != 4) return -1;
        outputs[0].nbDims = 3;
        outputs[0].d[0] = inputs[0].d[0];   // B
        outputs[0].d[1] = inputs[0].d[1];   // P
        outputs[0].d[2] = inputs[1].d[1];   // C
        return 0;
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
                              nullptr, nullptr, attribute(), dtype, stream);
    }
};

}  // namespace

IPluginCreatorInterface* partPoolCreator() noexcept { return SingleAttributeCreator<PartPoolPlugin>::instance(); }

}  // namespace trt
}  // namespace spot_edge
