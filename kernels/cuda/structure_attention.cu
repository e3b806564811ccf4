// structure_attention.cu -- fused softmax(scale q k^T) v for SPOT's ASR (eqs. 4-5).
//
// One head, N = 162 nodes, Dk = 256, Dv = 2048 (the wide value dimension is what stock
// flash-attention and TensorRT's fused MHA do not cover).
//
// One block owns BM query rows of one batch item and ALL N keys (padded to NP, a multiple
// of 16), so the softmax is exact in one pass and the probabilities stay on chip:
//   1. logits S (BM x NP, fp32) = Q_tile K^T over Dk in BK chunks; the Q / K chunks are staged
//      with cp.async into two buffers (chunk i + 1 loads while chunk i multiplies) and the
//      logits accumulate in registers (WMMA fragments), written to shared memory once;
//   2. row softmax in shared memory, probabilities P written in the input dtype;
//   3. for each BV-wide chunk of this block's share of Dv: V staged by cp.async into two
//      buffers (chunk i + 1 in flight during the MMA of chunk i), O = P V, O written with
//      vector stores in the output's layout.
// Tiles are copied along whichever axis is unit-stride in global memory (16-byte copies for
// contiguous (B, N, C) tensors, 4-byte ones for SPOT's (B, C, N) views whose 324-byte rows are
// only 4-byte aligned) and stored in that orientation; the MMA reads them with the matching
// row- / column-major fragment layouts, so no layout needs a transposing copy.
// fp16 / bf16 use tensor cores (WMMA 16x16x16, fp32 accumulate); fp32 uses CUDA cores and is
// exact fp32 like the PyTorch reference (IEEE expf and division; no --use_fast_math).
// The grid's y axis splits Dv between blocks as far as whole waves allow (B = 1 fills the GPU,
// B = 32 does not spill into a second, mostly empty wave); each split recomputes the logits.
#include <mma.h>

#include <type_traits>

#include "common.cuh"
#include "tile_io.cuh"

