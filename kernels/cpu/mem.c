// SPDX-License-Identifier: MIT
/*
 * The CPU backend's memory (kernels/kernels.h): backend and shared memory
 * are both host memory, from calloc() (whose large blocks are fresh
 * zero pages, so a big allocation costs nothing until touched); the
 * copies are memcpy(), and every kernel has finished when it returns, so
 * the sync calls have nothing to wait for.
 */
#include <stdlib.h>
#include <string.h>
#include "kernels/kernels.h"

/* Bytes held now and at most; allocation is the host thread's only. */
static size_t mem_now, mem_peak;

const char *kgpt_backend_name(void)
{
	return "cpu (OpenMP, BLAS)";
}

void *kgpt_alloc(size_t bytes)
{
	void *p = calloc(bytes ? bytes : 1, 1);

	if (p) {
		mem_now += bytes;
		if (mem_now > mem_peak)
			mem_peak = mem_now;
	}
	return p;
}

void *kgpt_alloc_shared(size_t bytes)
{
	return kgpt_alloc(bytes);
}

void kgpt_free(void *p, size_t bytes)
{
	if (!p)
		return;
	free(p);
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
	memset(p, 0, bytes);
}

void kgpt_copy(void *dst, const void *src, size_t bytes)
{
	memcpy(dst, src, bytes);
}

void kgpt_upload(void *dst, const void *src, size_t bytes)
{
	memcpy(dst, src, bytes);
}

void kgpt_download(void *dst, const void *src, size_t bytes)
{
	memcpy(dst, src, bytes);
}

/* act_t is real on the CPU backend. */
void kgpt_download_act(real *dst, const act_t *src, size_t n)
{
	memcpy(dst, src, n * sizeof(real));
}

void kgpt_upload_act(act_t *dst, const real *src, size_t n)
{
	memcpy(dst, src, n * sizeof(real));
}

void kgpt_sync_for_host(const void *p, size_t bytes)
{
}

void kgpt_sync_for_backend(const void *p, size_t bytes)
{
}

void kgpt_sync(void)
{
}
