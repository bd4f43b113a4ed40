// KDA chunked prefill (spec 4.1-4.4), chunk C = 64, K = V = 128, fp32 throughout, varlen batches.
//
// Two kernels:
//  kda_chunk_intra  grid (chunks, H): per chunk and head, the cumulative log decay G (within the chunk) and the two
//                   lower-triangular matrices with EXACT pairwise decays (exponents G_r - G_j <= 0 only, so nothing
//                   overflows however strong the gate; spec 4.6 option 1):
//                     Akk[r][j] = beta_r sum_d k_r[d] exp(G_r[d] - G_j[d]) k_j[d]   (j < r)
//                     Aqk[r][j] =        sum_d q_r[d] exp(G_r[d] - G_j[d]) k_j[d]   (j <= r)
//                   then T = (I + Akk)^-1 (unit lower triangular, forward substitution, a column per thread), and
//                   stores T and Aqk. All chunks of all sequences at once, off the sequential path.
//  kda_chunk_sweep  grid (V / 32, H, B): per sequence, head and 32-column tile of the state, the chunks in order:
//                     rhs = beta (V - (e^G . K) S),   N = T rhs,
//                     O = (e^G . Q) S + Aqk N,        S <- e^G_last . S + sum_r (e^(G_last - G_r) . k_r) n_r^T
//                   Columns of the state never mix, so the tiles run independently.
//
// Layouts: q, k, g [T][H][128] (q L2-normed and scaled, k L2-normed, g = log decay), v and o [T][H][128], beta [T][H]
// (rows of all sequences back to back); seq_start [B + 1] token offsets; chunk_seq / chunk_first [chunks]: the
// sequence and first token of each chunk (chunks of a sequence consecutive, in order), seq_chunk0 [B] the index of a
// sequence's first chunk; A [chunks][H][2][64][64] fp32 scratch (T, then Aqk); states [slots][H][128][128] with slots [B].
// A partial last chunk is padded with k = v = 0, beta = 0, g = 0 (spec 4.4): the padding changes nothing.

#include <stdint.h>

#define KD 128
#define C 64
#define R (KD + 1)              // padded row stride of [C][KD] smem arrays: rows differ by one bank
#define TILE 32

// A chunk's k, q, g rows [C][R] and beta into shared memory (padding rows zero), then G = the inclusive cumulative
// sum of g down each channel, in place. Ends with a barrier.
__device__ __forceinline__ void load_chunk(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ g,
                                           const float* __restrict__ beta, int first, int len, int heads, int h, float* sk,
                                           float* sq, float* sg, float* sb) {
    const int tid = threadIdx.x;
    for (int i = tid; i < C * KD; i += blockDim.x) {
        const int r = i / KD;
        const int d = i % KD;
        const bool real = r < len;
        const long at = ((long) (first + r) * heads + h) * KD + d;
        sk[r * R + d] = real ? k[at] : 0.f;
        sq[r * R + d] = real ? q[at] : 0.f;
        sg[r * R + d] = real ? g[at] : 0.f;
    }
    if (tid < C) {
        sb[tid] = tid < len ? beta[(long) (first + tid) * heads + h] : 0.f;
    }
    __syncthreads();
    if (tid < KD) {                          // inclusive cumulative sum down each channel
        float acc = 0.f;
        for (int r = 0; r < C; r++) {
            acc += sg[r * R + tid];
            sg[r * R + tid] = acc;
        }
    }
    __syncthreads();
}

// kk = sum_d k_r[d] exp(G_r[d] - G_j[d]) k_j[d] and qk likewise with q_r, from [C][R] rows in shared memory.
__device__ __forceinline__ void exact_pair(const float* sk, const float* sq, const float* sg, int r, int j, float* kk, float* qk) {
    const float* kr = sk + r * R;
    const float* qr = sq + r * R;
    const float* kj = sk + j * R;
    const float* gr = sg + r * R;
    const float* gj = sg + j * R;
    float a = 0.f;
    float b = 0.f;
#pragma unroll 8
    for (int d = 0; d < KD; d++) {
        const float e = __expf(gr[d] - gj[d]) * kj[d];
        a = fmaf(kr[d], e, a);
        b = fmaf(qr[d], e, b);
    }
    *kk = a;
    *qk = b;
}

// T = (I + Akk)^-1 from Akk [C][C + 1] (only its strictly lower part is read) into st [C][C + 1], then to out_t [C][C]:
// column c solves (I + Akk) t = e_c; T[r][c] = -sum_{c <= j < r} Akk[r][j] T[j][c].
__device__ __forceinline__ void solve_and_store_t(const float* sa, float* st, float* __restrict__ out_t) {
    const int tid = threadIdx.x;
    if (tid < C) {
        const int c = tid;
        for (int r = 0; r < C; r++) {
            float acc = r == c ? 1.f : 0.f;
            if (r > c) {
                for (int j = c; j < r; j++) {
                    acc = fmaf(-sa[r * (C + 1) + j], st[j * (C + 1) + c], acc);
                }
            }
            st[r * (C + 1) + c] = acc;
        }
    }
    __syncthreads();
    for (int p = tid; p < C * C; p += blockDim.x) {
        out_t[p] = st[(p / C) * (C + 1) + p % C];
    }
}

extern "C" __global__ void __launch_bounds__(256)
kda_chunk_intra(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ g,
                const float* __restrict__ beta, const int* __restrict__ chunk_seq, const int* __restrict__ chunk_first,
                const int* __restrict__ seq_start, int heads, float* __restrict__ A) {
    extern __shared__ float sh[];
    float* sk = sh;                          // [C][R]
    float* sq = sk + C * R;                  // [C][R]
    float* sg = sq + C * R;                  // [C][R] cumulative log decay
    __shared__ float sb[C];

    const int chunk = blockIdx.x;
    const int h = blockIdx.y;
    const int tid = threadIdx.x;
    const int first = chunk_first[chunk];
    const int len = min(C, seq_start[chunk_seq[chunk] + 1] - first);

    load_chunk(q, k, g, beta, first, len, heads, h, sk, sq, sg, sb);

    float* out_t = A + ((long) chunk * heads + h) * 2 * C * C;
    float* out_aqk = out_t + C * C;
    float* sa = sq;                          // Akk [C][C + 1] reuses q's rows once Aqk is out
    float akk_mine[C * C / 256];            // blockDim.x == 256: element p = tid + 256 n
#pragma unroll
    for (int n = 0; n < C * C / 256; n++) {
        const int p = tid + 256 * n;
        const int r = p / C;
        const int j = p % C;
        float kk = 0.f;
        float qk = 0.f;
        if (j <= r) {
            exact_pair(sk, sq, sg, r, j, &kk, &qk);
        }
        akk_mine[n] = j < r ? sb[r] * kk : 0.f;
        out_aqk[p] = qk;
    }
    __syncthreads();                         // every thread is done reading sq
#pragma unroll
    for (int n = 0; n < C * C / 256; n++) {
        const int p = tid + 256 * n;
        sa[(p / C) * (C + 1) + p % C] = akk_mine[n];
    }
    __syncthreads();
    solve_and_store_t(sa, sk, out_t);        // T reuses k's rows
}

