// The CUDA engine's general kernels: every operation of the forward pass for any model shape (the tuned kernels for
// the real model's shapes live in kda_decode.cu, kda_prefill.cu and mla_decode.cu). Activations are fp32 row-major
// [rows][columns] with an explicit row stride (ld*), weights bf16 [out][in] (the checkpoint's layout), small vectors
// (norm weights, conv taps, A_log, dt_bias, router bias) fp32. Every reduction runs in a fixed order, so a row's
// result does not depend on which other rows share the launch (batched decode = decoding alone, bit for bit).
//
// A "segment" is one sequence's run of consecutive rows in a launch: seg_start[s], seg_count[s], and the sequence's
// state slot seg_slot[s]. Decode is a launch of segments of one row each.

#include "common.cuh"
#include "kda_delta_rule.cuh"

#define FULL 0xffffffffu

__device__ __forceinline__ float bf16_to_float(uint16_t u) {
    return __uint_as_float(((uint32_t) u) << 16);
}

__device__ __forceinline__ float softplusf_torch(float z) {
    return z > 20.f ? z : log1pf(expf(z));
}

__device__ __forceinline__ uint16_t round_bf16(float f) {
    uint32_t b = __float_as_uint(f);
    return (uint16_t) ((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(FULL, v, o);
    }
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        v = fmaxf(v, __shfl_xor_sync(FULL, v, o));
    }
    return v;
}

// v combined over the block (blockDim a multiple of 32, at most 1024) by sum or max, the same value in every thread,
// warps combined in a fixed order.
template <bool MAX>
__device__ __forceinline__ float block_reduce(float v, float* partial) {
    v = MAX ? warp_max(v) : warp_sum(v);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) {
        partial[threadIdx.x >> 5] = v;
    }
    __syncthreads();
    float r = MAX ? -INFINITY : 0.f;
    for (int w = 0; w < (int) (blockDim.x >> 5); w++) {
        r = MAX ? fmaxf(r, partial[w]) : r + partial[w];
    }
    return r;
}

__device__ float block_sum(float v) {
    __shared__ float partial[32];
    return block_reduce<false>(v, partial);
}

__device__ float block_max(float v) {
    __shared__ float partial[32];
    return block_reduce<true>(v, partial);
}

// ---------------------------------------------------------------------------------------------------------------
// Embedding, norms, activations
// ---------------------------------------------------------------------------------------------------------------

// out[t] = table[ids[t]] (bf16 -> fp32). Grid: T.
extern "C" __global__ void embed_rows(const uint16_t* __restrict__ table, const int* __restrict__ ids, float* __restrict__ out,
                                      int dim) {
    begin_in_order();
    const uint16_t* row = table + (size_t) ids[blockIdx.x] * dim;
    float* y = out + (size_t) blockIdx.x * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        y[i] = bf16_to_float(row[i]);
    }
}

// h[r] += delta[r] (when delta is not null), then y[r] = w * h[r] / sqrt(mean(h[r]^2) + eps). Rows have stride ldh / ldy,
// h may be y (in-place norm). A thread keeps its first NORM_HELD values in registers, so the second pass issues its loads
// without waiting on the stores of the first (h and y may alias). Grid: rows; blockDim any multiple of 32 (1024 used).
#define NORM_HELD 4
extern "C" __global__ void add_rms_norm(float* h, int ldh, const float* __restrict__ delta, const float* __restrict__ w,
                                        float* y, int ldy, int dim, float eps) {
    begin_in_order();
    float* x = h + (size_t) blockIdx.x * ldh;
    float* out = y + (size_t) blockIdx.x * ldy;
    float held[NORM_HELD];
    float ss = 0.f;
#pragma unroll
    for (int j = 0; j < NORM_HELD; j++) {
        const int i = threadIdx.x + j * blockDim.x;
        float v = 0.f;
        if (i < dim) {
            v = x[i];
            if (delta != nullptr) {
                v += delta[(size_t) blockIdx.x * dim + i];
            }
        }
        held[j] = v;
    }
    if (delta != nullptr) {                                // dims past the held ones: h += delta in place
        for (int i = threadIdx.x + NORM_HELD * blockDim.x; i < dim; i += blockDim.x) {
            x[i] = x[i] + delta[(size_t) blockIdx.x * dim + i];
        }
    }
#pragma unroll
    for (int j = 0; j < NORM_HELD; j++) {
        const int i = threadIdx.x + j * blockDim.x;
        if (i < dim) {
            if (delta != nullptr) {
                x[i] = held[j];
            }
            ss += held[j] * held[j];
        }
    }
    for (int i = threadIdx.x + NORM_HELD * blockDim.x; i < dim; i += blockDim.x) {
        const float v = x[i];
        ss += v * v;
    }
    const float inv = (float) (1.0 / sqrt((double) block_sum(ss) / dim + (double) eps));
#pragma unroll
    for (int j = 0; j < NORM_HELD; j++) {
        const int i = threadIdx.x + j * blockDim.x;
        if (i < dim) {
            out[i] = w[i] * (held[j] * inv);
        }
    }
    for (int i = threadIdx.x + NORM_HELD * blockDim.x; i < dim; i += blockDim.x) {
        out[i] = w[i] * (x[i] * inv);
    }
}

// out[r][i] = silu(gu[r][i]) * gu[r][width + i]. Grid (rows, ceil(width / blockDim)).
extern "C" __global__ void swiglu(const float* __restrict__ gu, int ldg, float* __restrict__ out, int ldo, int width) {
    begin_in_order();
    const int i = blockIdx.y * blockDim.x + threadIdx.x;
    if (i < width) {
        const float* g = gu + (size_t) blockIdx.x * ldg;
        out[(size_t) blockIdx.x * ldo + i] = swiglu_one(g[i], g[width + i]);
    }
}

// y[r][0..cols) = bf16(x[r][0..cols)) (round to nearest even), the input of a cuBLASLt projection. Grid: rows.
extern "C" __global__ void to_bf16(const float* __restrict__ x, int ldx, uint16_t* __restrict__ y, int cols) {
    begin_in_order();
    const float* in = x + (size_t) blockIdx.x * ldx;
    uint16_t* out = y + (size_t) blockIdx.x * cols;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        out[i] = round_bf16(in[i]);
    }
}

// x = hi + lo with hi = bf16(x), lo = bf16(x - hi) (relative error ~2^-16): two tensor-core products then give an
// fp32-accurate projection. Grid: rows.
extern "C" __global__ void to_bf16_split(const float* __restrict__ x, int ldx, uint16_t* __restrict__ hi, uint16_t* __restrict__ lo,
                                         int cols) {
    begin_in_order();
    const float* in = x + (size_t) blockIdx.x * ldx;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        uint16_t h = round_bf16(in[i]);
        hi[(size_t) blockIdx.x * cols + i] = h;
        lo[(size_t) blockIdx.x * cols + i] = round_bf16(in[i] - bf16_to_float(h));
    }
}

