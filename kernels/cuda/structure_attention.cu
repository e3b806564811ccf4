// structure_attention.cu -- fused softmax(scale q k^T) v for SPOT's ASR (eqs. 4-5).
//
// One head, N = 162 nodes, Dk = 256, Dv = 2048 (the wide value dimension is what stock
// flash-attention and TensorRT's fused MHA do not cover).
//
// One block owns BM query rows of one batch item and ALL N keys (padded to NP, a multiple
// of 16), so the softmax is exact in one pass and the probabilities stay on chip:
//   1. logits S (BM x NP, fp32, shared) = Q_tile K^T, accumulated over Dk in BK chunks;
//   2. row softmax in shared memory, probabilities P written in the input dtype;
//   3. for each BV-wide chunk of this block's share of Dv: stage V (NP x BV) in shared
//      memory, O = P V, write O.
// fp16 / bf16 use tensor cores (WMMA 16x16x16, fp32 accumulate); fp32 uses CUDA cores
// (exact fp32 like the PyTorch reference; it is not the performance target).
// The grid's y axis splits Dv between blocks when B * ceil(N / BM) is too small to fill
// the GPU (B = 1), each split recomputing the cheap logits.
#include <mma.h>

#include <type_traits>

#include "common.cuh"

namespace spot {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kBK = 64;    // Dk chunk
constexpr int kBV = 64;    // Dv chunk
// Element padding of T tiles: 8 keeps WMMA pointers 32-byte aligned (fp16 / bf16); 1 makes the
// fp32 CUDA-core path's strided shared-memory reads bank-conflict free.
template <typename T> __host__ __device__ constexpr int pad_t() { return std::is_same<T, float>::value ? 1 : 8; }
constexpr int kPadF = 4;   // element padding of fp32 tiles
constexpr int64_t kMaxNodes = 256;

template <typename T> __host__ __device__ constexpr int rows_per_block() { return std::is_same<T, float>::value ? 32 : 64; }

struct AttentionArgs {
    const void* q;
    const void* k;
    const void* v;
    void* out;
    int n, dk, dv, np, dv_per_block;
    Strides3 sq, sk, sv;
    float scale;
};

__host__ __device__ constexpr size_t align128(size_t bytes) { return (bytes + 127) / 128 * 128; }

template <typename T> struct SharedLayout {
    size_t q, kv, s, p, total;
    __host__ __device__ SharedLayout(int np) {
        constexpr int bm = rows_per_block<T>();
        const int kv_cols = (kBK > kBV ? kBK : kBV) + pad_t<T>();
        const size_t s_elems = static_cast<size_t>(bm) *
                               ((np + kPadF) > (kBV + kPadF) ? (np + kPadF) : (kBV + kPadF));
        q = 0;
        kv = q + align128(sizeof(T) * bm * (kBK + pad_t<T>()));
        s = kv + align128(sizeof(T) * static_cast<size_t>(np) * kv_cols);
        p = s + align128(sizeof(float) * s_elems);
        total = p + align128(sizeof(T) * static_cast<size_t>(bm) * (np + pad_t<T>()));
    }
};

// Copy a (rows x cols) window of a strided matrix into a row-major shared tile of `tile_rows`
// x `tile_cols` (leading dimension ld), zero-filling outside the valid window. The thread
// mapping follows whichever source axis is unit-stride, so global reads coalesce both for
// (B, N, C) contiguous tensors and for the (B, C, N)-contiguous views SPOT produces. Each
// thread issues kStageBatch independent loads before storing any of them, so enough requests
// are in flight to cover global-memory latency (the tiles are staged through registers).
constexpr int kStageBatch = 8;

template <typename T>
__device__ __forceinline__ void tile_coords(int idx, bool rows_fastest, int tile_rows, int tile_cols, int& r, int& c) {
    if (rows_fastest) { c = idx / tile_rows; r = idx - c * tile_rows; }
    else              { r = idx / tile_cols; c = idx - r * tile_cols; }
}

template <typename T>
__device__ void stage_tile(T* dst, int ld, const T* src, int64_t row_stride, int64_t col_stride,
                           int tile_rows, int tile_cols, int valid_rows, int valid_cols) {
    const int count = tile_rows * tile_cols;
    const bool rows_fastest = (row_stride == 1 && col_stride != 1);
    for (int base = threadIdx.x; base < count; base += kThreads * kStageBatch) {
        T values[kStageBatch];
#pragma unroll
        for (int u = 0; u < kStageBatch; ++u) {
            const int idx = base + u * kThreads;
            int r = 0, c = 0;
            tile_coords<T>(idx, rows_fastest, tile_rows, tile_cols, r, c);
            values[u] = (idx < count && r < valid_rows && c < valid_cols) ? src[r * row_stride + c * col_stride]
                                                                          : zero<T>();
        }
#pragma unroll
        for (int u = 0; u < kStageBatch; ++u) {
            const int idx = base + u * kThreads;
            if (idx < count) {
                int r = 0, c = 0;
                tile_coords<T>(idx, rows_fastest, tile_rows, tile_cols, r, c);
                dst[r * ld + c] = values[u];
            }
        }
    }
}

// C (fp32, shared, ld_c) (+)= A (M x K, row-major, shared) * B, over 16x16 output tiles
// distributed round-robin over the warps. B is (K x Ncols): row-major with ld_b when
// `b_transposed` is false, else stored as its transpose (Ncols x K, row-major, ld_b).
template <typename T, bool b_transposed>
__device__ void block_gemm(float* c, int ld_c, const T* a, int ld_a, const T* b, int ld_b,
                           int m, int ncols, int kdim, bool accumulate) {
    const int warp = threadIdx.x / 32;
    const int tiles_n = ncols / 16;
    const int tiles = (m / 16) * tiles_n;
    if constexpr (std::is_same<T, float>::value) {
        // CUDA-core path: each thread owns output elements (exact fp32).
        (void)warp; (void)tiles_n; (void)tiles;
        for (int idx = threadIdx.x; idx < m * ncols; idx += kThreads) {
            const int r = idx / ncols;
            const int col = idx - r * ncols;
            float acc = accumulate ? c[r * ld_c + col] : 0.0f;
            const float* arow = a + r * ld_a;
            if (b_transposed) {
                const float* brow = b + col * ld_b;
#pragma unroll 8
                for (int kk = 0; kk < kdim; ++kk) acc = fmaf(arow[kk], brow[kk], acc);
            } else {
#pragma unroll 8
                for (int kk = 0; kk < kdim; ++kk) acc = fmaf(arow[kk], b[kk * ld_b + col], acc);
            }
            c[r * ld_c + col] = acc;
        }
    } else {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
        using namespace nvcuda;
        using BLayout = typename std::conditional<b_transposed, wmma::col_major, wmma::row_major>::type;
        for (int t = warp; t < tiles; t += kWarps) {
            const int tr = (t / tiles_n) * 16;
            const int tc = (t % tiles_n) * 16;
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            if (accumulate) wmma::load_matrix_sync(acc, c + tr * ld_c + tc, ld_c, wmma::mem_row_major);
            else            wmma::fill_fragment(acc, 0.0f);
            for (int kk = 0; kk < kdim; kk += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, BLayout> fb;
                wmma::load_matrix_sync(fa, a + tr * ld_a + kk, ld_a);
                const T* bp = b_transposed ? b + tc * ld_b + kk : b + kk * ld_b + tc;
                wmma::load_matrix_sync(fb, bp, ld_b);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(c + tr * ld_c + tc, acc, ld_c, wmma::mem_row_major);
        }
#else
        __trap();  // bf16 / fp16 WMMA path needs sm_80+; the library is built for sm_87 / sm_90
#endif
    }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
structure_attention_kernel(AttentionArgs args) {
    constexpr int bm = rows_per_block<T>();
    constexpr int kPadT = pad_t<T>();
    extern __shared__ __align__(128) unsigned char smem[];
    const SharedLayout<T> layout(args.np);
    T* s_q = reinterpret_cast<T*>(smem + layout.q);
    T* s_kv = reinterpret_cast<T*>(smem + layout.kv);
    float* s_s = reinterpret_cast<float*>(smem + layout.s);
    T* s_p = reinterpret_cast<T*>(smem + layout.p);

    const int b = blockIdx.z;
    const int row0 = blockIdx.x * bm;
    const int rows_valid = min(bm, args.n - row0);
    const int np = args.np;
    const int ld_s = np + kPadF;
    const int ld_p = np + kPadT;
    const T* q = static_cast<const T*>(args.q) + b * args.sq.b + row0 * args.sq.r;
    const T* k = static_cast<const T*>(args.k) + b * args.sk.b;
    const T* v = static_cast<const T*>(args.v) + b * args.sv.b;
    T* out = static_cast<T*>(args.out) + (static_cast<int64_t>(b) * args.n + row0) * args.dv;

    // 1. logits = Q_tile K^T over Dk chunks.
    for (int d0 = 0; d0 < args.dk; d0 += kBK) {
        const int dvalid = min(kBK, args.dk - d0);
        stage_tile(s_q, kBK + kPadT, q + d0 * args.sq.c, args.sq.r, args.sq.c, bm, kBK, rows_valid, dvalid);
        stage_tile(s_kv, kBK + kPadT, k + d0 * args.sk.c, args.sk.r, args.sk.c, np, kBK, args.n, dvalid);
        __syncthreads();
        block_gemm<T, true>(s_s, ld_s, s_q, kBK + kPadT, s_kv, kBK + kPadT, bm, np, kBK, d0 > 0);
        __syncthreads();
    }

    // 2. exact softmax per row (one warp per row), probabilities in the input dtype.
    const int lane = threadIdx.x % 32;
    for (int r = threadIdx.x / 32; r < bm; r += kWarps) {
        float* row = s_s + r * ld_s;
        float row_max = -INFINITY;
        for (int c = lane; c < args.n; c += 32) row_max = fmaxf(row_max, row[c] * args.scale);
        for (int off = 16; off > 0; off /= 2) row_max = fmaxf(row_max, __shfl_xor_sync(0xffffffffu, row_max, off));
        float total = 0.0f;
        for (int c = lane; c < args.n; c += 32) {
            const float e = __expf(row[c] * args.scale - row_max);
            row[c] = e;
            total += e;
        }
        for (int off = 16; off > 0; off /= 2) total += __shfl_xor_sync(0xffffffffu, total, off);
        const float inv = 1.0f / total;
        for (int c = lane; c < np; c += 32)
            s_p[r * ld_p + c] = c < args.n ? from_float<T>(row[c] * inv) : zero<T>();
    }
    __syncthreads();

    // 3. O = P V over this block's share of the value width.
    const int dv_begin = blockIdx.y * args.dv_per_block;
    const int dv_end = min(args.dv, dv_begin + args.dv_per_block);
    float* s_o = s_s;  // the logits are consumed: reuse their space for the output tile
    for (int c0 = dv_begin; c0 < dv_end; c0 += kBV) {
        const int cvalid = min(kBV, dv_end - c0);
        stage_tile(s_kv, kBV + kPadT, v + c0 * args.sv.c, args.sv.r, args.sv.c, np, kBV, args.n, cvalid);
        __syncthreads();
        block_gemm<T, false>(s_o, kBV + kPadF, s_p, ld_p, s_kv, kBV + kPadT, bm, kBV, np, false);
        __syncthreads();
        for (int idx = threadIdx.x; idx < bm * kBV; idx += kThreads) {
            const int r = idx / kBV;
            const int c = idx - r * kBV;
            if (r < rows_valid && c < cvalid)
                out[static_cast<int64_t>(r) * args.dv + c0 + c] = from_float<T>(s_o[r * (kBV + kPadF) + c]);
        }
        // The next iteration's __syncthreads (after staging V) orders these reads of s_o
        // before the next block_gemm overwrites it.
    }
}

template <typename T>
int launch(AttentionArgs args, int64_t batch, cudaStream_t stream) {
    constexpr int bm = rows_per_block<T>();
    const SharedLayout<T> layout(args.np);
    int device = 0;
    int smem_optin = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess)
        return SPOT_ERROR_CUDA;
    if (layout.total > static_cast<size_t>(smem_optin)) return SPOT_ERROR_UNSUPPORTED;
    if (cudaFuncSetAttribute(structure_attention_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(layout.total)) != cudaSuccess)
        return SPOT_ERROR_CUDA;

    const int64_t m_tiles = ceil_div(args.n, bm);
    const int64_t dv_tiles = ceil_div(args.dv, kBV);
    const int64_t wanted = 2LL * multiprocessor_count();
    int64_t splits = ceil_div(wanted, batch * m_tiles);
    splits = splits < 1 ? 1 : (splits > dv_tiles ? dv_tiles : splits);
    args.dv_per_block = static_cast<int>(ceil_div(dv_tiles, splits) * kBV);
    splits = ceil_div(args.dv, args.dv_per_block);

    const dim3 grid(static_cast<unsigned>(m_tiles), static_cast<unsigned>(splits), static_cast<unsigned>(batch));
    structure_attention_kernel<T><<<grid, kThreads, layout.total, stream>>>(args);
    return launch_status();
}

}  // namespace
}  // namespace spot