// kda_chunk_intra_sub: the same T and Aqk, with 16-row sub-chunks (spec 4.6 option 2). Pairs inside a sub-chunk (the
// four diagonal blocks) keep the exact pairwise decays above. A pair across sub-chunks (j in an earlier sub-chunk than
// r) goes through the anchor a = the first row of r's sub-chunk: e^(G_r - G_j) = e^(G_r - G_a) e^(G_a - G_j), both
// exponents <= 0 (G does not increase down a chunk), so nothing overflows and the six off-diagonal blocks are plain
// products of pre-scaled rows, with no exponential per pair: 544 exact pairs instead of 2080, 1536 pairs as register-
// tiled products. Shared: q, k, G [C][R] and the scaled k rows of the three anchors [96][R] (148,608 bytes, one block
// per SM); Akk goes into G's rows once G is no longer read, T into k's.
#define SUB 16
#define SUB_ROWS 96             // scaled k rows: anchor 16 takes rows [0, 16), anchor 32 [16, 48), anchor 48 [48, 96)

__device__ __forceinline__ int anchor_rows_offset(int s) {   // first scaled-k row of sub-chunk s's anchor (s = 1, 2, 3)
    return SUB * s * (s - 1) / 2;
}

// Pair idx of the diagonal blocks' 4 x 136 (j <= r inside one sub-chunk): sub-chunk idx / 136, then row-major over
// the lower triangle.
__device__ __forceinline__ void diagonal_pair(int idx, int* r, int* j) {
    const int s = idx / (SUB * (SUB + 1) / 2);
    const int t = idx % (SUB * (SUB + 1) / 2);
    int rl = (int) ((sqrtf(8.f * t + 1.f) - 1.f) * 0.5f);
    rl += (rl + 1) * (rl + 2) / 2 <= t ? 1 : 0;
    rl -= rl * (rl + 1) / 2 > t ? 1 : 0;
    *r = SUB * s + rl;
    *j = SUB * s + t - rl * (rl + 1) / 2;
}

extern "C" __global__ void __launch_bounds__(256)
kda_chunk_intra_sub(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ g,
                    const float* __restrict__ beta, const int* __restrict__ chunk_seq, const int* __restrict__ chunk_first,
                    const int* __restrict__ seq_start, int heads, float* __restrict__ A) {
    extern __shared__ float sh[];
    float* sk = sh;                          // [C][R] k; rows >= SUB scaled by e^(G_r - G_a) before the products
    float* sq = sk + C * R;                  // [C][R] q; likewise
    float* sg = sq + C * R;                  // [C][R] cumulative log decay; then Akk [C][C + 1]
    float* sx = sg + C * R;                  // [SUB_ROWS][R] k_j e^(G_a - G_j) for j < a, per anchor
    __shared__ float sb[C];

    const int chunk = blockIdx.x;
    const int h = blockIdx.y;
    const int tid = threadIdx.x;
    const int first = chunk_first[chunk];
    const int len = min(C, seq_start[chunk_seq[chunk] + 1] - first);
    float* out_t = A + ((long) chunk * heads + h) * 2 * C * C;
    float* out_aqk = out_t + C * C;

    for (int p = tid; p < C * C; p += blockDim.x) {          // Aqk above the diagonal
        if (p % C > p / C) {
            out_aqk[p] = 0.f;
        }
    }
    load_chunk(q, k, g, beta, first, len, heads, h, sk, sq, sg, sb);

    // Diagonal blocks, exact: pair t of a sub-chunk's 136 (j <= r), thread tid takes pairs tid, tid + 256, ...
    constexpr int DIAG = 4 * SUB * (SUB + 1) / 2;
    float akk_diag[(DIAG + 255) / 256];
#pragma unroll
    for (int n = 0; n < (DIAG + 255) / 256; n++) {
        const int idx = tid + 256 * n;
        akk_diag[n] = 0.f;
        if (idx < DIAG) {
            int r, j;
            diagonal_pair(idx, &r, &j);
            float kk = 0.f;
            float qk = 0.f;
            exact_pair(sk, sq, sg, r, j, &kk, &qk);
            akk_diag[n] = j < r ? sb[r] * kk : 0.f;
            out_aqk[r * C + j] = qk;
        }
    }
    // The anchors' scaled k rows (raw k, before the rows below are scaled in place).
    for (int i = tid; i < SUB_ROWS * KD; i += blockDim.x) {
        const int x = i / KD;
        const int d = i % KD;
        const int s = x < SUB ? 1 : x < 3 * SUB ? 2 : 3;
        const int j = x - anchor_rows_offset(s);
        const int a = SUB * s;
        sx[x * R + d] = sk[j * R + d] * __expf(sg[a * R + d] - sg[j * R + d]);
    }
    __syncthreads();                         // every diagonal pair and scaled row has read raw q, k
    for (int i = tid; i < (C - SUB) * KD; i += blockDim.x) {
        const int r = SUB + i / KD;
        const int d = i % KD;
        const int a = r / SUB * SUB;
        const float e = __expf(sg[r * R + d] - sg[a * R + d]);
        sq[r * R + d] *= e;
        sk[r * R + d] *= e;
    }
    __syncthreads();                         // G is read no more: Akk takes its rows
    float* sa = sg;
#pragma unroll
    for (int n = 0; n < (DIAG + 255) / 256; n++) {
        const int idx = tid + 256 * n;
        if (idx < DIAG) {
            int r, j;
            diagonal_pair(idx, &r, &j);
            sa[r * (C + 1) + j] = akk_diag[n];
        }
    }
    // Off-diagonal blocks: a thread's tile is 2 rows r (same sub-chunk s >= 1) x 4 columns j < 16 s. Tiles: 8 row pairs
    // x 4 s column quads for each s: 32 + 64 + 96 = 192.
    if (tid < 192) {
        const int s = tid < 32 ? 1 : tid < 96 ? 2 : 3;
        const int t = tid - (s == 1 ? 0 : s == 2 ? 32 : 96);
        const int quads = 4 * s;
        const int r0 = SUB * s + 2 * (t / quads);
        const int j0 = 4 * (t % quads);
        const float* x0 = sx + (anchor_rows_offset(s) + j0) * R;
        float kk[2][4] = {};
        float qk[2][4] = {};
#pragma unroll 4
        for (int d = 0; d < KD; d++) {
            const float q0 = sq[r0 * R + d], q1 = sq[(r0 + 1) * R + d];
            const float k0 = sk[r0 * R + d], k1 = sk[(r0 + 1) * R + d];
#pragma unroll
            for (int c = 0; c < 4; c++) {
                const float xj = x0[c * R + d];
                qk[0][c] = fmaf(q0, xj, qk[0][c]);
                qk[1][c] = fmaf(q1, xj, qk[1][c]);
                kk[0][c] = fmaf(k0, xj, kk[0][c]);
                kk[1][c] = fmaf(k1, xj, kk[1][c]);
            }
        }
#pragma unroll
        for (int i = 0; i < 2; i++) {
#pragma unroll
            for (int c = 0; c < 4; c++) {
                out_aqk[(r0 + i) * C + j0 + c] = qk[i][c];
                sa[(r0 + i) * (C + 1) + j0 + c] = sb[r0 + i] * kk[i][c];
            }
        }
    }
    __syncthreads();
    solve_and_store_t(sa, sk, out_t);        // T reuses k's rows
}

