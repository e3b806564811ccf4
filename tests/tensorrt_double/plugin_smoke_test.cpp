// plugin_smoke_test.cpp -- drives the SPOT plugin classes through TensorRT's REAL public headers
// (compiled with -isystem <TensorRT>/include for 10.3 and 11.1 by tests/test_kernels_tensorrt_syntax.py),
// with test doubles for what libnvinfer and libspot_edge_kernels would provide: recording stubs of
// the kernels' C API, a recording IPluginRegistry behind getPluginRegistry(), and dimension
// expressions that are only compared by address. Checks the creator metadata, attribute parsing,
// output shapes / types, format support, serialisation fields, clone, enqueue's arguments and the
// registration entry points. TensorRT's own behaviour (parser, builder, runtime) is not exercised.
#include <NvInferRuntime.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "spot_kernels.h"

using namespace nvinfer1;

// ---- recording stubs for the kernels' C API -------------------------------------------------
namespace {
struct Call {
    std::string op;
    int64_t a = 0, b = 0, c = 0, d = 0;
    float attr = 0.0F;
    int dtype = -1;
};
Call gLast;
}  // namespace

extern "C" int spot_structure_attention(const void*, const void*, const void*, void*, int64_t batch, int64_t nodes,
                                        int64_t key_dim, int64_t value_dim, const int64_t*, const int64_t*,
                                        const int64_t*, const int64_t*, float scale, int dtype, cudaStream_t) {
    gLast = Call{"attention", batch, nodes, key_dim, value_dim, scale, dtype};
    return SPOT_OK;
}
extern "C" int spot_part_pool(const void*, const void*, void*, int64_t batch, int64_t parts, int64_t channels,
                              int64_t nodes, const int64_t*, const int64_t*, float eps, int dtype, cudaStream_t) {
    gLast = Call{"part_pool", batch, parts, channels, nodes, eps, dtype};
    return SPOT_OK;
}
extern "C" int64_t spot_structure_attention_max_nodes(void) { return 256; }
extern "C" int64_t spot_part_pool_max_parts(void) { return 16; }

// ---- a recording plugin registry -------------------------------------------------------------
// Implements every pure virtual method of IPluginRegistry in 10.3 and in 11.x. The methods that
// exist in one version only are declared without `override`: where the base lacks them they are
// plain extra virtuals (10.x: the deprecated IPluginCreator v2 methods; 11.x: getAllCreatorsRecursive).
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#pragma GCC diagnostic ignored "-Wsuggest-override"
#endif
namespace {
struct RecordingRegistry : IPluginRegistry {
    std::vector<std::string> registered;
    bool registerCreator(IPluginCreatorInterface& creator, AsciiChar const* const ns) noexcept override {
        auto& v3 = static_cast<IPluginCreatorV3One&>(creator);
        registered.push_back(std::string(ns) + "::" + v3.getPluginName());
        return true;
    }
    IPluginCreatorInterface* getCreator(AsciiChar const* const, AsciiChar const* const,
                                        AsciiChar const* const) noexcept override {
        return nullptr;
    }
    void setErrorRecorder(IErrorRecorder* const) noexcept override {}
    IErrorRecorder* getErrorRecorder() const noexcept override { return nullptr; }
    bool isParentSearchEnabled() const override { return false; }
    void setParentSearchEnabled(bool const) override {}
    PluginLibraryHandle loadLibrary(AsciiChar const*) noexcept override { return nullptr; }
    void deregisterLibrary(PluginLibraryHandle) noexcept override {}
    IPluginCreatorInterface* const* getAllCreators(int32_t* const n) const noexcept override {
        *n = 0;
        return nullptr;
    }
    bool deregisterCreator(IPluginCreatorInterface const&) noexcept override { return false; }
    IPluginResource* acquirePluginResource(AsciiChar const*, IPluginResource*) noexcept override { return nullptr; }
    int32_t releasePluginResource(AsciiChar const*) noexcept override { return 0; }
    // one version only (see above)
    virtual IPluginCreatorInterface* const* getAllCreatorsRecursive(int32_t* const n) noexcept {
        *n = 0;
        return nullptr;
    }
    virtual bool registerCreator(IPluginCreator&, AsciiChar const* const) noexcept { return false; }
    virtual IPluginCreator* const* getPluginCreatorList(int32_t* const n) const noexcept {
        *n = 0;
        return nullptr;
    }
    virtual IPluginCreator* getPluginCreator(AsciiChar const* const, AsciiChar const* const,
                                             AsciiChar const* const) noexcept {
        return nullptr;
    }
    virtual bool deregisterCreator(IPluginCreator const&) noexcept { return false; }
};
RecordingRegistry gRegistry;

// Expressions the plugins only copy and compare by address (no libnvinfer behind them).
struct FakeExpr : IDimensionExpr {
    FakeExpr() { mImpl = nullptr; }
};
struct FakeBuilder : IExprBuilder {
    FakeBuilder() { mImpl = nullptr; }
};

// Every class the library hands to TensorRT is concrete (all pure virtual methods overridden).
static_assert(!std::is_abstract<RecordingRegistry>::value, "the registry double must implement IPluginRegistry");
}  // namespace
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace {
int gFailures = 0;
#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            std::fprintf(stderr, "CHECK failed line %d: %s\n", __LINE__, #cond); \
            ++gFailures;                                                         \
        }                                                                        \
    } while (0)

