// SPDX-License-Identifier: MIT
/*
 * Token shards (llm.c's format) and the batch loader. See dataloader.h.
 */
#include "gpt2/dataloader.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "shards are little-endian; add byte swapping for this machine"
#endif

/* ---------------------------------------------------------------------
 * Writing
 */

static int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= w;
	}
	return 0;
}

/* fsync the directory holding @path so the rename itself is durable. */
static void sync_parent(const char *path)
{
	char *copy = strdup(path);
	int fd;

	if (!copy)
		return;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(copy);
}

static int check_tokens(const char *path, const uint16_t *tokens, size_t n)
{
	if (n > INT32_MAX) {
		fprintf(stderr, "shard %s: %zu tokens is more than the format's %d\n",
			path, n, INT32_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (tokens[i] >= SHARD_VOCAB) {
			fprintf(stderr, "shard %s: token %zu is id %u, not below %d\n",
				path, i, tokens[i], SHARD_VOCAB);
			return -EINVAL;
		}
	}
	return 0;
}

int shard_write(const char *path, const uint16_t *tokens, size_t n)
{
	int32_t header[SHARD_HEADER_INTS] = { SHARD_MAGIC, SHARD_VERSION };
	size_t plen = strlen(path) + 16;
	char *tmp = malloc(plen);
	int fd = -1, err;

	err = check_tokens(path, tokens, n);
	if (err || !tmp) {
		free(tmp);
		return err ? err : -ENOMEM;
	}
	header[2] = (int32_t)n;
	snprintf(tmp, plen, "%s.tmpXXXXXX", path);
	fd = mkstemp(tmp);
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	err = write_all(fd, header, sizeof(header));
	if (!err)
		err = write_all(fd, tokens, n * sizeof(*tokens));
	if (!err && fchmod(fd, 0644))
		err = -errno;
	if (!err && fsync(fd))
		err = -errno;
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
	else
		sync_parent(path);
out:
	if (err)
		fprintf(stderr, "shard %s: cannot write: %s\n", path, strerror(-err));
	free(tmp);
	return err;
}

/* ---------------------------------------------------------------------
 * Reading
 */

static int __attribute__((format(printf, 2, 3)))
bad_shard(const char *path, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "shard %s: ", path);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n  (expected llm.c's format: 256 int32 header with magic %d, "
		"version %d, token count; then uint16 ids)\n", SHARD_MAGIC, SHARD_VERSION);
	return -EINVAL;
}

static int check_header(const char *path, const int32_t *h, off_t size)
{
	long long want;

	if (h[0] != SHARD_MAGIC)
		return bad_shard(path, "header[0] (magic) is %d, not %d",
				 h[0], SHARD_MAGIC);
	if (h[1] != SHARD_VERSION)
		return bad_shard(path, "header[1] (version) is %d, not %d",
				 h[1], SHARD_VERSION);
	if (h[2] < 0)
		return bad_shard(path, "header[2] (token count) is negative: %d",
				 h[2]);
	want = SHARD_HEADER_BYTES + 2LL * h[2];
	if (size != want)
		return bad_shard(path, "file is %lld bytes but header[2] (token count) "
				 "needs 1024 + 2 * count = %lld (truncated or padded?)",
				 (long long)size, want);
	return 0;
}

static int check_ids(const char *path, const uint16_t *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (t[i] >= SHARD_VOCAB)
			return bad_shard(path, "token %zu (at byte %zu) is id %u, not below %d",
					 i, SHARD_HEADER_BYTES + 2 * i, t[i],
					 SHARD_VOCAB);
	return 0;
}

/* Open @path and check its header against its size; *ntok = count. */
static int open_checked(const char *path, size_t *ntok, off_t *size)
{
	int32_t header[SHARD_HEADER_INTS];
	struct stat st;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		err = -errno;
		fprintf(stderr, "shard %s: cannot open: %s\n", path, strerror(-err));
		goto fail;
	}
	if (st.st_size < SHARD_HEADER_BYTES) {
		err = bad_shard(path, "file is %lld bytes, shorter than the %d-byte header",
				(long long)st.st_size, SHARD_HEADER_BYTES);
		goto fail;
	}
	if (pread(fd, header, sizeof(header), 0) != (ssize_t)sizeof(header)) {
		err = -EIO;
		fprintf(stderr, "shard %s: cannot read the header\n", path);
		goto fail;
	}
	err = check_header(path, header, st.st_size);
	if (err)
		goto fail;
	*ntok = header[2];
	*size = st.st_size;
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	return err;
}

