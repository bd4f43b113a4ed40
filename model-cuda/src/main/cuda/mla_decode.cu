// MLA decode attention in the weight-absorbed form (spec 5.3): for each sequence and each of its 32 heads,
//   score(s) = q~_h . [c_s | kpe_s]   (q~ already holds W_k^T q_nope and the 1/sqrt(192) scale, 576 wide)
//   p = softmax(score over the sequence's cached tokens),   z_h = sum_s p(s) c_s   (512 wide)
// One "KV head" of 576 values per token is shared by all 32 query heads (MQA), so the latent cache is read once per
// sequence. Stream-K ("flash decoding" across sequences): the chunks of all sequences are spread evenly over the
// blocks, a block's run of one sequence's chunks is a slice for all heads, each slice writes (max, sum, unnormalised
// z) per head, and mla_decode_combine merges each sequence's slices.
//
// Tensor cores: mma.sync m16n8k16 bf16 -> fp32. S = Q (32 x 576) . C^T (576 x 64 tokens), then Z += P (32 x 64) . C
// (64 tokens x 512), 64 tokens (one cache page) per step. 16 warps; warp w computes one quarter of the k range (w / 4)
// of the S tile (heads 16 (w % 4 / 2), tokens 32 (w % 2)), the quarters summed by the softmax, and owns Z columns
// [32 w, 32 w + 32) for both 16-row halves (32 fp32 accumulators per thread). The next chunk's latents stream into a
// second shared buffer with cp.async while this one is used.
//
// Layouts: q [B][32][576] bf16; cache pool [rows][576] bf16, a sequence's token t at row
// pages[b * max_pages + t / 64] * 64 + t % 64; lens [B] (at least 1 each); partial z [G + B][32][512] fp32, partial
// m, l [G + B][32] fp32 (G blocks; block i's slice of sequence b in slot i + b); chunk_start [B + 1] int32 (each
// sequence's first chunk in the numbering through all sequences, then the total); out z [B][32][512] fp32.

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

// Timeline diagnostic, compiled in only with -DMLA_TRACE (model-cuda/device-mla-trace.sh; never in the committed
// kernels): thread 0 of each split block stamps %globaltimer (ns) when it starts, when each chunk is ready and when it is
// done; on the 12th and 25th launch of a process at batch 1 (bench-kernels --only mla_decode --repeat 3: the second
// timed launch at 32K and at 128K) every split block prints "S block sm start marks... E end" (marks and end relative to
// start) and every combine block "C block sm start end". The combine counts the launches.
#ifdef MLA_TRACE
#define TRACE_MARKS 64
__device__ unsigned int trace_launches;
__device__ unsigned long long trace_marks[1024][TRACE_MARKS];
__device__ int trace_count[1024];
__device__ __forceinline__ unsigned long long trace_now() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
__device__ __forceinline__ unsigned trace_sm() {
    unsigned sm;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
    return sm;
}
__device__ __forceinline__ bool trace_printed(int batch) {
    const unsigned n = *(volatile unsigned*) &trace_launches;
    return batch == 1 && (n == 11 || n == 24);
}
#define TRACE_MARK()                                                                                  \
    do {                                                                                              \
        if (threadIdx.x == 0 && trace_count[blockIdx.x] < TRACE_MARKS)                                \
            trace_marks[blockIdx.x][trace_count[blockIdx.x]++] = trace_now();                         \
    } while (0)
#define TRACE_SPLIT_BEGIN()                                                                           \
    do {                                                                                              \
        if (threadIdx.x == 0) trace_count[blockIdx.x] = 0;                                            \
        TRACE_MARK();                                                                                 \
    } while (0)
#define TRACE_SPLIT_END(batch)                                                                        \
    do {                                                                                              \
        if (threadIdx.x == 0 && trace_printed(batch)) {                                               \
            const unsigned long long end = trace_now();                                               \
            const unsigned long long* m = trace_marks[blockIdx.x];                                    \
            printf("S %d %u %llu", blockIdx.x, trace_sm(), m[0]);                                     \
            for (int i = 1; i < trace_count[blockIdx.x]; i++) printf(" %llu", m[i] - m[0]);           \
            printf(" E %llu\n", end - m[0]);                                                          \
        }                                                                                             \
    } while (0)