// y[i] = halves[i] + halves[n + i] for i < n: the two parts of a split-activation product. Grid: ceil(n / 256).
extern "C" __global__ void add_halves(float* __restrict__ y, const float* __restrict__ halves, long long n) {
    begin_in_order();
    long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        y[i] = halves[i] + halves[n + i];
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Projections with fp32 activations and bf16 weights: one warp per output column, up to 8 rows at a time
// ---------------------------------------------------------------------------------------------------------------

#define GEMV_ROWS 8

// act[r][0..K) = swiglu_one(gate, up) of rows src[r] = [gate (K) | up (K)] for r < rows, by the whole block, into shared
// memory; vec: K % 4 == 0 and 16-byte aligned rows. Ends with a barrier. So a down projection can take gate|up directly
// (the same values the swiglu kernel writes), without a swiglu launch.
__device__ __forceinline__ void stage_swiglu(const float* const* src, int rows, int K, bool vec, float* act) {
    for (int r = 0; r < rows; r++) {
        if (vec) {
            for (int i = 4 * threadIdx.x; i < K; i += 4 * blockDim.x) {
                const float4 g = *reinterpret_cast<const float4*>(src[r] + i);
                const float4 u = *reinterpret_cast<const float4*>(src[r] + K + i);
                *reinterpret_cast<float4*>(act + (size_t) r * K + i) =
                        make_float4(swiglu_one(g.x, u.x), swiglu_one(g.y, u.y), swiglu_one(g.z, u.z), swiglu_one(g.w, u.w));
            }
        } else {
            for (int i = threadIdx.x; i < K; i += blockDim.x) {
                act[(size_t) r * K + i] = swiglu_one(src[r][i], src[r][K + i]);
            }
        }
    }
    __syncthreads();
}

// s + (a | b) . q, q holding 8 bf16 weights, summed in element order.
__device__ __forceinline__ float fma8(float s, const float4 a, const float4 b, const uint4 q) {
    s = fmaf(a.x, __uint_as_float(q.x << 16), s);
    s = fmaf(a.y, __uint_as_float(q.x & 0xffff0000u), s);
    s = fmaf(a.z, __uint_as_float(q.y << 16), s);
    s = fmaf(a.w, __uint_as_float(q.y & 0xffff0000u), s);
    s = fmaf(b.x, __uint_as_float(q.z << 16), s);
    s = fmaf(b.y, __uint_as_float(q.z & 0xffff0000u), s);
    s = fmaf(b.z, __uint_as_float(q.w << 16), s);
    return fmaf(b.w, __uint_as_float(q.w & 0xffff0000u), s);
}

// acc[r] += sum over this lane's k of x_r[k] * w[k] for r < rows <= ROWS (the order of a row's sums does not depend on
// ROWS or rows); vec: 8 weights (16 bytes) per load, x rows 16-byte aligned.
template <int ROWS>
__device__ __forceinline__ void dot_rows(const float* const* xs, int rows, const uint16_t* __restrict__ w, int K, bool vec,
                                         float* acc) {
    const int lane = threadIdx.x & 31;
    if (vec) {
#pragma unroll 2
        for (int k = lane * 8; k < K; k += 256) {
            const uint4 packed = __ldg(reinterpret_cast<const uint4*>(w + k));
#pragma unroll
            for (int r = 0; r < ROWS; r++) {
                if (r < rows) {
                    const float4 a = *reinterpret_cast<const float4*>(xs[r] + k);
                    const float4 b = *reinterpret_cast<const float4*>(xs[r] + k + 4);
                    acc[r] = fma8(acc[r], a, b, packed);
                }
            }
        }
    } else {
        for (int k = lane; k < K; k += 32) {
            float wf = bf16_to_float(w[k]);
#pragma unroll
            for (int r = 0; r < ROWS; r++) {
                if (r < rows) {
                    acc[r] = fmaf(xs[r][k], wf, acc[r]);
                }
            }
        }
    }
}

// y[r][n] (+)= sum_k x[r][k] * w[n][k] for r < M, n < N. Block: 256 threads = 8 output columns; grid (ceil(N/8), ceil(M/8)).
extern "C" __global__ void __launch_bounds__(256) gemv_bf16(const float* __restrict__ x, int ldx, const uint16_t* __restrict__ w,
                                                            float* __restrict__ y, int ldy, int M, int N, int K, int vec,
                                                            int accumulate) {
    begin_in_order();
    const int n = blockIdx.x * 8 + (threadIdx.x >> 5);
    const int r0 = blockIdx.y * GEMV_ROWS;
    if (n >= N) {
        return;
    }
    const int rows = min(GEMV_ROWS, M - r0);
    const float* xs[GEMV_ROWS];
#pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++) {
        xs[r] = x + (size_t) (r0 + min(r, rows - 1)) * ldx;
    }
    float acc[GEMV_ROWS] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    dot_rows<GEMV_ROWS>(xs, rows, w + (size_t) n * K, K, vec != 0, acc);
#pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++) {
        float s = warp_sum(acc[r]);
        if ((threadIdx.x & 31) == 0 && r < rows) {
            float* out = y + (size_t) (r0 + r) * ldy + n;
            *out = accumulate ? *out + s : s;
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// MoE: routing, grouping by expert, gathered expert projections, weighted combine
// ---------------------------------------------------------------------------------------------------------------

#define MAX_TOPK 32

// Expert selection, one block per token (its threads score, warp 0 chooses), the algorithm of model-core's Routing in
// double precision: sigmoid scores, correction bias for selection, group-limited top-k (group score = sum of its two
// best), weights from the unbiased (or biased) scores, renormalised, scaled. Ties go to the lower index.
// With one_order (T = 1 only) it also writes the one-pair tiles moe_align would make for that token (pair slot in tile
// slot, any order serves), so a one-token step needs no moe_align. logits [T][ldl], the first E columns. Grid: T blocks
// of 32 to 1024 threads; shared: 2E + 64 doubles.
__device__ __forceinline__ void warp_argmax(double& value, int& index) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        double v = __shfl_xor_sync(FULL, value, o);
        int i = __shfl_xor_sync(FULL, index, o);
        if (i >= 0 && (index < 0 || v > value || (v == value && i < index))) {
            value = v;
            index = i;
        }
    }
}

