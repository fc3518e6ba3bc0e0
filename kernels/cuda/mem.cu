// SPDX-License-Identifier: MIT
/*
 * The CUDA backend's memory and runtime (kernels/kernels.h): backend
 * memory is cudaMalloc()'s, shared memory cudaMallocManaged()'s (the
 * host reads and writes it after kgpt_sync_for_host(), pages migrating
 * on demand both ways), copies are cudaMemcpy*() with cudaMemcpyDefault,
 * and every kernel runs on the default stream, in order. The return-code
 * checks and the scratch buffers of kernels/cuda/cuda.h live here too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernels/cuda/cuda.h"

/* The errors that mean "no usable GPU here" get a word on what to do. */
static int no_gpu(cudaError_t err)
{
	return err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver ||
	       err == cudaErrorInitializationError || err == cudaErrorDevicesUnavailable;
}

void kgpt_cuda_check(cudaError_t err, const char *call, const char *file, int line)
{
	if (err == cudaSuccess)
		return;
	fprintf(stderr, "kgpt: CUDA error at %s:%d: %s: %s (%s)\n", file, line, call,
		cudaGetErrorString(err), cudaGetErrorName(err));
	if (no_gpu(err))
		fprintf(stderr, "kgpt: this program was built for the CUDA backend: it needs an "
			"NVIDIA GPU and a driver for CUDA %d.%d or newer (nvidia-smi shows both), "
			"or a build with the CPU backend (make menuconfig, Backend)\n",
			CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10);
	exit(1);
}

void kgpt_cublas_check(cublasStatus_t st, const char *call, const char *file, int line)
{
	if (st == CUBLAS_STATUS_SUCCESS)
		return;
	fprintf(stderr, "kgpt: cuBLAS error at %s:%d: %s: %s\n", file, line, call,
		cublasGetStatusString(st));
	exit(1);
}

/* KGPT_CUDA_SYNC=1: wait for every kernel at its launch. */
static int sync_launches(void)
{
	static int v = -1;

	if (v < 0) {
		const char *e = getenv("KGPT_CUDA_SYNC");

		v = e && *e && strcmp(e, "0") != 0;
	}
	return v;
}

void kgpt_cuda_launched(const char *kernel, const char *file, int line)
{
	cudaError_t err = cudaGetLastError();

	if (err == cudaSuccess && sync_launches())
		err = cudaDeviceSynchronize();
	if (err == cudaSuccess)
		return;
	fprintf(stderr, "kgpt: CUDA error at %s:%d: kernel %s: %s (%s)\n", file, line, kernel,
		cudaGetErrorString(err), cudaGetErrorName(err));
	exit(1);
}

#if defined(KGPT_CUDA_BF16)
#define MATH_NAME	"bf16 activations and tensor-core matmuls, fp32 master weights"
#elif defined(KGPT_CUDA_TF32)
#define MATH_NAME	"tf32 tensor-core matmuls"
#else
#define MATH_NAME	"fp32 matmuls"
#endif

const char *kgpt_backend_name(void)
{
	static char name[512];
	struct cudaDeviceProp p;
	int dev;

	if (name[0])
		return name;
	CUDA_CHECK(cudaGetDevice(&dev));
	CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
	snprintf(name, sizeof(name), "cuda (%.200s, sm_%d%d, %.0f GiB, %s)", p.name, p.major, p.minor,
		 (double)p.totalGlobalMem / (1 << 30), MATH_NAME);
	return name;
}

/* Bytes held now and at most (cuBLAS's own workspace not counted). */
static size_t mem_now, mem_peak;

static void *account(void *p, size_t bytes)
{
	mem_now += bytes;
	if (mem_now > mem_peak)
		mem_peak = mem_now;
	return p;
}

/* An allocation that failed for want of memory returns NULL and leaves
 * no error pending; any other failure of call ends the program. */
static int alloc_failed(cudaError_t err, const char *call, void **p)
{
	if (err == cudaSuccess)
		return 0;
	if (err != cudaErrorMemoryAllocation)
		kgpt_cuda_check(err, call, __FILE__, __LINE__);
	cudaGetLastError();
	*p = NULL;
	return 1;
}