namespace spot {
namespace {

constexpr int kThreads = kTileThreads;
constexpr int kWarps = kThreads / 32;
constexpr int kPadF = 4;            // float padding of fp32 tiles (WMMA stores need ld % 4 == 0)
constexpr int64_t kMaxNodes = 256;

template <typename T> __host__ __device__ constexpr bool is_f32() { return std::is_same<T, float>::value; }
// Rows per block, Dk chunk, Dv chunk and T padding (8 keeps WMMA pointers 32-byte aligned and
// cp.async destinations 16-byte aligned; 1 keeps the fp32 CUDA-core reads conflict free).
template <typename T> __host__ __device__ constexpr int block_rows() { return is_f32<T>() ? 32 : 64; }
template <typename T> __host__ __device__ constexpr int chunk_k() { return is_f32<T>() ? 32 : 64; }
template <typename T> __host__ __device__ constexpr int chunk_v() { return is_f32<T>() ? 32 : 64; }
template <typename T> __host__ __device__ constexpr int pad_t() { return is_f32<T>() ? 1 : 8; }
template <typename T> __host__ __device__ constexpr int min_blocks() { return is_f32<T>() ? 1 : 2; }
template <typename T> __host__ __device__ constexpr int max_copy_bytes() { return is_f32<T>() ? 4 : 16; }
// Logit tiles (16 x 16) one warp accumulates in registers: (64 / 16) x (kMaxNodes / 16) / warps.
constexpr int kMaxTilesPerWarp = (64 / 16) * (kMaxNodes / 16) / kWarps;   // 8

struct AttentionArgs {
    const void* q;
    const void* k;
    const void* v;
    void* out;
    int n, dk, dv, np, dv_per_block;
    Strides3 sq, sk, sv, so;
    float scale;
    // Per tensor: stored node-major (unit stride along nodes) and copy width in bytes (0: by element).
    bool q_nm, k_nm, v_nm, o_nm;
    int q_vec, k_vec, v_vec, o_vec;
};

// Byte offsets of the shared-memory regions. Phase 1 uses two Q+K buffers (from 0) and S; phase 2
// S and P; phase 3 P, two V buffers and O. Regions of different phases overlap. Tiles reserve the
// larger of their two orientations, so the size depends on NP and the dtype only.
template <typename T> struct SharedLayout {
    size_t p, q_bytes, qk_bytes, s, v0, v1, o, total;
    __host__ __device__ explicit SharedLayout(int np) {
        constexpr int bm = block_rows<T>(), bk = chunk_k<T>(), bv = chunk_v<T>(), pad = pad_t<T>();
        auto larger = [](size_t a, size_t b) { return a > b ? a : b; };
        q_bytes = align128(sizeof(T) * larger(size_t(bm) * (bk + pad), size_t(bk) * (bm + pad)));
        const size_t k_bytes = align128(sizeof(T) * larger(size_t(np) * (bk + pad), size_t(bk) * (np + pad)));
        const size_t v_bytes = align128(sizeof(T) * larger(size_t(np) * (bv + pad), size_t(bv) * (np + pad)));
        const size_t s_bytes = align128(sizeof(float) * size_t(bm) * (np + kPadF));
        const size_t p_bytes = align128(sizeof(T) * size_t(bm) * (np + pad));
        const size_t o_bytes = align128(sizeof(float) * larger(size_t(bm) * (bv + kPadF), size_t(bv) * (bm + kPadF)));
        qk_bytes = q_bytes + k_bytes;
        p = 0;
        // Tensor-core logits live in registers until phase 1 ends, so S may reuse the Q/K
        // buffers; the fp32 path accumulates S in shared memory during phase 1.
        s = is_f32<T>() ? larger(p_bytes, 2 * qk_bytes) : p_bytes;
        v0 = p_bytes;
        v1 = v0 + v_bytes;
        o = v1 + v_bytes;
        total = larger(larger(2 * qk_bytes, s + s_bytes), o + o_bytes);
    }
    __host__ __device__ size_t qk(int buffer) const { return buffer == 0 ? 0 : qk_bytes; }
};

// ---- fp16 / bf16: WMMA tiles ----------------------------------------------------------------
using namespace nvcuda;
using AccFragment = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// acc += A[tr:tr+16, :kdim] B[:kdim, tc:tc+16]; A is (M x K) and B (K x N) in shared memory,
// each row- or column-major with its leading dimension.
template <typename T, typename ALayout, typename BLayout>
__device__ __forceinline__ void mma_steps(AccFragment& acc, const T* a, int lda, const T* b, int ldb, int tr, int tc,
                                          int kdim) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
    constexpr bool a_row = std::is_same<ALayout, wmma::row_major>::value;
    constexpr bool b_row = std::is_same<BLayout, wmma::row_major>::value;
    for (int kk = 0; kk < kdim; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, ALayout> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, BLayout> fb;
        wmma::load_matrix_sync(fa, a_row ? a + tr * lda + kk : a + kk * lda + tr, lda);
        wmma::load_matrix_sync(fb, b_row ? b + kk * ldb + tc : b + tc * ldb + kk, ldb);
        wmma::mma_sync(acc, fa, fb, acc);
    }
#else
    __trap();  // bf16 / fp16 WMMA needs sm_80+; the library is built for sm_87 / sm_90
#endif
}

// One Dk chunk of the logits. Warp w owns the 16-row strip w % 4 of the 64 query rows and the
// column tiles w / 4 + 2 i; it loads its A fragment once per k step and reuses it.
constexpr int kStrips = 64 / 16;
constexpr int kColumnGroups = kWarps / kStrips;
static_assert(kMaxTilesPerWarp * kColumnGroups * 16 >= kMaxNodes, "logit tiles must cover kMaxNodes keys");

template <typename T, typename ALayout, typename BLayout>
__device__ __forceinline__ void logits_chunk(AccFragment (&acc)[kMaxTilesPerWarp], const T* a, int lda, const T* b,
                                             int ldb, int tiles_n, int kdim) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
    constexpr bool a_row = std::is_same<ALayout, wmma::row_major>::value;
    constexpr bool b_row = std::is_same<BLayout, wmma::row_major>::value;
    const int warp = threadIdx.x / 32;
    const int tr = (warp % kStrips) * 16;
    const int first = warp / kStrips;
    for (int kk = 0; kk < kdim; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, ALayout> fa;
        wmma::load_matrix_sync(fa, a_row ? a + tr * lda + kk : a + kk * lda + tr, lda);
#pragma unroll
        for (int i = 0; i < kMaxTilesPerWarp; ++i) {
            const int tc = (first + kColumnGroups * i) * 16;
            if (tc < tiles_n * 16) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, BLayout> fb;
                wmma::load_matrix_sync(fb, b_row ? b + kk * ldb + tc : b + tc * ldb + kk, ldb);
                wmma::mma_sync(acc[i], fa, fb, acc[i]);
            }
        }
    }