int shard_open(struct shard *s, const char *path)
{
	off_t size;
	int fd, err;

	memset(s, 0, sizeof(*s));
	fd = open_checked(path, &s->ntok, &size);
	if (fd < 0)
		return fd;
	s->map_len = size;
	s->map = mmap(NULL, s->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (s->map == MAP_FAILED) {
		err = -errno;
		fprintf(stderr, "shard %s: cannot map: %s\n", path, strerror(-err));
		s->map = NULL;
		shard_close(s);
		return err;
	}
	s->tokens = (const uint16_t *)((const char *)s->map + SHARD_HEADER_BYTES);
	err = check_ids(path, s->tokens, s->ntok);
	if (err)
		shard_close(s);
	return err;
}

void shard_close(struct shard *s)
{
	if (s->map)
		munmap(s->map, s->map_len);
	memset(s, 0, sizeof(*s));
}

/* ---------------------------------------------------------------------
 * Orders
 */

/* An independent generator for (@base, @tag): a pure function of both. */
static void rng_derive(const struct kgpt_rng *base, uint64_t tag,
		       struct kgpt_rng *out)
{
	uint64_t x = base->s[0] ^ kgpt_rotl(base->s[1], 13) ^
		     kgpt_rotl(base->s[2], 29) ^ kgpt_rotl(base->s[3], 47);

	x ^= kgpt_splitmix64(&tag);
	kgpt_rng_seed(out, x);
}

/* v[i] = i, then Fisher-Yates shuffled by @rng when @shuffle. */
static void permutation(uint32_t *v, size_t n, struct kgpt_rng *rng,
			int shuffle)
{
	for (size_t i = 0; i < n; i++)
		v[i] = (uint32_t)i;
	if (!shuffle)
		return;
	for (size_t i = n; i > 1; i--) {
		size_t j = kgpt_rng_below(rng, i);
		uint32_t x = v[i - 1];

		v[i - 1] = v[j];
		v[j] = x;
	}
}

static size_t rows_of(const struct dataloader *dl, size_t ntok)
{
	return (ntok - 1) / dl->T;
}

static size_t batches_of(const struct dataloader *dl, size_t ntok)
{
	return rows_of(dl, ntok) / dl->B;
}

/* The shard order of the epoch that pos.rng fixes. */
static void make_order(struct dataloader *dl)
{
	struct kgpt_rng r;

	rng_derive(&dl->pos.rng, 0, &r);
	permutation(dl->order, dl->nshards, &r, dl->shuffle);
	dl->rows_for = -1;
}

/* ---------------------------------------------------------------------
 * Opening
 */

static int add_path(struct dataloader *dl, const char *path)
{
	size_t i = dl->nshards;

	dl->paths[i] = strdup(path);
	if (!dl->paths[i])
		return -ENOMEM;
	dl->nshards++;
	return 0;
}

/* Check every shard's header and size; record counts; size rows[]. */
static int scan_shards(struct dataloader *dl)
{
	size_t need = (size_t)dl->B * dl->T + 1, max_rows = 0;

	for (size_t i = 0; i < dl->nshards; i++) {
		off_t size;
		int fd = open_checked(dl->paths[i], &dl->ntok[i], &size);

		if (fd < 0)
			return fd;
		close(fd);
		if (dl->ntok[i] < need) {
			fprintf(stderr, "shard %s: %zu tokens, fewer than the B*T+1 = "
				"%d*%d+1 = %zu one batch needs\n", dl->paths[i],
				dl->ntok[i], dl->B, dl->T, need);
			return -EINVAL;
		}
		if (rows_of(dl, dl->ntok[i]) > max_rows)
			max_rows = rows_of(dl, dl->ntok[i]);
	}
	if (max_rows > UINT32_MAX) {
		fprintf(stderr, "a shard holds %zu rows of %d x %d tokens, more than the "
			"loader's %u: split it into smaller shards\n", max_rows, dl->B, dl->T,
			UINT32_MAX);
		return -EINVAL;
	}
	dl->rows = malloc(max_rows * sizeof(*dl->rows));
	if (!dl->rows)
		fprintf(stderr, "out of memory for the row order of %zu rows\n", max_rows);
	return dl->rows ? 0 : -ENOMEM;
}

/* Map the shard pos.shard names and make its row order, if not done. */
static int ensure_shard(struct dataloader *dl)
{
	uint32_t idx = dl->order[dl->pos.shard];
	struct kgpt_rng r;

	if (dl->cur_index != (long)idx) {
		int err;

		shard_close(&dl->cur);
		dl->cur_index = -1;
		err = shard_open(&dl->cur, dl->paths[idx]);
		if (err)
			return err;
		if (dl->cur.ntok != dl->ntok[idx]) {
			fprintf(stderr, "shard %s: now %zu tokens, %zu when the loader "
				"opened it; the shard changed during the run\n",
				dl->paths[idx], dl->cur.ntok, dl->ntok[idx]);
			shard_close(&dl->cur);
			return -EINVAL;
		}
		dl->cur_index = idx;
	}
	if (dl->rows_for != (long)dl->pos.shard) {
		dl->nrows = rows_of(dl, dl->cur.ntok);
		rng_derive(&dl->pos.rng, dl->pos.shard + 1, &r);
		permutation(dl->rows, dl->nrows, &r, dl->shuffle);
		dl->rows_for = (long)dl->pos.shard;
	}
	return 0;
}

static int open_common(struct dataloader *dl, int B, int T, uint64_t seed,
		       int shuffle)
{
	int err;

	dl->B = B;
	dl->T = T;
	dl->shuffle = !!shuffle;
	dl->cur_index = -1;
	dl->rows_for = -1;
	err = scan_shards(dl);
	if (err)
		return err;
	dl->order = malloc(dl->nshards * sizeof(*dl->order));
	if (!dl->order)
		return -ENOMEM;
	kgpt_rng_seed(&dl->pos.rng, seed);
	dl->pos.B = B;
	dl->pos.T = T;
	dl->pos.nshards = (uint32_t)dl->nshards;
	dl->pos.shuffle = dl->shuffle;
	dl->start = dl->pos;
	make_order(dl);
	return ensure_shard(dl);
}

static int check_shape(int B, int T, size_t n)
{
	if (B < 1 || T < 1 || n == 0 || n > UINT32_MAX) {
		fprintf(stderr, "dataloader: need B >= 1, T >= 1 and at least one "
			"shard (B %d, T %d, %zu shards)\n", B, T, n);
		return -EINVAL;
	}
	return 0;
}

int dataloader_open_files(struct dataloader *dl, const char *const *paths,
			  size_t n, int B, int T, uint64_t seed, int shuffle)
{
	int err;

	memset(dl, 0, sizeof(*dl));
	err = check_shape(B, T, n);
	if (err)
		return err;
	err = -ENOMEM;
	dl->paths = calloc(n, sizeof(*dl->paths));
	dl->ntok = calloc(n, sizeof(*dl->ntok));
	if (!dl->paths || !dl->ntok)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (add_path(dl, paths[i]))
			goto out;
	err = open_common(dl, B, T, seed, shuffle);
out:
	if (err == -ENOMEM)
		fprintf(stderr, "dataloader: out of memory\n");
	if (err)
		dataloader_close(dl);
	return err;
}

int dataloader_open(struct dataloader *dl, const char *pattern, int B, int T,
		    uint64_t seed, int shuffle)
{
	glob_t g;
	int rc, err;

	memset(dl, 0, sizeof(*dl));
	rc = glob(pattern, 0, NULL, &g);
	if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
		fprintf(stderr, "dataloader: no shard matches %s\n"
			"  run `make data`, or check the dataset paths (make menuconfig, Data)\n",
			pattern);
		globfree(&g);
		return -ENOENT;
	}
	if (rc) {
		fprintf(stderr, "dataloader: cannot expand %s (glob error %d)\n",
			pattern, rc);
		globfree(&g);
		return rc == GLOB_NOSPACE ? -ENOMEM : -EIO;
	}
	err = dataloader_open_files(dl, (const char *const *)g.gl_pathv,
				    g.gl_pathc, B, T, seed, shuffle);
	globfree(&g);
	return err;
}