Dims dims(std::vector<int64_t> values) {
    Dims d{};
    d.nbDims = static_cast<int32_t>(values.size());
    for (size_t i = 0; i < values.size(); ++i) d.d[i] = values[i];
    return d;
}

DynamicPluginTensorDesc dyn(DataType type, std::vector<int64_t> shape, TensorFormat format = TensorFormat::kLINEAR) {
    DynamicPluginTensorDesc desc{};
    desc.desc.dims = dims(shape);
    desc.desc.type = type;
    desc.desc.format = format;
    desc.min = desc.max = desc.opt = desc.desc.dims;
    return desc;
}
}  // namespace

extern "C" IPluginRegistry* getPluginRegistry() noexcept { return &gRegistry; }
extern "C" IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);
extern "C" int32_t spotEdgeRegisterPlugins();
extern "C" char const* spot_edge_plugin_version();
extern "C" char const* spot_edge_plugin_tensorrt_version();

int main() {
    int32_t nb = 0;
    IPluginCreatorInterface* const* creators = getCreators(nb);
    CHECK(nb == 2);
    auto* attention = static_cast<IPluginCreatorV3One*>(creators[0]);
    auto* pool = static_cast<IPluginCreatorV3One*>(creators[1]);
    CHECK(std::strcmp(attention->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") == 0);
    CHECK(std::strcmp(attention->getPluginName(), "SpotStructureAttention") == 0);
    CHECK(std::strcmp(pool->getPluginName(), "SpotPartPool") == 0);
    CHECK(std::strcmp(attention->getPluginNamespace(), "spot_edge") == 0);
    CHECK(std::strcmp(pool->getPluginVersion(), "1") == 0);
    CHECK(attention->getFieldNames()->nbFields == 1 && std::strcmp(attention->getFieldNames()->fields[0].name, "scale") == 0);

    // ---- structure attention, created as the ONNX parser does (scale = 0.5 float attribute)
    float scale = 0.5F;
    PluginField field("scale", &scale, PluginFieldType::kFLOAT32, 1);
    PluginFieldCollection fc{1, &field};
    std::unique_ptr<IPluginV3> plugin(attention->createPlugin("asr", &fc, TensorRTPhase::kBUILD));
    CHECK(plugin != nullptr);
    auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    CHECK(std::strcmp(core->getPluginName(), "SpotStructureAttention") == 0);
    CHECK(std::strcmp(core->getInterfaceInfo().kind, "PLUGIN_V3ONE_CORE") == 0);
    CHECK(std::strcmp(build->getInterfaceInfo().kind, "PLUGIN_V3ONE_BUILD") == 0);
    CHECK(std::strcmp(runtime->getInterfaceInfo().kind, "PLUGIN_V3ONE_RUNTIME") == 0);
    CHECK(build->getNbOutputs() == 1);

    FakeExpr b, n, dk, dv;
    DimsExprs in[3];
    in[0].nbDims = in[1].nbDims = in[2].nbDims = 3;
    in[0].d[0] = in[1].d[0] = in[2].d[0] = &b;
    in[0].d[1] = in[1].d[1] = in[2].d[1] = &n;
    in[0].d[2] = in[1].d[2] = &dk;
    in[2].d[2] = &dv;
    DimsExprs out[1];
    FakeBuilder builder;
    CHECK(build->getOutputShapes(in, 3, nullptr, 0, out, 1, builder) == 0);
    CHECK(out[0].nbDims == 3 && out[0].d[0] == &b && out[0].d[1] == &n && out[0].d[2] == &dv);

    DataType inTypes[3] = {DataType::kHALF, DataType::kHALF, DataType::kHALF};
    DataType outType = DataType::kFLOAT;
    CHECK(build->getOutputDataTypes(&outType, 1, inTypes, 3) == 0 && outType == DataType::kHALF);

    DynamicPluginTensorDesc io[4] = {dyn(DataType::kHALF, {2, 162, 256}), dyn(DataType::kHALF, {2, 162, 256}),
                                     dyn(DataType::kHALF, {2, 162, 2048}), dyn(DataType::kHALF, {2, 162, 2048})};
    for (int pos = 0; pos < 4; ++pos) CHECK(build->supportsFormatCombination(pos, io, 3, 1));
    io[1].desc.type = DataType::kFLOAT;
    CHECK(!build->supportsFormatCombination(1, io, 3, 1));               // mixed types refused
    io[1].desc.type = DataType::kHALF;
    io[2].desc.format = TensorFormat::kHWC8;
    CHECK(!build->supportsFormatCombination(2, io, 3, 1));               // only linear
    io[2].desc.format = TensorFormat::kLINEAR;
    io[0].desc.type = DataType::kINT8;
    CHECK(!build->supportsFormatCombination(0, io, 3, 1));               // only float types
    io[0].desc.type = DataType::kHALF;
    CHECK(build->configurePlugin(io, 3, io + 3, 1) == 0);
    DynamicPluginTensorDesc tooBig[3] = {dyn(DataType::kHALF, {2, 300, 256}), io[1], io[2]};
    CHECK(build->configurePlugin(tooBig, 3, io + 3, 1) != 0);             // N beyond the kernel's tile

    PluginTensorDesc desc[4] = {io[0].desc, io[1].desc, io[2].desc, io[3].desc};
    CHECK(runtime->onShapeChange(desc, 3, desc + 3, 1) == 0);
    void const* inputs[3] = {&b, &n, &dk};
    void* outputs[1] = {&dv};
    CHECK(runtime->enqueue(desc, desc + 3, inputs, outputs, nullptr, nullptr) == 0);
    CHECK(gLast.op == "attention" && gLast.a == 2 && gLast.b == 162 && gLast.c == 256 && gLast.d == 2048);
    CHECK(gLast.attr == 0.5F && gLast.dtype == SPOT_DTYPE_FLOAT16);

    PluginFieldCollection const* saved = runtime->getFieldsToSerialize();
    CHECK(saved->nbFields == 1 && std::strcmp(saved->fields[0].name, "scale") == 0);
    CHECK(*static_cast<float const*>(saved->fields[0].data) == 0.5F);
    // Round trip: a runtime-phase plugin from the serialised fields keeps the attribute.
    std::unique_ptr<IPluginV3> restored(attention->createPlugin("asr", saved, TensorRTPhase::kRUNTIME));
    auto* restoredRuntime = static_cast<IPluginV3OneRuntime*>(restored->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    CHECK(restoredRuntime->enqueue(desc, desc + 3, inputs, outputs, nullptr, nullptr) == 0 && gLast.attr == 0.5F);
    std::unique_ptr<IPluginV3> attached(runtime->attachToContext(nullptr));
    CHECK(attached != nullptr && attached.get() != plugin.get());
    // Missing attribute -> eq. 4's scale of 1.
    std::unique_ptr<IPluginV3> plain(attention->createPlugin("asr", nullptr, TensorRTPhase::kBUILD));
    static_cast<IPluginV3OneRuntime*>(plain->getCapabilityInterface(PluginCapabilityType::kRUNTIME))
        ->enqueue(desc, desc + 3, inputs, outputs, nullptr, nullptr);
    CHECK(gLast.attr == 1.0F);

    // ---- part pooling (eps given as float64 by some exporters)
    double eps = 1e-5;
    PluginField epsField("eps", &eps, PluginFieldType::kFLOAT64, 1);
    PluginFieldCollection epsFc{1, &epsField};
    std::unique_ptr<IPluginV3> pp(pool->createPlugin("tpi", &epsFc, TensorRTPhase::kBUILD));
    auto* ppBuild = static_cast<IPluginV3OneBuild*>(pp->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* ppRuntime = static_cast<IPluginV3OneRuntime*>(pp->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    FakeExpr p, c, h, w;
    DimsExprs pin[2];
    pin[0].nbDims = pin[1].nbDims = 4;
    pin[0].d[0] = pin[1].d[0] = &b;
    pin[0].d[1] = &p;
    pin[1].d[1] = &c;
    pin[0].d[2] = pin[1].d[2] = &h;
    pin[0].d[3] = pin[1].d[3] = &w;
    CHECK(ppBuild->getOutputShapes(pin, 2, nullptr, 0, out, 1, builder) == 0);
    CHECK(out[0].nbDims == 3 && out[0].d[0] == &b && out[0].d[1] == &p && out[0].d[2] == &c);
    DynamicPluginTensorDesc pio[3] = {dyn(DataType::kBF16, {4, 7, 18, 9}), dyn(DataType::kBF16, {4, 2048, 18, 9}),
                                      dyn(DataType::kBF16, {4, 7, 2048})};
    for (int pos = 0; pos < 3; ++pos) CHECK(ppBuild->supportsFormatCombination(pos, pio, 2, 1));
    CHECK(ppBuild->configurePlugin(pio, 2, pio + 2, 1) == 0);
    PluginTensorDesc pdesc[3] = {pio[0].desc, pio[1].desc, pio[2].desc};
    void const* pinputs[2] = {&b, &p};
    CHECK(ppRuntime->enqueue(pdesc, pdesc + 2, pinputs, outputs, nullptr, nullptr) == 0);
    CHECK(gLast.op == "part_pool" && gLast.a == 4 && gLast.b == 7 && gLast.c == 2048 && gLast.d == 162);
    CHECK(std::fabs(gLast.attr - 1e-5F) < 1e-12F && gLast.dtype == SPOT_DTYPE_BFLOAT16);

    // ---- version entry points (read by spot_edge.engines through ctypes)
    CHECK(std::strcmp(spot_edge_plugin_version(), "1") == 0);
    CHECK(std::strcmp(spot_edge_plugin_tensorrt_version(), EXPECTED_TENSORRT_VERSION) == 0);

    // ---- explicit registration for ctypes users
    CHECK(spotEdgeRegisterPlugins() == 2);
    CHECK(gRegistry.registered.size() == 2 && gRegistry.registered[0] == "spot_edge::SpotStructureAttention" &&
          gRegistry.registered[1] == "spot_edge::SpotPartPool");

    if (gFailures == 0) std::printf("plugin smoke test: all checks passed\n");
    return gFailures == 0 ? 0 : 1;
}