// Thread tiles of the sweep (256 threads): the [64 x 32] products (rhs, N, O) as 4 rows x 2 columns per thread
// (tr = tid / 16, tc = tid % 16), the [128 x 32] state update as 4 rows x 4 columns (tid / 8, tid % 8), so that every
// value loaded from shared memory feeds several FMAs.
#define NS 36                   // row stride of the [C][TILE] arrays (16-byte aligned rows)
#define RA 132                  // row stride of the [C][KD] arrays in the sweep (16-byte aligned rows)

// acc[i][j] += sum_d rows[4 tr + i][d] S[d][2 tc + j]: a thread's 4 x 2 tile of ([C x KD] rows) . ([KD x TILE] state).
__device__ __forceinline__ void rows_times_state(const float* rows, const float* sS, int tr, int tc, float acc[4][2]) {
#pragma unroll 4
    for (int d = 0; d < KD; d++) {
        const float2 s2 = *reinterpret_cast<const float2*>(sS + d * TILE + 2 * tc);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float x = rows[(4 * tr + i) * RA + d];
            acc[i][0] = fmaf(x, s2.x, acc[i][0]);
            acc[i][1] = fmaf(x, s2.y, acc[i][1]);
        }
    }
}

// acc[i][j] += sum_{j' <= 4 tr + 3} L[4 tr + i][j'] X[j'][2 tc + j] for a [C x C] matrix L that is zero above its
// diagonal (T or Aqk) and a [C x TILE] right side X.
__device__ __forceinline__ void lower_times(const float* L, const float* X, int tr, int tc, float acc[4][2]) {
    const int last = 4 * tr + 3;
    for (int j = 0; j <= last; j++) {
        const float2 x2 = *reinterpret_cast<const float2*>(X + j * NS + 2 * tc);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float l = L[(4 * tr + i) * (C + 1) + j];
            acc[i][0] = fmaf(l, x2.x, acc[i][0]);
            acc[i][1] = fmaf(l, x2.y, acc[i][1]);
        }
    }
}

// A chunk's inputs to the sweep, in shared memory: G_last and e^G_last [KD], beta [C], q e^G, k e^G and
// k e^(G_last - G) as [C][RA] (the gates staged in k e^(G_last - G)'s rows first), T [C][lda] from the intra kernel's
// scratch; Aqk comes back in aqk_next (element tid + 256 n), fetched now and stored after the solve. Ends with a
// barrier. 256 threads.
__device__ __forceinline__ void sweep_chunk_inputs(const float* __restrict__ q, const float* __restrict__ k,
                                                   const float* __restrict__ g, const float* __restrict__ beta,
                                                   const float* __restrict__ A, int first, int len, int chunk, int heads,
                                                   int h, float* sqe, float* ske, float* sk2, float* sa, int lda,
                                                   float* sgl, float* sglraw, float* sbeta, float aqk_next[C * C / 256]) {
    const int tid = threadIdx.x;
    {                                                       // the chunk's gates, all loads in flight at once
        float gv[C * KD / 256];
#pragma unroll
        for (int n = 0; n < C * KD / 256; n++) {
            const int i = tid + 256 * n;
            const int r = i / KD;
            gv[n] = r < len ? g[((long) (first + r) * heads + h) * KD + i % KD] : 0.f;
        }
#pragma unroll
        for (int n = 0; n < C * KD / 256; n++) {
            const int i = tid + 256 * n;
            sk2[(i / KD) * RA + i % KD] = gv[n];
        }
    }
    __syncthreads();
    if (tid < KD) {                          // cumulative decay per channel, in place (kept in sk2 for a moment)
        const int d = tid;
        float acc = 0.f;
        for (int r = 0; r < C; r++) {
            acc += sk2[r * RA + d];
            sk2[r * RA + d] = acc;
        }
        sgl[d] = __expf(acc);
        sglraw[d] = acc;
    }
    if (tid < C) {
        sbeta[tid] = tid < len ? beta[(long) (first + tid) * heads + h] : 0.f;
    }
    __syncthreads();
    {                                                       // q, k: loads first (16 + 16 per thread), then decays
        float qv[C * KD / 512];
        float kv[C * KD / 512];
#pragma unroll
        for (int half = 0; half < 2; half++) {
#pragma unroll
            for (int n = 0; n < C * KD / 512; n++) {
                const int i = tid + 256 * (n + half * (C * KD / 512));
                const int r = i / KD;
                const long at = ((long) (first + r) * heads + h) * KD + i % KD;
                qv[n] = r < len ? q[at] : 0.f;
                kv[n] = r < len ? k[at] : 0.f;
            }
#pragma unroll
            for (int n = 0; n < C * KD / 512; n++) {
                const int i = tid + 256 * (n + half * (C * KD / 512));
                const int r = i / KD;
                const int d = i % KD;
                const float gr = sk2[r * RA + d];
                const float er = __expf(gr);
                sqe[r * RA + d] = qv[n] * er;
                ske[r * RA + d] = kv[n] * er;
                sk2[r * RA + d] = kv[n] * __expf(sglraw[d] - gr);
            }
        }
    }
    const float* tq = A + ((long) chunk * heads + h) * 2 * C * C;      // T, then Aqk
#pragma unroll
    for (int n = 0; n < C * C / 256; n++) {
        const int i = tid + 256 * n;
        sa[(i / C) * lda + i % C] = tq[i];
        aqk_next[n] = tq[C * C + i];
    }
    __syncthreads();
}

