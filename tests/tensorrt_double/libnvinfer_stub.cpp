// libnvinfer_stub.cpp -- TEST DOUBLE of libnvinfer for linking only: the one symbol the SPOT plugin
// library imports from TensorRT (getPluginRegistry). tests/kernels_build.py builds it into a stub
// TensorRT root (real public headers + this library) so that `cmake -DTENSORRT_ROOT=...` configures,
// compiles and links libspot_edge_trt_plugins.so on a machine without TensorRT. Never loaded.
#include <NvInferRuntime.h>

extern "C" nvinfer1::IPluginRegistry* getPluginRegistry() noexcept { return nullptr; }
