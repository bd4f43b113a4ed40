// Projections for few rows (decode): y[r][n] (+)= sum_k x[r][k] * w[n][k], fp32 activations, bf16 weights [N][K], fp32
// accumulation. Two families: the fp32 tilings below (up to 8 rows per block, 1 for the _r1 entries; engine.cu's
// gemv_bf16 keeps one warp per output column, these tile the same product differently) and, further down, the
// tensor-core kernels (gemv_tc, moe_gemv_tc). `kimi bench-kernels --backend cuda --variants` times them all. The tilings:
//   CPW  output columns per warp: its lanes keep CPW weight streams in flight at once;
//   WPC  warps per column group: K is split into WPC contiguous parts summed in shared memory in a fixed order, so a
//        short matrix still spreads over many warps.
// Every variant sums each output in an order fixed by (K, variant), never by M: a row's result does not depend on
// which other rows share the launch. The _swiglu entries take rows of gate|up (K each) and use their SwiGLU, computed
// once per block into shared memory (ROWS * K floats, dynamic) exactly as engine.cu's swiglu kernel computes it. Needs K % 8 == 0 and 16-byte aligned rows (the engine checks, else gemv_bf16).
// Block: 256 threads (8 warps) = 8 / WPC column groups of CPW columns. Grid (ceil(N / (8 / WPC * CPW)), ceil(M / ROWS)).

#include "common.cuh"

#define FULL 0xffffffffu

// Starts pulling [p, p + bytes) into L2 (p 16-byte aligned, bytes a multiple of 16) without waiting for it.
__device__ __forceinline__ void prefetch_l2(const void* p, int bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (bytes > 0) {
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p), "r"(bytes) : "memory");
    }
#endif
}

__device__ __forceinline__ float lane_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(FULL, v, o);
    }
    return v;
}