extern "C" __global__ void __launch_bounds__(256)
kda_chunk_sweep(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                const float* __restrict__ g, const float* __restrict__ beta, const int* __restrict__ seq_start,
                const int* __restrict__ seq_chunk0, const float* __restrict__ A, const int* __restrict__ slots,
                float* __restrict__ states, float* __restrict__ o, int heads) {
    extern __shared__ __align__(16) float sh[];
    float* sS = sh;                          // [KD][TILE] state columns
    float* sqe = sS + KD * TILE;             // [C][RA] q . e^G
    float* ske = sqe + C * RA;               // [C][RA] k . e^G
    float* sk2 = ske + C * RA;               // [C][RA] k . e^(G_last - G)
    float* sa = sk2 + C * RA;                // [C][C + 1] T, then Aqk
    float* sn = sa + C * (C + 1);            // [C][NS] N (16-byte aligned: C * (C + 1) is a multiple of 4)
    float* srhs = sn + C * NS;               // [C][NS]
    float* sgl = srhs + C * NS;              // [KD] e^G_last
    float* sglraw = sgl + KD;                // [KD] G_last
    float* sbeta = sglraw + KD;              // [C]

    const int tile = blockIdx.x;
    const int h = blockIdx.y;
    const int b = blockIdx.z;
    const int tid = threadIdx.x;
    const int col0 = tile * TILE;
    const int start = seq_start[b];
    const int end = seq_start[b + 1];
    const int tr = tid / 16;                 // rows 4 tr .. 4 tr + 3 of a [64 x 32] product
    const int tc = tid % 16;                 // columns 2 tc, 2 tc + 1
    const int ur = tid / 8;                  // state rows 4 ur .. 4 ur + 3
    const int uc = tid % 8;                  // state columns 4 uc .. 4 uc + 3
    float* state = states + ((long) slots[b] * heads + h) * KD * KD + col0;

    for (int i = tid; i < KD * TILE; i += blockDim.x) {
        sS[i] = state[(long) (i / TILE) * KD + i % TILE];
    }
    int chunk = seq_chunk0[b];
    for (int first = start; first < end; first += C, chunk++) {
        const int len = min(C, end - first);
        __syncthreads();                     // the previous chunk is done with every buffer
        float aqk_next[C * C / 256];                            // Aqk is fetched now, stored after the solve
        sweep_chunk_inputs(q, k, g, beta, A, first, len, chunk, heads, h, sqe, ske, sk2, sa, C + 1, sgl, sglraw, sbeta, aqk_next);

        // rhs = beta (v - (k e^G) S)
        {
            float acc[4][2] = {};
            rows_times_state(ske, sS, tr, tc, acc);
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int r = 4 * tr + i;
                const bool real = r < len;
                const long at = ((long) (first + r) * heads + h) * KD + col0 + 2 * tc;
                const float2 vv = real ? *reinterpret_cast<const float2*>(v + at) : make_float2(0.f, 0.f);
                srhs[r * NS + 2 * tc] = sbeta[r] * (vv.x - acc[i][0]);
                srhs[r * NS + 2 * tc + 1] = sbeta[r] * (vv.y - acc[i][1]);
            }
        }
        __syncthreads();
        // N = T rhs (T is unit lower triangular with zeros above the diagonal)
        {
            float acc[4][2] = {};
            lower_times(sa, srhs, tr, tc, acc);
#pragma unroll
            for (int i = 0; i < 4; i++) {
                *reinterpret_cast<float2*>(sn + (4 * tr + i) * NS + 2 * tc) = make_float2(acc[i][0], acc[i][1]);
            }
        }
        __syncthreads();
#pragma unroll
        for (int n = 0; n < C * C / 256; n++) {                 // Aqk replaces T
            const int i = tid + 256 * n;
            sa[(i / C) * (C + 1) + i % C] = aqk_next[n];
        }
        __syncthreads();
        // O = (q e^G) S + Aqk N (Aqk is zero above the diagonal)
        {
            float acc[4][2] = {};
            rows_times_state(sqe, sS, tr, tc, acc);
            lower_times(sa, sn, tr, tc, acc);
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int r = 4 * tr + i;
                if (r < len) {
                    *reinterpret_cast<float2*>(o + ((long) (first + r) * heads + h) * KD + col0 + 2 * tc) = make_float2(acc[i][0], acc[i][1]);
                }
            }
        }
        // S <- e^G_last . S + sum_r (k_r e^(G_last - G_r)) n_r^T (rows 4 ur .., columns 4 uc ..), once every thread has
        // read S for O.
        __syncthreads();
        {
            float acc[4][4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const float4 s4 = *reinterpret_cast<const float4*>(sS + (4 * ur + i) * TILE + 4 * uc);
                const float e = sgl[4 * ur + i];
                acc[i][0] = e * s4.x;
                acc[i][1] = e * s4.y;
                acc[i][2] = e * s4.z;
                acc[i][3] = e * s4.w;
            }
#pragma unroll 4
            for (int r = 0; r < C; r++) {
                const float4 k4 = *reinterpret_cast<const float4*>(sk2 + r * RA + 4 * ur);
                const float4 n4 = *reinterpret_cast<const float4*>(sn + r * NS + 4 * uc);
                const float kk[4] = {k4.x, k4.y, k4.z, k4.w};
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    acc[i][0] = fmaf(kk[i], n4.x, acc[i][0]);
                    acc[i][1] = fmaf(kk[i], n4.y, acc[i][1]);
                    acc[i][2] = fmaf(kk[i], n4.z, acc[i][2]);
                    acc[i][3] = fmaf(kk[i], n4.w, acc[i][3]);
                }
            }
#pragma unroll
            for (int i = 0; i < 4; i++) {
                *reinterpret_cast<float4*>(sS + (4 * ur + i) * TILE + 4 * uc) = make_float4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
            }
        }
    }
    __syncthreads();
    for (int i = tid; i < KD * TILE; i += blockDim.x) {
        state[(long) (i / TILE) * KD + i % TILE] = sS[i];
    }
}

// ---------------------------------------------------------------------------------------------------------------
// kda_chunk_sweep_tc: kda_chunk_sweep with its four products on tensor cores (mma.sync m16n8k8 TF32, each operand
// split into hi + lo TF32 parts and the three significant partial products summed, "3xTF32": close to fp32).
// Products of [64 x 32] (rhs, N, O): warp w owns rows 16 (w / 2) .., columns 16 (w % 2) .. (two 8-wide n-tiles); the
// state update [128 x 32]: warp w owns state rows 16 w .. and all 32 columns (four n-tiles). Strides are padded so
// that a fragment's 32 loads fall in 32 different banks: the state and N/rhs rows 40 floats, T/Aqk rows 68.
// ---------------------------------------------------------------------------------------------------------------
#define SS 40                   // row stride of the [KD][TILE] state in shared memory
#define NT_STRIDE 40            // row stride of N and rhs [C][TILE]
#define LDA 68                  // row stride of T / Aqk [C][C]

__device__ __forceinline__ uint32_t to_tf32(float x) {
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
    return r;
}

__device__ __forceinline__ void mma_tf32(float* d, const uint32_t a[4], const uint32_t b[2]) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// acc[nt] (a 16 x 8 C fragment per n-tile) += A[16 x 8 ks] . B[8 ks x 8 NT] for k-steps [ks0, ks1), with A(m, k) =
// pa[m * sam + k * sak] and B(k, n) = pb[k * sbk + n]. Fragments (PTX m16n8k8 .tf32): lane = 4 g + t; A: (g, t),
// (g + 8, t), (g, t + 4), (g + 8, t + 4); B: (t, g), (t + 4, g); C: (g, 2t), (g, 2t + 1), (g + 8, 2t), (g + 8, 2t + 1).
template <int NT>
__device__ __forceinline__ void warp_mma_3xtf32(float acc[NT][4], const float* pa, int sam, int sak, const float* pb, int sbk,
                                                int ks0, int ks1) {
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2;
    const int t = lane & 3;
    for (int ks = ks0; ks < ks1; ks++) {
        const int k0 = 8 * ks;
        const float av[4] = {pa[g * sam + (k0 + t) * sak], pa[(g + 8) * sam + (k0 + t) * sak], pa[g * sam + (k0 + t + 4) * sak],
                             pa[(g + 8) * sam + (k0 + t + 4) * sak]};
        uint32_t ahi[4], alo[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            ahi[i] = to_tf32(av[i]);
            alo[i] = to_tf32(av[i] - __uint_as_float(ahi[i]));
        }
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            const float bv[2] = {pb[(k0 + t) * sbk + 8 * nt + g], pb[(k0 + t + 4) * sbk + 8 * nt + g]};
            uint32_t bhi[2], blo[2];
#pragma unroll
            for (int i = 0; i < 2; i++) {
                bhi[i] = to_tf32(bv[i]);
                blo[i] = to_tf32(bv[i] - __uint_as_float(bhi[i]));
            }
            mma_tf32(acc[nt], alo, bhi);     // the small terms first
            mma_tf32(acc[nt], ahi, blo);
            mma_tf32(acc[nt], ahi, bhi);
        }
    }
}

