// part_pool.cu -- node-level part division and pooling for SPOT's TPI (eq. 9), one pass.
//
// out[b, p, c] = mean_hw(Mbar_p * F_c) / (mean_hw(Mbar_p) + eps), where Mbar_p keeps
// part_maps[b, p] only at the nodes where it is the maximum over the P maps.
//
// One block owns `channels_per_block` channels of one batch item:
//   1. the P x HW divided maps Mbar (P = 7, HW = 162 in SPOT: under 5 KB) are formed in shared
//      memory, with the per-part scale 1 / (HW * (mean_hw(Mbar_p) + eps));
//   2. the feature rows are streamed once, in one of two ways:
//      - node-contiguous rows (NCHW features): a warp takes 4 rows at once (2 when PB = 16; PB
//        is P rounded up to 2, 4, 8 or 16), each lane loads its nodes of every row (2-element
//        vectors when aligned) before any FMA, so 12 independent loads are in flight per lane;
//        the per-lane partial sums (rows x PB) are reduced by a transposing butterfly (31
//        shuffles for 32 sums instead of 160);
//      - any other layout (channels-last: unit stride along channels): one thread per channel,
//        coalesced across the warp, PB accumulators, node loop unrolled by 4.
// Accumulators are sized to P (PB), not to the 16-part limit. Every feature element is read once:
// the kernel is bound by that read (B x C x HW elements).
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
    bool rows;     // feature rows are node-contiguous (sf.c == 1)
    int row_vec;   // elements per row load in the rows path (1 or 2)
};

// Sum of v[i] over the 32 lanes, for K (a power of two <= 32) values per lane, by a transposing
// butterfly: log2(K) halving steps (each lane keeps half of its values and trades the other half)
// then plain xor steps. Returns, in every lane l, the total of entry l / (32 / K); K - 1 + 5 -
// log2(K) shuffles instead of 5 K.
template <int K>
__device__ __forceinline__ float transpose_reduce(float (&v)[K]) {
    static_assert(K >= 1 && K <= 32 && (K & (K - 1)) == 0, "K must be a power of two <= 32");
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int half = K / 2, off = 16; half >= 1; half /= 2, off /= 2) {
        const bool upper = (lane & off) != 0;
#pragma unroll
        for (int i = 0; i < half; ++i) {
            const float send = upper ? v[i] : v[i + half];
            const float keep = upper ? v[i + half] : v[i];
            v[i] = keep + __shfl_xor_sync(0xffffffffu, send, off);
        }
    }
    float total = v[0];
#pragma unroll
    for (int off = 32 / K / 2; off >= 1; off /= 2) total += __shfl_xor_sync(0xffffffffu, total, off);
    return total;
}

// Rows path: warp w pools rows c_begin + (w + kWarps * pass) * R ... + R - 1 (R = 4, or 2 for
// PB = 16). Each lane covers nodes lane * V + 32 V s (s < kSteps) per outer step and issues all
// 12 row loads before any FMA (one outer step for SPOT's 162 nodes).
template <typename T, int PB, int V>
__device__ void pool_rows(const PoolArgs& args, const T* feats, T* out, const float* m_bar, const float* part_scale,
                          int c_begin, int c_end) {
    constexpr int R = PB >= 16 ? 2 : 4;          // rows per warp pass
    constexpr int K = R * PB;                    // partial sums per lane (8, 16 or 32)
    constexpr int kSteps = 3;                    // node steps per outer iteration (192 nodes at V = 2)
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int nodes = args.nodes;
    for (int c_base = c_begin + warp * R; c_base < c_end; c_base += kWarps * R) {
        float acc[K];
#pragma unroll
        for (int i = 0; i < K; ++i) acc[i] = 0.0f;
        for (int hw0 = lane * V; hw0 < nodes; hw0 += kSteps * 32 * V) {
            float f[kSteps][R][V];
#pragma unroll
            for (int step = 0; step < kSteps; ++step) {
                const int hw = hw0 + step * 32 * V;
#pragma unroll
                for (int j = 0; j < R; ++j) {
                    const int row = c_base + j;
                    const T* src = feats + static_cast<int64_t>(row) * args.sf.r + hw;
                    const bool ok = row < c_end;
                    if constexpr (V == 2) {
                        if (ok && hw + 2 <= nodes) {
                            const Vec<T, 2> pair = *reinterpret_cast<const Vec<T, 2>*>(src);
                            f[step][j][0] = to_float(pair.v[0]);
                            f[step][j][1] = to_float(pair.v[1]);
                        } else {
                            f[step][j][0] = (ok && hw < nodes) ? to_float(src[0]) : 0.0f;
                            f[step][j][1] = 0.0f;
                        }
                    } else {
                        f[step][j][0] = (ok && hw < nodes) ? to_float(src[0]) : 0.0f;
                    }
                }
            }
#pragma unroll
            for (int step = 0; step < kSteps; ++step) {
#pragma unroll
                for (int u = 0; u < V; ++u) {
                    const int hw = hw0 + step * 32 * V + u;
#pragma unroll
                    for (int p = 0; p < PB; ++p) {
                        const float m = (p < args.parts && hw < nodes) ? m_bar[p * nodes + hw] : 0.0f;
#pragma unroll
                        for (int j = 0; j < R; ++j) acc[j * PB + p] = fmaf(m, f[step][j][u], acc[j * PB + p]);
                    }
                }
            }
        }
        const float total = transpose_reduce<K>(acc);       // entry e = lane / (32 / K): row e / PB, part e % PB
        const int entry = lane / (32 / K);
        const int row = c_base + entry / PB;
        const int p = entry % PB;
        if (lane % (32 / K) == 0 && p < args.parts && row < c_end)
            out[static_cast<int64_t>(p) * args.channels + row] = from_float<T>(total * part_scale[p]);
    }
}

