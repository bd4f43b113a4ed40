// MLA decode attention in the weight-absorbed form (spec 5.3): for each sequence and each of its 32 heads,
//   score(s) = q~_h . [c_s | kpe_s]   (q~ already holds W_k^T q_nope and the 1/sqrt(192) scale, 576 wide)
//   p = softmax(score over the sequence's cached tokens),   z_h = sum_s p(s) c_s   (512 wide)
// One "KV head" of 576 values per token is shared by all 32 query heads (MQA), so the latent cache is read once per
// sequence. Split-K ("flash decoding"): a block takes a slice of one sequence's tokens for all heads and writes
// (max, sum, unnormalised z) per head; mla_decode_combine merges the slices.
//
// Tensor cores: mma.sync m16n8k16 bf16 -> fp32. S = Q (32 x 576) . C^T (576 x 64 tokens), then Z += P (32 x 64) . C
// (64 tokens x 512), 64 tokens (one cache page) per step. 16 warps; warp w computes one quarter of the k range (w / 4)
// of the S tile (heads 16 (w % 4 / 2), tokens 32 (w % 2)), the quarters summed by the softmax, and owns Z columns
// [32 w, 32 w + 32) for both 16-row halves (32 fp32 accumulators per thread). The next chunk's latents stream into a
// second shared buffer with cp.async while this one is used.
//
// Layouts: q [B][32][576] bf16; cache pool [rows][576] bf16, a sequence's token t at row
// pages[b * max_pages + t / 64] * 64 + t % 64; lens [B]; partial z [B][splits][32][512] fp32, partial m, l
// [B][splits][32] fp32; out z [B][32][512] fp32.

#include <cuda_bf16.h>
#include "common.cuh"

#define HEADS 32
#define WIDTH 576
#define LATENT 512
#define CHUNK 64
#define PAGE 64
#define THREADS 512
#define QS (WIDTH + 8)          // smem row stride in bf16 (16 bytes of padding against bank conflicts)
#define SS (CHUNK + 4)          // fp32 score row stride
#define PS (CHUNK + 8)          // bf16 probability row stride