#else
    __trap();
#endif
}

// O (BM x BV, fp32, shared) = P (BM x NP, row-major) V (NP x BV); O stored column-major when
// the output is node-major.
template <typename T, typename BLayout>
__device__ __forceinline__ void values_chunk(float* s_o, int ld_o, bool o_nm, const T* p, int ld_p, const T* v,
                                             int ld_v, int bm, int bv, int np) {
    const int warp = threadIdx.x / 32;
    const int tiles_n = bv / 16;
    for (int t = warp; t < (bm / 16) * tiles_n; t += kWarps) {
        const int tr = (t / tiles_n) * 16;
        const int tc = (t % tiles_n) * 16;
        AccFragment acc;
        wmma::fill_fragment(acc, 0.0f);
        mma_steps<T, wmma::row_major, BLayout>(acc, p, ld_p, v, ld_v, tr, tc, np);
        if (o_nm) wmma::store_matrix_sync(s_o + tc * ld_o + tr, acc, ld_o, wmma::mem_col_major);
        else      wmma::store_matrix_sync(s_o + tr * ld_o + tc, acc, ld_o, wmma::mem_row_major);
    }
}

// ---- the kernel ------------------------------------------------------------------------------------
template <typename T>
__global__ void __launch_bounds__(kThreads, min_blocks<T>())
structure_attention_kernel(AttentionArgs args) {
    constexpr int bm = block_rows<T>(), bk = chunk_k<T>(), bv = chunk_v<T>(), pad = pad_t<T>();
    extern __shared__ __align__(128) unsigned char smem[];
    const SharedLayout<T> layout(args.np);
    const int np = args.np;
    const int ld_q = args.q_nm ? bm + pad : bk + pad;
    const int ld_k = args.k_nm ? np + pad : bk + pad;
    const int ld_s = np + kPadF;
    const int ld_p = np + pad;
    float* s_s = reinterpret_cast<float*>(smem + layout.s);
    T* s_p = reinterpret_cast<T*>(smem + layout.p);

    const int b = blockIdx.z;
    const int row0 = blockIdx.x * bm;
    const int rows_valid = min(bm, args.n - row0);
    const T* q = static_cast<const T*>(args.q) + b * args.sq.b + row0 * args.sq.r;
    const T* k = static_cast<const T*>(args.k) + b * args.sk.b;

    // 1. logits = Q_tile K^T over Dk chunks, double-buffered.
    auto stage_qk = [&](int chunk, int buffer) {
        const int d0 = chunk * bk;
        const int dvalid = min(bk, args.dk - d0);
        T* s_q = reinterpret_cast<T*>(smem + layout.qk(buffer));
        T* s_k = reinterpret_cast<T*>(smem + layout.qk(buffer) + layout.q_bytes);
        stage_window<T>(s_q, ld_q, args.q_nm, args.q_vec,
                        Window<T>{q + d0 * args.sq.c, args.sq.r, args.sq.c, rows_valid, dvalid}, bm, bk);
        stage_window<T>(s_k, ld_k, args.k_nm, args.k_vec,
                        Window<T>{k + d0 * args.sk.c, args.sk.r, args.sk.c, args.n, dvalid}, np, bk);
        copy_async_commit();
    };
    const int chunks = static_cast<int>(ceil_div(args.dk, bk));
    stage_qk(0, 0);
    if constexpr (is_f32<T>()) {
        for (int i = 0; i < chunks; ++i) {
            if (i + 1 < chunks) { stage_qk(i + 1, (i + 1) & 1); copy_async_wait<1>(); }
            else                { copy_async_wait<0>(); }
            __syncthreads();
            const T* s_q = reinterpret_cast<const T*>(smem + layout.qk(i & 1));
            const T* s_k = reinterpret_cast<const T*>(smem + layout.qk(i & 1) + layout.q_bytes);
            // A(r, d) from Q, B(d, key) from K, in their stored orientations.
            fma_gemm(s_s, ld_s, 1, s_q, args.q_nm ? 1 : ld_q, args.q_nm ? ld_q : 1,
                     s_k, args.k_nm ? ld_k : 1, args.k_nm ? 1 : ld_k, bm, np, bk, i > 0);
            __syncthreads();
        }
    } else {
        AccFragment acc[kMaxTilesPerWarp];
#pragma unroll
        for (int i = 0; i < kMaxTilesPerWarp; ++i) wmma::fill_fragment(acc[i], 0.0f);
        static_assert(is_f32<T>() || block_rows<T>() == kStrips * 16, "one strip per 16 rows");
        const int tiles_n = np / 16;
        for (int i = 0; i < chunks; ++i) {
            if (i + 1 < chunks) { stage_qk(i + 1, (i + 1) & 1); copy_async_wait<1>(); }
            else                { copy_async_wait<0>(); }
            __syncthreads();
            const T* s_q = reinterpret_cast<const T*>(smem + layout.qk(i & 1));
            const T* s_k = reinterpret_cast<const T*>(smem + layout.qk(i & 1) + layout.q_bytes);
            // Q stored [row][d] is row-major A, [d][row] column-major; K stored [key][d] is
            // column-major B = K^T, [d][key] row-major.
            if (args.q_nm) {
                if (args.k_nm) logits_chunk<T, wmma::col_major, wmma::row_major>(acc, s_q, ld_q, s_k, ld_k, tiles_n, bk);
                else           logits_chunk<T, wmma::col_major, wmma::col_major>(acc, s_q, ld_q, s_k, ld_k, tiles_n, bk);
            } else {
                if (args.k_nm) logits_chunk<T, wmma::row_major, wmma::row_major>(acc, s_q, ld_q, s_k, ld_k, tiles_n, bk);
                else           logits_chunk<T, wmma::row_major, wmma::col_major>(acc, s_q, ld_q, s_k, ld_k, tiles_n, bk);
            }
            __syncthreads();   // buffer i & 1 is refilled by the next iteration; S reuses both
        }
        const int warp = threadIdx.x / 32;
#pragma unroll
        for (int i = 0; i < kMaxTilesPerWarp; ++i) {
            const int tc = (warp / kStrips + kColumnGroups * i) * 16;
            if (tc < np)
                wmma::store_matrix_sync(s_s + (warp % kStrips) * 16 * ld_s + tc, acc[i], ld_s, wmma::mem_row_major);
        }
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
            const float e = softmax_exp<T>(row[c] * args.scale - row_max);
            row[c] = e;
            total += e;
        }
        for (int off = 16; off > 0; off /= 2) total += __shfl_xor_sync(0xffffffffu, total, off);
        const float inv = 1.0f / total;
        for (int c = lane; c < np; c += 32) s_p[r * ld_p + c] = c < args.n ? from_float<T>(row[c] * inv) : zero<T>();
    }
    __syncthreads();

    // 3. O = P V over this block's share of the value width, V double-buffered.
    // (batch and row offsets re-read from blockIdx: cheaper than keeping them live through phase 1)
    const T* v = static_cast<const T*>(args.v) + static_cast<int>(blockIdx.z) * args.sv.b;
    T* out = static_cast<T*>(args.out) + static_cast<int>(blockIdx.z) * args.so.b +
             static_cast<int>(blockIdx.x) * bm * args.so.r;
    const int ld_v = args.v_nm ? np + pad : bv + pad;
    const int ld_o = args.o_nm ? bm + kPadF : bv + kPadF;
    float* s_o = reinterpret_cast<float*>(smem + layout.o);
    const int dv_begin = blockIdx.y * args.dv_per_block;
    const int dv_end = min(args.dv, dv_begin + args.dv_per_block);
    auto stage_v = [&](int chunk, int buffer) {
        const int c0 = dv_begin + chunk * bv;
        const int cvalid = min(bv, dv_end - c0);
        stage_window<T>(reinterpret_cast<T*>(smem + (buffer == 0 ? layout.v0 : layout.v1)), ld_v, args.v_nm,
                        args.v_vec, Window<T>{v + c0 * args.sv.c, args.sv.r, args.sv.c, args.n, cvalid}, np, bv);
        copy_async_commit();
    };
    const int vchunks = static_cast<int>(ceil_div(dv_end - dv_begin, bv));
    stage_v(0, 0);
    for (int i = 0; i < vchunks; ++i) {
        if (i + 1 < vchunks) { stage_v(i + 1, (i + 1) & 1); copy_async_wait<1>(); }
        else                 { copy_async_wait<0>(); }
        __syncthreads();   // chunk i visible; the previous chunk's O reads are done
        const T* s_v = reinterpret_cast<const T*>(smem + ((i & 1) == 0 ? layout.v0 : layout.v1));
        if constexpr (is_f32<T>()) {
            fma_gemm(s_o, args.o_nm ? 1 : ld_o, args.o_nm ? ld_o : 1, s_p, ld_p, 1,
                     s_v, args.v_nm ? 1 : ld_v, args.v_nm ? ld_v : 1, bm, bv, np, false);
        } else {
            // V stored [key][c] is row-major B, [c][key] column-major.
            if (args.v_nm) values_chunk<T, wmma::col_major>(s_o, ld_o, args.o_nm, s_p, ld_p, s_v, ld_v, bm, bv, np);
            else           values_chunk<T, wmma::row_major>(s_o, ld_o, args.o_nm, s_p, ld_p, s_v, ld_v, bm, bv, np);
        }
        __syncthreads();   // O complete; buffer i & 1 free for chunk i + 2
        const int c0 = dv_begin + i * bv;
        store_output<T>(out, args.so, args.o_nm, args.o_vec, s_o, ld_o, c0,
                        min(bm, args.n - static_cast<int>(blockIdx.x) * bm), min(bv, dv_end - c0), bm, bv);
    }
}

