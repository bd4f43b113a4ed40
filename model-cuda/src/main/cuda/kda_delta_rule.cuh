// The KDA delta rule for one decode token of one (sequence, head), shared by kda_decode.cu's kernels and engine.cu's
// fused decode step, so both run exactly the same sums:
//
//   S <- Diag(exp g) S;  e = beta (v - S^T k);  S <- S + k e^T;  o = S^T q          (spec 3.1 item 7)
//
// Column j of S only ever meets column j: p_j = sum_i a_i S_ij k_i, S'_ij = a_i S_ij + k_i e_j, o_j = sum_i S'_ij q_i.
// A tile of 32 * VEC columns is worked by 32 x ROW_GROUPS threads: thread (tx, ty) keeps VEC adjacent columns of rows
// ty, ty + ROW_GROUPS, ... in registers (loaded VEC floats at a time), the state is read once and written once, and
// the two column sums reduce over the row groups through shared memory in row-group order. The sums depend on
// ROW_GROUPS, not on VEC. K = V = 128, state fp32 [K][V] row-major.

#pragma once

#define KD 128
#define VD 128

template <int VEC> struct Vec;
template <> struct Vec<1> { typedef float type; };
template <> struct Vec<2> { typedef float2 type; };
template <> struct Vec<4> { typedef float4 type; };

// Sum over the row groups of one column's partial sums.
template <int ROW_GROUPS, int TILE>
__device__ __forceinline__ float column_sum(const float (*partial)[TILE], int col) {
    float sum = 0.f;
#pragma unroll
    for (int y = 0; y < ROW_GROUPS; y++) {
        sum += partial[y][col];
    }
    return sum;
}

// reg <- this thread's rows of the state tile; s points at the thread's first column of row 0.
template <int VEC, int ROW_GROUPS>
__device__ __forceinline__ void load_state_tile(float (&reg)[KD / ROW_GROUPS][VEC], const float* s, int ty) {
    typedef typename Vec<VEC>::type vec_t;
#pragma unroll
    for (int r = 0; r < KD / ROW_GROUPS; r++) {
        vec_t x = *reinterpret_cast<const vec_t*>(s + (long) (ty + r * ROW_GROUPS) * VD);
        const float* xs = reinterpret_cast<const float*>(&x);
#pragma unroll
        for (int c = 0; c < VEC; c++) {
            reg[r][c] = xs[c];
        }
    }
}

// The step on a loaded tile: sk, sq, sa (= exp g) hold the head's K values (shared memory, written before a barrier
// all threads passed), v the thread's VEC values of v, bt = beta. Writes the updated tile back to s (as loaded) and,
// from row group 0, the thread's VEC outputs to o. Every thread of the block must call it.
template <int VEC, int ROW_GROUPS>
__device__ __forceinline__ void delta_rule_tile(float (&reg)[KD / ROW_GROUPS][VEC], float* s, int tx, int ty,
                                                const float* sk, const float* sq, const float* sa, const float* v, float bt,
                                                float* o) {
    typedef typename Vec<VEC>::type vec_t;
    constexpr int TILE = 32 * VEC;
    constexpr int ROWS = KD / ROW_GROUPS;
    __shared__ float partial[ROW_GROUPS][TILE];
    __shared__ float se[TILE];

    float p[VEC];
#pragma unroll
    for (int c = 0; c < VEC; c++) {
        p[c] = 0.f;
    }
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
        const int i = ty + r * ROW_GROUPS;
#pragma unroll
        for (int c = 0; c < VEC; c++) {
            reg[r][c] *= sa[i];
            p[c] = fmaf(reg[r][c], sk[i], p[c]);
        }
    }
#pragma unroll
    for (int c = 0; c < VEC; c++) {
        partial[ty][tx * VEC + c] = p[c];
    }
    __syncthreads();
    if (ty == 0) {
#pragma unroll
        for (int c = 0; c < VEC; c++) {
            se[tx * VEC + c] = bt * (v[c] - column_sum<ROW_GROUPS, TILE>(partial, tx * VEC + c));
        }
    }
    __syncthreads();

    float e[VEC];
    float out[VEC];
#pragma unroll
    for (int c = 0; c < VEC; c++) {
        e[c] = se[tx * VEC + c];
        out[c] = 0.f;
    }
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
        const int i = ty + r * ROW_GROUPS;
        vec_t x;
        float* xs = reinterpret_cast<float*>(&x);
#pragma unroll
        for (int c = 0; c < VEC; c++) {
            reg[r][c] = fmaf(sk[i], e[c], reg[r][c]);
            out[c] = fmaf(reg[r][c], sq[i], out[c]);
            xs[c] = reg[r][c];
        }
        *reinterpret_cast<vec_t*>(s + (long) i * VD) = x;
    }
#pragma unroll
    for (int c = 0; c < VEC; c++) {
        partial[ty][tx * VEC + c] = out[c];            // row group 0 read the p partials before the last barrier
    }
    __syncthreads();
    if (ty == 0) {
#pragma unroll
        for (int c = 0; c < VEC; c++) {
            o[c] = column_sum<ROW_GROUPS, TILE>(partial, tx * VEC + c);
        }
    }
}