template <int CPW, int WPC, int ROWS, bool GATED>
__device__ __forceinline__ void gemv_tiled(const float* __restrict__ x, int ldx, const uint16_t* __restrict__ w,
                                           float* __restrict__ y, int ldy, int M, int N, int K, int accumulate) {
    constexpr int GROUPS = 8 / WPC;
    __shared__ float partial[8][CPW][ROWS];
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int group = warp / WPC;
    const int part = warp % WPC;
    const int n0 = (blockIdx.x * GROUPS + group) * CPW;
    const int r0 = blockIdx.y * ROWS;
    const int rows = min(ROWS, M - r0);
    const int span = (K + WPC * 256 - 1) / (WPC * 256) * 256;   // this part's K, in whole steps of 256
    const int k_begin = part * span;
    const int k_end = min(K, k_begin + span);
    const float* xs[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
        xs[r] = x + (size_t) (r0 + min(r, rows - 1)) * ldx;
    }
    const uint16_t* wr[CPW];
#pragma unroll
    for (int c = 0; c < CPW; c++) {
        wr[c] = w + (size_t) min(n0 + c, N - 1) * K;           // past N: read a real row, write nothing
    }
    if (lane < CPW && n0 + lane < N) {
        prefetch_l2(w + (size_t) (n0 + lane) * K + k_begin, 2 * (k_end - k_begin));
    }
    begin_in_order();
    if (GATED) {                                           // x rows are gate|up: the input is their SwiGLU, staged once
        extern __shared__ float staged_act[];              // [ROWS][K]
        for (int r = 0; r < rows; r++) {
            for (int i = 4 * threadIdx.x; i < K; i += 4 * blockDim.x) {
                const float4 g = *reinterpret_cast<const float4*>(xs[r] + i);
                const float4 u = *reinterpret_cast<const float4*>(xs[r] + K + i);
                *reinterpret_cast<float4*>(staged_act + (size_t) r * K + i) =
                        make_float4(swiglu_one(g.x, u.x), swiglu_one(g.y, u.y), swiglu_one(g.z, u.z), swiglu_one(g.w, u.w));
            }
        }
        __syncthreads();
#pragma unroll
        for (int r = 0; r < ROWS; r++) {
            xs[r] = staged_act + (size_t) min(r, rows - 1) * K;
        }
    }
    float acc[CPW][ROWS];
#pragma unroll
    for (int c = 0; c < CPW; c++) {
#pragma unroll
        for (int r = 0; r < ROWS; r++) {
            acc[c][r] = 0.f;
        }
    }
#pragma unroll 2
    for (int k = k_begin + lane * 8; k < k_end; k += 256) {
        uint4 packed[CPW];
#pragma unroll
        for (int c = 0; c < CPW; c++) {
            packed[c] = __ldg(reinterpret_cast<const uint4*>(wr[c] + k));
        }
#pragma unroll
        for (int r = 0; r < ROWS; r++) {
            if (r < rows) {
                const float4 a = *reinterpret_cast<const float4*>(xs[r] + k);
                const float4 b = *reinterpret_cast<const float4*>(xs[r] + k + 4);
#pragma unroll
                for (int c = 0; c < CPW; c++) {
                    float s = acc[c][r];
                    s = fmaf(a.x, __uint_as_float(packed[c].x << 16), s);
                    s = fmaf(a.y, __uint_as_float(packed[c].x & 0xffff0000u), s);
                    s = fmaf(a.z, __uint_as_float(packed[c].y << 16), s);
                    s = fmaf(a.w, __uint_as_float(packed[c].y & 0xffff0000u), s);
                    s = fmaf(b.x, __uint_as_float(packed[c].z << 16), s);
                    s = fmaf(b.y, __uint_as_float(packed[c].z & 0xffff0000u), s);
                    s = fmaf(b.z, __uint_as_float(packed[c].w << 16), s);
                    s = fmaf(b.w, __uint_as_float(packed[c].w & 0xffff0000u), s);
                    acc[c][r] = s;
                }
            }
        }
    }
#pragma unroll
    for (int c = 0; c < CPW; c++) {
#pragma unroll
        for (int r = 0; r < ROWS; r++) {
            const float v = lane_sum(acc[c][r]);
            if (lane == 0) {
                partial[warp][c][r] = v;
            }
        }
    }
    __syncthreads();
    if (threadIdx.x < GROUPS * CPW * ROWS) {
        const int g = threadIdx.x / (CPW * ROWS);
        const int c = threadIdx.x / ROWS % CPW;
        const int r = threadIdx.x % ROWS;
        const int n = (blockIdx.x * GROUPS + g) * CPW + c;
        if (n < N && r < rows) {
            float s = 0.f;
#pragma unroll
            for (int p = 0; p < WPC; p++) {
                s += partial[g * WPC + p][c][r];
            }
            float* out = y + (size_t) (r0 + r) * ldy + n;
            *out = accumulate ? *out + s : s;
        }
    }
}

// Each variant four times: _r8 takes up to 8 rows per block, _r1 one (fewer registers for a batch of one; the same
// sums); the _swiglu forms take gate|up rows (separate entries, so the plain ones keep their register count).
#define GEMV_ENTRY(CPW, WPC, ROWS, SUFFIX, GATED)                                                                       \
    extern "C" __global__ void __launch_bounds__(256) gemv_c##CPW##w##WPC##SUFFIX(const float* __restrict__ x, int ldx, \
            const uint16_t* __restrict__ w, float* __restrict__ y, int ldy, int M, int N, int K, int accumulate) {      \
        gemv_tiled<CPW, WPC, ROWS, GATED>(x, ldx, w, y, ldy, M, N, K, accumulate);                                      \
    }
#define GEMV_VARIANT(CPW, WPC)                                                                                          \
    GEMV_ENTRY(CPW, WPC, 8, _r8, false)                                                                                 \
    GEMV_ENTRY(CPW, WPC, 1, _r1, false)                                                                                 \
    GEMV_ENTRY(CPW, WPC, 8, _r8_swiglu, true)                                                                           \
    GEMV_ENTRY(CPW, WPC, 1, _r1_swiglu, true)