void dataloader_close(struct dataloader *dl)
{
	shard_close(&dl->cur);
	for (size_t i = 0; dl->paths && i < dl->nshards; i++)
		free(dl->paths[i]);
	free(dl->paths);
	free(dl->ntok);
	free(dl->order);
	free(dl->rows);
	memset(dl, 0, sizeof(*dl));
}

/* ---------------------------------------------------------------------
 * Batches
 */

/* Step past the batch just produced; new epochs get a new order. */
static void advance(struct dataloader *dl)
{
	struct kgpt_rng next;

	if (++dl->pos.batch < batches_of(dl, dl->ntok[dl->cur_index]))
		return;
	dl->pos.batch = 0;
	dl->rows_for = -1;
	if (++dl->pos.shard < dl->nshards)
		return;
	dl->pos.shard = 0;
	dl->pos.epoch++;
	rng_derive(&dl->pos.rng, UINT64_MAX, &next);
	dl->pos.rng = next;
	make_order(dl);
}

int dataloader_next(struct dataloader *dl, int *inputs, int *targets)
{
	size_t T = dl->T;
	int err = ensure_shard(dl);

	if (err)
		return err;
	for (size_t b = 0; inputs && b < (size_t)dl->B; b++) {
		size_t row = dl->rows[dl->pos.batch * dl->B + b];
		const uint16_t *src = dl->cur.tokens + row * T;

		for (size_t t = 0; t < T; t++) {
			inputs[b * T + t] = src[t];
			targets[b * T + t] = src[t + 1];
		}
	}
	advance(dl);
	return 0;
}