// ---- host side -------------------------------------------------------------------------------------
// Same rule as spot_edge.kernels.triton_common.wave_splits (tested to agree).
int64_t wave_splits(int64_t work_items, int64_t tiles, int64_t slots, double fixed_cost) {
    work_items = work_items < 1 ? 1 : work_items;
    tiles = tiles < 1 ? 1 : tiles;
    slots = slots < 1 ? 1 : slots;
    int64_t best = 1;
    double best_cost = 1e300;
    for (int64_t splits = 1; splits <= tiles; ++splits) {
        const int64_t per_split = ceil_div(tiles, splits);
        if (splits > 1 && ceil_div(tiles, per_split) < splits) continue;
        const int64_t waves = ceil_div(work_items * splits, slots);
        const double cost = static_cast<double>(waves) * (static_cast<double>(per_split) + fixed_cost);
        if (cost < best_cost - 1e-9) {
            best = splits;
            best_cost = cost;
        }
    }
    return best;
}

template <typename T> int64_t splits_for(int64_t batch, int64_t nodes, int64_t key_dim, int64_t value_dim, int64_t slots) {
    const int64_t m_tiles = ceil_div(nodes, block_rows<T>());
    const int64_t dv_tiles = ceil_div(value_dim, chunk_v<T>());
    return wave_splits(batch * m_tiles, dv_tiles, slots, static_cast<double>(key_dim) / chunk_v<T>());
}