extern "C" __global__ void moe_route(const float* __restrict__ logits, int ldl, const float* __restrict__ bias, int T, int E, int topk,
                                     int groups, int topk_groups, int renormalize, int biased_weights, float scaling,
                                     int* __restrict__ ids, float* __restrict__ weights, int* __restrict__ one_order,
                                     int* __restrict__ one_tile_expert, int* __restrict__ one_tile_count,
                                     unsigned long long* __restrict__ loads) {
    begin_in_order();
    extern __shared__ double route_shared[];
    double* score = route_shared;                          // [E] sigmoid scores
    double* choice = route_shared + E;                     // [E] selection scores; -inf once masked or taken
    double* group_score = route_shared + 2 * E;            // [64]
    const int t = blockIdx.x;
    const int lane = threadIdx.x & 31;
    const float* l = logits + (size_t) t * ldl;
    for (int i = threadIdx.x; i < E; i += blockDim.x) {    // the scores on the whole block, the choice on warp 0
        score[i] = 1.0 / (1.0 + exp(-(double) l[i]));
        choice[i] = score[i] + (double) bias[i];
    }
    __syncthreads();
    if (threadIdx.x >= 32) {
        return;
    }
    if (groups > 1) {
        const int per = E / groups;
        for (int g = lane; g < groups; g += 32) {
            double first = -INFINITY, second = -INFINITY;
            for (int i = g * per; i < (g + 1) * per; i++) {
                if (choice[i] > first) {
                    second = first;
                    first = choice[i];
                } else if (choice[i] > second) {
                    second = choice[i];
                }
            }
            group_score[g] = first + second;
        }
        __syncwarp();
        unsigned long long keep = 0ull;
        for (int n = 0; n < topk_groups; n++) {
            double best = 0.0;
            int index = -1;
            for (int g = lane; g < groups; g += 32) {
                if (!(keep & (1ull << g)) && (index < 0 || group_score[g] > best)) {
                    best = group_score[g];
                    index = g;
                }
            }
            warp_argmax(best, index);
            keep |= 1ull << index;
        }
        for (int i = lane; i < E; i += 32) {
            if (!(keep & (1ull << (i / per)))) {
                choice[i] = -INFINITY;
            }
        }
        __syncwarp();
    }
    double w[MAX_TOPK];
    int chosen[MAX_TOPK];
    for (int slot = 0; slot < topk; slot++) {
        double best = 0.0;
        int index = -1;
        for (int i = lane; i < E; i += 32) {
            if (choice[i] != -INFINITY && (index < 0 || choice[i] > best)) {
                best = choice[i];
                index = i;
            }
        }
        warp_argmax(best, index);
        chosen[slot] = index;
        w[slot] = biased_weights ? score[index] + (double) bias[index] : score[index];
        __syncwarp();
        if (lane == 0) {
            choice[index] = -INFINITY;
        }
        __syncwarp();
    }
    if (lane == 0) {
        double sum = 1e-20;
        for (int slot = 0; slot < topk; slot++) {
            sum += w[slot];
        }
        for (int slot = 0; slot < topk; slot++) {
            double v = renormalize ? w[slot] / sum : w[slot];
            ids[t * topk + slot] = chosen[slot];
            weights[t * topk + slot] = (float) (v * (double) scaling);
            if (one_order != nullptr) {                    // one token: tiles of one pair each, as moe_align would lay them
                one_order[slot] = slot;
                one_tile_expert[slot] = chosen[slot];
            }
        }
        if (one_order != nullptr) {
            *one_tile_count = topk;
            *loads += topk;
        }
    }
}

// Exclusive prefix sum of v over the block (blockDim a multiple of 32, at most 1024); *total gets the sum.
__device__ __forceinline__ int block_exclusive_scan(int v, int* total) {
    __shared__ int warp_total[32];
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    int inclusive = v;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const int up = __shfl_up_sync(FULL, inclusive, o);
        if (lane >= o) {
            inclusive += up;
        }
    }
    if (lane == 31) {
        warp_total[warp] = inclusive;
    }
    __syncthreads();
    int before = 0;
    int sum = 0;
    for (int w = 0; w < (int) (blockDim.x >> 5); w++) {
        before += w < warp ? warp_total[w] : 0;
        sum += warp_total[w];
    }
    *total = sum;
    __syncthreads();
    return before + inclusive - v;
}

// Groups the T*topk (token, slot) pairs by expert: each expert's pairs fill whole tiles of tile_rows positions (padding -1),
// order[position] = pair index, tile_expert[tile] = expert, *tile_count = tiles used; *loads grows by the number of
// distinct experts (for the engine's counters). Experts are laid out in index order; thread i owns experts
// [i * per, (i + 1) * per) and a block-wide scan places their tiles. One block; shared: 2 * E ints.
extern "C" __global__ void moe_align(const int* __restrict__ ids, int pairs, int E, int* __restrict__ order,
                                     int* __restrict__ tile_expert, int* __restrict__ tile_count,
                                     unsigned long long* __restrict__ loads, int tile_rows) {
    begin_in_order();
    extern __shared__ int shared_ints[];
    int* count = shared_ints;
    int* cursor = shared_ints + E;
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
        count[e] = 0;
    }
    __syncthreads();
    for (int p = threadIdx.x; p < pairs; p += blockDim.x) {
        atomicAdd(&count[ids[p]], 1);
    }
    __syncthreads();
    const int per = (E + blockDim.x - 1) / blockDim.x;
    const int e0 = min(E, (int) threadIdx.x * per);
    const int e1 = min(E, e0 + per);
    int mine = 0;
    int distinct = 0;
    for (int e = e0; e < e1; e++) {
        mine += (count[e] + tile_rows - 1) / tile_rows;
        distinct += count[e] > 0;
    }
    int tiles = 0;
    int tile = block_exclusive_scan(mine, &tiles);
    for (int e = e0; e < e1; e++) {
        cursor[e] = tile * tile_rows;
        for (int n = (count[e] + tile_rows - 1) / tile_rows; n > 0; n--) {
            tile_expert[tile++] = e;
        }
    }
    int all_distinct = 0;
    block_exclusive_scan(distinct, &all_distinct);
    if (threadIdx.x == 0) {
        *tile_count = tiles;
        *loads += all_distinct;
    }
    for (int i = threadIdx.x; i < tiles * tile_rows; i += blockDim.x) {
        order[i] = -1;
    }
    __syncthreads();
    for (int p = threadIdx.x; p < pairs; p += blockDim.x) {
        order[atomicAdd(&cursor[ids[p]], 1)] = p;
    }
}

// dot_rows for two weight rows at once (w0, w1), both loads in flight before the sums; each (column, row) sum runs in
// exactly dot_rows' order. vec only.
template <int ROWS>
__device__ __forceinline__ void dot_rows_pair(const float* const* xs, int rows, const uint16_t* __restrict__ w0,
                                              const uint16_t* __restrict__ w1, int K, float* acc0, float* acc1) {
    const int lane = threadIdx.x & 31;
#pragma unroll 2
    for (int k = lane * 8; k < K; k += 256) {
        const uint4 q0 = __ldg(reinterpret_cast<const uint4*>(w0 + k));
        const uint4 q1 = __ldg(reinterpret_cast<const uint4*>(w1 + k));
#pragma unroll
        for (int r = 0; r < ROWS; r++) {
            if (r < rows) {
                const float4 a = *reinterpret_cast<const float4*>(xs[r] + k);
                const float4 b = *reinterpret_cast<const float4*>(xs[r] + k + 4);
                acc0[r] = fma8(acc0[r], a, b, q0);
                acc1[r] = fma8(acc1[r], a, b, q1);
            }
        }
    }
}