extern "C" __global__ void __launch_bounds__(256)
kda_chunk_sweep_tc(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                   const float* __restrict__ g, const float* __restrict__ beta, const int* __restrict__ seq_start,
                   const int* __restrict__ seq_chunk0, const float* __restrict__ A, const int* __restrict__ slots,
                   float* __restrict__ states, float* __restrict__ o, int heads) {
    extern __shared__ __align__(16) float sh[];
    float* sS = sh;                          // [KD][SS] state columns
    float* sqe = sS + KD * SS;               // [C][RA] q . e^G
    float* ske = sqe + C * RA;               // [C][RA] k . e^G
    float* sk2 = ske + C * RA;               // [C][RA] k . e^(G_last - G)
    float* sa = sk2 + C * RA;                // [C][LDA] T, then Aqk
    float* sn = sa + C * LDA;                // [C][NT_STRIDE] N
    float* srhs = sn + C * NT_STRIDE;        // [C][NT_STRIDE]
    float* sgl = srhs + C * NT_STRIDE;       // [KD] e^G_last
    float* sglraw = sgl + KD;                // [KD] G_last
    float* sbeta = sglraw + KD;              // [C]

    const int h = blockIdx.y;
    const int b = blockIdx.z;
    const int tid = threadIdx.x;
    const int warp = tid >> 5;
    const int lane = tid & 31;
    const int fg = lane >> 2;                // fragment row group
    const int ft = lane & 3;                 // fragment thread in group
    const int col0 = blockIdx.x * TILE;
    const int start = seq_start[b];
    const int end = seq_start[b + 1];
    const int mt = warp / 2;                 // [64 x 32] products: rows 16 mt .., columns 16 nh ..
    const int nh = warp % 2;
    float* state = states + ((long) slots[b] * heads + h) * KD * KD + col0;

    for (int i = tid; i < KD * TILE; i += blockDim.x) {
        sS[(i / TILE) * SS + i % TILE] = state[(long) (i / TILE) * KD + i % TILE];
    }
    int chunk = seq_chunk0[b];
    for (int first = start; first < end; first += C, chunk++) {
        const int len = min(C, end - first);
        __syncthreads();                     // the previous chunk is done with every buffer
        float aqk_next[C * C / 256];
        sweep_chunk_inputs(q, k, g, beta, A, first, len, chunk, heads, h, sqe, ske, sk2, sa, LDA, sgl, sglraw, sbeta, aqk_next);

        // rhs = beta (v - (k e^G) S)
        {
            float acc[2][4] = {};
            warp_mma_3xtf32<2>(acc, ske + 16 * mt * RA, RA, 1, sS + 16 * nh, SS, 0, KD / 8);
#pragma unroll
            for (int nt = 0; nt < 2; nt++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int r = 16 * mt + fg + (e >= 2 ? 8 : 0);
                    const int c = 16 * nh + 8 * nt + 2 * ft + (e & 1);
                    const float vv = r < len ? v[((long) (first + r) * heads + h) * KD + col0 + c] : 0.f;
                    srhs[r * NT_STRIDE + c] = sbeta[r] * (vv - acc[nt][e]);
                }
            }
        }
        __syncthreads();
        // N = T rhs (T is zero above its diagonal: k-steps past the warp's rows are skipped)
        {
            float acc[2][4] = {};
            warp_mma_3xtf32<2>(acc, sa + 16 * mt * LDA, LDA, 1, srhs + 16 * nh, NT_STRIDE, 0, 2 * (mt + 1));
#pragma unroll
            for (int nt = 0; nt < 2; nt++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int r = 16 * mt + fg + (e >= 2 ? 8 : 0);
                    const int c = 16 * nh + 8 * nt + 2 * ft + (e & 1);
                    sn[r * NT_STRIDE + c] = acc[nt][e];
                }
            }
        }
        __syncthreads();
#pragma unroll
        for (int n = 0; n < C * C / 256; n++) {                 // Aqk replaces T
            const int i = tid + 256 * n;
            sa[(i / C) * LDA + i % C] = aqk_next[n];
        }
        __syncthreads();
        // O = (q e^G) S + Aqk N
        {
            float acc[2][4] = {};
            warp_mma_3xtf32<2>(acc, sqe + 16 * mt * RA, RA, 1, sS + 16 * nh, SS, 0, KD / 8);
            warp_mma_3xtf32<2>(acc, sa + 16 * mt * LDA, LDA, 1, sn + 16 * nh, NT_STRIDE, 0, 2 * (mt + 1));
#pragma unroll
            for (int nt = 0; nt < 2; nt++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int r = 16 * mt + fg + (e >= 2 ? 8 : 0);
                    const int c = 16 * nh + 8 * nt + 2 * ft + (e & 1);
                    if (r < len) {
                        o[((long) (first + r) * heads + h) * KD + col0 + c] = acc[nt][e];
                    }
                }
            }
        }
        __syncthreads();                     // every warp has read S for O
        // S <- e^G_last . S + (k e^(G_last - G))^T N: A(d, r) = k2[r][d], state rows 16 warp ..
        {
            float acc[4][4] = {};
            warp_mma_3xtf32<4>(acc, sk2 + 16 * warp, 1, RA, sn, NT_STRIDE, 0, C / 8);
#pragma unroll
            for (int nt = 0; nt < 4; nt++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int d = 16 * warp + fg + (e >= 2 ? 8 : 0);
                    const int c = 8 * nt + 2 * ft + (e & 1);
                    sS[d * SS + c] = sgl[d] * sS[d * SS + c] + acc[nt][e];
                }
            }
        }
    }
    __syncthreads();
    for (int i = tid; i < KD * TILE; i += blockDim.x) {
        state[(long) (i / TILE) * KD + i % TILE] = sS[(i / TILE) * SS + i % TILE];
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The split form (kimi.cuda.kda-prefill=split), as fla's chunk_kda: three kernels, only the second one sequential.
//  kda_chunk_prep    grid (chunks, H): Aqk and Akk as kda_chunk_intra_sub, T = (I + Akk)^-1 by 16 x 16 blocks, then
//                    w = T (beta . k . e^G), u = T (beta . v), kd = k . e^(G_last - G), qg = q . e^G, e^G_last. With
//                    N = u - w S this is the sweep's N = T beta (v - (k e^G) S), and the per-chunk work left for the
//                    sequential kernel is two products.
//  kda_chunk_state   grid (V / 32, H, B): per sequence, head and 32-column state tile, the chunks in order:
//                    h_c = S (stored), v_new = u - w S (stored over u), S <- e^G_last . S + kd^T v_new; the next
//                    chunk's w, kd, u and e^G_last stream into a second stage with cp.async meanwhile.
//  kda_chunk_output  grid (chunks, H, 2): O = qg h_c + Aqk v_new for half of the columns, every chunk at once.
// All products on tensor cores (3xTF32) except the prep kernel's (register-tiled FMA); everything fp32.
// Scratch per (chunk, head), floats: Aqk [C][C] (zero above the diagonal), w, u (then v_new), kd, qg [C][KD],
// e^G_last [KD], h [KD][KD].
// ---------------------------------------------------------------------------------------------------------------
#define SPLIT_AQK 0
#define SPLIT_W (SPLIT_AQK + C * C)
#define SPLIT_U (SPLIT_W + C * KD)
#define SPLIT_KD (SPLIT_U + C * KD)
#define SPLIT_QG (SPLIT_KD + C * KD)
#define SPLIT_GL (SPLIT_QG + C * KD)
#define SPLIT_H (SPLIT_GL + KD)
#define SPLIT_FLOATS (SPLIT_H + KD * KD)       // 53,376: a multiple of 4, so every part is 16-byte aligned
#define LDT (C + 1)                            // row stride of Akk and T in the prep kernel

// 16 bytes global -> shared without passing through registers (as in mla_decode.cu).
__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
    const unsigned s = (unsigned) __cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(s), "l"(src));
}

