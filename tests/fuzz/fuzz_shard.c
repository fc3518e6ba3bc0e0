// SPDX-License-Identifier: MIT
/*
 * Fuzz target: the token shard reader and the data loader on arbitrary
 * files. The input is written to a memfd and opened by its /proc path.
 * shard_open() must return 0 or a negative errno; on 0 the shard is what
 * the format says (1024 + 2 * count bytes, every id below 50257). A valid
 * shard then feeds a data loader whose shape comes from the header's
 * unused entries (header[3]: B and T, header[4]: seed and shuffle flag,
 * header[5..]: a position to seek to): every batch it produces must be
 * made of the shard's ids, targets one token after inputs.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gpt2/dataloader.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_B	4
#define MAX_T	16

static int fd = -1;
static char path[64];

static void __attribute__((noreturn)) fail(const char *what, size_t size)
{
	fprintf(stderr, "fuzz_shard: %s (input of %zu bytes)\n", what, size);
	abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fd = memfd_create("kgpt-fuzz-shard", MFD_CLOEXEC);
	if (fd < 0) {
		perror("fuzz_shard: memfd_create");
		exit(1);
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return 0;
}

static void put_file(const uint8_t *data, size_t size)
{
	size_t off = 0;

	if (ftruncate(fd, 0))
		fail("ftruncate", size);
	while (off < size) {
		ssize_t w = pwrite(fd, data + off, size - off, (off_t)off);

		if (w <= 0)
			fail("pwrite", size);
		off += (size_t)w;
	}
}

static uint32_t header_word(const uint8_t *data, int i)
{
	uint32_t v;

	memcpy(&v, data + 4 * i, 4);
	return v;
}

/* A batch: ids of the shard, targets[b][t] == inputs[b][t + 1]. */
static void check_batch(const int *in, const int *tg, int B, int T, size_t size)
{
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++) {
			int x = in[b * T + t], y = tg[b * T + t];

			if (x < 0 || x >= SHARD_VOCAB || y < 0 || y >= SHARD_VOCAB)
				fail("a batch holds an id out of range", size);
			if (t + 1 < T && y != in[b * T + t + 1])
				fail("targets are not the inputs shifted by one", size);
		}
}

static void run_loader(const uint8_t *data, size_t size, size_t ntok)
{
	uint32_t shape = header_word(data, 3), seed = header_word(data, 4);
	int B = 1 + (shape & 0xff) % MAX_B, T = 1 + (shape >> 8 & 0xff) % MAX_T;
	int in[MAX_B * MAX_T], tg[MAX_B * MAX_T];
	const char *paths[2] = { path, path };
	struct dataloader_pos pos;
	struct dataloader dl;
	int nfiles = 1 + (seed >> 31), err;

	err = dataloader_open_files(&dl, paths, nfiles, B, T, seed,
				    (seed >> 30) & 1);
	if (ntok < (size_t)B * T + 1) {
		if (err != -EINVAL)
			fail("a loader over a shard too short for one batch", size);
		return;
	}
	if (err)
		fail("dataloader_open_files() refused a valid shard", size);
	if (dataloader_batches(&dl) != nfiles * ((ntok - 1) / T / B))
		fail("dataloader_batches() is not the shard's batch count", size);
	for (int i = 0; i < 3; i++) {
		if (dataloader_next(&dl, in, tg))
			fail("dataloader_next() failed", size);
		check_batch(in, tg, B, T, size);
	}

	/* A saved position: the loader's own one always fits. */
	dataloader_tell(&dl, &pos);
	if (dataloader_seek(&dl, &pos))
		fail("dataloader_seek() refused dataloader_tell()'s position", size);
	/* One made of the header's bytes must fit or be refused. */
	memcpy(&pos, data + 20, sizeof(pos));
	err = dataloader_seek(&dl, &pos);
	if (err && err != -EINVAL)
		fail("dataloader_seek() failed other than with -EINVAL", size);
	if (dataloader_next(&dl, in, tg))
		fail("dataloader_next() failed after a seek", size);
	check_batch(in, tg, B, T, size);
	dataloader_reset(&dl);
	if (dataloader_next(&dl, in, tg))
		fail("dataloader_next() failed after a reset", size);
	dataloader_close(&dl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct shard s;
	size_t ntok;
	int err;

	put_file(data, size);
	err = shard_open(&s, path);
	if (err > 0)
		fail("shard_open() returned a positive value", size);
	if (err) {
		if (s.map || s.tokens || s.ntok)
			fail("shard_open() failed but left the shard filled", size);
		return 0;
	}
	if (size != SHARD_HEADER_BYTES + 2 * s.ntok)
		fail("a shard of the wrong size was accepted", size);
	if (header_word(data, 0) != SHARD_MAGIC || header_word(data, 1) != SHARD_VERSION)
		fail("a shard with a bad magic or version was accepted", size);
	for (size_t i = 0; i < s.ntok; i++)
		if (s.tokens[i] >= SHARD_VOCAB)
			fail("a shard with an id >= 50257 was accepted", size);
	ntok = s.ntok;
	shard_close(&s);
	if (s.map || s.ntok)
		fail("shard_close() left the shard filled", size);
	run_loader(data, size, ntok);
	return 0;
}