GEMV_VARIANT(1, 1)
GEMV_VARIANT(2, 1)
GEMV_VARIANT(4, 1)
GEMV_VARIANT(1, 2)
GEMV_VARIANT(1, 4)
GEMV_VARIANT(2, 2)
GEMV_VARIANT(2, 4)

// ---------------------------------------------------------------------------------------------------------------
// Tensor-core variant ("tc"): y^T = w · x^T with mma.sync m16n8k16 (bf16 in, fp32 accumulate). The weights are the
// A operand (16 output columns per block), the activations the B operand (8 rows per n-tile), split into hi = bf16(x)
// and lo = bf16(x - hi) so that the product keeps fp32 accuracy (the same split as the cuBLASLt path). The weights are
// read once for up to 8 n-tiles (64 rows). A lane loads 16 contiguous bytes of two weight rows and the matching 8
// activations, and feeds them to two MMAs as k-slots {2t, 2t+1, 2t+8, 2t+9}: a fixed permutation of k inside each
// 32-wide chunk, the same for every row. K is split over the 8 warps in whole chunks of 32 (by K only) and the warps'
// sums meet in shared memory in warp order, so a row's result does not depend on M or on the other rows.
// Block: 256 threads, 16 output columns; grid (ceil(N / 16), ceil(M / (8 * NT))). Needs K % 8 == 0, 16-byte aligned rows.
// ---------------------------------------------------------------------------------------------------------------

__device__ __forceinline__ uint32_t pack_bf16(float a, float b) {        // a in the low half (the lower k)
    const uint32_t ua = __float_as_uint(a), ub = __float_as_uint(b);
    const uint32_t ra = (ua + 0x7fffu + ((ua >> 16) & 1u)) >> 16;
    const uint32_t rb = (ub + 0x7fffu + ((ub >> 16) & 1u)) >> 16;
    return ra | (rb << 16);
}

__device__ __forceinline__ float bf16_hi(float a) {                     // a rounded to bf16, as a float
    const uint32_t u = __float_as_uint(a);
    return __uint_as_float(((u + 0x7fffu + ((u >> 16) & 1u)) >> 16) << 16);
}