// Columns path: thread t pools channels c_begin + t, c_begin + t + kThreads, ... (any strides).
template <typename T, int PB>
__device__ void pool_columns(const PoolArgs& args, const T* feats, T* out, const float* m_bar, const float* part_scale,
                             int c_begin, int c_end) {
    const int nodes = args.nodes;
    for (int c = c_begin + static_cast<int>(threadIdx.x); c < c_end; c += kThreads) {
        const T* column = feats + static_cast<int64_t>(c) * args.sf.r;
        float acc[PB];
#pragma unroll
        for (int p = 0; p < PB; ++p) acc[p] = 0.0f;
#pragma unroll 4
        for (int hw = 0; hw < nodes; ++hw) {
            const float f = to_float(column[static_cast<int64_t>(hw) * args.sf.c]);
#pragma unroll
            for (int p = 0; p < PB; ++p)
                if (p < args.parts) acc[p] = fmaf(m_bar[p * nodes + hw], f, acc[p]);
        }
#pragma unroll
        for (int p = 0; p < PB; ++p)
            if (p < args.parts) out[static_cast<int64_t>(p) * args.channels + c] = from_float<T>(acc[p] * part_scale[p]);
    }
}

template <typename T, int PB>
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
    if (args.rows) {
        if (args.row_vec == 2) pool_rows<T, PB, 2>(args, feats, out, m_bar, part_scale, c_begin, c_end);
        else                   pool_rows<T, PB, 1>(args, feats, out, m_bar, part_scale, c_begin, c_end);
    } else {
        pool_columns<T, PB>(args, feats, out, m_bar, part_scale, c_begin, c_end);
    }
}

int64_t smem_bytes(int64_t parts, int64_t nodes) {
    return static_cast<int64_t>(sizeof(float) * (static_cast<size_t>(parts) * nodes + parts));
}

template <typename T, int PB>
int launch_bucket(PoolArgs args, int64_t batch, size_t smem, const DeviceFacts& facts, cudaStream_t stream) {
    static KernelSetup setup;
    int blocks_per_sm = 1;
    if (prepare_kernel(setup, part_pool_kernel<T, PB>, kThreads, smem, blocks_per_sm) != SPOT_OK) return SPOT_ERROR_CUDA;
    // Enough blocks for two full waves at B = 1, few enough to amortise step 1 at large B.
    const int64_t target_blocks = 2LL * facts.multiprocessors * blocks_per_sm;
    const int64_t smallest = args.rows ? kWarps * (32 / PB) : 32;
    int64_t per_block = 256;
    while (per_block > smallest && batch * ceil_div(args.channels, per_block) < target_blocks) per_block /= 2;
    args.channels_per_block = static_cast<int>(per_block);
    const dim3 grid(static_cast<unsigned>(ceil_div(args.channels, per_block)), static_cast<unsigned>(batch));
    part_pool_kernel<T, PB><<<grid, kThreads, smem, stream>>>(args);
    return launch_status();
}

template <typename T>
int launch(PoolArgs args, int64_t batch, cudaStream_t stream) {
    const size_t smem = static_cast<size_t>(smem_bytes(args.parts, args.nodes));
    DeviceFacts facts;
    if (current_device_facts(facts) != SPOT_OK) return SPOT_ERROR_CUDA;
    if (smem > static_cast<size_t>(facts.smem_optin)) return SPOT_ERROR_UNSUPPORTED;
    args.rows = args.sf.c == 1;
    args.row_vec = 1;
    if (args.rows && sizeof(T) == 2 && reinterpret_cast<uintptr_t>(args.feats) % 4 == 0 && args.sf.b % 2 == 0 &&
        args.sf.r % 2 == 0)
        args.row_vec = 2;
    if (args.parts <= 2) return launch_bucket<T, 2>(args, batch, smem, facts, stream);
    if (args.parts <= 4) return launch_bucket<T, 4>(args, batch, smem, facts, stream);
    if (args.parts <= 8) return launch_bucket<T, 8>(args, batch, smem, facts, stream);
    return launch_bucket<T, 16>(args, batch, smem, facts, stream);
}

}  // namespace
}  // namespace spot

extern "C" int64_t spot_part_pool_max_parts(void) { return spot::kMaxParts; }

extern "C" int64_t spot_part_pool_smem_bytes(int64_t parts, int64_t nodes) {
    if (parts <= 0 || nodes <= 0 || parts > spot::kMaxParts) return -1;
    return spot::smem_bytes(parts, nodes);
}

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
