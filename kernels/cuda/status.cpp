// status.cpp -- host-only part of the C API: status strings, ABI and CUDA versions.
#include <cuda_runtime_api.h>

#include "spot_kernels.h"

extern "C" const char* spot_status_string(int status) {
    switch (status) {
        case SPOT_OK: return "ok";
        case SPOT_ERROR_INVALID_ARGUMENT: return "invalid argument (null pointer, non-positive size or unknown dtype)";
        case SPOT_ERROR_UNSUPPORTED: return "size beyond the kernel's limits (too many nodes or parts, or not enough shared memory)";
        case SPOT_ERROR_CUDA: return "CUDA error while launching the kernel";
        default: return "unknown status";
    }
}

extern "C" int spot_kernels_abi_version(void) { return SPOT_KERNELS_ABI_VERSION; }

extern "C" int spot_kernels_runtime_version(void) { return CUDART_VERSION; }

extern "C" int spot_kernels_driver_version(void) {
    int version = 0;
    if (cudaDriverGetVersion(&version) != cudaSuccess) return 0;
    return version;
}
