// KDA chunked prefill (spec 4.1-4.4, 4.6 option 2), chunk C = 64, sub-chunks of 16, K = V = 128, fp32 throughout,
// varlen batches. The form of fla's chunk_kda: three kernels, only the second one sequential.
//  kda_chunk_prep    grid chunks x H: the cumulative log decay G of the chunk, then the lower-triangular
//                      Akk[r][j] = beta_r sum_d k_r[d] e^(G_r[d] - G_j[d]) k_j[d]   (j < r)
//                      Aqk[r][j] =        sum_d q_r[d] e^(G_r[d] - G_j[d]) k_j[d]   (j <= r)
//                    through the anchor a = the first row of r's sub-chunk of 16 rows: e^(G_r - G_j) =
//                    e^(G_r - G_a) e^(G_a - G_j), on tensor cores. Across sub-chunks both exponents are <= 0 (G does
//                    not increase down a chunk), so nothing overflows however strong the gate; inside one (the
//                    diagonal blocks) e^(G_a - G_j) >= 1, so channels decaying by more than 2^64 across the sub-chunk
//                    are left out of the product and summed pair by pair with exact decays instead. Then
//                    T = (I + Akk)^-1 by 16 x 16 blocks and w = T (beta . k . e^G), u = T (beta . v),
//                    kd = k . e^(G_last - G), qg = q . e^G, e^G_last into the scratch.
//  kda_chunk_state   grid (V / 32, H, B): per sequence, head and 32-column state tile, the chunks in order:
//                    h_c = S (stored transposed), v_new = u - w S (stored over u), S <- e^G_last . S + kd^T v_new; the next
//                    chunk's w, kd, u and e^G_last stream into a second stage with cp.async meanwhile. (v_new is the
//                    delta rule's T beta (v - (k e^G) S).) Columns of the state never mix, so the tiles run apart.
//  kda_chunk_output  grid chunks x H x 2: O = qg h_c + Aqk v_new for half of the columns, every chunk at once.
// The products run on tensor cores (mma.sync m16n8k8 TF32, each operand split into big + small parts and the three
// significant partial products summed, "3xTF32": close to fp32), except the prep kernel's exact pairs (strongly
// decaying channels of the diagonal blocks) and the inverse's substitutions, which run on CUDA cores.
//
// Layouts: q, k, g [T][H][128] (q L2-normed and scaled, k L2-normed, g = log decay), v and o [T][H][128], beta [T][H]
// (rows of all sequences back to back); seq_start [B + 1] token offsets; chunk_seq / chunk_first [chunks]: the
// sequence and first token of each chunk (chunks of a sequence consecutive, in order), seq_chunk0 [B] the index of a
// sequence's first chunk; states [slots][H][128][128] with slots [B]. Scratch per (chunk, head), floats: Aqk [C][C]
// (zero above the diagonal inside the 16 x 16 diagonal blocks; never written or read further up), w, u (then v_new),
// kd, qg [C][KD], e^G_last [KD], h^T [KD][KD] (the state at the chunk's start, row = value column).
// A partial last chunk is padded with k = v = 0, beta = 0, g = 0 (spec 4.4): the padding changes nothing.

#include "common.cuh"

#define KD 128
#define C 64
#define TILE 32                 // state columns per kda_chunk_state block
#define RA 132                  // row stride of [C][KD] smem arrays (16-byte rows, 4 banks apart: conflict-free for
                                // tensor-core fragments and for 16-byte loads of 8 rows)
#define NT_STRIDE 40            // row stride of [C][TILE] arrays (u, v_new)
#define LDA 68                  // row stride of Aqk [C][C] in the output kernel
#define SUB 16
#define SAFE_SPAN 64.f          // the most decay (log2 units) a channel may have across a sub-chunk for the anchored
                                // diagonal product: its factors stay within 2^-64 .. 2^64, far from fp32's limits
#define SPLIT_AQK 0
#define SPLIT_W (SPLIT_AQK + C * C)
#define SPLIT_U (SPLIT_W + C * KD)
#define SPLIT_KD (SPLIT_U + C * KD)
#define SPLIT_QG (SPLIT_KD + C * KD)
#define SPLIT_GL (SPLIT_QG + C * KD)
#define SPLIT_H (SPLIT_GL + KD)
#define SPLIT_FLOATS (SPLIT_H + KD * KD)       // 53,376: a multiple of 4, so every part is 16-byte aligned
#define LDT 68                                 // row stride of Akk and T in the prep kernel (tensor-core operands)

