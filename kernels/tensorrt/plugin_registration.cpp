// plugin_registration.cpp -- entry points of libspot_edge_trt_plugins.so.
//
// TensorRT (10.3 to 11) plugin-library protocol (IPluginRegistry::loadLibrary, Python
// trt.get_plugin_registry().load_library(path), trtexec --dynamicPlugins=path): TensorRT calls
// setLoggerFinder() and getCreators() and registers each creator under its own namespace.
// Programs that dlopen the library themselves (ctypes.CDLL) call spotEdgeRegisterPlugins() once
// instead; nothing registers at load time, so the two routes never register twice.
#include "plugin_common.h"

namespace {
nvinfer1::ILoggerFinder* gLoggerFinder = nullptr;
}

extern "C" void setLoggerFinder(nvinfer1::ILoggerFinder* finder) { gLoggerFinder = finder; }

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
    static nvinfer1::IPluginCreatorInterface* const creators[] = {
        spot_edge::trt::structureAttentionCreator(),
        spot_edge::trt::partPoolCreator(),
    };
    nbCreators = static_cast<int32_t>(sizeof(creators) / sizeof(creators[0]));
    return creators;
}

// Plugin version ("1", the ONNX nodes' plugin_version), read by spot_edge.engines when it records
// which plugin libraries an engine needs.
extern "C" char const* spot_edge_plugin_version() { return spot_edge::trt::kPluginVersion; }

// TensorRT version of the headers the library was built against ("10.3", "11.1", ...).
extern "C" char const* spot_edge_plugin_tensorrt_version() { return spot_edge::trt::kBuiltAgainstTensorRT; }

// Registers both creators with the global registry; returns how many were newly registered
// (0 when they already were, e.g. after loadLibrary).
extern "C" int32_t spotEdgeRegisterPlugins() {
    nvinfer1::IPluginRegistry* registry = getPluginRegistry();
    if (registry == nullptr) return -1;
    int32_t count = 0;
    int32_t nbCreators = 0;
    nvinfer1::IPluginCreatorInterface* const* creators = getCreators(nbCreators);
    for (int32_t i = 0; i < nbCreators; ++i)
        if (registry->registerCreator(*creators[i], spot_edge::trt::kPluginNamespace)) ++count;
    return count;
}