extern "C" int64_t spot_structure_attention_max_nodes(void) { return spot::kMaxNodes; }

extern "C" int spot_structure_attention(const void* q, const void* k, const void* v, void* out,
                                        int64_t batch, int64_t nodes, int64_t key_dim, int64_t value_dim,
                                        const int64_t* q_strides, const int64_t* k_strides,
                                        const int64_t* v_strides, float scale, int dtype,
                                        cudaStream_t stream) {
    using namespace spot;
    if (!q || !k || !v || !out || batch <= 0 || nodes <= 0 || key_dim <= 0 || value_dim <= 0)
        return SPOT_ERROR_INVALID_ARGUMENT;
    if (nodes > kMaxNodes || batch > 65535 || key_dim > INT32_MAX || value_dim > INT32_MAX)
        return SPOT_ERROR_UNSUPPORTED;
    AttentionArgs args{};
    args.q = q;
    args.k = k;
    args.v = v;
    args.out = out;
    args.n = static_cast<int>(nodes);
    args.dk = static_cast<int>(key_dim);
    args.dv = static_cast<int>(value_dim);
    args.np = static_cast<int>(round_up(nodes, 16));
    args.sq = strides_or_contiguous(q_strides, nodes, key_dim);
    args.sk = strides_or_contiguous(k_strides, nodes, key_dim);
    args.sv = strides_or_contiguous(v_strides, nodes, value_dim);
    args.scale = scale;
    switch (dtype) {
        case SPOT_DTYPE_FLOAT32: return launch<float>(args, batch, stream);
        case SPOT_DTYPE_FLOAT16: return launch<__half>(args, batch, stream);
        case SPOT_DTYPE_BFLOAT16: return launch<__nv_bfloat16>(args, batch, stream);
        default: return SPOT_ERROR_INVALID_ARGUMENT;
    }
}