// 2^x, flushing results below the smallest normal float to 0 (e^x = 2^(x log2 e): the prep kernel keeps G in log2
// units, so that each decay factor is one MUFU instruction).
__device__ __forceinline__ float exp2_approx(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

#define LOG2E 1.4426950408889634f

// The real rows (<= C) of the chunk starting at token first: its sequence may end inside it.
__device__ __forceinline__ int chunk_rows(const int* __restrict__ chunk_seq, const int* __restrict__ seq_start, int chunk, int first) {
    return min(C, seq_start[chunk_seq[chunk] + 1] - first);
}

// Issues the cp.async copies of a chunk's rows of x [T][H][KD] at head h into dst [C][RA], rows past len zero-filled.
__device__ __forceinline__ void load_rows(float* dst, const float* __restrict__ x, int first, int len, int heads, int h) {
    const long step = (long) heads * KD;
    const long at0 = ((long) first * heads + h) * KD;
    for (int i = threadIdx.x; i < C * KD / 4; i += blockDim.x) {
        const int r = i / (KD / 4);
        const int c = 4 * (i % (KD / 4));
        const bool real = r < len;
        cp_async16_or_zero(dst + r * RA + c, x + (real ? at0 + r * step + c : 0), real);
    }
}

// A chunk's k, g and q rows [C][RA] and beta into shared memory (padding rows zero; every load in flight at once), then
// G = the inclusive cumulative sum of g down each channel times log2 e, in place (16 rows at a time through registers).
// Ends with a barrier.
__device__ __forceinline__ void load_chunk(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ g,
                                           const float* __restrict__ beta, int first, int len, int heads, int h, float* sk,
                                           float* sq, float* sg, float* sb) {
    const int tid = threadIdx.x;
    load_rows(sk, k, first, len, heads, h);
    load_rows(sq, q, first, len, heads, h);
    load_rows(sg, g, first, len, heads, h);
    cp_async_commit();
    if (tid < C) {
        sb[tid] = tid < len ? beta[(long) (first + tid) * heads + h] : 0.f;
    }
    cp_async_wait<0>();
    __syncthreads();
    if (tid < KD) {
        float acc = 0.f;
        for (int r0 = 0; r0 < C; r0 += 16) {
            float x[16];
#pragma unroll
            for (int i = 0; i < 16; i++) {
                x[i] = sg[(r0 + i) * RA + tid];
            }
#pragma unroll
            for (int i = 0; i < 16; i++) {
                acc += x[i];
                sg[(r0 + i) * RA + tid] = acc * LOG2E;
            }
        }
    }
    __syncthreads();
}

// kk = sum_d k_r[d] exp(G_r[d] - G_j[d]) k_j[d] and qk likewise with q_r over the n channels d of list, from k, q and G
// (log2 units) [C][RA] rows in shared memory: the exact pairwise decays, for the channels whose decay inside a
// sub-chunk is too strong for the anchored product (see SAFE_SPAN).
__device__ __forceinline__ void exact_pair(const float* sk, const float* sq, const float* sg, int r, int j, const unsigned char* list,
                                           int n, float* kk, float* qk) {
    float a = 0.f;
    float b = 0.f;
    for (int u = 0; u < n; u++) {
        const int d = list[u];
        const float e = exp2_approx(sg[r * RA + d] - sg[j * RA + d]) * sk[j * RA + d];
        a = fmaf(sk[r * RA + d], e, a);
        b = fmaf(sq[r * RA + d], e, b);
    }
    *kk = a;
    *qk = b;
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

// x = big + small for 3xTF32. The tensor cores read only the top 19 bits of a TF32 operand (sign, exponent and 10
// mantissa bits: they truncate, as CUTLASS's round_toward_zero conversion relies on), so big is x's bits with the low 13
// cleared and small = x - big is exact in fp32; small goes in as it is, truncated in turn: an error of at most 2^-20 |x|
// per operand. Two instructions, where cvt.rna.tf32 alone compiles to four on sm_90.
__device__ __forceinline__ void split_tf32(float x, uint32_t* big, uint32_t* small) {
    *big = __float_as_uint(x) & 0xffffe000u;
    *small = __float_as_uint(x - __uint_as_float(*big));
}

__device__ __forceinline__ void mma_tf32(float* d, const uint32_t a[4], const uint32_t b[2]) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// The three significant products of 3xTF32 for one A and one B fragment: big . big into acc, the two big . small
// ones into small (a chain apart from the large one, added at the end by add_small).
__device__ __forceinline__ void mma_3xtf32(float acc[4], float small[4], const uint32_t ahi[4], const uint32_t alo[4],
                                           const uint32_t* bhi, const uint32_t* blo) {
    mma_tf32(small, alo, bhi);
    mma_tf32(small, ahi, blo);
    mma_tf32(acc, ahi, bhi);
}

template <int NT>
__device__ __forceinline__ void add_small(float acc[NT][4], const float small[NT][4]) {
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            acc[nt][e] += small[nt][e];
        }
    }
}

// A's fragment of k-step k0 read element by element, A(m, k) = pa[m * sam + k * sak], split into its TF32 parts.
__device__ __forceinline__ void a_fragment(const float* pa, int sam, int sak, int k0, uint32_t ahi[4], uint32_t alo[4]) {
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2;
    const int t = lane & 3;
    const float av[4] = {pa[g * sam + (k0 + t) * sak], pa[(g + 8) * sam + (k0 + t) * sak], pa[g * sam + (k0 + t + 4) * sak],
                         pa[(g + 8) * sam + (k0 + t + 4) * sak]};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        split_tf32(av[i], &ahi[i], &alo[i]);
    }
}