__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::);
}

__device__ __forceinline__ void cp_async_wait_all() {
    asm volatile("cp.async.wait_group 0;\n" ::);
}

// T = (I + L)^-1 for the strictly lower Akk = L in sa [C][LDT], into st [C][LDT] (its upper blocks are never written
// and never read): the four 16 x 16 diagonal blocks by forward substitution (a column per thread, in registers), then
// T_ij = -T_ii sum_{j <= m < i} L_im T_mj by distance i - j = 1, 2, 3, through X blocks in sx [3][16][17]. 256
// threads or more; starts and ends with every thread past a barrier.
__device__ __forceinline__ void block_inverse(const float* sa, float* st, float* sx) {
    const int tid = threadIdx.x;
    if (tid < C) {
        const int o = SUB * (tid / SUB);
        const int c = tid % SUB;
        float col[SUB];                      // column c of T_ii; entries above the diagonal come out 0
#pragma unroll
        for (int r = 0; r < SUB; r++) {
            float acc = r == c ? 1.f : 0.f;
#pragma unroll
            for (int j = 0; j < r; j++) {
                acc = fmaf(-sa[(o + r) * LDT + o + j], col[j], acc);
            }
            col[r] = acc;
        }
#pragma unroll
        for (int r = 0; r < SUB; r++) {
            st[(o + r) * LDT + o + c] = col[r];
        }
    }
    __syncthreads();
    for (int dist = 1; dist < C / SUB; dist++) {
        const int blocks = C / SUB - dist;
        for (int e = tid; e < blocks * SUB * SUB; e += blockDim.x) {    // X = sum_m L_im T_mj
            const int j = e / (SUB * SUB);
            const int i = j + dist;
            const int r = e % (SUB * SUB) / SUB;
            const int c = e % SUB;
            float acc = 0.f;
            for (int m = SUB * j; m < SUB * i; m++) {
                acc = fmaf(sa[(SUB * i + r) * LDT + m], st[m * LDT + SUB * j + c], acc);
            }
            sx[(j * SUB + r) * (SUB + 1) + c] = acc;
        }
        __syncthreads();
        for (int e = tid; e < blocks * SUB * SUB; e += blockDim.x) {    // T_ij = -T_ii X
            const int j = e / (SUB * SUB);
            const int i = j + dist;
            const int r = e % (SUB * SUB) / SUB;
            const int c = e % SUB;
            float acc = 0.f;
            for (int x = 0; x <= r; x++) {
                acc = fmaf(st[(SUB * i + r) * LDT + SUB * i + x], sx[(j * SUB + x) * (SUB + 1) + c], acc);
            }
            st[(SUB * i + r) * LDT + SUB * j + c] = -acc;
        }
        __syncthreads();
    }
}

#define PREP_THREADS 512         // twice the other kernels' threads: one block per SM (173 KB of shared memory)