__device__ __forceinline__ void mma_bf16(float* d, const uint32_t* a, const uint32_t* b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Issues the copies of one chunk of CHUNK tokens (all 576 values of each) into buffer dst. A chunk is one page, so its
// rows are contiguous in the pool.
static_assert(CHUNK == PAGE, "a chunk is one page of the cache");
__device__ __forceinline__ void load_chunk(__nv_bfloat16* dst, const __nv_bfloat16* __restrict__ cache,
                                           const int* __restrict__ pages, long page_base, int base, int len, int tid) {
    const __nv_bfloat16* page = cache + (long) pages[page_base + base / PAGE] * PAGE * WIDTH;
#pragma unroll
    for (int i = tid; i < CHUNK * WIDTH / 8; i += THREADS) {
        const int r = i / (WIDTH / 8);
        const int col = (i % (WIDTH / 8)) * 8;
        const bool valid = base + r < len;
        cp_async16_or_zero(dst + r * QS + col, page + (valid ? r * WIDTH + col : 0), valid);
    }
}

extern "C" __global__ void __launch_bounds__(THREADS, 1)
mla_decode_split(const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ cache,
                 const int* __restrict__ pages, int max_pages, const int* __restrict__ lens, int splits,
                 float* __restrict__ part_z, float* __restrict__ part_m, float* __restrict__ part_l) {
    extern __shared__ __align__(16) unsigned char smem[];
    __nv_bfloat16* sq = reinterpret_cast<__nv_bfloat16*>(smem);                     // [32][QS]
    __nv_bfloat16* sc0 = sq + HEADS * QS;                                           // [CHUNK][QS] x 2 buffers
    float* ss = reinterpret_cast<float*>(sc0 + 2 * CHUNK * QS);                     // [4][32][SS] k quarters
    __nv_bfloat16* sp = reinterpret_cast<__nv_bfloat16*>(ss + 4 * HEADS * SS);     // [32][PS]
    float* sm = reinterpret_cast<float*>(sp + HEADS * PS);                          // [32] running max
    float* sl = sm + HEADS;                                                         // [32] running sum
    float* salpha = sl + HEADS;                                                     // [32] rescale of this chunk

    const int split = blockIdx.x;
    const int b = blockIdx.y;
    const int tid = threadIdx.x;
    const int warp = tid / 32;
    const int lane = tid % 32;
    const int g = lane / 4;                 // mma group
    const int t4 = lane % 4;                // thread in group
    const int len = lens[b];
    const int chunks = (len + CHUNK - 1) / CHUNK;
    const int per = (chunks + splits - 1) / splits;
    const int c0 = split * per;
    const int c1 = min(chunks, c0 + per);
    const long page_base = (long) b * max_pages;

    for (int i = tid; i < HEADS * WIDTH / 8; i += THREADS) {
        const int row = i / (WIDTH / 8);
        const int col = (i % (WIDTH / 8)) * 8;
        cp_async16_or_zero(sq + row * QS + col, q + ((long) b * HEADS + row) * WIDTH + col, true);
    }
    if (c0 < c1) {
        load_chunk(sc0, cache, pages, page_base, c0 * CHUNK, len, tid);
    }
    cp_async_commit();
    if (tid < HEADS) {
        sm[tid] = -INFINITY;
        sl[tid] = 0.f;
    }
    float acc[2][4][4];                     // [m tile][n tile within the warp's 32 columns][fragment]
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int f = 0; f < 4; f++) acc[mt][nt][f] = 0.f;

    for (int chunk = c0; chunk < c1; chunk++) {
        const int base = chunk * CHUNK;
        __nv_bfloat16* sc = sc0 + ((chunk - c0) & 1) * CHUNK * QS;
        if (chunk + 1 < c1) {               // prefetch the next chunk into the other buffer (free since last loop end)
            load_chunk(sc0 + ((chunk + 1 - c0) & 1) * CHUNK * QS, cache, pages, page_base, base + CHUNK, len, tid);
        }
        cp_async_commit();
        cp_async_wait<1>();                 // everything but the prefetch has landed
        __syncthreads();

        // S tile of this warp: heads 16 (warp % 4 / 2) .. +16, tokens 32 (warp % 2) .. +32 (four n8 tiles, four mma
        // chains), over k quarter warp / 4: each query fragment serves four token tiles.
        {
            const int kq = warp / 4;
            const int mrow = 16 * (warp % 4 / 2);
            const int n0 = 32 * (warp % 2);
            const __nv_bfloat16* arow = sq + (mrow + (lane % 8) + 8 * ((lane / 8) % 2)) * QS + 8 * (lane / 16) + kq * (WIDTH / 4);
            const __nv_bfloat16* brow = sc + (n0 + (lane % 8) + 8 * (lane / 16)) * QS + 8 * ((lane / 8) % 2) + kq * (WIDTH / 4);
            float s[4][4] = {};             // [n tile][fragment]
#pragma unroll 3
            for (int k0 = 0; k0 < WIDTH / 4; k0 += 16) {
                uint32_t a[4];
                uint32_t b0[4];
                uint32_t b1[4];
                ldsm_x4(a, arow + k0);
                ldsm_x4(b0, brow + k0);
                ldsm_x4(b1, brow + 16 * QS + k0);
                mma_bf16(s[0], a, b0);
                mma_bf16(s[1], a, b0 + 2);
                mma_bf16(s[2], a, b1);
                mma_bf16(s[3], a, b1 + 2);
            }
            float* sk = ss + kq * HEADS * SS;
#pragma unroll
            for (int nt = 0; nt < 4; nt++) {
                const int col = n0 + 8 * nt + 2 * t4;
                *reinterpret_cast<float2*>(sk + (mrow + g) * SS + col) = make_float2(s[nt][0], s[nt][1]);
                *reinterpret_cast<float2*>(sk + (mrow + g + 8) * SS + col) = make_float2(s[nt][2], s[nt][3]);
            }
        }
        __syncthreads();

        // Online softmax per head: 16 threads per head, 4 tokens each; a score is the sum of its four k quarters.
        {
            const int h = tid / 16;
            const int part = tid % 16;
            float score[4];
            float mx = -INFINITY;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int c = part * 4 + j;
                score[j] = (ss[h * SS + c] + ss[(HEADS + h) * SS + c]) + (ss[(2 * HEADS + h) * SS + c] + ss[(3 * HEADS + h) * SS + c]);
                if (base + c < len) mx = fmaxf(mx, score[j]);
            }
#pragma unroll
            for (int o = 1; o < 16; o *= 2) {
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, o));
            }
            const float m_old = sm[h];
            const float m_new = fmaxf(m_old, mx);
            float sum = 0.f;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int c = part * 4 + j;
                const float p = base + c < len ? __expf(score[j] - m_new) : 0.f;
                const __nv_bfloat16 pb = __float2bfloat16(p);
                sp[h * PS + c] = pb;
                sum += __bfloat162float(pb);                     // the sum of exactly what multiplies c
            }