// acc[nt] (a 16 x 8 C fragment per n-tile) += A[16 x 8 ks] . B[8 ks x 8 NT] for k-steps [ks0, ks1), with A(m, k) =
// pa[m * sam + k * sak] and B(k, n) = pb[k * sbk + n * sbn]. Fragments (PTX m16n8k8 .tf32): lane = 4 g + t; A: (g, t),
// (g + 8, t), (g, t + 4), (g + 8, t + 4); B: (t, g), (t + 4, g); C: (g, 2t), (g, 2t + 1), (g + 8, 2t), (g + 8, 2t + 1).
template <int NT>
__device__ __forceinline__ void warp_mma_3xtf32(float acc[NT][4], const float* pa, int sam, int sak, const float* pb, int sbk,
                                                int sbn, int ks0, int ks1) {
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2;
    const int t = lane & 3;
    float small[NT][4] = {};
    for (int ks = ks0; ks < ks1; ks++) {
        const int k0 = 8 * ks;
        uint32_t ahi[4], alo[4];
        a_fragment(pa, sam, sak, k0, ahi, alo);
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            const float bv[2] = {pb[(k0 + t) * sbk + (8 * nt + g) * sbn], pb[(k0 + t + 4) * sbk + (8 * nt + g) * sbn]};
            uint32_t bhi[2], blo[2];
#pragma unroll
            for (int i = 0; i < 2; i++) {
                split_tf32(bv[i], &bhi[i], &blo[i]);
            }
            mma_3xtf32(acc[nt], small[nt], ahi, alo, bhi, blo);
        }
    }
    add_small<NT>(acc, small);
}

// The same with fragments read by ldmatrix (8 x 8 b16 matrices = 8 rows of 4 fp32: lane l gives the address of row
// l % 8 of matrix l / 8 and receives word l % 4 of row l / 4 of each, which is the fragments' (g, t) order): A [16][k]
// row-major at pa (row stride sa), B n-major, B(k, n) = pb[n * sb + k], NT n-tiles (NT even). Rows 16-byte aligned.
// One ldmatrix brings A's fragment (rows 0-7 and 8-15 at k0, then at k0 + 4); one brings B's of two n-tiles (n 0-7 at
// k0 and k0 + 4, then n 8-15).
template <int NT>
__device__ __forceinline__ void warp_mma_3xtf32_nk(float acc[NT][4], const float* pa, int sa, const float* pb, int sb, int ks0,
                                                   int ks1) {
    const int lane = threadIdx.x & 31;
    const float* arow = pa + (lane % 8 + 8 * ((lane / 8) % 2)) * sa + 4 * (lane / 16);
    const float* brow = pb + (lane % 8 + 8 * (lane / 16)) * sb + 4 * ((lane / 8) % 2);
    float small[NT][4] = {};
    for (int ks = ks0; ks < ks1; ks++) {
        uint32_t av[4], ahi[4], alo[4];
        ldsm_x4(av, arow + 8 * ks);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            split_tf32(__uint_as_float(av[i]), &ahi[i], &alo[i]);
        }
#pragma unroll
        for (int np = 0; np < NT / 2; np++) {
            uint32_t bv[4], bhi[4], blo[4];
            ldsm_x4(bv, brow + 16 * np * sb + 8 * ks);
#pragma unroll
            for (int i = 0; i < 4; i++) {
                split_tf32(__uint_as_float(bv[i]), &bhi[i], &blo[i]);
            }
#pragma unroll
            for (int j = 0; j < 2; j++) {
                mma_3xtf32(acc[2 * np + j], small[2 * np + j], ahi, alo, bhi + 2 * j, blo + 2 * j);
            }
        }
    }
    add_small<NT>(acc, small);
}

// The same with A read element by element, A(m, k) = pa[m * sam + k * sak], and B split already: its big and small
// parts n-major at pbhi and pblo (B(k, n) = pbhi[n * sb + k] + pblo[n * sb + k]), read by ldmatrix.
template <int NT>
__device__ __forceinline__ void warp_mma_3xtf32_split_b(float acc[NT][4], const float* pa, int sam, int sak, const float* pbhi,
                                                        const float* pblo, int sb, int ks0, int ks1) {
    const int lane = threadIdx.x & 31;
    const int brow = (lane % 8 + 8 * (lane / 16)) * sb + 4 * ((lane / 8) % 2);
    float small[NT][4] = {};
    for (int ks = ks0; ks < ks1; ks++) {
        const int k0 = 8 * ks;
        uint32_t ahi[4], alo[4];
        a_fragment(pa, sam, sak, k0, ahi, alo);
#pragma unroll
        for (int np = 0; np < NT / 2; np++) {
            uint32_t bhi[4], blo[4];
            ldsm_x4(bhi, pbhi + brow + 16 * np * sb + k0);
            ldsm_x4(blo, pblo + brow + 16 * np * sb + k0);
#pragma unroll
            for (int j = 0; j < 2; j++) {
                mma_3xtf32(acc[2 * np + j], small[2 * np + j], ahi, alo, bhi + 2 * j, blo + 2 * j);
            }
        }
    }
    add_small<NT>(acc, small);
}