extern "C" __global__ void __launch_bounds__(PREP_THREADS)
kda_chunk_prep(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
               const float* __restrict__ g, const float* __restrict__ beta, const int* __restrict__ chunk_seq,
               const int* __restrict__ chunk_first, const int* __restrict__ seq_start, int heads,
               float* __restrict__ scratch) {
    extern __shared__ __align__(16) float sh[];
    float* sk = sh;                          // [C][R] k; then beta k e^G
    float* sq = sk + C * R;                  // [C][R] q, rows >= SUB scaled by e^(G_r - G_a); then beta v
    float* sg = sq + C * R;                  // [C][R] cumulative log decay G
    float* sx = sg + C * R;                  // [SUB_ROWS][R] the anchors' scaled k rows; then Akk and T [C][LDT]
    float* sks = sx + SUB_ROWS * R;          // [C - SUB][R] k rows >= SUB scaled by e^(G_r - G_a); then X blocks
    __shared__ float sb[C];

    const int chunk = blockIdx.x;
    const int h = blockIdx.y;
    const int tid = threadIdx.x;
    const int first = chunk_first[chunk];
    const int len = min(C, seq_start[chunk_seq[chunk] + 1] - first);
    float* base = scratch + ((long) chunk * heads + h) * SPLIT_FLOATS;
    float* out_aqk = base + SPLIT_AQK;

    for (int p = tid; p < C * C; p += blockDim.x) {          // Aqk above the diagonal
        if (p % C > p / C) {
            out_aqk[p] = 0.f;
        }
    }
    load_chunk(q, k, g, beta, first, len, heads, h, sk, sq, sg, sb);

    // Diagonal blocks, exact (as kda_chunk_intra_sub).
    constexpr int DIAG = 4 * SUB * (SUB + 1) / 2;
    float akk_diag[(DIAG + PREP_THREADS - 1) / PREP_THREADS];
#pragma unroll
    for (int n = 0; n < (DIAG + PREP_THREADS - 1) / PREP_THREADS; n++) {
        const int idx = tid + PREP_THREADS * n;
        akk_diag[n] = 0.f;
        if (idx < DIAG) {
            int r, j;
            diagonal_pair(idx, &r, &j);
            float kk = 0.f;
            float qk = 0.f;
            exact_pair(sk, sq, sg, r, j, &kk, &qk);
            akk_diag[n] = j < r ? sb[r] * kk : 0.f;
            out_aqk[r * C + j] = qk;
        }
    }
    // The anchors' scaled k rows; per element of the chunk kd and qg to the scratch and the scaled k rows >= SUB.
    for (int i = tid; i < SUB_ROWS * KD; i += blockDim.x) {
        const int x = i / KD;
        const int d = i % KD;
        const int s = x < SUB ? 1 : x < 3 * SUB ? 2 : 3;
        const int j = x - anchor_rows_offset(s);
        sx[x * R + d] = sk[j * R + d] * __expf(sg[SUB * s * R + d] - sg[j * R + d]);
    }
    const float* glast = sg + (C - 1) * R;
    for (int i = tid; i < C * KD; i += blockDim.x) {
        const int r = i / KD;
        const int d = i % KD;
        const float gr = sg[r * R + d];
        const float kr = sk[r * R + d];
        base[SPLIT_KD + i] = kr * __expf(glast[d] - gr);
        base[SPLIT_QG + i] = sq[r * R + d] * __expf(gr);
        if (r >= SUB) {
            sks[(r - SUB) * R + d] = kr * __expf(gr - sg[(r / SUB * SUB) * R + d]);
        }
    }
    if (tid < KD) {
        base[SPLIT_GL + tid] = __expf(glast[tid]);
    }
    __syncthreads();                         // every diagonal pair has read raw q
    for (int i = tid; i < (C - SUB) * KD; i += blockDim.x) {
        const int r = SUB + i / KD;
        const int d = i % KD;
        sq[r * R + d] *= __expf(sg[r * R + d] - sg[(r / SUB * SUB) * R + d]);
    }
    __syncthreads();
    // Off-diagonal blocks: a thread's tile is one row r (in sub-chunk s >= 1) x 4 columns j < 16 s: 16 rows x 4 s
    // column quads for each s, 64 + 128 + 192 = 384 tiles.
    float kk[4] = {};
    int r0 = 0;
    int j0 = 0;
    if (tid < 384) {
        const int s = tid < 64 ? 1 : tid < 192 ? 2 : 3;
        const int t = tid - (s == 1 ? 0 : s == 2 ? 64 : 192);
        const int quads = 4 * s;
        r0 = SUB * s + t / quads;
        j0 = 4 * (t % quads);
        const float* x0 = sx + (anchor_rows_offset(s) + j0) * R;
        float qk[4] = {};
#pragma unroll 4
        for (int d = 0; d < KD; d++) {
            const float q0 = sq[r0 * R + d];
            const float k0 = sks[(r0 - SUB) * R + d];
#pragma unroll
            for (int c = 0; c < 4; c++) {
                const float xj = x0[c * R + d];
                qk[c] = fmaf(q0, xj, qk[c]);
                kk[c] = fmaf(k0, xj, kk[c]);
            }
        }
#pragma unroll
        for (int c = 0; c < 4; c++) {
            out_aqk[r0 * C + j0 + c] = qk[c];
        }
    }
    __syncthreads();                         // sx, sks and sq are free
    float* sa = sx;                          // Akk [C][LDT]
    float* st = sx + C * LDT;                // T [C][LDT]
#pragma unroll
    for (int n = 0; n < (DIAG + PREP_THREADS - 1) / PREP_THREADS; n++) {
        const int idx = tid + PREP_THREADS * n;
        if (idx < DIAG) {
            int r, j;
            diagonal_pair(idx, &r, &j);
            sa[r * LDT + j] = akk_diag[n];
        }
    }
    if (tid < 384) {
#pragma unroll
        for (int c = 0; c < 4; c++) {
            sa[r0 * LDT + j0 + c] = sb[r0] * kk[c];
        }
    }
    for (int i = tid; i < C * KD; i += blockDim.x) {         // beta k e^G in place; beta v into q's rows
        const int r = i / KD;
        const int d = i % KD;
        sk[r * R + d] *= sb[r] * __expf(sg[r * R + d]);
        sq[r * R + d] = r < len ? sb[r] * v[((long) (first + r) * heads + h) * KD + d] : 0.f;
    }
    __syncthreads();
    block_inverse(sa, st, sks);

    // w = T (beta k e^G), u = T (beta v): a thread's rows 2 tr, 2 tr + 1, columns tc + 16 c (c < 8); T is zero
    // above its diagonal, so j runs to the tile's last row.
    const int tr = tid / 16;
    const int tc = tid % 16;
    float aw[2][8] = {};
    float au[2][8] = {};
    for (int j = 0; j <= 2 * tr + 1; j++) {
        const float t0 = st[(2 * tr) * LDT + j];
        const float t1 = st[(2 * tr + 1) * LDT + j];
#pragma unroll
        for (int c = 0; c < 8; c++) {
            const float kb = sk[j * R + tc + 16 * c];
            const float vb = sq[j * R + tc + 16 * c];
            aw[0][c] = fmaf(t0, kb, aw[0][c]);
            aw[1][c] = fmaf(t1, kb, aw[1][c]);
            au[0][c] = fmaf(t0, vb, au[0][c]);
            au[1][c] = fmaf(t1, vb, au[1][c]);
        }
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
#pragma unroll
        for (int c = 0; c < 8; c++) {
            base[SPLIT_W + (2 * tr + i) * KD + tc + 16 * c] = aw[i][c];
            base[SPLIT_U + (2 * tr + i) * KD + tc + 16 * c] = au[i][c];
        }
    }
}

// One stage of kda_chunk_state's inputs: w, kd [C][RA], the u tile [C][NT_STRIDE], e^G_last [KD].
#define STAGE_KD (C * RA)
#define STAGE_U (2 * C * RA)
#define STAGE_GL (STAGE_U + C * NT_STRIDE)
#define STAGE (STAGE_GL + KD)

__device__ __forceinline__ void state_stage_load(float* stage, const float* base, int col0) {
    const int tid = threadIdx.x;
    for (int i = tid; i < C * KD / 4; i += blockDim.x) {
        const int r = i / (KD / 4);
        const int c = 4 * (i % (KD / 4));
        cp_async16(stage + r * RA + c, base + SPLIT_W + r * KD + c);
        cp_async16(stage + STAGE_KD + r * RA + c, base + SPLIT_KD + r * KD + c);
    }
    for (int i = tid; i < C * TILE / 4; i += blockDim.x) {
        const int r = i / (TILE / 4);
        const int c = 4 * (i % (TILE / 4));
        cp_async16(stage + STAGE_U + r * NT_STRIDE + c, base + SPLIT_U + r * KD + col0 + c);
    }
    if (tid < KD / 4) {
        cp_async16(stage + STAGE_GL + 4 * tid, base + SPLIT_GL + 4 * tid);
    }
}