template <typename T> int64_t smem_bytes_for(int64_t nodes) {
    return static_cast<int64_t>(SharedLayout<T>(static_cast<int>(round_up(nodes, 16))).total);
}

template <typename T>
int launch(AttentionArgs args, int64_t batch, cudaStream_t stream) {
    static KernelSetup setup;
    const SharedLayout<T> layout(args.np);
    DeviceFacts facts;
    if (current_device_facts(facts) != SPOT_OK) return SPOT_ERROR_CUDA;
    if (layout.total > static_cast<size_t>(facts.smem_optin)) return SPOT_ERROR_UNSUPPORTED;
    int blocks_per_sm = 1;
    if (prepare_kernel(setup, structure_attention_kernel<T>, kThreads, layout.total, blocks_per_sm) != SPOT_OK)
        return SPOT_ERROR_CUDA;

    const int64_t m_tiles = ceil_div(args.n, block_rows<T>());
    const int64_t dv_tiles = ceil_div(args.dv, chunk_v<T>());
    int64_t splits = splits_for<T>(batch, args.n, args.dk, args.dv,
                                   static_cast<int64_t>(facts.multiprocessors) * blocks_per_sm);
    args.dv_per_block = static_cast<int>(ceil_div(dv_tiles, splits) * chunk_v<T>());
    splits = ceil_div(args.dv, args.dv_per_block);

    // Tile orientation and copy width per tensor (node-major when unit stride along nodes).
    const size_t es = sizeof(T);
    constexpr int kMaxBytes = max_copy_bytes<T>();
    auto plan = [&](const void* ptr, const Strides3& s, bool& node_major, int& vec) {
        node_major = s.r == 1 && s.c != 1;
        vec = node_major ? vector_bytes(ptr, s.b, s.c, s.r, es, kMaxBytes) : vector_bytes(ptr, s.b, s.r, s.c, es, kMaxBytes);
    };
    plan(args.q, args.sq, args.q_nm, args.q_vec);
    plan(args.k, args.sk, args.k_nm, args.k_vec);
    plan(args.v, args.sv, args.v_nm, args.v_vec);
    plan(args.out, args.so, args.o_nm, args.o_vec);

    const dim3 grid(static_cast<unsigned>(m_tiles), static_cast<unsigned>(splits), static_cast<unsigned>(batch));
    structure_attention_kernel<T><<<grid, kThreads, layout.total, stream>>>(args);
    return launch_status();
}

}  // namespace
}  // namespace spot