// Rows of sub-chunk s (16 s ..) times columns 16 cg .. (cg <= s) of Aqk and of Akk without beta, through the anchor
// a = 16 s: q_r 2^(G_r - G_a) and k_r 2^(G_r - G_a) against k_j 2^(gb - G_j), gb = G_a. Below the diagonal (cg < s)
// both exponents are <= 0 (G in log2 units does not increase down a chunk), so nothing overflows however strong the
// gate. On the diagonal (cg = s) the right one is up to the channel's decay across the sub-chunk, so gb is G_a only
// where that is at most SAFE_SPAN and -inf elsewhere (those channels then add nothing; the exact pairs add them). The
// scaled operands are built in registers as the k-steps go, the two products sharing the right one (3xTF32). One
// warp; C fragments as in warp_mma_3xtf32.
__device__ __forceinline__ void anchored_block(const float* sk, const float* sq, const float* sg, int s, int cg, const float* gb,
                                               float aqk[2][4], float akk[2][4]) {
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2;
    const int t = lane & 3;
    const float* ga = sg + SUB * s * RA;
    float qsmall[2][4] = {};
    float ksmall[2][4] = {};
    for (int ks = 0; ks < KD / 8; ks++) {
        const int col[2] = {8 * ks + t, 8 * ks + t + 4};
        uint32_t qhi[4], qlo[4], khi[4], klo[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {                       // A fragment: (g, t), (g + 8, t), (g, t + 4), (g + 8, t + 4)
            const int at = (SUB * s + g + 8 * (i & 1)) * RA + col[i >> 1];
            const float e = exp2_approx(sg[at] - ga[col[i >> 1]]);
            split_tf32(sq[at] * e, &qhi[i], &qlo[i]);
            split_tf32(sk[at] * e, &khi[i], &klo[i]);
        }
#pragma unroll
        for (int nt = 0; nt < 2; nt++) {
            const int j = SUB * cg + 8 * nt + g;
            uint32_t bhi[2], blo[2];
#pragma unroll
            for (int i = 0; i < 2; i++) {                   // B fragment: (t, g), (t + 4, g)
                const int at = j * RA + col[i];
                split_tf32(sk[at] * exp2_approx(gb[col[i]] - sg[at]), &bhi[i], &blo[i]);
            }
            mma_3xtf32(aqk[nt], qsmall[nt], qhi, qlo, bhi, blo);
            mma_3xtf32(akk[nt], ksmall[nt], khi, klo, bhi, blo);
        }
    }
    add_small<2>(aqk, qsmall);
    add_small<2>(akk, ksmall);
}

// T = (I + L)^-1 for the strictly lower Akk = L in sa [C][LDT], into st [C][LDT] (blocks above the diagonal are never
// written and never read): the four 16 x 16 diagonal blocks by forward substitution (a column per thread, in
// registers), then by distance i - j = 1, 2, 3 the blocks T_ij = -T_ii sum_{j <= m < i} L_im T_mj, a warp per block on
// tensor cores, the sum X passing through T_ij's own place. 128 threads or more; starts and ends with every thread past
// a barrier.
__device__ __forceinline__ void block_inverse(const float* sa, float* st) {
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
    const int warp = tid >> 5;
    const int fg = (tid & 31) >> 2;
    const int ft = tid & 3;
    for (int dist = 1; dist < C / SUB; dist++) {
        if (warp < C / SUB - dist) {
            const int j = warp;
            const int i = warp + dist;
            float* tij = st + SUB * i * LDT + SUB * j;
            float x[2][4] = {};
            warp_mma_3xtf32<2>(x, sa + SUB * i * LDT + SUB * j, LDT, 1, st + SUB * j * LDT + SUB * j, LDT, 1, 0, 2 * dist);
#pragma unroll
            for (int nt = 0; nt < 2; nt++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    tij[(fg + (e >= 2 ? 8 : 0)) * LDT + 8 * nt + 2 * ft + (e & 1)] = x[nt][e];
                }
            }
            __syncwarp();
            float y[2][4] = {};
            warp_mma_3xtf32<2>(y, st + SUB * i * LDT + SUB * i, LDT, 1, tij, LDT, 1, 0, 2);
            __syncwarp();
#pragma unroll
            for (int nt = 0; nt < 2; nt++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    tij[(fg + (e >= 2 ? 8 : 0)) * LDT + 8 * nt + 2 * ft + (e & 1)] = -y[nt][e];
                }
            }
        }
        __syncthreads();
    }
}