#pragma unroll
            for (int o = 1; o < 16; o *= 2) {
                sum += __shfl_xor_sync(0xffffffff, sum, o);
            }
            __syncwarp();
            if (part == 0) {
                const float alpha = __expf(m_old - m_new);      // exp(-inf) = 0 on the first chunk
                salpha[h] = alpha;
                sl[h] = sl[h] * alpha + sum;
                sm[h] = m_new;
            }
        }
        __syncthreads();

        // Z: rescale, then += P . C over the chunk's 64 tokens (four k16 steps); this warp's 32 columns.
#pragma unroll
        for (int mt = 0; mt < 2; mt++) {
            const float a0 = salpha[16 * mt + g];
            const float a1 = salpha[16 * mt + g + 8];
#pragma unroll
            for (int nt = 0; nt < 4; nt++) {
                acc[mt][nt][0] *= a0;
                acc[mt][nt][1] *= a0;
                acc[mt][nt][2] *= a1;
                acc[mt][nt][3] *= a1;
            }
        }
#pragma unroll
        for (int k0 = 0; k0 < CHUNK; k0 += 16) {
            uint32_t a[2][4];
#pragma unroll
            for (int mt = 0; mt < 2; mt++) {
                ldsm_x4(a[mt], sp + (16 * mt + (lane % 8) + 8 * ((lane / 8) % 2)) * PS + k0 + 8 * (lane / 16));
            }
            const __nv_bfloat16* brow = sc + (k0 + (lane % 8) + 8 * ((lane / 8) % 2)) * QS + 32 * warp + 8 * (lane / 16);
#pragma unroll
            for (int np = 0; np < 2; np++) {
                uint32_t bz[4];
                ldsm_x4_trans(bz, brow + 16 * np);
                mma_bf16(acc[0][2 * np], a[0], bz);
                mma_bf16(acc[1][2 * np], a[1], bz);
                mma_bf16(acc[0][2 * np + 1], a[0], bz + 2);
                mma_bf16(acc[1][2 * np + 1], a[1], bz + 2);
            }
        }
        __syncthreads();                    // this buffer and sp are consumed before the next prefetch reuses them
    }
    cp_async_wait<0>();

    const long slice = (long) b * splits + split;
#pragma unroll
    for (int mt = 0; mt < 2; mt++) {
#pragma unroll
        for (int nt = 0; nt < 4; nt++) {
            const int col = 32 * warp + 8 * nt + 2 * t4;
            float* z0 = part_z + (slice * HEADS + 16 * mt + g) * LATENT + col;
            float* z1 = part_z + (slice * HEADS + 16 * mt + g + 8) * LATENT + col;
            *reinterpret_cast<float2*>(z0) = make_float2(acc[mt][nt][0], acc[mt][nt][1]);
            *reinterpret_cast<float2*>(z1) = make_float2(acc[mt][nt][2], acc[mt][nt][3]);
        }
    }
    __syncthreads();
    if (tid < HEADS) {
        part_m[slice * HEADS + tid] = sm[tid];
        part_l[slice * HEADS + tid] = sl[tid];
    }
}