#define TRACE_COMBINE_BEGIN(batch)                                                                    \
    const unsigned long long trace_start = trace_now();                                               \
    const bool trace_print = trace_printed(batch)     /* before block 0 counts this launch */
#define TRACE_COMBINE_END()                                                                           \
    do {                                                                                              \
        if (threadIdx.x == 0 && trace_print)                                                          \
            printf("C %d %u %llu %llu\n", blockIdx.x, trace_sm(), trace_start, trace_now());          \
        if (blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0) atomicAdd(&trace_launches, 1u);   \
    } while (0)
#else
#define TRACE_MARK() do { } while (0)
#define TRACE_SPLIT_BEGIN() do { } while (0)
#define TRACE_SPLIT_END(batch) do { } while (0)
#define TRACE_COMBINE_BEGIN(batch) do { } while (0)
#define TRACE_COMBINE_END() do { } while (0)
#endif

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

// One slice: chunks [c0, c1) of sequence b (c0 < c1), its running max, sum and unnormalised z per head written to
// partial slot `slice`. Starts and ends with the block's shared memory free (every copy landed, every warp past the
// last barrier), so a block can run several slices in turn.
__device__ __forceinline__ void attend_slice(const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ cache,
                                             const int* __restrict__ pages, int max_pages, int b, int len, int c0, int c1,
                                             long slice, float* __restrict__ part_z, float* __restrict__ part_m,
                                             float* __restrict__ part_l, unsigned char* smem) {
    __nv_bfloat16* sq = reinterpret_cast<__nv_bfloat16*>(smem);                     // [32][QS]
    __nv_bfloat16* sc0 = sq + HEADS * QS;                                           // [CHUNK][QS] x 2 buffers
    float* ss = reinterpret_cast<float*>(sc0 + 2 * CHUNK * QS);                     // [4][32][SS] k quarters
    __nv_bfloat16* sp = reinterpret_cast<__nv_bfloat16*>(ss + 4 * HEADS * SS);     // [32][PS]
    float* sm = reinterpret_cast<float*>(sp + HEADS * PS);                          // [32] running max
    float* sl = sm + HEADS;                                                         // [32] running sum
    float* salpha = sl + HEADS;                                                     // [32] rescale of this chunk

    const int tid = threadIdx.x;
    const int warp = tid / 32;
    const int lane = tid % 32;
    const int g = lane / 4;                 // mma group
    const int t4 = lane % 4;                // thread in group
    const long page_base = (long) b * max_pages;

    for (int i = tid; i < HEADS * WIDTH / 8; i += THREADS) {
        const int row = i / (WIDTH / 8);
        const int col = (i % (WIDTH / 8)) * 8;
        cp_async16_or_zero(sq + row * QS + col, q + ((long) b * HEADS + row) * WIDTH + col, true);
    }
    load_chunk(sc0, cache, pages, page_base, c0 * CHUNK, len, tid);
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
        TRACE_MARK();                       // chunk ready

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
        TRACE_MARK();                       // chunk done
    }
    cp_async_wait<0>();
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

// The first global chunk of block i's share when G = blocks blocks split total chunks (stream-K): block i takes
// [share_start(i), share_start(i + 1)); with more blocks than chunks some shares are empty.
__device__ __forceinline__ long share_start(long i, long total, long blocks) {
    return i * total / blocks;
}

// Chunks of sequence b: a chunk is one page of 64 tokens.
__device__ __forceinline__ int seq_chunks(const int* __restrict__ lens, int b) {
    return (lens[b] + CHUNK - 1) / CHUNK;
}

// All sequences' chunks. Every thread calls it and gets the sum; scan is THREADS / 32 ints of shared memory.
__device__ int chunk_total(const int* __restrict__ lens, int batch, int* scan) {
    int c = 0;
    for (int b = threadIdx.x; b < batch; b += blockDim.x) {
        c += seq_chunks(lens, b);
    }
#pragma unroll
    for (int o = 16; o > 0; o /= 2) {
        c += __shfl_xor_sync(0xffffffffu, c, o);
    }
    if (threadIdx.x % 32 == 0) {
        scan[threadIdx.x / 32] = c;
    }
    __syncthreads();
    int total = 0;
    for (int w = 0; w < THREADS / 32; w++) {
        total += scan[w];
    }
    __syncthreads();
    return total;
}

