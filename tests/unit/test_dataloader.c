// SPDX-License-Identifier: MIT
/*
 * Shard and data loader tests. Shards are written into a fresh mkdtemp()
 * directory; token values encode their position so that every batch can
 * be traced back to the rows it came from.
 */
#include "gpt2/dataloader.h"
#include "tests/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/kgpt-dl-XXXXXX";
static char made[32][4200];	/* files to remove at the end */
static int nmade;

static const char *path_of(const char *name)
{
	static char p[8][4200];
	static int k;
	char *s = p[k++ & 7];

	snprintf(s, 4200, "%s/%s", dir, name);
	return s;
}

static void remember(const char *path)
{
	for (int i = 0; i < nmade; i++)
		if (!strcmp(made[i], path))
			return;
	if (nmade < 32)
		snprintf(made[nmade++], sizeof(made[0]), "%s", path);
}

/* A shard of n tokens: base + position. */
static const char *make_shard(const char *name, size_t n, int base)
{
	uint16_t *t = malloc(n * sizeof(*t) + 1);
	const char *p = path_of(name);

	for (size_t i = 0; i < n; i++)
		t[i] = (uint16_t)(base + i);
	remember(p);
	if (shard_write(p, t, n))
		p = NULL;
	free(t);
	return p;
}

/* Raw file: a header with the given fields, then @n tokens base + i. */
static const char *make_raw(const char *name, int32_t magic, int32_t version,
			    int32_t count, size_t n, int base)
{
	int32_t h[SHARD_HEADER_INTS] = { magic, version, count };
	const char *p = path_of(name);
	FILE *f = fopen(p, "wb");

	remember(p);
	if (!f)
		return NULL;
	fwrite(h, sizeof(h), 1, f);
	for (size_t i = 0; i < n; i++) {
		uint16_t v = (uint16_t)(base + i);

		fwrite(&v, 2, 1, f);
	}
	fclose(f);
	return p;
}

static int dir_entries(void)
{
	char cmd[4300];
	FILE *f;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -A %s | wc -l", dir);
	f = popen(cmd, "r");
	if (f) {
		if (fscanf(f, "%d", &n) != 1)
			n = -1;
		pclose(f);
	}
	return n;
}

static void test_write_read(void)
{
	const char *p = make_shard("rt.bin", 1000, 7);
	struct shard s;
	struct stat st;
	int good = 1;

	ok(p && !stat(p, &st) && st.st_size == 1024 + 2 * 1000,
	   "shard_write: file is 1024 + 2*N bytes");
	ok(dir_entries() == 1, "shard_write leaves no temporary file");
	if (!ok(p && !shard_open(&s, p) && s.ntok == 1000, "shard_open: N tokens"))
		return;
	for (size_t i = 0; i < 1000; i++)
		good &= s.tokens[i] == 7 + i;
	ok(good, "shard_open: the tokens written come back");
	ok(((const int32_t *)s.map)[0] == SHARD_MAGIC &&
	   ((const int32_t *)s.map)[1] == SHARD_VERSION &&
	   ((const int32_t *)s.map)[2] == 1000, "header: magic, version, count");
	shard_close(&s);
	shard_close(&s);
	ok(s.map == NULL, "shard_close twice is harmless");
}

static void test_bad_shards(void)
{
	uint16_t bad_ids[3] = { 1, 50257, 2 };
	struct shard s;
	const char *p;
	int fd;

	fprintf(stderr, "(expected errors follow)\n");
	p = make_shard("trunc.bin", 100, 0);
	fd = p ? open(p, O_WRONLY) : -1;
	ok(fd >= 0 && !ftruncate(fd, 1024 + 2 * 99), "truncate a shard");
	if (fd >= 0)
		close(fd);
	ok(shard_open(&s, p) == -EINVAL && !s.map,
	   "truncated shard (size != 1024 + 2*count) is -EINVAL");
	p = make_raw("magic.bin", 20240521, 1, 10, 10, 0);
	ok(shard_open(&s, p) == -EINVAL, "bad magic is -EINVAL");
	p = make_raw("version.bin", SHARD_MAGIC, 2, 10, 10, 0);
	ok(shard_open(&s, p) == -EINVAL, "bad version is -EINVAL");
	p = make_raw("neg.bin", SHARD_MAGIC, 1, -1, 0, 0);
	ok(shard_open(&s, p) == -EINVAL, "negative count is -EINVAL");
	p = make_raw("long.bin", SHARD_MAGIC, 1, 10, 11, 0);
	ok(shard_open(&s, p) == -EINVAL, "trailing bytes are -EINVAL");
	p = make_raw("bigid.bin", SHARD_MAGIC, 1, 10, 10, 50250);
	ok(shard_open(&s, p) == -EINVAL, "id >= 50257 is -EINVAL");
	p = path_of("short.bin");
	remember(p);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ok(fd >= 0 && write(fd, "abc", 3) == 3, "write a 3-byte file");
	if (fd >= 0)
		close(fd);
	ok(shard_open(&s, p) == -EINVAL, "file shorter than the header is -EINVAL");
	ok(shard_open(&s, path_of("absent.bin")) == -ENOENT,
	   "missing shard is -ENOENT");
	remember(path_of("never.bin"));
	ok(shard_write(path_of("never.bin"), bad_ids, 3) == -EINVAL &&
	   access(path_of("never.bin"), F_OK) != 0,
	   "shard_write refuses id 50257 and leaves no file");
}