// z[b][h] = sum_s exp(m_s - M) z_s / sum_s exp(m_s - M) l_s over the splits s that saw tokens (m_s > -inf; the others
// wrote z_s = 0 and get weight 0). A block per (sequence, head, quarter of the 512 columns), so that even one
// sequence's merge runs on 128 SMs: the weights are computed once per block into shared memory; then each of the W
// warps (blockDim.x / 32: 4 or 8, a power of two) sums every W-th split for 128 columns (float4 per lane), four loads
// in flight at a time (the merge is bound by load latency, not bandwidth), and the W sums are added.
#define MAX_SPLITS 1024
#define COMBINE_PARTS 4
#define COMBINE_THREADS 256     // at most
#define COMBINE_WARPS (COMBINE_THREADS / 32)
extern "C" __global__ void __launch_bounds__(COMBINE_THREADS)
mla_decode_combine(const float* __restrict__ part_z, const float* __restrict__ part_m, const float* __restrict__ part_l,
                   int splits, float* __restrict__ z) {
    __shared__ float weight[MAX_SPLITS];
    __shared__ float red[COMBINE_THREADS];
    __shared__ float4 partial[COMBINE_WARPS][32];
    const int h = blockIdx.x / COMBINE_PARTS;
    const int col = LATENT / COMBINE_PARTS * (blockIdx.x % COMBINE_PARTS) + 4 * (threadIdx.x % 32);
    const int b = blockIdx.y;
    const int tid = threadIdx.x;
    const int warp = tid / 32;
    const int warps = blockDim.x / 32;
    float mx = -INFINITY;
    for (int s = tid; s < splits; s += blockDim.x) {
        mx = fmaxf(mx, part_m[((long) b * splits + s) * HEADS + h]);
    }
    red[tid] = mx;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w /= 2) {
        if (tid < w) red[tid] = fmaxf(red[tid], red[tid + w]);
        __syncthreads();
    }
    mx = red[0];
    __syncthreads();
    float denom = 0.f;
    for (int s = tid; s < splits; s += blockDim.x) {
        const long i = ((long) b * splits + s) * HEADS + h;
        const float m = part_m[i];
        const float e = m > -INFINITY ? __expf(m - mx) : 0.f;
        weight[s] = e;
        denom += e * part_l[i];
    }
    red[tid] = denom;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w /= 2) {
        if (tid < w) red[tid] += red[tid + w];
        __syncthreads();
    }
    const float inv = 1.f / red[0];
    const float* zcol = part_z + ((long) b * splits * HEADS + h) * LATENT + col;   // split s at zcol + s * HEADS * LATENT
    float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int s0 = warp; s0 < splits; s0 += 4 * warps) {
        float e[4];
        float4 v[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int s = s0 + warps * i;
            e[i] = s < splits ? weight[s] : 0.f;
            v[i] = s < splits ? *reinterpret_cast<const float4*>(zcol + (long) s * HEADS * LATENT) : make_float4(0.f, 0.f, 0.f, 0.f);
        }
#pragma unroll
        for (int i = 0; i < 4; i++) {
            sum.x += e[i] * v[i].x;
            sum.y += e[i] * v[i].y;
            sum.z += e[i] * v[i].z;
            sum.w += e[i] * v[i].w;
        }
    }
    partial[warp][tid % 32] = sum;
    __syncthreads();
    if (tid < 32) {
        float4 t = partial[0][tid];
#pragma unroll
        for (int i = 1; i < warps; i++) {
            t.x += partial[i][tid].x;
            t.y += partial[i][tid].y;
            t.z += partial[i][tid].z;
            t.w += partial[i][tid].w;
        }
        *reinterpret_cast<float4*>(z + ((long) b * HEADS + h) * LATENT + col) = make_float4(t.x * inv, t.y * inv, t.z * inv, t.w * inv);
    }
}