// One expert projection for the pairs of one tile of ROWS positions: stage 0 (gate/up) reads token order[p] / topk of x
// and writes row p; stage 1 (down) reads row p and writes row order[p] (the pair). w is [E][N][K] (expert_stride
// elements). A block reads the tile's bookkeeping once and then streams `columns` weight rows (a multiple of 16: 8
// warps x 2 columns per round), two per warp at a time; a column's sums do not depend on `columns`.
// A pair's sums do not depend on ROWS: 8, or 1 for a one-token step, whose pairs all have distinct experts (fewer registers).
// GATED: x rows are gate|up of K each and the input is their SwiGLU, staged once per block in shared memory (ROWS * K
// floats, stage_swiglu), so the down projection needs no swiglu launch.
// Grid (ceil(N / columns), max tiles); blocks past *tile_count return at once.
template <int ROWS, bool GATED>
__device__ __forceinline__ void moe_gemv(const float* __restrict__ x, int ldx, const int* __restrict__ order,
                                         const int* __restrict__ tile_expert, const int* __restrict__ tile_count, int topk, int stage,
                                         const uint16_t* __restrict__ w, long long expert_stride, float* __restrict__ y, int ldy, int N,
                                         int K, int vec, int columns) {
    const int tile = blockIdx.y;
    if (tile >= *tile_count) {
        return;
    }
    const int p0 = tile * ROWS;
    int out_row[ROWS];
    const float* xs[ROWS];
    int first = order[p0];                                 // a tile starts with a real pair; padding only at its end
    int rows = 0;
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
        int pair = order[p0 + r];
        rows += pair >= 0;
        int in = stage == 0 ? (pair >= 0 ? pair : first) / topk : p0 + r;
        xs[r] = x + (size_t) in * ldx;
        out_row[r] = pair < 0 ? -1 : stage == 0 ? p0 + r : pair;
    }
    if (GATED) {                                           // the tile's inputs: SwiGLU of its gate|up rows, once
        extern __shared__ float staged_act[];              // [ROWS][K]
        stage_swiglu(xs, rows, K, vec, staged_act);
#pragma unroll
        for (int r = 0; r < ROWS; r++) {
            xs[r] = staged_act + (size_t) r * K;
        }
    }
    const uint16_t* we = w + (size_t) tile_expert[tile] * expert_stride;
    const int lane = threadIdx.x & 31;
    const int end = min(N, (int) (blockIdx.x + 1) * columns);
    for (int n = blockIdx.x * columns + (threadIdx.x >> 5) * 2; n < end; n += 16) {
        const int n1 = min(n + 1, N - 1);                  // past N: read a real row, write nothing
        float acc0[ROWS], acc1[ROWS];
#pragma unroll
        for (int r = 0; r < ROWS; r++) {
            acc0[r] = 0.f;
            acc1[r] = 0.f;
        }
        if (vec) {
            dot_rows_pair<ROWS>(xs, rows, we + (size_t) n * K, we + (size_t) n1 * K, K, acc0, acc1);
        } else {
            dot_rows<ROWS>(xs, rows, we + (size_t) n * K, K, false, acc0);
            dot_rows<ROWS>(xs, rows, we + (size_t) n1 * K, K, false, acc1);
        }
#pragma unroll
        for (int r = 0; r < ROWS; r++) {
            const float s0 = warp_sum(acc0[r]);
            const float s1 = warp_sum(acc1[r]);
            if (lane == 0 && out_row[r] >= 0) {
                y[(size_t) out_row[r] * ldy + n] = s0;
                if (n + 1 < end) {
                    y[(size_t) out_row[r] * ldy + n + 1] = s1;
                }
            }
        }
    }
}

// The entries: tiles of GEMV_ROWS pairs or of one (_r1), plain or on gate|up rows (_swiglu: separate entries, so the
// plain ones keep their register count).
#define MOE_GEMV_ENTRY(NAME, ROWS, GATED)                                                                               \
    extern "C" __global__ void __launch_bounds__(256) NAME(const float* __restrict__ x, int ldx, const int* __restrict__ order, \
            const int* __restrict__ tile_expert, const int* __restrict__ tile_count, int topk, int stage,                \
            const uint16_t* __restrict__ w, long long expert_stride, float* __restrict__ y, int ldy, int N, int K, int vec, \
            int columns) {                                                                                              \
        begin_in_order();                                                                                               \
        moe_gemv<ROWS, GATED>(x, ldx, order, tile_expert, tile_count, topk, stage, w, expert_stride, y, ldy, N, K, vec, columns); \
    }

MOE_GEMV_ENTRY(moe_gemv_bf16, GEMV_ROWS, false)
MOE_GEMV_ENTRY(moe_gemv_bf16_r1, 1, false)
MOE_GEMV_ENTRY(moe_gemv_bf16_swiglu, GEMV_ROWS, true)
MOE_GEMV_ENTRY(moe_gemv_bf16_r1_swiglu, 1, true)