__device__ __forceinline__ void mma_bf16(float* c, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

#define TC_UNROLL 4

// acc[nt] (the C fragment of n-tile nt) += this warp's K chunks of w rows (w_lo: row g, w_hi: row g + 8) times the
// activation rows xr[nt] (this lane's row g of n-tile nt; nullptr: a missing row, zeros). K is split over the block's
// 8 warps in whole chunks of 32 (by K only).
template <int NT>
__device__ __forceinline__ void tc_products(const float* const* xr, const uint16_t* __restrict__ w_lo, const uint16_t* __restrict__ w_hi,
                                            int K, float (*acc)[4]) {
    const int warp = threadIdx.x >> 5;
    const int t = threadIdx.x & 3;                         // 8 k values at 8t of each 32-wide chunk
    const int chunks = (K + 31) / 32;
    const int per = (chunks + 7) / 8;
    const int c_begin = warp * per;
    const int c_end = min(chunks, c_begin + per);
    for (int c0 = c_begin; c0 < c_end; c0 += TC_UNROLL) {
        uint4 wa[TC_UNROLL], wb[TC_UNROLL];
#pragma unroll
        for (int u = 0; u < TC_UNROLL; u++) {
            const int k = (c0 + u) * 32 + 8 * t;
            const bool in = c0 + u < c_end && k < K;
            wa[u] = in ? __ldg(reinterpret_cast<const uint4*>(w_lo + k)) : make_uint4(0, 0, 0, 0);
            wb[u] = in ? __ldg(reinterpret_cast<const uint4*>(w_hi + k)) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
#pragma unroll
            for (int u = 0; u < TC_UNROLL; u++) {
                const int k = (c0 + u) * 32 + 8 * t;
                float4 p = make_float4(0.f, 0.f, 0.f, 0.f), q = p;
                if (xr[nt] != nullptr && c0 + u < c_end && k < K) {
                    p = *reinterpret_cast<const float4*>(xr[nt] + k);
                    q = *reinterpret_cast<const float4*>(xr[nt] + k + 4);
                }
                const float h0 = bf16_hi(p.x), h1 = bf16_hi(p.y), h2 = bf16_hi(p.z), h3 = bf16_hi(p.w);
                const float h4 = bf16_hi(q.x), h5 = bf16_hi(q.y), h6 = bf16_hi(q.z), h7 = bf16_hi(q.w);
                // k-slots 2t, 2t+1 <- elements 0, 1 and 2t+8, 2t+9 <- 2, 3 (first MMA); 4..7 the same (second MMA)
                mma_bf16(acc[nt], wa[u].x, wb[u].x, wa[u].y, wb[u].y, pack_bf16(h0, h1), pack_bf16(h2, h3));
                mma_bf16(acc[nt], wa[u].x, wb[u].x, wa[u].y, wb[u].y, pack_bf16(p.x - h0, p.y - h1), pack_bf16(p.z - h2, p.w - h3));
                mma_bf16(acc[nt], wa[u].z, wb[u].z, wa[u].w, wb[u].w, pack_bf16(h4, h5), pack_bf16(h6, h7));
                mma_bf16(acc[nt], wa[u].z, wb[u].z, wa[u].w, wb[u].w, pack_bf16(q.x - h4, q.y - h5), pack_bf16(q.z - h6, q.w - h7));
            }
        }
    }
}

// The warps' fragments summed in warp order: y[out_row[r]][n0 + col] (+)= sum for the block's 16 columns (< N) and
// 8 * NT rows r (out_row[r] < 0: no row). partial: [8][16][8 * NT] floats of shared memory.
template <int NT>
__device__ __forceinline__ void tc_store(float (*acc)[4], float* partial, const int* out_row, float* __restrict__ y, int ldy,
                                         int n0, int N, int accumulate) {
    constexpr int R = 8 * NT;
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2;
    const int t = lane & 3;
    // C fragment: c0, c1 = (weight row g, activation rows 2t, 2t+1), c2, c3 = (weight row g + 8, the same rows)
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        partial[(warp * 16 + g) * R + nt * 8 + 2 * t] = acc[nt][0];
        partial[(warp * 16 + g) * R + nt * 8 + 2 * t + 1] = acc[nt][1];
        partial[(warp * 16 + g + 8) * R + nt * 8 + 2 * t] = acc[nt][2];
        partial[(warp * 16 + g + 8) * R + nt * 8 + 2 * t + 1] = acc[nt][3];
    }
    __syncthreads();
    for (int i = threadIdx.x; i < 16 * R; i += blockDim.x) {
        const int col = i % 16;                            // consecutive threads: consecutive output columns
        const int r = i / 16;
        const int n = n0 + col;
        if (n < N && out_row[r] >= 0) {
            float s = 0.f;
#pragma unroll
            for (int p = 0; p < 8; p++) {
                s += partial[(p * 16 + col) * R + r];
            }
            float* out = y + (size_t) out_row[r] * ldy + n;
            *out = accumulate ? *out + s : s;
        }
    }
}

