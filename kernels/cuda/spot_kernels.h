/*
 * spot_kernels.h -- C API of the SPOT edge CUDA kernels (no libtorch, no TensorRT).
 *
 * Two operations of SPOT (C. Chen, M. Ye, M. Qi, J. Wu, J. Jiang, C.-W. Lin, "Structure-Aware
 * Positional Transformer for Visible-Infrared Person Re-Identification", IEEE TIP 2022;
 * equation numbers from the paper):
 *   spot_structure_attention  out = softmax(scale * q k^T, over keys) v         (eqs. 4-5)
 *     q, k (B, N, Dk), v (B, N, Dv) -> out (B, N, Dv), written through out_strides (NULL =
 *     contiguous), e.g. {Dv*N, 1, N} for the (B, Dv, N) memory an NCHW model reads next.
 *   spot_part_pool            out[b,p,c] = mean_hw(Mbar_p F_c) / (mean_hw(Mbar_p) + eps)  (eq. 9)
 *     part_maps (B, P, HW), features (B, C, HW) -> out (B, P, C), contiguous;
 *     Mbar_p keeps part_maps[p] only where it is the maximum over the P maps (ties keep all).
 *
 * Inputs are read through element strides {batch, row, column} (NULL = contiguous), so
 * transposed views need no copy; tiles are staged with cp.async, vectorised (16/8/4 bytes)
 * along whichever axis is unit-stride when the pointers and strides allow it. All tensors of one call share `dtype`. Every call is
 * asynchronous on `stream`; it returns SPOT_OK or an error code (see spot_status_string).
 * Used by the PyTorch custom operators (ctypes, kernels/cuda_ops.py) and by the TensorRT
 * plugins (kernels/tensorrt/).
 */
#ifndef SPOT_EDGE_KERNELS_H
#define SPOT_EDGE_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPOT_KERNELS_ABI_VERSION 2

typedef enum spot_dtype {
    SPOT_DTYPE_FLOAT32 = 0,
    SPOT_DTYPE_FLOAT16 = 1,
    SPOT_DTYPE_BFLOAT16 = 2
} spot_dtype;

typedef enum spot_status {
    SPOT_OK = 0,
    SPOT_ERROR_INVALID_ARGUMENT = 1, /* null pointer, non-positive size, unknown dtype */
    SPOT_ERROR_UNSUPPORTED = 2,      /* size beyond the kernel's limits (see *_max_* below) */
    SPOT_ERROR_CUDA = 3              /* a CUDA runtime call or the launch failed */
} spot_status;

/* Fused structure attention. Strides are in elements, {batch, node, channel}. */
int spot_structure_attention(const void* q, const void* k, const void* v, void* out,
                             int64_t batch, int64_t nodes, int64_t key_dim, int64_t value_dim,
                             const int64_t* q_strides, const int64_t* k_strides,
                             const int64_t* v_strides, const int64_t* out_strides, float scale,
                             int dtype, cudaStream_t stream);

/* Node-level part pooling. Strides are in elements, {batch, part|channel, node}. */
int spot_part_pool(const void* part_maps, const void* features, void* out,
                   int64_t batch, int64_t parts, int64_t channels, int64_t nodes,
                   const int64_t* maps_strides, const int64_t* feature_strides,
                   float eps, int dtype, cudaStream_t stream);

/* Limits: the attention keeps all N keys of a query tile in shared memory; the part pooling
 * keeps P accumulators per thread and the P x HW divided maps in shared memory. */
int64_t spot_structure_attention_max_nodes(void);
int64_t spot_part_pool_max_parts(void);

/* Resources, known before any launch and without a GPU (host-only, pure functions):
 * dynamic shared memory per block (bytes; compare with cudaDevAttrMaxSharedMemoryPerBlockOptin),
 * or -1 for sizes the kernels do not take; and the number of blocks that share the value width
 * of one query tile for `slots` resident blocks (SMs x blocks per SM). */
int64_t spot_structure_attention_smem_bytes(int64_t nodes, int dtype);
int64_t spot_structure_attention_splits(int64_t batch, int64_t nodes, int64_t key_dim, int64_t value_dim,
                                        int dtype, int64_t slots);
int64_t spot_part_pool_smem_bytes(int64_t parts, int64_t nodes);

/* The CUDA runtime the library was built with (CUDART_VERSION, e.g. 13000; linked statically)
 * and the CUDA version the installed driver supports (cudaDriverGetVersion; 0 without a
 * driver). The runtime needs driver >= runtime / 1000 * 1000 (CUDA 13: driver R580+). */
int spot_kernels_runtime_version(void);
int spot_kernels_driver_version(void);

const char* spot_status_string(int status);
int spot_kernels_abi_version(void);

#ifdef __cplusplus
}
#endif

#endif /* SPOT_EDGE_KERNELS_H */
