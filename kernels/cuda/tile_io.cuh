// tile_io.cuh -- moving tiles between global and shared memory for the SPOT attention kernel:
// staging strided windows (cp.async vectors along the unit-stride axis, or element by element),
// the exact fp32 CUDA-core GEMM over strided shared operands, and vectorised output stores.
// Every function is called by all kTileThreads threads of a block.
#pragma once

#include "common.cuh"

namespace spot {

constexpr int kTileThreads = 256;

namespace {   // internal linkage: each translation unit gets its own copies

// A window of a strided tensor: element (node i, channel j) at base[i * node_stride + j * chan_stride].
template <typename T> struct Window {
    const T* base;
    int64_t node_stride, chan_stride;
    int valid_nodes, valid_chans;
};

template <typename T, int kBytes>
__device__ __forceinline__ void stage_vectors(T* dst, int ld, const T* src, int64_t outer_stride, int outer,
                                              int inner, int valid_outer, int valid_inner) {
    constexpr int kVec = kBytes / static_cast<int>(sizeof(T));
    const int groups = inner / kVec;
    for (int idx = threadIdx.x; idx < outer * groups; idx += kTileThreads) {
        const int o = idx / groups;
        const int i0 = (idx - o * groups) * kVec;
        int count = o < valid_outer ? valid_inner - i0 : 0;
        count = count < 0 ? 0 : (count > kVec ? kVec : count);
        const T* from = count > 0 ? src + o * outer_stride + i0 : src;
        copy_async<kBytes>(dst + o * ld + i0, from, count * static_cast<int>(sizeof(T)));
    }
}

// Stage a (tile_nodes x tile_chans) window into shared memory, zero outside its valid part.
// node_major: stored [channel][node] (leading dimension ld), else [node][channel]. With
// vec_bytes > 0 the copies are asynchronous (the caller commits and waits); else synchronous.
template <typename T>
__device__ void stage_window(T* dst, int ld, bool node_major, int vec_bytes, const Window<T>& w, int tile_nodes,
                             int tile_chans) {
    const int outer = node_major ? tile_chans : tile_nodes;
    const int inner = node_major ? tile_nodes : tile_chans;
    const int valid_outer = node_major ? w.valid_chans : w.valid_nodes;
    const int valid_inner = node_major ? w.valid_nodes : w.valid_chans;
    const int64_t outer_stride = node_major ? w.chan_stride : w.node_stride;
    const int64_t inner_stride = node_major ? w.node_stride : w.chan_stride;
    switch (vec_bytes) {
        case 16: stage_vectors<T, 16>(dst, ld, w.base, outer_stride, outer, inner, valid_outer, valid_inner); return;
        case 8: stage_vectors<T, 8>(dst, ld, w.base, outer_stride, outer, inner, valid_outer, valid_inner); return;
        case 4: stage_vectors<T, 4>(dst, ld, w.base, outer_stride, outer, inner, valid_outer, valid_inner); return;
        default: break;
    }
    for (int idx = threadIdx.x; idx < outer * inner; idx += kTileThreads) {
        const int o = idx / inner;
        const int i = idx - o * inner;
        dst[o * ld + i] = (o < valid_outer && i < valid_inner) ? w.base[o * outer_stride + i * inner_stride] : zero<T>();
    }
}

// ---- fp32: CUDA-core GEMM over strided shared-memory operands (exact fp32) -------------------
// C(r, c) (+)= sum_k A(r, k) B(k, c), A(r, k) = a[r * a_rs + k * a_ks], B(k, c) = b[k * b_ks + c * b_cs],
// C(r, c) = cm[r * c_rs + c * c_cs].
__device__ void fma_gemm(float* cm, int c_rs, int c_cs, const float* a, int a_rs, int a_ks, const float* b,
                         int b_ks, int b_cs, int m, int ncols, int kdim, bool accumulate) {
    for (int idx = threadIdx.x; idx < m * ncols; idx += kTileThreads) {
        const int r = idx / ncols;
        const int col = idx - r * ncols;
        float acc = accumulate ? cm[r * c_rs + col * c_cs] : 0.0f;
        const float* arow = a + r * a_rs;
        const float* bcol = b + col * b_cs;
#pragma unroll 8
        for (int kk = 0; kk < kdim; ++kk) acc = fmaf(arow[kk * a_ks], bcol[kk * b_ks], acc);
        cm[r * c_rs + col * c_cs] = acc;
    }
}

// ---- output ------------------------------------------------------------------------------------
// Write the valid (rows_valid x cvalid) part of the O tile. out points at (b, row0, 0); the tile's
// columns start at c0. Vector stores along the output's unit-stride axis when o_vec > 0.
template <typename T, int kVec>
__device__ __forceinline__ void store_vectors(T* out, const Strides3& so, bool o_nm, const float* s_o, int ld_o, int c0,
                                              int rows_valid, int cvalid, int bm, int bv) {
    const int inner = o_nm ? bm : bv;                  // along the unit-stride axis
    const int outer = o_nm ? bv : bm;
    const int valid_inner = o_nm ? rows_valid : cvalid;
    const int valid_outer = o_nm ? cvalid : rows_valid;
    const int groups = inner / kVec;
    for (int idx = threadIdx.x; idx < outer * groups; idx += kTileThreads) {
        const int o = idx / groups;
        const int i0 = (idx - o * groups) * kVec;
        if (o >= valid_outer || i0 >= valid_inner) continue;
        const float* src = s_o + o * ld_o + i0;
        T* dst = o_nm ? out + static_cast<int64_t>(c0 + o) * so.c + i0 : out + static_cast<int64_t>(o) * so.r + c0 + i0;
        if (i0 + kVec <= valid_inner) {
            Vec<T, kVec> pack;
#pragma unroll
            for (int u = 0; u < kVec; ++u) pack.v[u] = from_float<T>(src[u]);
            *reinterpret_cast<Vec<T, kVec>*>(dst) = pack;
        } else {
            for (int u = 0; u < valid_inner - i0; ++u) dst[u] = from_float<T>(src[u]);
        }
    }
}

template <typename T>
__device__ void store_output(T* out, const Strides3& so, bool o_nm, int o_vec, const float* s_o, int ld_o, int c0,
                             int rows_valid, int cvalid, int bm, int bv) {
    switch (o_vec / static_cast<int>(sizeof(T))) {
        case 8: store_vectors<T, 8>(out, so, o_nm, s_o, ld_o, c0, rows_valid, cvalid, bm, bv); return;
        case 4: store_vectors<T, 4>(out, so, o_nm, s_o, ld_o, c0, rows_valid, cvalid, bm, bv); return;
        case 2: store_vectors<T, 2>(out, so, o_nm, s_o, ld_o, c0, rows_valid, cvalid, bm, bv); return;
        case 1: store_vectors<T, 1>(out, so, o_nm, s_o, ld_o, c0, rows_valid, cvalid, bm, bv); return;
        default: break;
    }
    for (int idx = threadIdx.x; idx < bm * bv; idx += kTileThreads) {
        const int r = idx / bv;
        const int c = idx - r * bv;
        if (r < rows_valid && c < cvalid)
            out[static_cast<int64_t>(r) * so.r + static_cast<int64_t>(c0 + c) * so.c] =
                from_float<T>(o_nm ? s_o[c * ld_o + r] : s_o[r * ld_o + c]);
    }
}

}  // namespace
}  // namespace spot
