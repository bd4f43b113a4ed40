// MLA attention in the weight-absorbed form, tiled so that a latent read from the cache serves 16 queries at once
// (engine.cu's mla_attend reads the cache once per (token, head)):
//
//   z[t][h] = softmax_j(scale * qabs[t][h] . cache_j) . c_j      over the positions j <= tok_pos[t]
//
// (cache row of position j of the token's sequence = pages[j / 64] * 64 + j % 64; c_j = the first L of its W = L + P
// values). A block holds 16 queries in shared memory and brings the keys through in tiles of 32 positions; each thread
// scores 2 (query, key) pairs, then accumulates 1/16 of its query's L outputs, with an online softmax per query.
//   - prefill: the 16 queries are 16 consecutive rows of one sequence and one head (each with its own causal limit);
//   - decode: the 16 queries are 16 heads of one token, over one slice of its positions (MLA heads share the latent
//     cache); slices as engine.cu's attend_slices (one per 64 positions, at most `splits`: a function of the token's
//     own length only), combined by engine.cu's mla_attend_combine.
// Sums run in a fixed order (bitwise reproducible). 256 threads; shared: (16 + 32) * (W + 1) + 16 * 33 floats.

#include <stdint.h>

#define QT 16
#define KT 32
#define MAX_DIMS_PER_THREAD 64                               // L <= 1024: thread (query, sub) owns d = sub + 16 i

// qs[q] = the W values at first + q * stride for q < nq, zeros for the rest of the 16 (rows of W + 1 floats).
__device__ __forceinline__ void load_queries(float* qs, const float* __restrict__ first, size_t stride, int nq, int W) {
    for (int i = threadIdx.x; i < QT * W; i += blockDim.x) {
        const int q = i / W;
        const int d = i - q * W;
        qs[q * (W + 1) + d] = q < nq ? first[q * stride + d] : 0.f;
    }
}

// The 16 queries in qs (rows of W + 1) attend over positions [lo, hi); query qi sees positions <= limit (its own).
// acc / m / l: set to this thread's share of its query's unnormalised output, its max score and its weight sum.
__device__ __forceinline__ void attend_tiles(const float* qs, float* ks, float* ps, const float* __restrict__ cache,
                                             const int* __restrict__ pages, int lo, int hi, int limit, float scale, int L, int W,
                                             float* acc, float& m, float& l) {
    const int wp = W + 1;
    const int qi = threadIdx.x >> 4;
    const int sub = threadIdx.x & 15;
#pragma unroll
    for (int i = 0; i < MAX_DIMS_PER_THREAD; i++) {
        acc[i] = 0.f;
    }
    m = -INFINITY;
    l = 0.f;
    for (int base = lo; base < hi; base += KT) {
        __syncthreads();                                     // the previous tile is consumed (and the queries loaded)
        for (int i = threadIdx.x; i < KT * W; i += blockDim.x) {
            const int kj = i / W;
            const int d = i - kj * W;
            const int pos = base + kj;
            ks[kj * wp + d] = pos < hi ? cache[((size_t) pages[pos >> 6] * 64 + (pos & 63)) * W + d] : 0.f;
        }
        __syncthreads();
        float s[2];
        float top = -INFINITY;
#pragma unroll
        for (int u = 0; u < 2; u++) {
            const int kj = sub + 16 * u;
            const int pos = base + kj;
            s[u] = -INFINITY;
            if (pos < hi && pos <= limit) {
                const float* q = qs + qi * wp;
                const float* k = ks + kj * wp;
                float dot = 0.f;
                for (int d = 0; d < W; d++) {
                    dot = fmaf(q[d], k[d], dot);
                }
                s[u] = dot * scale;
            }
            top = fmaxf(top, s[u]);
        }
#pragma unroll
        for (int o = 8; o > 0; o >>= 1) {                    // a query's 16 threads are half a warp
            top = fmaxf(top, __shfl_xor_sync(0xffffffffu, top, o));
        }
        const float mNew = fmaxf(m, top);
        float p0 = 0.f, p1 = 0.f, corr = 1.f;
        if (mNew != -INFINITY) {                             // queries past the block's end never see a key
            corr = expf(m - mNew);                           // 0 on the query's first tile
            p0 = s[0] == -INFINITY ? 0.f : expf(s[0] - mNew);
            p1 = s[1] == -INFINITY ? 0.f : expf(s[1] - mNew);
        }
        float sum = p0 + p1;
#pragma unroll
        for (int o = 8; o > 0; o >>= 1) {
            sum += __shfl_xor_sync(0xffffffffu, sum, o);
        }
        ps[qi * (KT + 1) + sub] = p0;
        ps[qi * (KT + 1) + sub + 16] = p1;
        __syncwarp();
        if (mNew != -INFINITY) {
            l = l * corr + sum;
            m = mNew;
#pragma unroll
            for (int i = 0; i < MAX_DIMS_PER_THREAD; i++) {
                const int d = sub + 16 * i;
                if (d < L) {
                    float a = acc[i] * corr;
                    for (int kj = 0; kj < KT; kj++) {
                        a = fmaf(ps[qi * (KT + 1) + kj], ks[kj * wp + d], a);
                    }
                    acc[i] = a;
                }
            }
        }
    }
}

