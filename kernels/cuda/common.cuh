// common.cuh -- element conversions, asynchronous copies and per-device facts shared by the SPOT
// CUDA kernels.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <type_traits>

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

// exp for the softmax: the fp32 path is documented as exact (IEEE expf, the library is built
// without --use_fast_math); the fp16 / bf16 paths round their probabilities to 8-11 bits anyway
// and use the SFU approximation.
template <typename T> __device__ __forceinline__ float softmax_exp(float x) {
    if constexpr (std::is_same<T, float>::value) return expf(x);
    else return __expf(x);
}

// N elements of T moved as one aligned vector (16, 8 or 4 bytes).
template <typename T, int N> struct alignas(sizeof(T) * N) Vec {
    T v[N];
};

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
__host__ __device__ constexpr size_t align128(size_t bytes) { return (bytes + 127) / 128 * 128; }

// Widest copy (bytes, at most max_bytes, at least one element) that keeps every chunk of a tile
// aligned in global memory: the base pointer and the strides between chunks (batch and the
// strided axis) must be multiples of it, and the tile's unit-stride axis must be unit-stride.
// 0 when that axis is not unit-stride (the loaders then copy element by element).
inline int vector_bytes(const void* base, int64_t batch_stride, int64_t outer_stride, int64_t inner_stride,
                        size_t element, int max_bytes) {
    if (inner_stride != 1) return 0;
    const uintptr_t address = reinterpret_cast<uintptr_t>(base);
    for (int bytes = 16; bytes >= 4; bytes /= 2) {
        if (bytes > max_bytes || static_cast<size_t>(bytes) < element) continue;
        if (address % bytes != 0) continue;
        if ((batch_stride * static_cast<int64_t>(element)) % bytes != 0) continue;
        if ((outer_stride * static_cast<int64_t>(element)) % bytes != 0) continue;
        return bytes;
    }
    return 0;
}

// ---- asynchronous global -> shared copies (cp.async, sm_80+) ---------------------------------
// Copies src_bytes (<= kBytes) from global memory and zero-fills the rest of the kBytes chunk.
// On older architectures (not built by default) the copy is synchronous.
template <int kBytes>
__device__ __forceinline__ void copy_async(void* dst_shared, const void* src_global, int src_bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(dst_shared));
    if constexpr (kBytes == 16) {
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src_global), "r"(src_bytes));
    } else {
        asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(dst), "l"(src_global), "n"(kBytes),
                     "r"(src_bytes));
    }
#else
    unsigned char* d = static_cast<unsigned char*>(dst_shared);
    const unsigned char* s = static_cast<const unsigned char*>(src_global);
    for (int i = 0; i < kBytes; ++i) d[i] = i < src_bytes ? s[i] : 0;
#endif
}

__device__ __forceinline__ void copy_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Wait until at most kPending committed groups of this thread are still in flight.
template <int kPending> __device__ __forceinline__ void copy_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
#endif
}

// ---- per-device facts, queried once per device ------------------------------------------------
// Launch-time queries (cudaDeviceGetAttribute, cudaFuncSetAttribute, occupancy) cost microseconds
// each; B = 1 calls take about that long. Values are cached per device (and per kernel variant
// by the callers); racing threads store the same values.
constexpr int kMaxDevices = 64;

struct DeviceFacts {
    int multiprocessors = 0;   // 0: not queried yet
    int smem_optin = 0;
};

inline int current_device_facts(DeviceFacts& out) {
    static std::atomic<int> sms[kMaxDevices];
    static std::atomic<int> smem[kMaxDevices];
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess || device < 0) return SPOT_ERROR_CUDA;
    if (device >= kMaxDevices) {   // not cached: query every time
        if (cudaDeviceGetAttribute(&out.multiprocessors, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
            cudaDeviceGetAttribute(&out.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess)
            return SPOT_ERROR_CUDA;
        return SPOT_OK;
    }
    int count = sms[device].load(std::memory_order_acquire);
    if (count == 0) {
        int optin = 0;
        if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
            cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess)
            return SPOT_ERROR_CUDA;
        smem[device].store(optin, std::memory_order_relaxed);
        sms[device].store(count > 0 ? count : 1, std::memory_order_release);
    }
    out.multiprocessors = sms[device].load(std::memory_order_acquire);
    out.smem_optin = smem[device].load(std::memory_order_relaxed);
    return SPOT_OK;
}

// Per (device, kernel variant) launch setup done once: cudaFuncSetAttribute for the largest
// dynamic shared memory seen so far, and the resident blocks per SM at that size.
struct KernelSetup {
    std::atomic<int> smem_set[kMaxDevices];      // bytes the attribute allows (0: never set)
    std::atomic<int> blocks_per_sm[kMaxDevices]; // occupancy at smem_set
};

template <typename Kernel>
inline int prepare_kernel(KernelSetup& setup, Kernel kernel, int threads, size_t smem, int& blocks_per_sm) {
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess || device < 0) return SPOT_ERROR_CUDA;
    const int bytes = static_cast<int>(smem);
    const bool cached = device < kMaxDevices;
    if (cached && setup.smem_set[device].load(std::memory_order_acquire) >= bytes) {
        blocks_per_sm = setup.blocks_per_sm[device].load(std::memory_order_relaxed);
        if (blocks_per_sm > 0) return SPOT_OK;
    }
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) != cudaSuccess)
        return SPOT_ERROR_CUDA;
    int blocks = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, threads, smem) != cudaSuccess)
        return SPOT_ERROR_CUDA;
    blocks_per_sm = blocks > 0 ? blocks : 1;
    if (cached) {
        setup.blocks_per_sm[device].store(blocks_per_sm, std::memory_order_relaxed);
        setup.smem_set[device].store(bytes, std::memory_order_release);
    }
    return SPOT_OK;
}

inline int launch_status() {
    return cudaGetLastError() == cudaSuccess ? SPOT_OK : SPOT_ERROR_CUDA;
}

}  // namespace spot