size_t dataloader_batches(const struct dataloader *dl)
{
	size_t n = 0;

	for (size_t i = 0; i < dl->nshards; i++)
		n += batches_of(dl, dl->ntok[i]);
	return n;
}

void dataloader_reset(struct dataloader *dl)
{
	dl->pos = dl->start;
	make_order(dl);
}

void dataloader_tell(const struct dataloader *dl, struct dataloader_pos *pos)
{
	*pos = dl->pos;
}

static int __attribute__((format(printf, 1, 2)))
bad_pos(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "dataloader: saved position does not fit this loader: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	return -EINVAL;
}

int dataloader_seek(struct dataloader *dl, const struct dataloader_pos *pos)
{
	struct dataloader_pos old = dl->pos;
	size_t nb;

	if (pos->B != (uint32_t)dl->B || pos->T != (uint32_t)dl->T)
		return bad_pos("saved B %u, T %u; loader B %d, T %d",
			       pos->B, pos->T, dl->B, dl->T);
	if (pos->nshards != dl->nshards || pos->shuffle != (uint32_t)dl->shuffle)
		return bad_pos("saved %u shards, shuffle %u; loader %zu shards, shuffle %d",
			       pos->nshards, pos->shuffle, dl->nshards, dl->shuffle);
	if (pos->shard >= dl->nshards)
		return bad_pos("shard index %llu, loader has %zu shards",
			       (unsigned long long)pos->shard, dl->nshards);
	dl->pos = *pos;
	make_order(dl);
	nb = batches_of(dl, dl->ntok[dl->order[pos->shard]]);
	if (pos->batch >= nb) {
		dl->pos = old;
		make_order(dl);
		return bad_pos("batch index %llu, shard %s has %zu batches",
			       (unsigned long long)pos->batch,
			       dl->paths[dl->order[pos->shard]], nb);
	}
	shard_close(&dl->cur);
	dl->cur_index = -1;
	return 0;
}