// Prefill: rows of one sequence (pages = its page ids). Grid (ceil(rows / 16), H).
extern "C" __global__ void __launch_bounds__(256) mla_prefill_attend(const float* __restrict__ qabs, const float* __restrict__ cache,
                                                                     const int* __restrict__ pages, const int* __restrict__ tok_pos,
                                                                     int rows, float scale, float* __restrict__ z, int H, int L,
                                                                     int W) {
    extern __shared__ float smem[];
    const int wp = W + 1;
    float* qs = smem;                                        // [QT][W + 1]
    float* ks = qs + QT * wp;                                // [KT][W + 1]
    float* ps = ks + KT * wp;                                // [QT][KT + 1]
    const int h = blockIdx.y;
    const int t0 = blockIdx.x * QT;
    const int nq = min(QT, rows - t0);
    load_queries(qs, qabs + ((size_t) t0 * H + h) * W, (size_t) H * W, nq, W);
    const int qi = threadIdx.x >> 4;
    const int sub = threadIdx.x & 15;
    float acc[MAX_DIMS_PER_THREAD];
    float m, l;
    attend_tiles(qs, ks, ps, cache, pages, 0, tok_pos[t0 + nq - 1] + 1, qi < nq ? tok_pos[t0 + qi] : -1, scale, L, W, acc, m, l);
    if (qi < nq) {
        float* out = z + ((size_t) (t0 + qi) * H + h) * L;
#pragma unroll
        for (int i = 0; i < MAX_DIMS_PER_THREAD; i++) {
            const int d = sub + 16 * i;
            if (d < L) {
                out[d] = acc[i] / l;
            }
        }
    }
}

// Decode: 16 heads of one token over slice blockIdx.z of its positions; partials [T][H][splits][L] and (max, weight
// sum) [T][H][splits][2] as engine.cu's mla_attend writes them. Grid (T, ceil(H / 16), splits).
extern "C" __global__ void __launch_bounds__(256) mla_decode_attend(const float* __restrict__ qabs, const float* __restrict__ cache,
                                                                    const int* __restrict__ page_table, int max_pages,
                                                                    const int* __restrict__ tok_seg, const int* __restrict__ tok_pos,
                                                                    float scale, int H, int L, int W, int splits,
                                                                    float* __restrict__ part_z, float* __restrict__ part_ml) {
    extern __shared__ float smem[];
    const int wp = W + 1;
    float* qs = smem;
    float* ks = qs + QT * wp;
    float* ps = ks + KT * wp;
    const int t = blockIdx.x;
    const int h0 = blockIdx.y * QT;
    const int nq = min(QT, H - h0);
    const int len = tok_pos[t] + 1;
    const int slices = min(splits, (len + 63) / 64);
    if ((int) blockIdx.z >= slices) {
        return;                                              // the whole block: this token has fewer slices
    }
    const int chunk = (len + slices - 1) / slices;
    const int lo = blockIdx.z * chunk;
    const int hi = min(len, lo + chunk);
    load_queries(qs, qabs + ((size_t) t * H + h0) * W, W, nq, W);
    const int qi = threadIdx.x >> 4;
    const int sub = threadIdx.x & 15;
    float acc[MAX_DIMS_PER_THREAD];
    float m, l;
    attend_tiles(qs, ks, ps, cache, page_table + (size_t) tok_seg[t] * max_pages, lo, hi, qi < nq ? hi - 1 : -1, scale, L, W, acc, m, l);
    if (qi < nq) {
        const size_t slot = ((size_t) t * H + h0 + qi) * splits + blockIdx.z;
#pragma unroll
        for (int i = 0; i < MAX_DIMS_PER_THREAD; i++) {
            const int d = sub + 16 * i;
            if (d < L) {
                part_z[slot * L + d] = acc[i];
            }
        }
        if (sub == 0) {
            part_ml[2 * slot] = m;
            part_ml[2 * slot + 1] = l;
        }
    }
}