// A block-wide scan of the chunk counts, THREADS sequences at a time: *seq and *first get the sequence that holds
// global chunk u (chunks numbered through all sequences in order) and the number of its first chunk; with starts,
// every sequence's first chunk is written there too (then the scan runs to the end). Every thread calls it; scan is
// THREADS / 32 + 2 ints of shared memory.
__device__ void chunk_scan(const int* __restrict__ lens, int batch, int u, int* __restrict__ starts, int* seq, int* first,
                           int* scan) {
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    int base = 0;                            // chunks before this tile of sequences
    for (int t0 = 0; t0 < batch; t0 += THREADS) {
        const int b = t0 + threadIdx.x;
        const int c = b < batch ? seq_chunks(lens, b) : 0;
        int x = c;                           // inclusive prefix inside the warp
#pragma unroll
        for (int o = 1; o < 32; o *= 2) {
            const int y = __shfl_up_sync(0xffffffffu, x, o);
            if (lane >= o) x += y;
        }
        if (lane == 31) {
            scan[warp] = x;
        }
        __syncthreads();
        int before = base + x - c;           // this sequence's first chunk
        int tile = 0;
        for (int w = 0; w < THREADS / 32; w++) {
            before += w < warp ? scan[w] : 0;
            tile += scan[w];
        }
        if (b < batch) {
            if (starts != nullptr) {
                starts[b] = before;
            }
            if (before <= u && u < before + c) {
                scan[THREADS / 32] = b;
                scan[THREADS / 32 + 1] = before;
            }
        }
        base += tile;
        __syncthreads();                     // the tile's sums are read by all before the next tile writes them
        if (starts == nullptr && base > u) {
            break;
        }
    }
    *seq = scan[THREADS / 32];
    *first = scan[THREADS / 32 + 1];
    __syncthreads();
}

// Stream-K over all sequences' chunks: block i of G takes global chunks [i N / G, (i + 1) N / G) (N chunks in all),
// crossing sequence boundaries, so every SM gets the same share whatever the batch; each run of one sequence's chunks
// is a slice with partial slot i + b (the (block, sequence) pairs climb a staircase, so no two share a slot: G + B
// slots). Block 0 also writes every sequence's first chunk and N into chunk_start [B + 1] for the merge.
extern "C" __global__ void __launch_bounds__(THREADS, 1)
mla_decode_split(const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ cache,
                 const int* __restrict__ pages, int max_pages, const int* __restrict__ lens, int batch,
                 float* __restrict__ part_z, float* __restrict__ part_m, float* __restrict__ part_l,
                 int* __restrict__ chunk_start) {
    TRACE_SPLIT_BEGIN();
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ int scan[THREADS / 32 + 2];
    // one sequence (batch-1 decode): no scans, so that the first loads go out as early as they can
    const int total = batch == 1 ? seq_chunks(lens, 0) : chunk_total(lens, batch, scan);
    const long blocks = gridDim.x;
    const int u0 = (int) share_start(blockIdx.x, total, blocks);
    const int u1 = (int) share_start(blockIdx.x + 1, total, blocks);
    int b = 0;
    int first = 0;
    if (batch > 1 && (blockIdx.x == 0 || u0 < u1)) {
        chunk_scan(lens, batch, u0, blockIdx.x == 0 ? chunk_start : nullptr, &b, &first, scan);
    }
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        chunk_start[0] = 0;
        chunk_start[batch] = total;
    }
    for (int u = u0; u < u1; b++) {
        const int n = seq_chunks(lens, b);
        const int c0 = u - first;
        const int c1 = min(u1 - first, n);
        attend_slice(q, cache, pages, max_pages, b, lens[b], c0, c1, (long) blockIdx.x + b, part_z, part_m, part_l, smem);
        u = first + c1;
        first += n;
    }
    TRACE_SPLIT_END(batch);
}

