/* SPDX-License-Identifier: MIT */
/*
 * Token shards and the data loader.
 *
 * Shard file format (llm.c's, little-endian):
 *   int32 header[256]: header[0] = 20240520 (magic), header[1] = 1
 *                      (version), header[2] = token count N, rest 0;
 *   uint16 tokens[N]:  GPT-2 ids, each < 50257.
 * A valid file is exactly 1024 + 2 * N bytes.
 *
 * The loader cuts each shard into rows of T + 1 tokens starting at
 * multiples of T (row r covers tokens r*T .. r*T + T), so a shard of N
 * tokens has (N - 1) / T rows and (N - 1) / T / B batches of B rows. A
 * batch gives inputs[b][t] = row_b[t] and targets[b][t] = row_b[t + 1]
 * (B*T each). The last token a batch can read is token N - 1.
 *  - Evaluation loader: shards in the order given, rows in file order,
 *    so batch i is the contiguous tokens i*B*T .. (i+1)*B*T (as llm.c).
 *  - Training loader: each epoch the shard order and, within each shard,
 *    the row order are shuffled by generators derived from the position's
 *    rng; rows left over (rows % B) sit out that epoch only.
 * Epochs follow each other without end; dataloader_batches() tells how
 * many batches one epoch has.
 *
 * Only the current shard is mapped (read-only mmap); switching shards
 * unmaps the previous one.
 */
#ifndef KGPT_DATALOADER_H
#define KGPT_DATALOADER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kgpt/rng.h"

#define SHARD_MAGIC		20240520
#define SHARD_VERSION		1
#define SHARD_HEADER_INTS	256
#define SHARD_HEADER_BYTES	(SHARD_HEADER_INTS * 4)
#define SHARD_VOCAB		50257	/* GPT-2: ids 0..50256 */

/* A mapped, validated shard. */
struct shard {
	const uint16_t *tokens;	/* ntok ids, each < SHARD_VOCAB */
	size_t ntok;
	void *map;		/* whole file, read-only */
	size_t map_len;		/* bytes */
};

/*
 * shard_write - write @n tokens to @path atomically.
 * Writes a temporary file in the same directory, fsyncs it and renames it
 * over @path, so readers see the old file or the whole new one, never a
 * partial one. @n must be <= INT32_MAX and every id < SHARD_VOCAB.
 * Returns 0, or a negative errno (-EINVAL bad id or count, -EIO, -ENOSPC,
 * -EACCES, ...) after a message on stderr naming @path; the temporary
 * file is removed on failure.
 */
int shard_write(const char *path, const uint16_t *tokens, size_t n);

/*
 * shard_open - map @path and validate it completely.
 * Checks: file >= 1024 bytes, magic, version, count >= 0, file size ==
 * 1024 + 2 * count, every id < SHARD_VOCAB.
 * Returns 0 with @s filled, or a negative errno (-ENOENT, -EINVAL for a
 * malformed file, -ENOMEM, ...) after a message on stderr that names the
 * file and the offending field or token position; @s is then zeroed.
 * Never aborts the process.
 */
int shard_open(struct shard *s, const char *path);

/* shard_close - unmap; safe on a zeroed or already closed shard. */
void shard_close(struct shard *s);

/*
 * Where a loader is: it produces next the batch @batch of the shard at
 * @shard in epoch @epoch's shard order, and @rng fixes that epoch's
 * orders. B, T, the shard count and the shuffle flag are recorded so that
 * restoring into a different loader fails instead of silently misreading.
 * Plain data: save it byte for byte in a checkpoint.
 */
struct dataloader_pos {
	uint64_t epoch;		/* completed epochs */
	uint64_t shard;		/* index into this epoch's shard order */
	uint64_t batch;		/* index into that shard's batches */
	struct kgpt_rng rng;	/* state that fixes this epoch's orders */
	uint32_t B, T, nshards, shuffle;
};