static void test_exact_one_batch(int shuffle)
{
	const int B = 2, T = 4;
	int in[8], tg[8], good = 1, seen = 0;
	const char *p = make_shard("one.bin", B * T + 1, 10);
	struct dataloader dl;

	if (!ok(p && !dataloader_open(&dl, p, B, T, 1, shuffle),
		"B*T+1 tokens: loader opens (shuffle %d)", shuffle))
		return;
	ok(dataloader_batches(&dl) == 1, "B*T+1 tokens: exactly one batch");
	for (int rep = 0; rep < 3; rep++) {
		if (dataloader_next(&dl, in, tg))
			good = 0;
		for (int b = 0; b < B; b++) {
			int row = (in[b * T] - 10) / T;

			good &= in[b * T] == 10 + row * T;
			seen |= 1 << row;
			for (int t = 0; t < T; t++) {
				good &= in[b * T + t] == 10 + row * T + t;
				good &= tg[b * T + t] == in[b * T + t] + 1;
				good &= tg[b * T + t] <= 10 + B * T;
			}
		}
	}
	if (!shuffle)
		good &= in[0] == 10 && tg[B * T - 1] == 10 + B * T;
	ok(good && seen == 3, "B*T+1 tokens: inputs and targets right, "
	   "target ends at the last token (shuffle %d)", shuffle);
	dataloader_close(&dl);
}

static void test_too_few(void)
{
	const char *p = make_shard("few.bin", 2 * 4, 0);
	struct dataloader dl;

	fprintf(stderr, "(expected errors follow)\n");
	ok(p && dataloader_open(&dl, p, 2, 4, 1, 1) == -EINVAL,
	   "B*T tokens (one short) is -EINVAL");
	ok(dataloader_open(&dl, path_of("magic.bin"), 1, 1, 1, 0) == -EINVAL,
	   "loader on a bad shard is -EINVAL");
	ok(dataloader_open(&dl, path_of("bigid.bin"), 1, 1, 1, 1) == -EINVAL,
	   "loader on a shard with id >= 50257 is -EINVAL");
	ok(dataloader_open(&dl, path_of("*_nothing.bin"), 1, 1, 1, 0) == -ENOENT,
	   "glob matching nothing is -ENOENT");
	ok(dataloader_open(&dl, p, 0, 4, 1, 1) == -EINVAL, "B = 0 is -EINVAL");
}

/*
 * Shards for the multi-shard tests, B = 2, T = 3:
 *   a_train.bin: 19 tokens = 6 rows = 3 batches, values 100..118
 *   b_train.bin: 25 tokens = 8 rows = 4 batches, values 1000..1024
 *   c_train.bin: 23 tokens = 7 rows = 3 batches (one row sits out)
 */
enum { B2 = 2, T3 = 3, ROWS = 21, BATCHES = 10 };

static int make_train_set(void)
{
	return make_shard("a_train.bin", 19, 100) &&
	       make_shard("b_train.bin", 25, 1000) &&
	       make_shard("c_train.bin", 23, 2000);
}

/* Row id (0..20) of the row starting with value v, or -1. */
static int row_id(int v)
{
	if (v >= 100 && v < 118 && (v - 100) % 3 == 0)
		return (v - 100) / 3;
	if (v >= 1000 && v < 1024 && (v - 1000) % 3 == 0)
		return 6 + (v - 1000) / 3;
	if (v >= 2000 && v < 2021 && (v - 2000) % 3 == 0)
		return 14 + (v - 2000) / 3;
	return -1;
}