// out[t] += sum over slots j (in order) of weights[t][j] * pair_out[t * topk + j]. Grid (T, ceil(dim / blockDim)).
extern "C" __global__ void moe_combine(const float* __restrict__ pair_out, const float* __restrict__ weights, int topk,
                                       float* __restrict__ out, int dim) {
    begin_in_order();
    const int t = blockIdx.x;
    const int i = blockIdx.y * blockDim.x + threadIdx.x;
    if (i < dim) {
        float s = out[(size_t) t * dim + i];
        for (int j = 0; j < topk; j++) {
            s = fmaf(weights[t * topk + j], pair_out[((size_t) t * topk + j) * dim + i], s);
        }
        out[(size_t) t * dim + i] = s;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// KDA: short convolutions, norms and gates, the general recurrence, the gated output norm
// ---------------------------------------------------------------------------------------------------------------

#define MAX_CONV_WIDTH 8

// One causal conv + SiLU step of a channel: hist holds its last `width` inputs, oldest first, and takes x in.
__device__ __forceinline__ float conv_silu_step(float x, const float* __restrict__ tap, float* hist, int width) {
    float acc = tap[width] * x;
    for (int j = 0; j < width; j++) {
        acc = fmaf(tap[j], hist[j], acc);
    }
    for (int j = 0; j + 1 < width; j++) {
        hist[j] = hist[j + 1];
    }
    if (width > 0) {
        hist[width - 1] = x;
    }
    return acc * sigmoidf_exact(acc);
}

// Causal depthwise conv + SiLU over the q|k|v channels (3C of them, columns 0..3C of pre), continuing each sequence's
// windows: windows + slot * 3C * W holds [channel][W] oldest first (the host KdaState's convQ|convK|convV), updated
// to the last W inputs. taps [3C][W + 1], tap W multiplies the current token. Grid (ceil(3C/128), segments), 128 threads.
extern "C" __global__ void kda_conv_silu(const float* __restrict__ pre, int ldp, const float* __restrict__ taps,
                                         float* __restrict__ windows, const int* __restrict__ seg_start,
                                         const int* __restrict__ seg_count, const int* __restrict__ seg_slot,
                                         float* __restrict__ out, int channels, int width) {
    begin_in_order();
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= channels) {
        return;
    }
    const int s = blockIdx.y;
    float* window = windows + ((size_t) seg_slot[s] * channels + c) * width;
    const float* tap = taps + (size_t) c * (width + 1);
    float hist[MAX_CONV_WIDTH];
    for (int j = 0; j < width; j++) {
        hist[j] = window[j];
    }
    const int start = seg_start[s];
    for (int t = 0; t < seg_count[s]; t++) {
        out[(size_t) (start + t) * channels + c] = conv_silu_step(pre[(size_t) (start + t) * ldp + c], tap, hist, width);
    }
    for (int j = 0; j < width; j++) {
        window[j] = hist[j];
    }
}

// q = l2norm(q) / sqrt(K), k = l2norm(k), v copied, g = -exp(a_log) * softplus(graw + dt_bias), beta = sigmoid(braw)
// for one token of one head, from its conv outputs: q at row[0..K), k at row[part..], v at row[2 part..]; graw and
// dt_bias point at the head's K values, braw at its one. Writes the head's K values to q, k, v, g and *beta. The block's
// threads stride over K (threads past K add zeros to the norms' sums, so any block size gives the same values).
__device__ __forceinline__ void kda_prep_head(const float* row, int part, const float* __restrict__ graw, const float* __restrict__ braw,
                                              float a_log, const float* __restrict__ dt_bias, float* q, float* k, float* v, float* g,
                                              float* beta, int K) {
    float qs = 0.f, ks = 0.f;
    for (int i = threadIdx.x; i < K; i += blockDim.x) {
        qs += row[i] * row[i];
        ks += row[part + i] * row[part + i];
    }
    qs = block_sum(qs);
    ks = block_sum(ks);
    const float qScale = (float) ((1.0 / sqrt((double) K)) / sqrt((double) qs + 1e-6));
    const float kScale = (float) (1.0 / sqrt((double) ks + 1e-6));
    const float rate = (float) -exp((double) a_log);
    for (int i = threadIdx.x; i < K; i += blockDim.x) {
        q[i] = row[i] * qScale;
        k[i] = row[part + i] * kScale;
        v[i] = row[2 * part + i];
        g[i] = rate * softplusf_torch(graw[i] + dt_bias[i]);
    }
    if (threadIdx.x == 0) {
        *beta = sigmoidf_exact(*braw);
    }
}

// kda_prep_head for token t, head h, into q, k, v, g [T][H][K] and beta [T][H].
__device__ __forceinline__ void kda_prep_row(const float* row, int part, int t, int h, const float* __restrict__ graw, int ldg,
                                             const float* __restrict__ braw, int ldb, const float* __restrict__ a_log,
                                             const float* __restrict__ dt_bias, float* __restrict__ q, float* __restrict__ k,
                                             float* __restrict__ v, float* __restrict__ g, float* __restrict__ beta, int H, int K) {
    const size_t o = (size_t) t * H * K + h * K;
    kda_prep_head(row, part, graw + (size_t) t * ldg + h * K, braw + (size_t) t * ldb + h, a_log[h], dt_bias + h * K, q + o, k + o, v + o,
                  g + o, beta + t * H + h, K);
}

// Per (token, head): kda_prep_head over conv [T][3C] (q|k|v); outputs q, k, v, g [T][H][K], beta [T][H].
// Grid (T, H), 128 threads.
extern "C" __global__ void kda_prep(const float* __restrict__ conv, const float* __restrict__ graw, int ldg,
                                    const float* __restrict__ braw, int ldb, const float* __restrict__ a_log,
                                    const float* __restrict__ dt_bias, float* __restrict__ q, float* __restrict__ k,
                                    float* __restrict__ v, float* __restrict__ g, float* __restrict__ beta, int H, int K) {
    begin_in_order();
    const int t = blockIdx.x;
    const int h = blockIdx.y;
    kda_prep_row(conv + (size_t) t * 3 * H * K + h * K, H * K, t, h, graw, ldg, braw, ldb, a_log, dt_bias, q, k, v, g, beta, H, K);
}

// Decode (one token per segment, segment t = row t): kda_conv_silu and kda_prep in one launch, the same sums. The
// block convolves its head's q, k and v channels into shared memory ([3][K]) and prepares them from there.
// Grid (T, H), 128 threads; shared: 3K floats.
extern "C" __global__ void kda_conv_prep_decode(const float* __restrict__ pre, int ldp, const float* __restrict__ taps,
                                                float* __restrict__ windows, const int* __restrict__ seg_slot,
                                                const float* __restrict__ graw, int ldg, const float* __restrict__ braw, int ldb,
                                                const float* __restrict__ a_log, const float* __restrict__ dt_bias,
                                                float* __restrict__ q, float* __restrict__ k, float* __restrict__ v,
                                                float* __restrict__ g, float* __restrict__ beta, int H, int K, int width) {
    begin_in_order();
    extern __shared__ float conv_row[];                    // [3][K]: this head's q, k, v after conv + SiLU
    const int t = blockIdx.x;
    const int h = blockIdx.y;
    const int C = H * K;
    float* window = windows + (size_t) seg_slot[t] * 3 * C * width;
    for (int i = threadIdx.x; i < 3 * K; i += blockDim.x) {
        const int c = i / K * C + h * K + i % K;           // the channel among the 3C
        float hist[MAX_CONV_WIDTH];
        float* w = window + (size_t) c * width;
        for (int j = 0; j < width; j++) {
            hist[j] = w[j];
        }
        conv_row[i] = conv_silu_step(pre[(size_t) t * ldp + c], taps + (size_t) c * (width + 1), hist, width);
        for (int j = 0; j < width; j++) {
            w[j] = hist[j];
        }
    }
    __syncthreads();
    kda_prep_row(conv_row, K, t, h, graw, ldg, braw, ldb, a_log, dt_bias, q, k, v, g, beta, H, K);
}

// One channel of the short conv in registers: its window (the last `width` inputs, oldest first), the taps of those
// and the tap of the current input. The loops run to MAX_CONV_WIDTH with a bound check so that they unroll: every load
// is in flight at once and nothing goes to local memory (a loop to `width` over arrays did, 14 dependent loads).
struct ConvChannel {
    int channel;                                           // among the 3C, or -1: none
    float hist[MAX_CONV_WIDTH];
    float tap[MAX_CONV_WIDTH];
    float tap_now;
};

// channel's window from windows ([3C][width], one slot) and its taps from taps ([3C][width + 1]).
__device__ __forceinline__ ConvChannel load_conv_channel(int channel, const float* __restrict__ windows, const float* __restrict__ taps,
                                                         int width) {
    ConvChannel cc;
    cc.channel = channel;
    const float* w = windows + (size_t) max(channel, 0) * width;
    const float* tp = taps + (size_t) max(channel, 0) * (width + 1);
#pragma unroll
    for (int j = 0; j < MAX_CONV_WIDTH; j++) {
        cc.hist[j] = channel >= 0 && j < width ? w[j] : 0.f;
        cc.tap[j] = channel >= 0 && j < width ? tp[j] : 0.f;
    }
    cc.tap_now = channel >= 0 ? tp[width] : 0.f;
    return cc;
}

// conv_silu_step on a loaded channel (the same sums) for input x; writes the new window back to windows.
__device__ __forceinline__ float step_conv_channel(const ConvChannel& cc, float x, float* __restrict__ windows, int width) {
    float acc = cc.tap_now * x;
#pragma unroll
    for (int j = 0; j < MAX_CONV_WIDTH; j++) {
        if (j < width) {
            acc = fmaf(cc.tap[j], cc.hist[j], acc);
        }
    }
    float* w = windows + (size_t) cc.channel * width;
#pragma unroll
    for (int j = 0; j < MAX_CONV_WIDTH; j++) {
        if (j < width) {
            w[j] = j + 1 < MAX_CONV_WIDTH && j + 1 < width ? cc.hist[j + 1] : x;
        }
    }
    return acc * sigmoidf_exact(acc);
}

// A whole KDA decode step of one (sequence, head) for K = V = 128: kda_conv_prep_decode's conv + SiLU, norms and gates
// and kda_decode's delta rule (kda_delta_rule.cuh, 4 columns x 8 row groups: the sums of kda_decode_v1x8 and _v4x8),
// in one launch and without the q, k, v, g round trip through memory. The block loads its state tile, conv windows and
// taps before it waits for the kernel before (only this layer's decode kernels write them). Segment t = row t, its
// state slot slots[t] (recurrent state and conv windows). Output o [T][H][128]. Grid (H, T), 256 threads.
#define STEP_THREADS 256
#define STEP_CHANNELS ((3 * KD + STEP_THREADS - 1) / STEP_THREADS)   // conv channels per thread
extern "C" __global__ void __launch_bounds__(STEP_THREADS) kda_step_decode(const float* __restrict__ pre, int ldp,
        const float* __restrict__ taps, float* __restrict__ windows, const int* __restrict__ slots, const float* __restrict__ graw,
        int ldg, const float* __restrict__ braw, int ldb, const float* __restrict__ a_log, const float* __restrict__ dt_bias,
        float* __restrict__ states, float* __restrict__ o, int H, int width) {
    __shared__ float conv_row[3 * KD];                     // q|k|v of this head after conv + SiLU
    __shared__ float sq[KD], sk[KD], sv[KD], sg[KD];
    __shared__ float sbeta;
    const int h = blockIdx.x;
    const int t = blockIdx.y;
    const int tx = threadIdx.x & 31;
    const int ty = threadIdx.x >> 5;
    const int C = H * KD;
    const int slot = slots[t];
    float* s = states + ((size_t) slot * H + h) * KD * VD + tx * 4;
    float reg[KD / 8][4];
    load_state_tile<4, 8>(reg, s, ty);
    ConvChannel conv[STEP_CHANNELS];                       // channels threadIdx.x and threadIdx.x + STEP_THREADS of q|k|v
#pragma unroll
    for (int n = 0; n < STEP_CHANNELS; n++) {
        const int i = threadIdx.x + n * STEP_THREADS;
        conv[n] = load_conv_channel(i < 3 * KD ? i / KD * C + h * KD + i % KD : -1, windows + (size_t) slot * 3 * C * width, taps, width);
    }
    begin_in_order();
#pragma unroll
    for (int n = 0; n < STEP_CHANNELS; n++) {
        const int i = threadIdx.x + n * STEP_THREADS;
        if (i < 3 * KD) {
            conv_row[i] = step_conv_channel(conv[n], pre[(size_t) t * ldp + conv[n].channel], windows + (size_t) slot * 3 * C * width, width);
        }
    }
    __syncthreads();
    kda_prep_head(conv_row, KD, graw + (size_t) t * ldg + h * KD, braw + (size_t) t * ldb + h, a_log[h], dt_bias + h * KD, sq, sk, sv, sg,
                  &sbeta, KD);
    __syncthreads();
    for (int i = threadIdx.x; i < KD; i += STEP_THREADS) {
        sg[i] = expf(sg[i]);                               // the decay a = exp(g), as kda_decode takes it
    }
    __syncthreads();
    delta_rule_tile<4, 8>(reg, s, tx, ty, sk, sq, sg, sv + tx * 4, sbeta, o + ((size_t) t * H + h) * VD + tx * 4);
}

// The delta rule token by token for any K, V (the general path; kda_decode / kda_prefill are the tuned K = V = 128 ones):
//   S <- Diag(exp g) S;  e = beta (v - S^T k);  S <- S + k e^T;  o = S^T q
// A thread owns one value column j of one (segment, head); the state stays in its slot [H][K][V]. Shared: 3K floats.
// Grid (ceil(V/32), H, segments), 32 threads.
extern "C" __global__ void kda_recurrent(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                                         const float* __restrict__ g, const float* __restrict__ beta,
                                         const int* __restrict__ seg_start, const int* __restrict__ seg_count,
                                         const int* __restrict__ seg_slot, float* __restrict__ states, float* __restrict__ o,
                                         int H, int K, int V) {
    begin_in_order();
    extern __shared__ float shared_f[];
    float* qs = shared_f;
    float* ks = shared_f + K;
    float* as = shared_f + 2 * K;
    const int h = blockIdx.y;
    const int s = blockIdx.z;
    const int j = blockIdx.x * 32 + threadIdx.x;
    float* S = states + ((size_t) seg_slot[s] * H + h) * K * V;
    const int start = seg_start[s];
    for (int t = start; t < start + seg_count[s]; t++) {
        const size_t row = ((size_t) t * H + h) * K;
        __syncthreads();
        for (int i = threadIdx.x; i < K; i += 32) {
            qs[i] = q[row + i];
            ks[i] = k[row + i];
            as[i] = expf(g[row + i]);
        }
        __syncthreads();
        if (j < V) {
            float p = 0.f;
            for (int i = 0; i < K; i++) {
                p = fmaf(as[i] * S[(size_t) i * V + j], ks[i], p);
            }
            float e = beta[t * H + h] * (v[((size_t) t * H + h) * V + j] - p);
            float out = 0.f;
            for (int i = 0; i < K; i++) {
                float sij = fmaf(ks[i], e, as[i] * S[(size_t) i * V + j]);
                S[(size_t) i * V + j] = sij;
                out = fmaf(sij, qs[i], out);
            }
            o[((size_t) t * H + h) * V + j] = out;
        }
    }
}

// y[t][h] = w * o[t][h] / sqrt(mean(o[t][h]^2) + eps) * sigmoid(gate[t][h*V ..]). Grid (T, H), 128 threads.
extern "C" __global__ void kda_out_norm(const float* __restrict__ o, const float* __restrict__ gate, int ldg,
                                        const float* __restrict__ w, float* __restrict__ y, int H, int V, float eps) {
    begin_in_order();
    const int t = blockIdx.x;
    const int h = blockIdx.y;
    const size_t base = ((size_t) t * H + h) * V;
    float ss = 0.f;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        ss += o[base + i] * o[base + i];
    }
    float inv = (float) (1.0 / sqrt((double) block_sum(ss) / V + (double) eps));
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        y[base + i] = w[i] * (o[base + i] * inv) * sigmoidf_exact(gate[(size_t) t * ldg + h * V + i]);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// MLA: cache append, weight absorption, attention over the paged latent cache (fp32), value up-projection
// ---------------------------------------------------------------------------------------------------------------

// cache[dst_row[t]] = kva[t][0..latent). Grid: T.
extern "C" __global__ void mla_append(const float* __restrict__ kva, int ldk, const int* __restrict__ dst_row,
                                      float* __restrict__ cache, int latent) {
    begin_in_order();
    const float* in = kva + (size_t) blockIdx.x * ldk;
    float* out = cache + (size_t) dst_row[blockIdx.x] * latent;
    for (int i = threadIdx.x; i < latent; i += blockDim.x) {
        out[i] = in[i];
    }
}

// qabs[t][h] = [W_k(h)^T q_nope | q_pe]: W_k(h) = kv_b rows h*(N+Vh) .. +N, each [L]. q [T][H][N+P].
// A block owns 64 latent columns of one (token, head); its 8 warps split the N rows, lanes read 2 adjacent columns
// (128 contiguous bytes per warp and row); partial sums meet in shared memory in a fixed order.
// Grid (T, H, ceil(L / 64)), 256 threads.
extern "C" __global__ void mla_absorb_q(const float* __restrict__ q, int ldq, const uint16_t* __restrict__ kv_b,
                                        float* __restrict__ qabs, int H, int N, int P, int Vh, int L) {
    begin_in_order();
    __shared__ float part[8][64];
    const int t = blockIdx.x;
    const int h = blockIdx.y;
    const int l0 = blockIdx.z * 64;
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const float* qh = q + (size_t) t * ldq + h * (N + P);
    float* out = qabs + ((size_t) t * H + h) * (L + P);
    const uint16_t* wk = kv_b + (size_t) h * (N + Vh) * L;
    const int c0 = l0 + 2 * lane;
    float a0 = 0.f, a1 = 0.f;
    for (int n = warp; n < N; n += 8) {
        const float qn = qh[n];
        const uint16_t* row = wk + (size_t) n * L;
        if (c0 < L) {
            a0 = fmaf(qn, bf16_to_float(row[c0]), a0);
        }
        if (c0 + 1 < L) {
            a1 = fmaf(qn, bf16_to_float(row[c0 + 1]), a1);
        }
    }
    part[warp][2 * lane] = a0;
    part[warp][2 * lane + 1] = a1;
    __syncthreads();
    if (threadIdx.x < 64 && l0 + threadIdx.x < L) {
        float sum = 0.f;
#pragma unroll
        for (int w = 0; w < 8; w++) {
            sum += part[w][threadIdx.x];
        }
        out[l0 + threadIdx.x] = sum;
    }
    if (blockIdx.z == 0) {
        for (int p = threadIdx.x; p < P; p += blockDim.x) {
            out[L + p] = qh[N + p];
        }
    }
}

#define ATTEND_THREADS 128
#define MAX_LATENT_PER_THREAD 8

// Slices a token's positions are split into when splits > 1: one per 32 positions, at most splits. It depends only on
// the token's own length, so a sequence gets the same sums whatever else shares the launch.
__device__ __forceinline__ int attend_slices(int len, int splits) {
    return min(splits, (len + 31) / 32);
}

#define ATTEND_HEADS 4                                     // heads per block: each cache row read serves them all

// z[t][h] = softmax_j(scale * qabs[t][h] . cache_j) . c_j over the cache positions j <= tok_pos[t] of the token's
// sequence (cache row of position j = page_table[seg][j / 64] * 64 + j % 64; c_j = the first L values of the row).
// A block serves ATTEND_HEADS heads of one token (MLA heads share the latent cache, so a row read once serves them all);
// each head's sums run in the same order whatever the other heads. Online softmax over tiles of 128 positions.
// splits == 1: the block writes z. splits > 1 (decode, flash-decoding): block z takes slice z of the positions and
// writes its unnormalised sums and (max, sum of weights) to part_z [T][H][splits][L] / part_ml [T][H][splits][2] for
// mla_attend_combine. Grid (T, ceil(H / ATTEND_HEADS), splits), 128 threads; shared: ATTEND_HEADS * W floats.
extern "C" __global__ void __launch_bounds__(ATTEND_THREADS) mla_attend(const float* __restrict__ qabs,
                                                                        const float* __restrict__ cache,
                                                                        const int* __restrict__ page_table, int max_pages,
                                                                        const int* __restrict__ tok_seg,
                                                                        const int* __restrict__ tok_pos, float scale,
                                                                        float* __restrict__ z, int H, int L, int W, int splits,
                                                                        float* __restrict__ part_z, float* __restrict__ part_ml) {
    begin_in_order();
    extern __shared__ __align__(16) float qsh[];          // [ATTEND_HEADS][W]
    __shared__ float p[ATTEND_HEADS][ATTEND_THREADS];
    __shared__ int rows[ATTEND_THREADS];
    const int t = blockIdx.x;
    const int h0 = blockIdx.y * ATTEND_HEADS;
    const int len = tok_pos[t] + 1;
    int lo = 0;
    int hi = len;
    if (splits > 1) {
        const int slices = attend_slices(len, splits);
        if ((int) blockIdx.z >= slices) {
            return;                                        // the whole block: this token has fewer slices
        }
        const int chunk = (len + slices - 1) / slices;
        lo = blockIdx.z * chunk;
        hi = min(len, lo + chunk);
    }
    for (int i = threadIdx.x; i < ATTEND_HEADS * W; i += ATTEND_THREADS) {
        const int h = h0 + i / W;                          // heads past H: zeros, never written
        qsh[i] = h < H ? qabs[((size_t) t * H + h) * W + i % W] : 0.f;
    }
    const int* pages = page_table + (size_t) tok_seg[t] * max_pages;
    float acc[ATTEND_HEADS][MAX_LATENT_PER_THREAD];
    float m[ATTEND_HEADS], l[ATTEND_HEADS];
#pragma unroll
    for (int hh = 0; hh < ATTEND_HEADS; hh++) {
#pragma unroll
        for (int i = 0; i < MAX_LATENT_PER_THREAD; i++) {
            acc[hh][i] = 0.f;
        }
        m[hh] = -INFINITY;
        l[hh] = 0.f;
    }
    __syncthreads();
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    for (int base = lo; base < hi; base += ATTEND_THREADS) {
        // scores: the warps take turns of 8 positions (warp w: base + 32 r + 8 w + u), so a short slice still keeps
        // every warp busy; its lanes read those 8 rows together (coalesced, 8 streams)
        for (int off = warp * 8; off < ATTEND_THREADS && base + off < hi; off += 32) {   // warp-uniform: no rows past the slice
            const float* c[8];
            float dot[ATTEND_HEADS][8];
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int pos = min(base + off + u, hi - 1);
                c[u] = cache + (size_t) (pages[pos >> 6] * 64 + (pos & 63)) * W;
#pragma unroll
                for (int hh = 0; hh < ATTEND_HEADS; hh++) {
                    dot[hh][u] = 0.f;
                }
            }
            if ((W & 3) == 0) {                            // 16-byte loads
                for (int i = 4 * lane; i < W; i += 128) {
                    float4 cv[8];
#pragma unroll
                    for (int u = 0; u < 8; u++) {
                        cv[u] = *reinterpret_cast<const float4*>(c[u] + i);
                    }
#pragma unroll
                    for (int hh = 0; hh < ATTEND_HEADS; hh++) {
                        const float4 qi = *reinterpret_cast<const float4*>(qsh + hh * W + i);
#pragma unroll
                        for (int u = 0; u < 8; u++) {
                            dot[hh][u] = fmaf(qi.w, cv[u].w, fmaf(qi.z, cv[u].z, fmaf(qi.y, cv[u].y, fmaf(qi.x, cv[u].x, dot[hh][u]))));
                        }
                    }
                }
            } else {
                for (int i = lane; i < W; i += 32) {
                    float cv[8];
#pragma unroll
                    for (int u = 0; u < 8; u++) {
                        cv[u] = c[u][i];
                    }
#pragma unroll
                    for (int hh = 0; hh < ATTEND_HEADS; hh++) {
                        const float qi = qsh[hh * W + i];
#pragma unroll
                        for (int u = 0; u < 8; u++) {
                            dot[hh][u] = fmaf(qi, cv[u], dot[hh][u]);
                        }
                    }
                }
            }
#pragma unroll
            for (int hh = 0; hh < ATTEND_HEADS; hh++) {
#pragma unroll
                for (int u = 0; u < 8; u++) {
                    const float d = warp_sum(dot[hh][u]);
                    if (lane == 0) {
                        p[hh][off + u] = d * scale;
                    }
                }
            }
        }
        __syncthreads();
        const int j = base + threadIdx.x;
        float s[ATTEND_HEADS];
#pragma unroll
        for (int hh = 0; hh < ATTEND_HEADS; hh++) {
            s[hh] = j < hi ? p[hh][threadIdx.x] : -INFINITY;
        }
        const int row = j < hi ? pages[j >> 6] * 64 + (j & 63) : 0;
        __syncthreads();
        float corr[ATTEND_HEADS];
#pragma unroll
        for (int hh = 0; hh < ATTEND_HEADS; hh++) {
            const float mNew = fmaxf(m[hh], block_max(s[hh]));
            corr[hh] = expf(m[hh] - mNew);                 // 0 on the first tile (m = -inf)
            const float pj = j < hi ? expf(s[hh] - mNew) : 0.f;
            l[hh] = l[hh] * corr[hh] + block_sum(pj);
            p[hh][threadIdx.x] = pj;
            m[hh] = mNew;
        }
        rows[threadIdx.x] = row;
        __syncthreads();
        // values: acc = acc * corr + the tile's positions in order, each row's loads shared by the heads
        const int n = min(ATTEND_THREADS, hi - base);
#pragma unroll
        for (int hh = 0; hh < ATTEND_HEADS; hh++) {
#pragma unroll
            for (int i = 0; i < MAX_LATENT_PER_THREAD; i++) {
                acc[hh][i] *= corr[hh];
            }
        }
        int jj = 0;
        for (; jj + 4 <= n; jj += 4) {                     // 4 rows' loads in flight
            float v[4][MAX_LATENT_PER_THREAD];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const float* cu = cache + (size_t) rows[jj + u] * W;
#pragma unroll
                for (int i = 0; i < MAX_LATENT_PER_THREAD; i++) {
                    const int d = threadIdx.x + i * ATTEND_THREADS;
                    v[u][i] = d < L ? cu[d] : 0.f;
                }
            }
#pragma unroll
            for (int hh = 0; hh < ATTEND_HEADS; hh++) {
#pragma unroll
                for (int u = 0; u < 4; u++) {
                    const float pu = p[hh][jj + u];
#pragma unroll
                    for (int i = 0; i < MAX_LATENT_PER_THREAD; i++) {
                        acc[hh][i] = fmaf(pu, v[u][i], acc[hh][i]);
                    }
                }
            }
        }
        for (; jj < n; jj++) {
            const float* c0 = cache + (size_t) rows[jj] * W;
#pragma unroll
            for (int i = 0; i < MAX_LATENT_PER_THREAD; i++) {
                const int d = threadIdx.x + i * ATTEND_THREADS;
                const float v = d < L ? c0[d] : 0.f;
#pragma unroll
                for (int hh = 0; hh < ATTEND_HEADS; hh++) {
                    acc[hh][i] = fmaf(p[hh][jj], v, acc[hh][i]);
                }
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int hh = 0; hh < ATTEND_HEADS; hh++) {
        const int h = h0 + hh;
        if (h >= H) {
            break;
        }
        if (splits > 1) {
            const size_t slot = ((size_t) t * H + h) * splits + blockIdx.z;
#pragma unroll
            for (int i = 0; i < MAX_LATENT_PER_THREAD; i++) {
                const int d = threadIdx.x + i * ATTEND_THREADS;
                if (d < L) {
                    part_z[slot * L + d] = acc[hh][i];
                }
            }
            if (threadIdx.x == 0) {
                part_ml[2 * slot] = m[hh];
                part_ml[2 * slot + 1] = l[hh];
            }
        } else {
            float* out = z + ((size_t) t * H + h) * L;
#pragma unroll
            for (int i = 0; i < MAX_LATENT_PER_THREAD; i++) {
                const int d = threadIdx.x + i * ATTEND_THREADS;
                if (d < L) {
                    out[d] = acc[hh][i] / l[hh];
                }
            }
        }
    }
}

// z[t][h] from the slices of mla_attend (splits > 1): weights exp(m_s - max m), slices in order. Grid (T, H), 128 threads.
extern "C" __global__ void mla_attend_combine(const float* __restrict__ part_z, const float* __restrict__ part_ml,
                                              const int* __restrict__ tok_pos, int splits, float* __restrict__ z, int H, int L) {
    begin_in_order();
    const int t = blockIdx.x;
    const int h = blockIdx.y;
    const int slices = attend_slices(tok_pos[t] + 1, splits);
    const size_t first = ((size_t) t * H + h) * splits;
    float top = -INFINITY;
    for (int s = 0; s < slices; s++) {
        top = fmaxf(top, part_ml[2 * (first + s)]);
    }
    float denom = 0.f;
    for (int s = 0; s < slices; s++) {
        denom += expf(part_ml[2 * (first + s)] - top) * part_ml[2 * (first + s) + 1];
    }
    for (int d = threadIdx.x; d < L; d += blockDim.x) {
        float num = 0.f;
        for (int s = 0; s < slices; s++) {
            num += expf(part_ml[2 * (first + s)] - top) * part_z[(first + s) * L + d];
        }
        z[((size_t) t * H + h) * L + d] = num / denom;
    }
}

// y[t][h*Vh + v] = W_v(h)[v] . z[t][h]: W_v(h) = kv_b rows h*(N+Vh)+N .. +Vh, each [L]. A warp per output value.
// Grid (T, H, ceil(Vh / 8)), 256 threads.
extern "C" __global__ void mla_value(const float* __restrict__ z, const uint16_t* __restrict__ kv_b, float* __restrict__ y,
                                     int H, int N, int Vh, int L) {
    begin_in_order();
    const int t = blockIdx.x;
    const int h = blockIdx.y;
    const int v = blockIdx.z * 8 + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (v >= Vh) {
        return;
    }
    const float* zh = z + ((size_t) t * H + h) * L;
    const uint16_t* wv = kv_b + ((size_t) h * (N + Vh) + N + v) * L;
    float s = 0.f;
    for (int l = lane; l < L; l += 32) {
        s = fmaf(zh[l], bf16_to_float(wv[l]), s);
    }
    s = warp_sum(s);
    if (lane == 0) {
        y[(size_t) t * H * Vh + h * Vh + v] = s;
    }
}
