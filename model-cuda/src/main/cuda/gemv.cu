// Projection variants for few rows (decode): y[r][n] (+)= sum_k x[r][k] * w[n][k], fp32 activations, bf16 weights
// [N][K], fp32 accumulation, up to 8 rows per block (1 for the _r1 entries). engine.cu's gemv_bf16 keeps one warp per output column; these
// tile the same product differently, to be measured against it (`kimi bench-kernels --backend cuda --variants`):
//   CPW  output columns per warp: its lanes keep CPW weight streams in flight at once;
//   WPC  warps per column group: K is split into WPC contiguous parts summed in shared memory in a fixed order, so a
//        short matrix still spreads over many warps.
// Every variant sums each output in an order fixed by (K, variant), never by M: a row's result does not depend on
// which other rows share the launch. Needs K % 8 == 0 and 16-byte aligned rows (the engine checks, else gemv_bf16).
// Block: 256 threads (8 warps) = 8 / WPC column groups of CPW columns. Grid (ceil(N / (8 / WPC * CPW)), ceil(M / ROWS)).

#include <stdint.h>

#define FULL 0xffffffffu

__device__ __forceinline__ float lane_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(FULL, v, o);
    }
    return v;
}

template <int CPW, int WPC, int ROWS>
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

// Each variant twice: _r8 takes up to 8 rows per block, _r1 one (fewer registers for a batch of one; the same sums).
#define GEMV_VARIANT(CPW, WPC)                                                                                          \
    extern "C" __global__ void __launch_bounds__(256) gemv_c##CPW##w##WPC##_r8(const float* __restrict__ x, int ldx,   \
            const uint16_t* __restrict__ w, float* __restrict__ y, int ldy, int M, int N, int K, int accumulate) {      \
        gemv_tiled<CPW, WPC, 8>(x, ldx, w, y, ldy, M, N, K, accumulate);                                                \
    }                                                                                                                   \
    extern "C" __global__ void __launch_bounds__(256) gemv_c##CPW##w##WPC##_r1(const float* __restrict__ x, int ldx,   \
            const uint16_t* __restrict__ w, float* __restrict__ y, int ldy, int M, int N, int K, int accumulate) {      \
        gemv_tiled<CPW, WPC, 1>(x, ldx, w, y, ldy, M, N, K, accumulate);                                                \
    }

GEMV_VARIANT(1, 1)
GEMV_VARIANT(2, 1)
GEMV_VARIANT(4, 1)
GEMV_VARIANT(1, 2)
GEMV_VARIANT(1, 4)
GEMV_VARIANT(2, 2)
GEMV_VARIANT(2, 4)
