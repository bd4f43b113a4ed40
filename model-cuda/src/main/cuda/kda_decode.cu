// KDA decode step: one token for each of B sequences, every head, state fp32 [H][K][V] per sequence slot.
//
//   S <- Diag(exp g) S;  e = beta (v - S^T k);  S <- S + k e^T;  o = S^T q          (spec 3.1 item 7)
//
// Column j of S only ever meets column j: p_j = sum_i a_i S_ij k_i, S'_ij = a_i S_ij + k_i e_j, o_j = sum_i S'_ij q_i.
// So one block owns 32 columns of one (sequence, head): 32 x 8 threads, thread (tx, ty) keeps rows ty, ty+8, ... of
// column tx in registers (16 values), the state is read once and written once, and the two column sums reduce over
// the 8 row groups through shared memory. A warp touches 32 consecutive floats of a row per access (128 bytes).
//
// Inputs, fp32, row b = sequence: q, k [B][H][K] (q already L2-normed and scaled, k L2-normed), v [B][H][V],
// g [B][H][K] (log decay, <= 0), beta [B][H]; slots [B] index the state pool (slot stride H*K*V floats).
// Output o [B][H][V]. K = V = 128.

#define KD 128
#define VD 128
#define TILE 32
#define ROW_GROUPS 8
#define ROWS_PER_THREAD (KD / ROW_GROUPS)

extern "C" __global__ void __launch_bounds__(TILE * ROW_GROUPS)
kda_decode(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
           const float* __restrict__ g, const float* __restrict__ beta, const int* __restrict__ slots,
           float* __restrict__ states, float* __restrict__ o, int heads) {
    const int tile = blockIdx.x;            // V tile
    const int h = blockIdx.y;
    const int b = blockIdx.z;
    const int tx = threadIdx.x;             // column within the tile
    const int ty = threadIdx.y;             // row group
    const int col = tile * TILE + tx;

    __shared__ float sk[KD];
    __shared__ float sq[KD];
    __shared__ float sa[KD];
    __shared__ float partial[ROW_GROUPS][TILE];
    __shared__ float se[TILE];

    const long vec = ((long) b * heads + h) * KD;
    const int t = ty * TILE + tx;
    if (t < KD) {
        sk[t] = k[vec + t];
        sq[t] = q[vec + t];
        sa[t] = expf(g[vec + t]);
    }
    float* s = states + ((long) slots[b] * heads + h) * KD * VD + col;

    float reg[ROWS_PER_THREAD];
#pragma unroll
    for (int r = 0; r < ROWS_PER_THREAD; r++) {
        reg[r] = s[(long) (ty + r * ROW_GROUPS) * VD];
    }
    __syncthreads();

    float p = 0.f;
#pragma unroll
    for (int r = 0; r < ROWS_PER_THREAD; r++) {
        const int i = ty + r * ROW_GROUPS;
        reg[r] *= sa[i];
        p = fmaf(reg[r], sk[i], p);
    }
    partial[ty][tx] = p;
    __syncthreads();
    if (ty == 0) {
        float sum = 0.f;
#pragma unroll
        for (int y = 0; y < ROW_GROUPS; y++) {
            sum += partial[y][tx];
        }
        se[tx] = beta[(long) b * heads + h] * (v[vec + col] - sum);
    }
    __syncthreads();

    const float e = se[tx];
    float out = 0.f;
#pragma unroll
    for (int r = 0; r < ROWS_PER_THREAD; r++) {
        const int i = ty + r * ROW_GROUPS;
        reg[r] = fmaf(sk[i], e, reg[r]);
        out = fmaf(reg[r], sq[i], out);
        s[(long) i * VD] = reg[r];
    }
    partial[ty][tx] = out;                  // row 0 read the p partials before the last barrier
    __syncthreads();
    if (ty == 0) {
        float sum = 0.f;
#pragma unroll
        for (int y = 0; y < ROW_GROUPS; y++) {
            sum += partial[y][tx];
        }
        o[vec + col] = sum;
    }
}
