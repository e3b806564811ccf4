// part_pool.cu -- node-level part division and pooling for SPOT's TPI (eq. 9), one pass.
//
// out[b, p, c] = mean_hw(Mbar_p * F_c) / (mean_hw(Mbar_p) + eps), where Mbar_p keeps
// part_maps[b, p] only at the nodes where it is the maximum over the P maps.
//
// One block owns `channels_per_block` channels of one batch item:
//   1. the P x HW divided maps Mbar (P = 7, HW = 162 in SPOT: under 5 KB) are formed in shared
//      memory, with the per-part scale 1 / (HW * (mean_hw(Mbar_p) + eps));
//   2. each warp streams whole feature rows (HW contiguous values, coalesced), each lane keeps
//      P partial dot products in registers, a warp shuffle reduction finishes them.
// Every feature element is read once: the kernel is bound by that read (B x C x HW elements).
#include "common.cuh"

namespace spot {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxParts = 16;

struct PoolArgs {
    const void* maps;
    const void* feats;
    void* out;
    int parts, channels, nodes, channels_per_block;
    Strides3 sm, sf;
    float eps;
};

template <typename T>
__global__ void __launch_bounds__(kThreads, 2)
part_pool_kernel(PoolArgs args) {
    extern __shared__ __align__(16) unsigned char smem[];
    float* m_bar = reinterpret_cast<float*>(smem);          // parts x nodes
    float* part_scale = m_bar + args.parts * args.nodes;     // parts

    const int b = blockIdx.y;
    const T* maps = static_cast<const T*>(args.maps) + b * args.sm.b;
    const T* feats = static_cast<const T*>(args.feats) + b * args.sf.b;
    T* out = static_cast<T*>(args.out) + static_cast<int64_t>(b) * args.parts * args.channels;

    // 1. arg-max division of the maps (ties keep every maximal map, like the reference).
    for (int hw = threadIdx.x; hw < args.nodes; hw += kThreads) {
        float node_max = -INFINITY;
        for (int p = 0; p < args.parts; ++p)
            node_max = fmaxf(node_max, to_float(maps[p * args.sm.r + hw * args.sm.c]));
        for (int p = 0; p < args.parts; ++p) {
            // Mbar is formed in the input dtype in the reference; the value is exact either way.
            const float m = to_float(maps[p * args.sm.r + hw * args.sm.c]);
            m_bar[p * args.nodes + hw] = (m == node_max) ? m : 0.0f;
        }
    }
    __syncthreads();
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    for (int p = warp; p < args.parts; p += kWarps) {
        float mass = 0.0f;
        for (int hw = lane; hw < args.nodes; hw += 32) mass += m_bar[p * args.nodes + hw];
        for (int off = 16; off > 0; off /= 2) mass += __shfl_xor_sync(0xffffffffu, mass, off);
        if (lane == 0) {
            const float hw = static_cast<float>(args.nodes);
            part_scale[p] = 1.0f / (hw * (mass / hw + args.eps));
        }
    }
    __syncthreads();

    // 2. stream the feature rows of this block's channels.
    const int c_begin = blockIdx.x * args.channels_per_block;
    const int c_end = min(args.channels, c_begin + args.channels_per_block);
    for (int c = c_begin + warp; c < c_end; c += kWarps) {
        const T* row = feats + c * args.sf.r;
        float acc[kMaxParts];
#pragma unroll
        for (int p = 0; p < kMaxParts; ++p) acc[p] = 0.0f;
#pragma unroll 4  // several independent row loads in flight per lane (HW = 162: 6 per lane)
        for (int hw = lane; hw < args.nodes; hw += 32) {
            const float f = to_float(row[hw * args.sf.c]);
#pragma unroll
            for (int p = 0; p < kMaxParts; ++p)
                if (p < args.parts) acc[p] = fmaf(m_bar[p * args.nodes + hw], f, acc[p]);
        }
#pragma unroll
        for (int p = 0; p < kMaxParts; ++p) {
            if (p < args.parts) {
                float s = acc[p];
                for (int off = 16; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off);
                if (lane == p) out[static_cast<int64_t>(p) * args.channels + c] = from_float<T>(s * part_scale[p]);
            }
        }
    }
}

template <typename T>
int launch(PoolArgs args, int64_t batch, cudaStream_t stream) {
    const size_t smem = sizeof(float) * (static_cast<size_t>(args.parts) * args.nodes + args.parts);
    int device = 0;
    int smem_optin = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess)
        return SPOT_ERROR_CUDA;
    if (smem > static_cast<size_t>(smem_optin)) return SPOT_ERROR_UNSUPPORTED;
    if (smem > 48 * 1024 &&
        cudaFuncSetAttribute(part_pool_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(smem)) != cudaSuccess)
        return SPOT_ERROR_CUDA;
    // Enough blocks to fill the GPU at B = 1, few enough to amortise step 1 at large B.
    const int64_t target_blocks = 4LL * multiprocessor_count();
    int64_t per_block = 64;
    while (per_block > kWarps && batch * ceil_div(args.channels, per_block) < target_blocks) per_block /= 2;
    args.channels_per_block = static_cast<int>(per_block);
    const dim3 grid(static_cast<unsigned>(ceil_div(args.channels, per_block)), static_cast<unsigned>(batch));
    part_pool_kernel<T><<<grid, kThreads, smem, stream>>>(args);
    return launch_status();
}

}  // namespace
}  // namespace spot

extern "C" int64_t spot_part_pool_max_parts(void) { return spot::kMaxParts; }

extern "C" int spot_part_pool(const void* part_maps, const void* features, void* out,
                              int64_t batch, int64_t parts, int64_t channels, int64_t nodes,
                              const int64_t* maps_strides, const int64_t* feature_strides,
                              float eps, int dtype, cudaStream_t stream) {
    using namespace spot;
    if (!part_maps || !features || !out || batch <= 0 || parts <= 0 || channels <= 0 || nodes <= 0)
        return SPOT_ERROR_INVALID_ARGUMENT;
    if (parts > kMaxParts || batch > 65535 || channels > INT32_MAX || nodes > INT32_MAX)
        return SPOT_ERROR_UNSUPPORTED;
    PoolArgs args{};
    args.maps = part_maps;
    args.feats = features;
    args.out = out;
    args.parts = static_cast<int>(parts);
    args.channels = static_cast<int>(channels);
    args.nodes = static_cast<int>(nodes);
    args.sm = strides_or_contiguous(maps_strides, parts, nodes);
    args.sf = strides_or_contiguous(feature_strides, channels, nodes);
    args.eps = eps;
    switch (dtype) {
        case SPOT_DTYPE_FLOAT32: return launch<float>(args, batch, stream);
        case SPOT_DTYPE_FLOAT16: return launch<__half>(args, batch, stream);
        case SPOT_DTYPE_BFLOAT16: return launch<__nv_bfloat16>(args, batch, stream);
        default: return SPOT_ERROR_INVALID_ARGUMENT;
    }
}
