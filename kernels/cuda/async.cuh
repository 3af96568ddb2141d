/*
 * kernels/cuda/async.cuh — cp.async copies from global into shared memory (sm_80+), shared by
 * the kernels of flash.cu and ops.cu: a thread's copies go in flight in groups (cp_commit) and
 * are waited for by count (cp_wait<n>); its own copies are then visible to it, other threads'
 * only after a barrier.
 */
#ifndef BD_KERNELS_CUDA_ASYNC_CUH
#define BD_KERNELS_CUDA_ASYNC_CUH

#include <stdint.h>

/* 8 bytes from p (8-byte aligned) into shared d, through L1 */
__device__ __forceinline__ static void cp_async8(void *d, const void *p)
{
    uint32_t s = (uint32_t)__cvta_generic_to_shared(d);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" ::"r"(s), "l"(p));
}

__device__ __forceinline__ static void cp_commit(void)
{
    asm volatile("cp.async.commit_group;\n" ::);
}

/* wait until at most n of this thread's committed groups are still in flight */
template <int n> __device__ __forceinline__ static void cp_wait(void)
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(n));
}

#endif
