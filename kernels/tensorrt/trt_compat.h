// trt_compat.h -- the one place for TensorRT version differences seen by the SPOT plugins.
//
// Supported: TensorRT 10.3 (JetPack 6) to 11.x. Checked by compiling the plugins against the real
// public headers of 10.3 and 11.1 (tests/test_kernels_tensorrt_syntax.py): the IPluginV3 interfaces
// the plugins implement (IPluginV3, IPluginV3OneCore / OneBuild / OneRuntime, IPluginCreatorV3One)
// and the plugin-library entry points (getCreators, setLoggerFinder) have the same pure virtual
// methods and signatures in both, so the plugin code needs no version branches. What differs is
// IPluginRegistry, which the plugins only call (registerCreator(IPluginCreatorInterface&, ns)
// exists in both): 11 removes the deprecated IPluginCreator (v2) methods and adds
// getAllCreatorsRecursive, which matters only to code that implements a registry (test doubles).
#pragma once

#include <NvInferRuntime.h>
#include <NvInferVersion.h>

#if NV_TENSORRT_MAJOR < 10 || (NV_TENSORRT_MAJOR == 10 && NV_TENSORRT_MINOR < 3) || NV_TENSORRT_MAJOR >= 12
#error "the SPOT TensorRT plugins support TensorRT 10.3 to 11.x (IPluginV3)"
#endif

namespace spot_edge {
namespace trt {

// "MAJOR.MINOR" of the headers the plugins were built against (reported by the library).
#define SPOT_TRT_STRINGIFY_(x) #x
#define SPOT_TRT_STRINGIFY(x) SPOT_TRT_STRINGIFY_(x)
constexpr char const* kBuiltAgainstTensorRT = SPOT_TRT_STRINGIFY(NV_TENSORRT_MAJOR) "." SPOT_TRT_STRINGIFY(NV_TENSORRT_MINOR);

}  // namespace trt
}  // namespace spot_edge