extern "C" __global__ void __launch_bounds__(256)
kda_chunk_state(const int* __restrict__ seq_start, const int* __restrict__ seq_chunk0, const int* __restrict__ slots,
                float* __restrict__ states, float* __restrict__ scratch, int heads) {
    extern __shared__ __align__(16) float sh[];
    float* sS = sh;                          // [KD][SS] state columns
    float* sv = sS + KD * SS;                // [C][NT_STRIDE] v_new
    float* stages = sv + C * NT_STRIDE;      // 2 x STAGE

    const int h = blockIdx.y;
    const int b = blockIdx.z;
    const int tid = threadIdx.x;
    const int warp = tid >> 5;
    const int lane = tid & 31;
    const int fg = lane >> 2;
    const int ft = lane & 3;
    const int col0 = blockIdx.x * TILE;
    const int chunks = (seq_start[b + 1] - seq_start[b] + C - 1) / C;
    const int chunk0 = seq_chunk0[b];
    const int mt = warp / 2;                 // v_new [64 x 32]: rows 16 mt .., columns 16 nh ..
    const int nh = warp % 2;
    float* state = states + ((long) slots[b] * heads + h) * KD * KD + col0;

    for (int i = tid; i < KD * TILE; i += blockDim.x) {
        sS[(i / TILE) * SS + i % TILE] = state[(long) (i / TILE) * KD + i % TILE];
    }
    state_stage_load(stages, scratch + ((long) chunk0 * heads + h) * SPLIT_FLOATS, col0);
    cp_async_commit();
    for (int n = 0; n < chunks; n++) {
        float* base = scratch + ((long) (chunk0 + n) * heads + h) * SPLIT_FLOATS;
        const float* stage = stages + (n & 1) * STAGE;
        cp_async_wait_all();
        __syncthreads();                     // this chunk's stage has landed; the previous chunk is done with all
        if (n + 1 < chunks) {
            state_stage_load(stages + ((n + 1) & 1) * STAGE, base + (long) heads * SPLIT_FLOATS, col0);
        }
        cp_async_commit();
        for (int i = tid; i < KD * TILE; i += blockDim.x) {     // h_c = S
            base[SPLIT_H + (i / TILE) * KD + col0 + i % TILE] = sS[(i / TILE) * SS + i % TILE];
        }
        // v_new = u - w S
        {
            float acc[2][4] = {};
            warp_mma_3xtf32<2>(acc, stage + 16 * mt * RA, RA, 1, sS + 16 * nh, SS, 0, KD / 8);
#pragma unroll
            for (int nt = 0; nt < 2; nt++) {
#pragma unroll
                for (int e = 0; e < 4; e += 2) {
                    const int r = 16 * mt + fg + (e >= 2 ? 8 : 0);
                    const int c = 16 * nh + 8 * nt + 2 * ft;
                    const float2 u = *reinterpret_cast<const float2*>(stage + STAGE_U + r * NT_STRIDE + c);
                    const float2 vn = make_float2(u.x - acc[nt][e], u.y - acc[nt][e + 1]);
                    *reinterpret_cast<float2*>(sv + r * NT_STRIDE + c) = vn;
                    *reinterpret_cast<float2*>(base + SPLIT_U + r * KD + col0 + c) = vn;
                }
            }
        }
        __syncthreads();                     // v_new is whole; every warp has read S
        // S <- e^G_last . S + kd^T v_new: A(d, r) = kd[r][d], state rows 16 warp ..
        {
            float acc[4][4] = {};
            warp_mma_3xtf32<4>(acc, stage + STAGE_KD + 16 * warp, 1, RA, sv, NT_STRIDE, 0, C / 8);
#pragma unroll
            for (int nt = 0; nt < 4; nt++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int d = 16 * warp + fg + (e >= 2 ? 8 : 0);
                    const int c = 8 * nt + 2 * ft + (e & 1);
                    sS[d * SS + c] = stage[STAGE_GL + d] * sS[d * SS + c] + acc[nt][e];
                }
            }
        }
    }
    cp_async_wait_all();
    __syncthreads();
    for (int i = tid; i < KD * TILE; i += blockDim.x) {
        state[(long) (i / TILE) * KD + i % TILE] = sS[(i / TILE) * SS + i % TILE];
    }
}

#define OH 72                   // row stride of the h and v_new halves in kda_chunk_output

extern "C" __global__ void __launch_bounds__(256)
kda_chunk_output(const int* __restrict__ chunk_seq, const int* __restrict__ chunk_first,
                 const int* __restrict__ seq_start, int heads, const float* __restrict__ scratch, float* __restrict__ o) {
    extern __shared__ __align__(16) float sh[];
    float* sqg = sh;                         // [C][RA] q e^G
    float* shs = sqg + C * RA;               // [KD][OH] h_c, this block's 64 columns
    float* saqk = shs + KD * OH;             // [C][LDA]
    float* svn = saqk + C * LDA;             // [C][OH] v_new, this block's 64 columns

    const int chunk = blockIdx.x;
    const int h = blockIdx.y;
    const int col0 = 64 * blockIdx.z;
    const int tid = threadIdx.x;
    const int warp = tid >> 5;
    const int lane = tid & 31;
    const int fg = lane >> 2;
    const int ft = lane & 3;
    const int first = chunk_first[chunk];
    const int len = min(C, seq_start[chunk_seq[chunk] + 1] - first);
    const float* base = scratch + ((long) chunk * heads + h) * SPLIT_FLOATS;

    for (int i = tid; i < C * KD / 4; i += blockDim.x) {
        const int r = i / (KD / 4);
        const int c = 4 * (i % (KD / 4));
        cp_async16(sqg + r * RA + c, base + SPLIT_QG + r * KD + c);
    }
    for (int i = tid; i < KD * 16; i += blockDim.x) {
        const int r = i / 16;
        const int c = 4 * (i % 16);
        cp_async16(shs + r * OH + c, base + SPLIT_H + r * KD + col0 + c);
    }
    for (int i = tid; i < C * 16; i += blockDim.x) {
        const int r = i / 16;
        const int c = 4 * (i % 16);
        cp_async16(saqk + r * LDA + c, base + SPLIT_AQK + r * C + c);
        cp_async16(svn + r * OH + c, base + SPLIT_U + r * KD + col0 + c);
    }
    cp_async_commit();
    cp_async_wait_all();
    __syncthreads();
    // Warp w: rows 16 (w / 2) .., columns 32 (w % 2) .. (four n-tiles); Aqk is zero above its diagonal.
    const int mt = warp / 2;
    const int nh = warp % 2;
    float acc[4][4] = {};
    warp_mma_3xtf32<4>(acc, sqg + 16 * mt * RA, RA, 1, shs + 32 * nh, OH, 0, KD / 8);
    warp_mma_3xtf32<4>(acc, saqk + 16 * mt * LDA, LDA, 1, svn + 32 * nh, OH, 0, 2 * (mt + 1));
#pragma unroll
    for (int nt = 0; nt < 4; nt++) {
#pragma unroll
        for (int e = 0; e < 4; e += 2) {
            const int r = 16 * mt + fg + (e >= 2 ? 8 : 0);
            const int c = col0 + 32 * nh + 8 * nt + 2 * ft;
            if (r < len) {
                *reinterpret_cast<float2*>(o + ((long) (first + r) * heads + h) * KD + c) = make_float2(acc[nt][e], acc[nt][e + 1]);
            }
        }
    }
}