template <int NT>
__device__ __forceinline__ void gemv_tc(const float* __restrict__ x, int ldx, const uint16_t* __restrict__ w,
                                        float* __restrict__ y, int ldy, int M, int N, int K, int accumulate) {
    __shared__ float partial[8 * 16 * 8 * NT];
    __shared__ int out_row[8 * NT];
    const int g = (threadIdx.x & 31) >> 2;                 // weight rows g and g + 8; activation row g of each n-tile
    const int n0 = blockIdx.x * 16;
    const int m0 = blockIdx.y * 8 * NT;
    {                                                      // lane l < 16 prefetches row n0 + l of this warp's K chunks
        const int lane = threadIdx.x & 31;
        const int chunks = (K + 31) / 32;
        const int per = (chunks + 7) / 8;
        const int k_begin = min(K, (threadIdx.x >> 5) * per * 32);
        if (lane < 16 && n0 + lane < N) {
            prefetch_l2(w + (size_t) (n0 + lane) * K + k_begin, 2 * (min(K, k_begin + per * 32) - k_begin));
        }
    }
    begin_in_order();
    const float* xr[NT];
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        const int row = m0 + nt * 8 + g;
        xr[nt] = row < M ? x + (size_t) row * ldx : nullptr;
    }
    if (threadIdx.x < 8 * NT) {
        out_row[threadIdx.x] = m0 + (int) threadIdx.x < M ? m0 + (int) threadIdx.x : -1;
    }
    float acc[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;
    }
    tc_products<NT>(xr, w + (size_t) min(n0 + g, N - 1) * K, w + (size_t) min(n0 + g + 8, N - 1) * K, K, acc);  // past N: a real row, unwritten
    tc_store<NT>(acc, partial, out_row, y, ldy, n0, N, accumulate);
}

// One expert projection on tensor cores for the 8 pair positions of one tile (engine.cu's moe_align grouping with
// tiles of 8): stage 0 (gate/up) reads token order[p] / topk of x and writes row p; stage 1 (down) reads row p and
// writes row order[p] (the pair); padding positions (order -1) are zeros and unwritten. w is [E][N][K]. A pair's sums
// do not depend on the other pairs of its tile. Grid (ceil(N / 16), max tiles); blocks past *tile_count return at once.
extern "C" __global__ void __launch_bounds__(256) moe_gemv_tc(const float* __restrict__ x, int ldx, const int* __restrict__ order,
                                                              const int* __restrict__ tile_expert, const int* __restrict__ tile_count,
                                                              int topk, int stage, const uint16_t* __restrict__ w,
                                                              long long expert_stride, float* __restrict__ y, int ldy, int N, int K) {
    __shared__ float partial[8 * 16 * 8];
    __shared__ int out_row[8];
    begin_in_order();                                      // the tiles come from the routing before
    const int tile = blockIdx.y;
    if (tile >= *tile_count) {
        return;
    }
    const int g = (threadIdx.x & 31) >> 2;
    const int n0 = blockIdx.x * 16;
    const int p0 = tile * 8;
    const int pair = order[p0 + g];
    const float* xr[1] = {pair < 0 ? nullptr : x + (size_t) (stage == 0 ? pair / topk : p0 + g) * ldx};
    if (threadIdx.x < 8) {
        const int mine = order[p0 + threadIdx.x];
        out_row[threadIdx.x] = mine < 0 ? -1 : stage == 0 ? p0 + (int) threadIdx.x : mine;
    }
    const uint16_t* we = w + (size_t) tile_expert[tile] * expert_stride;
    float acc[1][4] = {{0.f, 0.f, 0.f, 0.f}};
    tc_products<1>(xr, we + (size_t) min(n0 + g, N - 1) * K, we + (size_t) min(n0 + g + 8, N - 1) * K, K, acc);
    tc_store<1>(acc, partial, out_row, y, ldy, n0, N, 0);
}

#define GEMV_TC(NT)                                                                                                     \
    extern "C" __global__ void __launch_bounds__(256) gemv_tc_n##NT(const float* __restrict__ x, int ldx,              \
            const uint16_t* __restrict__ w, float* __restrict__ y, int ldy, int M, int N, int K, int accumulate) {      \
        gemv_tc<NT>(x, ldx, w, y, ldy, M, N, K, accumulate);                                                            \
    }

GEMV_TC(1)
GEMV_TC(2)
GEMV_TC(4)
GEMV_TC(8)