/* One epoch: each row at most once, all of a and b, 6 of c's 7. */
static int check_epoch(struct dataloader *dl, int *first_rows)
{
	int in[B2 * T3], tg[B2 * T3], count[ROWS] = { 0 }, good = 1, c = 0;

	for (int i = 0; i < BATCHES; i++) {
		if (dataloader_next(dl, in, tg))
			return 0;
		for (int b = 0; b < B2; b++) {
			int r = row_id(in[b * T3]);

			good &= r >= 0;
			if (r < 0)
				continue;
			count[r]++;
			if (first_rows)
				first_rows[i * B2 + b] = r;
			for (int t = 0; t < T3; t++)
				good &= in[b * T3 + t] == in[b * T3] + t &&
					tg[b * T3 + t] == in[b * T3 + t] + 1;
		}
	}
	for (int r = 0; r < ROWS; r++) {
		good &= count[r] <= 1;
		if (r < 14)
			good &= count[r] == 1;
		else
			c += count[r];
	}
	return good && c == 6;
}

static void test_epochs(void)
{
	struct dataloader dl;
	int good = 1, r0[ROWS], r1[ROWS];

	if (!ok(make_train_set() &&
		!dataloader_open(&dl, path_of("*_train.bin"), B2, T3, 42, 1),
		"loader over a glob of three shards"))
		return;
	ok(dl.nshards == 3 && dataloader_batches(&dl) == BATCHES,
	   "3 shards, %zu batches per epoch", dataloader_batches(&dl));
	good &= check_epoch(&dl, r0);
	good &= check_epoch(&dl, r1);
	for (int e = 2; e < 5; e++)
		good &= check_epoch(&dl, NULL);
	ok(good, "5 epochs: every row once per epoch, targets shifted by one, "
	   "nothing past a shard's end");
	ok(memcmp(r0, r1, sizeof(r0)) != 0, "epochs 0 and 1 differ in order");
	ok(dl.pos.epoch == 5 && dl.pos.shard == 0 && dl.pos.batch == 0,
	   "position after 5 epochs is epoch 5, shard 0, batch 0");
	dataloader_close(&dl);
}

/* The first values of @n batches of a new loader. */
static void first_values(uint64_t seed, int shuffle, int n, int *out)
{
	int in[B2 * T3], tg[B2 * T3];
	struct dataloader dl;

	memset(out, 0, n * B2 * sizeof(*out));
	if (dataloader_open(&dl, path_of("*_train.bin"), B2, T3, seed, shuffle))
		return;
	for (int i = 0; i < n && !dataloader_next(&dl, in, tg); i++)
		for (int b = 0; b < B2; b++)
			out[i * B2 + b] = in[b * T3];
	dataloader_close(&dl);
}

static void test_seeds(void)
{
	int a[30 * B2], b[30 * B2], c[30 * B2], e[30 * B2];

	first_values(7, 1, 30, a);
	first_values(7, 1, 30, b);
	first_values(8, 1, 30, c);
	ok(a[0] && !memcmp(a, b, sizeof(a)), "same seed, same order (3 epochs)");
	ok(memcmp(a, c, sizeof(a)) != 0, "different seed, different order");
	first_values(7, 0, 30, b);
	first_values(8, 0, 30, c);
	ok(!memcmp(b, c, sizeof(b)), "evaluation order ignores the seed");
	first_values(7, 1, 30, e);
	ok(!memcmp(a, e, sizeof(a)), "order is the same after other loaders ran");
}

static void test_eval(void)
{
	int in[B2 * T3], tg[B2 * T3], v1[BATCHES], v2[BATCHES], v3[BATCHES];
	struct dataloader dl;
	int good = 1;

	if (!ok(!dataloader_open(&dl, path_of("*_train.bin"), B2, T3, 1, 0),
		"evaluation loader opens"))
		return;
	for (int i = 0; i < BATCHES; i++) {
		good &= !dataloader_next(&dl, in, tg);
		v1[i] = in[0];
		good &= in[T3] == in[0] + T3;	/* rows are contiguous */
		good &= tg[B2 * T3 - 1] == in[0] + B2 * T3;
	}
	good &= v1[0] == 100 && v1[1] == 106 && v1[3] == 1000 && v1[7] == 2000;
	ok(good, "evaluation batches are contiguous B*T+1 windows in file order");
	for (int i = 0; i < 4; i++)
		dataloader_next(&dl, in, tg);
	dataloader_reset(&dl);
	for (int i = 0; i < BATCHES; i++) {
		dataloader_next(&dl, in, tg);
		v2[i] = in[0];
	}
	for (int i = 0; i < BATCHES; i++) {	/* second epoch: the same */
		dataloader_next(&dl, in, tg);
		v3[i] = in[0];
	}
	ok(!memcmp(v1, v2, sizeof(v1)), "after reset, the same batches");
	ok(!memcmp(v1, v3, sizeof(v1)), "next epoch, the same batches");
	dataloader_close(&dl);
}

