// KDA decode step: one token for each of B sequences, every head, state fp32 [H][K][V] per sequence slot; the delta
// rule and its tiling are in kda_delta_rule.cuh. A block owns a tile of 32 * VEC columns of one (sequence, head).
// Its state tile is loaded before the kernel waits for the one before it: the state comes from earlier steps, and
// only this layer's decode kernels write it.
//
// Inputs, fp32, row b = sequence: q, k [B][H][K] (q already L2-normed and scaled, k L2-normed), v [B][H][V],
// g [B][H][K] (log decay, <= 0), beta [B][H]; slots [B] index the state pool (slot stride H*K*V floats).
// Output o [B][H][V]. K = V = 128. Grid: (V / (32 * VEC), H, B), block (32, ROW_GROUPS).

#include "common.cuh"
#include "kda_delta_rule.cuh"

template <int VEC, int ROW_GROUPS>
__device__ __forceinline__ void kda_decode_tile(const float* __restrict__ q, const float* __restrict__ k,
        const float* __restrict__ v, const float* __restrict__ g, const float* __restrict__ beta,
        const int* __restrict__ slots, float* __restrict__ states, float* __restrict__ o, int heads) {
    const int h = blockIdx.y;
    const int b = blockIdx.z;
    const int tx = threadIdx.x;
    const int ty = threadIdx.y;
    const int col0 = blockIdx.x * 32 * VEC + tx * VEC;
    __shared__ float sk[KD];
    __shared__ float sq[KD];
    __shared__ float sa[KD];

    float* s = states + ((long) slots[b] * heads + h) * KD * VD + col0;
    float reg[KD / ROW_GROUPS][VEC];
    load_state_tile<VEC, ROW_GROUPS>(reg, s, ty);
    begin_in_order();
    const long vec = ((long) b * heads + h) * KD;
    for (int t = ty * 32 + tx; t < KD; t += 32 * ROW_GROUPS) {
        sk[t] = k[vec + t];
        sq[t] = q[vec + t];
        sa[t] = expf(g[vec + t]);
    }
    __syncthreads();
    delta_rule_tile<VEC, ROW_GROUPS>(reg, s, tx, ty, sk, sq, sa, v + vec + col0, beta[(long) b * heads + h], o + vec + col0);
}

#define KDA_DECODE_VARIANT(NAME, VEC, ROW_GROUPS)                                                                    \
extern "C" __global__ void __launch_bounds__(32 * ROW_GROUPS)                                                        \
NAME(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,                            \
     const float* __restrict__ g, const float* __restrict__ beta, const int* __restrict__ slots,                       \
     float* __restrict__ states, float* __restrict__ o, int heads) {                                                  \
    kda_decode_tile<VEC, ROW_GROUPS>(q, k, v, g, beta, slots, states, o, heads);                                      \
}

// The launcher uses v1x8 below 16 sequences and v4x8 from 16 on (H100: 6.7 us at B=1; 98 us at B=64, 371 us at
// B=256, 91-96% of the copy bandwidth); the others stay for `bench-kernels --variants` and are tested too.
KDA_DECODE_VARIANT(kda_decode_v1x8, 1, 8)
KDA_DECODE_VARIANT(kda_decode_v1x16, 1, 16)
KDA_DECODE_VARIANT(kda_decode_v2x8, 2, 8)
KDA_DECODE_VARIANT(kda_decode_v4x8, 4, 8)
KDA_DECODE_VARIANT(kda_decode_v4x16, 4, 16)