// kda_chunk_prep, a block per (chunk, head), 320 threads (a warp per anchored block), two blocks per SM. Dynamic shared
// memory (102,400 bytes): k, q and G (log2 units) [C][RA]; once the products are done, k e^G takes k's rows, v q's
// rows, and Akk and T [C][LDT] G's rows and the 256 floats past them; 11 KB static for the diagonal blocks. The
// anchored blocks, the inverse's off-diagonal blocks and w, u run on tensor cores (3xTF32), the exact pairs of the
// strongly decaying channels and the diagonal blocks' substitutions on CUDA cores.
#define PREP_THREADS 320

extern "C" __global__ void __launch_bounds__(PREP_THREADS, 2)
kda_chunk_prep(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
               const float* __restrict__ g, const float* __restrict__ beta, const int* __restrict__ chunk_seq,
               const int* __restrict__ chunk_first, const int* __restrict__ seq_start, int heads,
               float* __restrict__ scratch) {
    extern __shared__ __align__(16) float sh[];
    float* sk = sh;                          // [C][RA] k; then k e^G
    float* sq = sk + C * RA;                 // [C][RA] q; then v
    float* sg = sq + C * RA;                 // [C][RA] cumulative log decay G times log2 e; then Akk, T [C][LDT]
    float* sa = sg;
    float* st = sg + C * LDT;
    __shared__ float sb[C];
    __shared__ float sgb[C / SUB][KD];                     // B-side anchors of the diagonal blocks (anchored_block)
    __shared__ unsigned char sunsafe[C / SUB][KD];         // the channels each diagonal block takes exactly
    __shared__ int snunsafe[C / SUB];
    __shared__ float sdiag[2][C / SUB][SUB][SUB];          // the diagonal blocks' anchored parts of Aqk and Akk

    const int chunk = blockIdx.x / heads;    // heads fastest: a chunk's heads share their rows' pages and scratch
    const int h = blockIdx.x % heads;
    const int tid = threadIdx.x;
    const int warp = tid >> 5;
    const int lane = tid & 31;
    const int fg = lane >> 2;
    const int ft = lane & 3;
    const int first = chunk_first[chunk];
    const int len = chunk_rows(chunk_seq, seq_start, chunk, first);
    float* base = scratch + ((long) chunk * heads + h) * SPLIT_FLOATS;
    float* out_aqk = base + SPLIT_AQK;

    load_chunk(q, k, g, beta, first, len, heads, h, sk, sq, sg, sb);

    // Warp s < 4: the channels too strongly decayed across sub-chunk s for its anchored diagonal product.
    if (warp < C / SUB) {
        const int s = warp;
        int count = 0;
        for (int d = lane; d < KD; d += 32) {
            const float ga = sg[SUB * s * RA + d];
            const bool unsafe = ga - sg[(SUB * s + SUB - 1) * RA + d] > SAFE_SPAN;
            sgb[s][d] = unsafe ? -INFINITY : ga;
            const unsigned m = __ballot_sync(0xffffffffu, unsafe);
            if (unsafe) {
                sunsafe[s][count + __popc(m & ((1u << lane) - 1))] = (unsigned char) d;
            }
            count += __popc(m);
        }
        if (lane == 0) {
            snunsafe[s] = count;
        }
    }
    __syncthreads();

    // The diagonal blocks' exact pairs over those channels only, in two rounds.
    constexpr int DIAG = 4 * SUB * (SUB + 1) / 2;
    float kk_exact[2];
    float qk_exact[2];
#pragma unroll
    for (int n = 0; n < 2; n++) {
        const int idx = tid + PREP_THREADS * n;
        kk_exact[n] = 0.f;
        qk_exact[n] = 0.f;
        if (idx < DIAG) {
            int r, j;
            diagonal_pair(idx, &r, &j);
            exact_pair(sk, sq, sg, r, j, sunsafe[r / SUB], snunsafe[r / SUB], &kk_exact[n], &qk_exact[n]);
        }
    }
    // Anchored blocks: warp w < 6 takes the block (s, cg) below the diagonal with s (s - 1) / 2 + cg = w, warp 6 + s the
    // diagonal block s, into sdiag.
    const int blk_s = warp == 0 ? 1 : warp < 3 ? 2 : 3;
    const int blk_cg = warp - blk_s * (blk_s - 1) / 2;
    float kk[2][4] = {};
    if (warp < 6) {
        float qk[2][4] = {};
        anchored_block(sk, sq, sg, blk_s, blk_cg, sg + SUB * blk_s * RA, qk, kk);
#pragma unroll
        for (int nt = 0; nt < 2; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e += 2) {
                const int r = SUB * blk_s + fg + (e >= 2 ? 8 : 0);
                *reinterpret_cast<float2*>(out_aqk + r * C + SUB * blk_cg + 8 * nt + 2 * ft) = make_float2(qk[nt][e], qk[nt][e + 1]);
            }
        }
    } else {
        const int s = warp - 6;
        float qk[2][4] = {};
        float dk[2][4] = {};
        anchored_block(sk, sq, sg, s, s, sgb[s], qk, dk);
#pragma unroll
        for (int nt = 0; nt < 2; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int r = fg + (e >= 2 ? 8 : 0);
                const int j = 8 * nt + 2 * ft + (e & 1);
                sdiag[0][s][r][j] = qk[nt][e];
                sdiag[1][s][r][j] = dk[nt][e];
            }
        }
    }
    // kd = k e^(G_last - G), qg = q e^G and e^G_last to the scratch (threads < 256: a thread keeps channel d).
    constexpr int ROW_THREADS = 2 * KD;
    const int d = tid % KD;
    const float glast = sg[(C - 1) * RA + d];
    for (int r = tid < ROW_THREADS ? tid / KD : C; r < C; r += ROW_THREADS / KD) {
        const float gr = sg[r * RA + d];
        base[SPLIT_KD + r * KD + d] = sk[r * RA + d] * exp2_approx(glast - gr);
        base[SPLIT_QG + r * KD + d] = sq[r * RA + d] * exp2_approx(gr);
    }
    if (tid < KD) {
        base[SPLIT_GL + tid] = exp2_approx(glast);
    }
    __syncthreads();                         // k, q and G have been read for the products
    load_rows(sq, v, first, len, heads, h);  // v into q's rows, landing while Akk is inverted
    cp_async_commit();
    for (int r = tid < ROW_THREADS ? tid / KD : C; r < C; r += ROW_THREADS / KD) {  // k e^G in place
        sk[r * RA + d] *= exp2_approx(sg[r * RA + d]);
    }
    __syncthreads();                         // G is read no more: Akk takes its rows
    // The diagonal blocks whole: anchored part plus exact pairs; Aqk zero above the diagonal inside them (the output
    // kernel reads it), Akk strictly lower (its diagonal is T's unit diagonal).