struct dataloader {
	int B, T;
	int shuffle;		/* 1 training order, 0 evaluation order */
	size_t nshards;
	char **paths;		/* nshards file names */
	size_t *ntok;		/* token count of each, as validated at open */
	uint32_t *order;	/* this epoch's shard order (indices into paths) */
	uint32_t *rows;		/* the current shard's row order */
	size_t nrows;
	struct shard cur;	/* mapped shard, or zeroed */
	long cur_index;		/* paths index of cur, or -1 */
	long rows_for;		/* pos.shard that rows[] was made for, or -1 */
	struct dataloader_pos pos, start;
};

/*
 * dataloader_open - loader over the shards matching @pattern.
 * @pattern: a glob(7) pattern such as "DIR/[*]_train.bin" (brackets only
 *           to keep this comment closed), or a plain file name; matches
 *           are taken in sorted order.
 * @B, @T: batch size (rows) and sequence length (tokens), both >= 1.
 * @seed: fixes the training order; unused when @shuffle is 0.
 * @shuffle: 1 for a training loader (order shuffled per epoch), 0 for an
 *           evaluation loader (fixed order, the same batches after reset).
 * Every shard's header and size are checked and it must hold at least
 * B*T + 1 tokens; the first shard to read is mapped and validated in
 * full (see shard_open()), the others each time they are mapped. Returns
 * 0, or a negative errno after a message (-ENOENT nothing matches,
 * -EINVAL bad shard or too few tokens, ...).
 * After an error nothing needs closing (dataloader_close() is harmless).
 */
int dataloader_open(struct dataloader *dl, const char *pattern, int B, int T,
		    uint64_t seed, int shuffle);

/* dataloader_path - @out (@len bytes) = the shard @pattern as given when
 * it is absolute, else under @data_dir (CONFIG_DATA_DIR). */
static inline void dataloader_path(char *out, size_t len, const char *data_dir,
				   const char *pattern)
{
	if (pattern[0] == '/')
		snprintf(out, len, "%s", pattern);
	else
		snprintf(out, len, "%s/%s", data_dir, pattern);
}

/* dataloader_open_files - as dataloader_open() on @n explicit files. */
int dataloader_open_files(struct dataloader *dl, const char *const *paths,
			  size_t n, int B, int T, uint64_t seed, int shuffle);

/* dataloader_close - unmap and free everything; leaves @dl zeroed. */
void dataloader_close(struct dataloader *dl);

/*
 * dataloader_next - the next batch, then advance the position.
 * @inputs, @targets: B*T ints each, row-major (B, T); targets[b][t] is
 *                    the token after inputs[b][t]. Both NULL: skip
 *                    the batch (a data-parallel rank skips the other
 *                    ranks' batches without reading them).
 * Crosses shard and epoch boundaries as needed. Returns 0, or a negative
 * errno with a message when the next shard fails to map or validate
 * (a bad id, or the file changed or vanished since dataloader_open());
 * the position is then unchanged.
 */
int dataloader_next(struct dataloader *dl, int *inputs, int *targets);

/* dataloader_batches - batches in one epoch over all shards. */
size_t dataloader_batches(const struct dataloader *dl);

/* dataloader_reset - back to the position right after dataloader_open(). */
void dataloader_reset(struct dataloader *dl);

/* dataloader_tell - the current position (the next batch to produce). */
void dataloader_tell(const struct dataloader *dl, struct dataloader_pos *pos);

/*
 * dataloader_seek - continue from a position saved by dataloader_tell()
 * on a loader opened on the same shards with the same B, T and shuffle
 * flag: the next batch is the one an uninterrupted run would have
 * produced. The current shard is unmapped, and mapped and checked again
 * by the next dataloader_next(). Returns 0, or -EINVAL with a message
 * when @pos does not fit this loader (the position is then unchanged).
 */
int dataloader_seek(struct dataloader *dl, const struct dataloader_pos *pos);

#endif /* KGPT_DATALOADER_H */
