// MLA prefill attention in the weight-absorbed form, tiled so that cached latents are read once per 16 queries rather
// than once per query (engine.cu's mla_attend reads the whole cache for every (token, head)):
//
//   z[t][h] = softmax_j(scale * qabs[t][h] . cache_j) . c_j      over the positions j <= tok_pos[t]
//
// for the rows of one sequence (one segment; its cache row of position j = pages[j / 64] * 64 + j % 64, c_j the first
// L of the W = L + P values). A block owns 16 consecutive rows of one head: their queries stay in shared memory, the
// keys come through in tiles of 32 positions, each thread scores 2 (row, key) pairs and then accumulates 1/16 of its
// row's L outputs, with an online softmax per row. Sums run in a fixed order (bitwise reproducible).
// Grid (ceil(rows / 16), H), 256 threads; shared: (16 + 32) * (W + 1) + 16 * 33 floats (W + 1: no bank conflicts).

#include <stdint.h>

#define QT 16
#define KT 32
#define MAX_DIMS_PER_THREAD 64                               // L <= 1024: thread (row, sub) owns d = sub + 16 i

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
    for (int i = threadIdx.x; i < QT * W; i += blockDim.x) {
        const int qi = i / W;
        const int d = i - qi * W;
        qs[qi * wp + d] = qi < nq ? qabs[((size_t) (t0 + qi) * H + h) * W + d] : 0.f;
    }
    const int last = tok_pos[t0 + nq - 1];                   // the block's keys: positions 0 .. last
    const int qi = threadIdx.x >> 4;                         // this thread's row, and which 16th of it
    const int sub = threadIdx.x & 15;
    const int mine = qi < nq ? tok_pos[t0 + qi] : -1;
    float acc[MAX_DIMS_PER_THREAD];
#pragma unroll
    for (int i = 0; i < MAX_DIMS_PER_THREAD; i++) {
        acc[i] = 0.f;
    }
    float m = -INFINITY;
    float l = 0.f;
    for (int base = 0; base <= last; base += KT) {
        __syncthreads();                                     // the previous tile is consumed (and the queries loaded)
        for (int i = threadIdx.x; i < KT * W; i += blockDim.x) {
            const int kj = i / W;
            const int d = i - kj * W;
            const int pos = base + kj;
            ks[kj * wp + d] = pos <= last ? cache[((size_t) pages[pos >> 6] * 64 + (pos & 63)) * W + d] : 0.f;
        }
        __syncthreads();
        float s[2];
        float top = -INFINITY;
#pragma unroll
        for (int u = 0; u < 2; u++) {
            const int kj = sub + 16 * u;
            s[u] = -INFINITY;
            if (base + kj <= mine) {
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
        for (int o = 8; o > 0; o >>= 1) {                    // the row's 16 threads are half a warp
            top = fmaxf(top, __shfl_xor_sync(0xffffffffu, top, o));
        }
        const float mNew = fmaxf(m, top);
        float p0 = 0.f, p1 = 0.f, corr = 1.f;
        if (mNew != -INFINITY) {                             // rows past the block's end never get a key
            corr = expf(m - mNew);                           // 0 on the row's first tile
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