// z[b][h] = sum_s exp(m_s - M) z_s / sum_s exp(m_s - M) l_s over the slices s of sequence b: the blocks i0 .. i1 of
// mla_decode_split that own its first and last chunks and every block between that owns a chunk (with more blocks
// than chunks some own none), slice s in slot i0 + s + b. A block per (sequence, head, quarter of the 512 columns), so
// that even one sequence's merge runs on 128 SMs: the weights are computed once per block into shared memory (two
// barriers); then each of the W warps (blockDim.x / 32: 4 or 8) sums every W-th slice for 128 columns (float4 per lane), four loads in
// flight at a time (the merge is bound by load latency, not bandwidth), and the W sums are added.
#define MAX_SPLITS 1024
#define COMBINE_PARTS 4
#define COMBINE_THREADS 256     // at most
#define COMBINE_WARPS (COMBINE_THREADS / 32)
extern "C" __global__ void __launch_bounds__(COMBINE_THREADS)
mla_decode_combine(const float* __restrict__ part_z, const float* __restrict__ part_m, const float* __restrict__ part_l,
                   const int* __restrict__ chunk_start, int batch, int blocks, float* __restrict__ z) {
    TRACE_COMBINE_BEGIN(batch);
    __shared__ float weight[MAX_SPLITS];
    __shared__ float warp_max[COMBINE_WARPS];
    __shared__ float warp_sum[COMBINE_WARPS];
    __shared__ float4 partial[COMBINE_WARPS][32];
    const int h = blockIdx.x / COMBINE_PARTS;
    const int col = LATENT / COMBINE_PARTS * (blockIdx.x % COMBINE_PARTS) + 4 * (threadIdx.x % 32);
    const int b = blockIdx.y;
    const int tid = threadIdx.x;
    const int warp = tid / 32;
    const int lane = tid % 32;
    const int warps = blockDim.x / 32;
    const long total = chunk_start[batch];
    const int i0 = (int) (((chunk_start[b] + 1) * (long) blocks - 1) / total);      // the block owning the first chunk
    const int i1 = (int) ((chunk_start[b + 1] * (long) blocks - 1) / total);        // ... and the last
    const int slices = i1 - i0 + 1;
    // the slices' max, weights and denominator: every thread takes slices, warps reduce by shuffles, one value per warp
    // through shared memory (two barriers)
    float mx = -INFINITY;
    for (int s = tid; s < slices; s += blockDim.x) {
        const long i = i0 + s;
        if (share_start(i, total, blocks) < share_start(i + 1, total, blocks)) {   // block i owns a chunk
            mx = fmaxf(mx, part_m[(i + b) * HEADS + h]);
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o /= 2) {
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    }
    if (lane == 0) {
        warp_max[warp] = mx;
    }
    __syncthreads();
    for (int w = 0; w < warps; w++) {
        mx = fmaxf(mx, warp_max[w]);
    }
    float denom = 0.f;
    for (int s = tid; s < slices; s += blockDim.x) {
        const long i = i0 + s;
        float e = 0.f;
        if (share_start(i, total, blocks) < share_start(i + 1, total, blocks)) {
            e = __expf(part_m[(i + b) * HEADS + h] - mx);
            denom += e * part_l[(i + b) * HEADS + h];
        }
        weight[s] = e;
    }
#pragma unroll
    for (int o = 16; o > 0; o /= 2) {
        denom += __shfl_xor_sync(0xffffffffu, denom, o);
    }
    if (lane == 0) {
        warp_sum[warp] = denom;
    }
    __syncthreads();                         // also: every weight is written
    denom = 0.f;
    for (int w = 0; w < warps; w++) {
        denom += warp_sum[w];
    }
    const float inv = 1.f / denom;
    const float* zcol = part_z + ((long) (i0 + b) * HEADS + h) * LATENT + col;     // slice s at zcol + s * HEADS * LATENT
    float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int s0 = warp; s0 < slices; s0 += 4 * warps) {
        float e[4];
        float4 v[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int s = s0 + warps * i;
            e[i] = s < slices ? weight[s] : 0.f;
            v[i] = e[i] != 0.f ? *reinterpret_cast<const float4*>(zcol + (long) s * HEADS * LATENT) : make_float4(0.f, 0.f, 0.f, 0.f);
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
        for (int i = 1; i < COMBINE_WARPS; i++) {
            if (i < warps) {
                t.x += partial[i][tid].x;
                t.y += partial[i][tid].y;
                t.z += partial[i][tid].z;
                t.w += partial[i][tid].w;
            }
        }
        *reinterpret_cast<float4*>(z + ((long) b * HEADS + h) * LATENT + col) = make_float4(t.x * inv, t.y * inv, t.z * inv, t.w * inv);
    }
    TRACE_COMBINE_END();
}
