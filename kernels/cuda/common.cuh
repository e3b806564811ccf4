// common.cuh -- element conversions and small helpers shared by the SPOT CUDA kernels.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "spot_kernels.h"

namespace spot {

template <typename T> __device__ __forceinline__ float to_float(T x);
template <> __device__ __forceinline__ float to_float<float>(float x) { return x; }
template <> __device__ __forceinline__ float to_float<__half>(__half x) { return __half2float(x); }
template <> __device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 x) {
    return __bfloat162float(x);
}

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}

template <typename T> __device__ __forceinline__ T zero() { return from_float<T>(0.0f); }

// Element strides {batch, row, column} of a 3-D tensor view.
struct Strides3 {
    int64_t b, r, c;
};

inline Strides3 strides_or_contiguous(const int64_t* s, int64_t rows, int64_t cols) {
    if (s != nullptr) return Strides3{s[0], s[1], s[2]};
    return Strides3{rows * cols, cols, 1};
}

__host__ __device__ constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
__host__ __device__ constexpr int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

inline int launch_status() {
    return cudaGetLastError() == cudaSuccess ? SPOT_OK : SPOT_ERROR_CUDA;
}

inline int multiprocessor_count() {
    int device = 0;
    int count = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return 16;
    if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) return 16;
    return count > 0 ? count : 16;
}

}  // namespace spot