extern "C" int64_t spot_structure_attention_max_nodes(void) { return spot::kMaxNodes; }

extern "C" int64_t spot_structure_attention_smem_bytes(int64_t nodes, int dtype) {
    using namespace spot;
    if (nodes <= 0 || nodes > kMaxNodes) return -1;
    switch (dtype) {
        case SPOT_DTYPE_FLOAT32: return smem_bytes_for<float>(nodes);
        case SPOT_DTYPE_FLOAT16: return smem_bytes_for<__half>(nodes);
        case SPOT_DTYPE_BFLOAT16: return smem_bytes_for<__nv_bfloat16>(nodes);
        default: return -1;
    }
}

extern "C" int64_t spot_structure_attention_splits(int64_t batch, int64_t nodes, int64_t key_dim, int64_t value_dim,
                                                   int dtype, int64_t slots) {
    using namespace spot;
    if (batch <= 0 || nodes <= 0 || key_dim <= 0 || value_dim <= 0) return -1;
    switch (dtype) {
        case SPOT_DTYPE_FLOAT32: return splits_for<float>(batch, nodes, key_dim, value_dim, slots);
        case SPOT_DTYPE_FLOAT16: return splits_for<__half>(batch, nodes, key_dim, value_dim, slots);
        case SPOT_DTYPE_BFLOAT16: return splits_for<__nv_bfloat16>(batch, nodes, key_dim, value_dim, slots);
        default: return -1;
    }
}

extern "C" int spot_structure_attention(const void* q, const void* k, const void* v, void* out,
                                        int64_t batch, int64_t nodes, int64_t key_dim, int64_t value_dim,
                                        const int64_t* q_strides, const int64_t* k_strides,
                                        const int64_t* v_strides, const int64_t* out_strides, float scale,
                                        int dtype, cudaStream_t stream) {
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
    args.so = strides_or_contiguous(out_strides, nodes, value_dim);
    args.scale = scale;
    switch (dtype) {
        case SPOT_DTYPE_FLOAT32: return launch<float>(args, batch, stream);
        case SPOT_DTYPE_FLOAT16: return launch<__half>(args, batch, stream);
        case SPOT_DTYPE_BFLOAT16: return launch<__nv_bfloat16>(args, batch, stream);
        default: return SPOT_ERROR_INVALID_ARGUMENT;
    }
}
