// Device helpers shared by the kernel sources. Each .cu compiles into its own fatbin and includes this header;
// build-kernels.sh and KernelArtifactsTest hash it together with every source, so a change here marks every fatbin
// stale.

#pragma once

#include <stdint.h>

// Programmatic dependent launch (sm_90). The engine may launch a kernel while the one before it in the stream still
// runs (CUDA's programmatic stream serialization). Every such kernel therefore starts with begin_in_order(): it waits
// until the kernel before has finished and its writes are visible, then lets the next kernel start its own prologue,
// so at most two kernels overlap. Before the wait a kernel may only read what the kernel before cannot be writing:
// weights (the GEMVs prefetch theirs into L2) and a KDA layer's recurrent state and conv windows, which only that
// layer's decode kernel writes (kda_decode, kda_step_decode load them first). Both are no-ops below sm_90 and for
// launches without the attribute.
__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void let_next_kernel_start() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void begin_in_order() {
    wait_for_previous_kernel();
    let_next_kernel_start();
}

__device__ __forceinline__ float sigmoidf_exact(float z) {
    float e = expf(-fabsf(z));
    return z >= 0.f ? 1.f / (1.f + e) : e / (1.f + e);
}

// silu(g) * u: the SwiGLU activation, one expression for engine.cu's swiglu kernel and the GEMVs that apply it on load
// (so a _swiglu GEMV sees exactly what swiglu would write).
__device__ __forceinline__ float swiglu_one(float g, float u) {
    return g * sigmoidf_exact(g) * u;
}

// 16 bytes global -> shared without passing through registers.
__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
    const unsigned s = (unsigned) __cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(s), "l"(src));
}

// The same, zero-filled when !valid (src is then not read).
__device__ __forceinline__ void cp_async16_or_zero(void* dst, const void* src, bool valid) {
    const unsigned s = (unsigned) __cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(s), "l"(src), "r"(valid ? 16 : 0));
}

__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::);
}

// Waits until at most N of this thread's committed cp.async groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" :: "n"(N) : "memory");
}

// Four 8x8 b16 matrices from shared memory in mma fragment order; lane l gives the address of row l % 8 of matrix
// l / 8. The .trans form delivers each matrix transposed.
__device__ __forceinline__ void ldsm_x4(uint32_t* r, const void* p) {
    const unsigned a = (unsigned) __cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

__device__ __forceinline__ void ldsm_x4_trans(uint32_t* r, const void* p) {
    const unsigned a = (unsigned) __cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}