/* Run @k batches, save, run 25 more; a new loader seeks and must agree. */
static int resume_matches(int k)
{
	int in[B2 * T3], tg[B2 * T3], want[25 * B2 * T3], good = 1;
	struct dataloader a, b;
	struct dataloader_pos pos, copy;

	if (dataloader_open(&a, path_of("*_train.bin"), B2, T3, 99, 1))
		return 0;
	for (int i = 0; i < k; i++)
		dataloader_next(&a, in, tg);
	dataloader_tell(&a, &pos);
	memcpy(&copy, &pos, sizeof(pos));	/* as a checkpoint would */
	for (int i = 0; i < 25; i++) {
		dataloader_next(&a, in, tg);
		memcpy(want + i * B2 * T3, in, sizeof(in));
		good &= tg[0] == in[0] + 1;
	}
	dataloader_close(&a);
	/* A different seed: the order must come from the position alone. */
	if (dataloader_open(&b, path_of("*_train.bin"), B2, T3, 12345, 1))
		return 0;
	dataloader_next(&b, in, tg);
	good &= !dataloader_seek(&b, &copy) && b.cur.map == NULL;
	for (int i = 0; i < 25; i++) {
		good &= !dataloader_next(&b, in, tg);
		good &= !memcmp(want + i * B2 * T3, in, sizeof(in));
	}
	dataloader_close(&b);
	return good;
}

static void test_resume(void)
{
	struct dataloader dl;
	struct dataloader_pos pos;
	int ks[] = { 0, 1, 3, 5, 9, 10, 11, 23 };
	int good = 1;

	for (size_t i = 0; i < sizeof(ks) / sizeof(ks[0]); i++)
		good &= resume_matches(ks[i]);
	ok(good, "saved position restores the exact next batches "
	   "(mid-shard, shard and epoch boundaries)");
	if (dataloader_open(&dl, path_of("*_train.bin"), B2, T3, 1, 1))
		return;
	fprintf(stderr, "(expected errors follow)\n");
	dataloader_tell(&dl, &pos);
	pos.batch = 4;	/* shard of at most 4 batches */
	ok(dataloader_seek(&dl, &pos) == -EINVAL, "batch past the shard is -EINVAL");
	dataloader_tell(&dl, &pos);
	pos.B = 3;
	ok(dataloader_seek(&dl, &pos) == -EINVAL, "position for another B is -EINVAL");
	dataloader_tell(&dl, &pos);
	pos.shard = 3;
	ok(dataloader_seek(&dl, &pos) == -EINVAL, "shard index out of range is -EINVAL");
	dataloader_close(&dl);
}

/* After dataloader_seek() the shard is mapped again, not reused. */
static void test_seek_reloads(void)
{
	int in[8], tg[8], good;
	struct dataloader dl;
	struct dataloader_pos pos;
	const char *p = make_shard("reload.bin", 9, 10);

	if (!ok(p && !dataloader_open(&dl, p, 2, 4, 5, 0), "open reload.bin"))
		return;
	dataloader_tell(&dl, &pos);
	good = !dataloader_next(&dl, in, tg) && in[0] == 10;
	good &= make_shard("reload.bin", 9, 500) != NULL;	/* replaced */
	good &= !dataloader_seek(&dl, &pos);
	good &= !dataloader_next(&dl, in, tg) && in[0] == 500 && tg[7] == 508;
	ok(good, "seek maps the shard again (sees a replaced file)");
	dataloader_close(&dl);
}

/* A bad id in a shard other than the first shows when it is mapped. */
static void test_late_bad_shard(void)
{
	const char *files[2] = { make_shard("late_a.bin", 9, 10),
				 make_raw("late_b.bin", SHARD_MAGIC, 1, 9, 9, 50250) };
	int in[8], tg[8], rc;
	struct dataloader dl;

	if (!ok(files[0] && files[1] &&
		!dataloader_open_files(&dl, files, 2, 2, 4, 1, 0),
		"loader opens when only a later shard has a bad id"))
		return;
	fprintf(stderr, "(expected error follows)\n");
	rc = dataloader_next(&dl, in, tg);
	ok(rc == 0 && in[0] == 10, "first shard reads");
	rc = dataloader_next(&dl, in, tg);
	ok(rc == -EINVAL && dl.pos.shard == 1 && dl.pos.batch == 0,
	   "second shard's id >= 50257 is -EINVAL from next, position kept");
	dataloader_close(&dl);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		ok(0, "mkdtemp");
		return tap_done();
	}
	test_write_read();
	test_bad_shards();
	test_exact_one_batch(0);
	test_exact_one_batch(1);
	test_too_few();
	test_epochs();
	test_seeds();
	test_eval();
	test_resume();
	test_seek_reloads();
	test_late_bad_shard();
	for (int i = 0; i < nmade; i++)
		unlink(made[i]);
	ok(rmdir(dir) == 0, "temporary directory cleaned up");
	return tap_done();
}