#pragma unroll
    for (int n = 0; n < 2; n++) {
        const int idx = tid + PREP_THREADS * n;
        if (idx < DIAG) {
            int r, j;
            diagonal_pair(idx, &r, &j);
            const int sub = r / SUB;
            out_aqk[r * C + j] = sdiag[0][sub][r % SUB][j % SUB] + qk_exact[n];
            if (j < r) {
                out_aqk[j * C + r] = 0.f;
            }
            sa[r * LDT + j] = j < r ? sb[r] * (sdiag[1][sub][r % SUB][j % SUB] + kk_exact[n]) : 0.f;
        }
    }
    if (warp < 6) {
#pragma unroll
        for (int nt = 0; nt < 2; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int r = SUB * blk_s + fg + (e >= 2 ? 8 : 0);
                sa[r * LDT + SUB * blk_cg + 8 * nt + 2 * ft + (e & 1)] = sb[r] * kk[nt][e];
            }
        }
    }
    __syncthreads();
    block_inverse(sa, st);
    // T beta: w = T beta (k e^G) and u = T beta v take beta into T's columns.
    for (int e = tid; e < C * C; e += blockDim.x) {
        const int r = e / C;
        const int m = e % C;
        if (m <= r) {
            st[r * LDT + m] *= sb[m];
        }
    }
    cp_async_wait<0>();
    __syncthreads();
    // w and u on tensor cores: warp w < 8 takes columns 32 (w % 4) .. of m-tiles w / 4 and 3 - w / 4 (T is zero above
    // its diagonal, so m-tile mt stops after 2 (mt + 1) k-steps: 10 k-steps per warp).
#pragma unroll 1
    for (int half = 0; half < (warp < 8 ? 2 : 0); half++) {
        const int mt = half == 0 ? warp / 4 : 3 - warp / 4;
        const int n0 = 32 * (warp % 4);
        float aw[4][4] = {};
        float au[4][4] = {};
        warp_mma_3xtf32<4>(aw, st + SUB * mt * LDT, LDT, 1, sk + n0, RA, 1, 0, 2 * (mt + 1));
        warp_mma_3xtf32<4>(au, st + SUB * mt * LDT, LDT, 1, sq + n0, RA, 1, 0, 2 * (mt + 1));
#pragma unroll
        for (int nt = 0; nt < 4; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e += 2) {
                const int r = SUB * mt + fg + (e >= 2 ? 8 : 0);
                const int c = n0 + 8 * nt + 2 * ft;
                *reinterpret_cast<float2*>(base + SPLIT_W + r * KD + c) = make_float2(aw[nt][e], aw[nt][e + 1]);
                *reinterpret_cast<float2*>(base + SPLIT_U + r * KD + c) = make_float2(au[nt][e], au[nt][e + 1]);
            }
        }
    }
}

// One stage of kda_chunk_state's inputs: w [C][RA], kd [C][RK], the u tile [C][NT_STRIDE], e^G_last [KD].
#define RK 136                  // row stride of kd in a stage: read transposed, rows eight banks apart
#define STAGE_KD (C * RA)
#define STAGE_U (STAGE_KD + C * RK)
#define STAGE_GL (STAGE_U + C * NT_STRIDE)
#define STAGE (STAGE_GL + KD)