void *kgpt_alloc(size_t bytes)
{
	void *p;

	if (alloc_failed(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc", &p))
		return NULL;
	CUDA_CHECK(cudaMemset(p, 0, bytes));
	return account(p, bytes);
}

void *kgpt_alloc_shared(size_t bytes)
{
	void *p;

	if (alloc_failed(cudaMallocManaged(&p, bytes ? bytes : 1, cudaMemAttachGlobal),
			 "cudaMallocManaged", &p))
		return NULL;
	CUDA_CHECK(cudaMemset(p, 0, bytes));	/* on the device: the pages start there */
	return account(p, bytes);
}

void kgpt_free(void *p, size_t bytes)
{
	if (!p)
		return;
	CUDA_CHECK(cudaFree(p));
	mem_now -= bytes < mem_now ? bytes : mem_now;
}

size_t kgpt_mem_peak(void)
{
	return mem_peak;
}

size_t kgpt_mem_used(void)
{
	return mem_now;
}

void kgpt_zero(void *p, size_t bytes)
{
	if (bytes)
		CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, 0));
}

void kgpt_copy(void *dst, const void *src, size_t bytes)
{
	if (bytes)
		CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, 0));
}

void kgpt_upload(void *dst, const void *src, size_t bytes)
{
	if (bytes)
		CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
}

void kgpt_download(void *dst, const void *src, size_t bytes)
{
	if (bytes)
		CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
}

#ifdef KGPT_ACT_BF16
__global__ void act_to_float(float *__restrict__ dst, const act_t *__restrict__ src, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		dst[i] = a2f(src[i]);
}

/* bf16: converted on the device, through float staging in scratch. */
void kgpt_download_act(real *dst, const act_t *src, size_t n)
{
	float *f;

	if (!n)
		return;
	f = (float *)kgpt_cuda_scratch(KGPT_SCRATCH_CONVERT, n * sizeof(float));
	KGPT_LAUNCH(act_to_float, kgpt_blocks(n, 256, 65536), 256, 0, f, src, n);
	kgpt_download(dst, f, n * sizeof(float));
}

void kgpt_upload_act(act_t *dst, const real *src, size_t n)
{
	float *f;

	if (!n)
		return;
	f = (float *)kgpt_cuda_scratch(KGPT_SCRATCH_CONVERT, n * sizeof(float));
	kgpt_upload(f, src, n * sizeof(float));
	kgpt_cuda_to_act(dst, f, n);
}
#else
void kgpt_download_act(real *dst, const act_t *src, size_t n)
{
	kgpt_download(dst, src, n * sizeof(real));
}

void kgpt_upload_act(act_t *dst, const real *src, size_t n)
{
	kgpt_upload(dst, src, n * sizeof(real));
}
#endif

/* Managed pages move on demand: the host's first touch brings a page to
 * the host, the device's next one takes it back. Only the waiting is
 * needed here. */
void kgpt_sync_for_host(const void *p, size_t bytes)
{
	CUDA_CHECK(cudaDeviceSynchronize());
}

/* Nothing to do: the host touched the range while the device was idle
 * (kgpt_sync_for_host() waited), and kernels queued from now on see its
 * writes. That is also what GPUs without concurrent managed access ask. */
void kgpt_sync_for_backend(const void *p, size_t bytes)
{
}

void kgpt_sync(void)
{
	CUDA_CHECK(cudaDeviceSynchronize());
}

void *kgpt_cuda_scratch(int slot, size_t bytes)
{
	static void *buf[KGPT_SCRATCH_SLOTS];
	static size_t have[KGPT_SCRATCH_SLOTS];

	if (bytes <= have[slot])
		return buf[slot];
	if (buf[slot]) {
		CUDA_CHECK(cudaDeviceSynchronize());
		CUDA_CHECK(cudaFree(buf[slot]));
		mem_now -= have[slot];
	}
	bytes = bytes < 4096 ? 4096 : bytes + bytes / 4;
	CUDA_CHECK(cudaMalloc(&buf[slot], bytes));
	have[slot] = bytes;
	account(buf[slot], bytes);
	return buf[slot];
}