__device__ __forceinline__ void state_stage_load(float* stage, const float* base, int col0) {
    const int tid = threadIdx.x;
    for (int i = tid; i < C * KD / 4; i += blockDim.x) {
        const int r = i / (KD / 4);
        const int c = 4 * (i % (KD / 4));
        cp_async16(stage + r * RA + c, base + SPLIT_W + r * KD + c);
        cp_async16(stage + STAGE_KD + r * RK + c, base + SPLIT_KD + r * KD + c);
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

// kda_chunk_state: 16 warps. The state tile is kept transposed, S^T [TILE][KD], and v_new transposed and split into
// its TF32 big and small parts [TILE][C], so that every operand but kd reaches the tensor cores by ldmatrix. For v_new
// two warps per output tile, each taking half of the product's k range (the upper half's part goes through shared
// memory to the lower half's warp), so that twice the warps hide the mma and operand-split latencies; for S one per
// 16 x 16 tile over the whole k range (64), which needs no combining.
#define STATE_THREADS 512
#define STS 132                 // row stride of S^T [TILE][KD]
#define VTS 68                  // row stride of v_new^T's parts [TILE][C]

extern "C" __global__ void __launch_bounds__(STATE_THREADS)
kda_chunk_state(const int* __restrict__ seq_start, const int* __restrict__ seq_chunk0, const int* __restrict__ slots,
                float* __restrict__ states, float* __restrict__ scratch, int heads) {
    extern __shared__ __align__(16) float sh[];
    float* sST = sh;                         // [TILE][STS] the state's columns, transposed
    float* svhi = sST + TILE * STS;          // [TILE][VTS] v_new^T, TF32 big part
    float* svlo = svhi + TILE * VTS;         // [TILE][VTS] v_new^T, small part
    float* spv = svlo + TILE * VTS;          // [C][NT_STRIDE] the upper k half's part of w S
    float* stages = spv + C * NT_STRIDE;     // 2 x STAGE

    const int h = blockIdx.y;
    const int b = blockIdx.z;
    const int tid = threadIdx.x;
    const int warp = tid >> 5;
    const int kh = warp >> 3;                // k half
    const int wl = warp & 7;                 // output tile
    const int lane = tid & 31;
    const int fg = lane >> 2;
    const int ft = lane & 3;
    const int col0 = blockIdx.x * TILE;
    const int chunks = (seq_start[b + 1] - seq_start[b] + C - 1) / C;
    const int chunk0 = seq_chunk0[b];
    const int mt = wl / 2;                   // v_new [64 x 32]: rows 16 mt .., columns 16 nh ..
    const int nh = wl % 2;
    float* state = states + ((long) slots[b] * heads + h) * KD * KD + col0;

    for (int i = tid; i < KD * TILE; i += blockDim.x) {
        sST[(i % TILE) * STS + i / TILE] = state[(long) (i / TILE) * KD + i % TILE];
    }
    state_stage_load(stages, scratch + ((long) chunk0 * heads + h) * SPLIT_FLOATS, col0);
    cp_async_commit();
    for (int n = 0; n < chunks; n++) {
        float* base = scratch + ((long) (chunk0 + n) * heads + h) * SPLIT_FLOATS;
        const float* stage = stages + (n & 1) * STAGE;
        cp_async_wait<0>();
        __syncthreads();                     // this chunk's stage has landed; the previous chunk is done with all
        if (n + 1 < chunks) {
            state_stage_load(stages + ((n + 1) & 1) * STAGE, base + (long) heads * SPLIT_FLOATS, col0);
        }
        cp_async_commit();
        for (int i = tid; i < TILE * KD / 4; i += blockDim.x) { // h_c^T = S^T, 16 bytes at a time
            const int c = i / (KD / 4);
            const int d = 4 * (i % (KD / 4));
            *reinterpret_cast<float4*>(base + SPLIT_H + (col0 + c) * KD + d) = *reinterpret_cast<const float4*>(sST + c * STS + d);
        }
        // v_new = u - w S
        {
            float acc[2][4] = {};
            warp_mma_3xtf32_nk<2>(acc, stage + 16 * mt * RA, RA, sST + 16 * nh * STS, STS, 8 * kh, 8 * kh + 8);
            if (kh == 1) {
#pragma unroll
                for (int nt = 0; nt < 2; nt++) {
#pragma unroll
                    for (int e = 0; e < 4; e += 2) {
                        const int r = 16 * mt + fg + (e >= 2 ? 8 : 0);
                        const int c = 16 * nh + 8 * nt + 2 * ft;
                        *reinterpret_cast<float2*>(spv + r * NT_STRIDE + c) = make_float2(acc[nt][e], acc[nt][e + 1]);
                    }
                }
            }
            __syncthreads();
            if (kh == 0) {
#pragma unroll
                for (int nt = 0; nt < 2; nt++) {
#pragma unroll
                    for (int e = 0; e < 4; e += 2) {
                        const int r = 16 * mt + fg + (e >= 2 ? 8 : 0);
                        const int c = 16 * nh + 8 * nt + 2 * ft;
                        const float2 u = *reinterpret_cast<const float2*>(stage + STAGE_U + r * NT_STRIDE + c);
                        const float2 p = *reinterpret_cast<const float2*>(spv + r * NT_STRIDE + c);
                        const float vn[2] = {u.x - (acc[nt][e] + p.x), u.y - (acc[nt][e + 1] + p.y)};
                        *reinterpret_cast<float2*>(base + SPLIT_U + r * KD + col0 + c) = make_float2(vn[0], vn[1]);
#pragma unroll
                        for (int j = 0; j < 2; j++) {
                            uint32_t hi, lo;
                            split_tf32(vn[j], &hi, &lo);
                            svhi[(c + j) * VTS + r] = __uint_as_float(hi);
                            svlo[(c + j) * VTS + r] = __uint_as_float(lo);
                        }
                    }
                }
            }
        }
        __syncthreads();                     // v_new is whole; every warp has read S
        // S <- e^G_last . S + kd^T v_new: A(d, r) = kd[r][d]; warp w takes state rows 16 (w / 2) .., columns 16 (w % 2) ..
        // over the whole k range (each element of S is written by one warp, after every warp has read S above).
        {
            const int sm = warp / 2;
            const int sn = warp % 2;
            float acc[2][4] = {};
            warp_mma_3xtf32_split_b<2>(acc, stage + STAGE_KD + 16 * sm, 1, RK, svhi + 16 * sn * VTS, svlo + 16 * sn * VTS, VTS, 0, C / 8);
#pragma unroll
            for (int nt = 0; nt < 2; nt++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int d = 16 * sm + fg + (e >= 2 ? 8 : 0);
                    const int c = 16 * sn + 8 * nt + 2 * ft + (e & 1);
                    sST[c * STS + d] = stage[STAGE_GL + d] * sST[c * STS + d] + acc[nt][e];
                }
            }
        }
    }
    cp_async_wait<0>();
    __syncthreads();
    for (int i = tid; i < KD * TILE; i += blockDim.x) {
        state[(long) (i / TILE) * KD + i % TILE] = sST[(i % TILE) * STS + i / TILE];
    }
}

#define OH 72                   // row stride of the v_new half in kda_chunk_output

extern "C" __global__ void __launch_bounds__(256)
kda_chunk_output(const int* __restrict__ chunk_seq, const int* __restrict__ chunk_first,
                 const int* __restrict__ seq_start, int heads, const float* __restrict__ scratch, float* __restrict__ o) {
    extern __shared__ __align__(16) float sh[];
    float* sqg = sh;                         // [C][RA] q e^G
    float* sht = sqg + C * RA;               // [64][RA] h_c^T, this block's 64 columns
    float* saqk = sht + 64 * RA;             // [C][LDA]
    float* svn = saqk + C * LDA;             // [C][OH] v_new, this block's 64 columns

    const int chunk = blockIdx.x / (2 * heads);   // column halves, then heads fastest (as in the prep kernel)
    const int h = blockIdx.x / 2 % heads;
    const int col0 = 64 * (blockIdx.x % 2);
    const int tid = threadIdx.x;
    const int warp = tid >> 5;
    const int lane = tid & 31;
    const int fg = lane >> 2;
    const int ft = lane & 3;
    const int first = chunk_first[chunk];
    const int len = chunk_rows(chunk_seq, seq_start, chunk, first);
    const float* base = scratch + ((long) chunk * heads + h) * SPLIT_FLOATS;

    for (int i = tid; i < C * KD / 4; i += blockDim.x) {
        const int r = i / (KD / 4);
        const int c = 4 * (i % (KD / 4));
        cp_async16(sqg + r * RA + c, base + SPLIT_QG + r * KD + c);
    }
    for (int i = tid; i < 64 * KD / 4; i += blockDim.x) {
        const int r = i / (KD / 4);
        const int c = 4 * (i % (KD / 4));
        cp_async16(sht + r * RA + c, base + SPLIT_H + (col0 + r) * KD + c);
    }
    cp_async_commit();
    for (int i = tid; i < C * 16; i += blockDim.x) {
        const int r = i / 16;
        const int c = 4 * (i % 16);
        cp_async16(saqk + r * LDA + c, base + SPLIT_AQK + r * C + c);
        cp_async16(svn + r * OH + c, base + SPLIT_U + r * KD + col0 + c);
    }
    cp_async_commit();
    cp_async_wait<1>();                      // qg and h have landed; Aqk and v_new land during qg h
    __syncthreads();
    // Warp w: rows 16 (w / 2) .., columns 32 (w % 2) .. (four n-tiles); Aqk is zero above its diagonal.
    const int mt = warp / 2;
    const int nh = warp % 2;
    float acc[4][4] = {};
    warp_mma_3xtf32_nk<4>(acc, sqg + 16 * mt * RA, RA, sht + 32 * nh * RA, RA, 0, KD / 8);
    cp_async_wait<0>();
    __syncthreads();
    warp_mma_3xtf32<4>(acc, saqk + 16 * mt * LDA, LDA, 1, svn + 32 * nh, OH, 1, 0, 2 * (mt + 1));
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
