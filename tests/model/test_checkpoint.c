// SPDX-License-Identifier: MIT
/*
 * Checkpoint tests for the configuration this binary is compiled against:
 * a save/load round trip is bit-identical; model.bin is a file llm.c's
 * reader accepts; damaged, unfinished and foreign checkpoints are refused
 * with a message naming the file and the problem, and the loader falls
 * back to the previous complete one; failed saves (unwritable directory,
 * full disk, file size limit) leave the previous checkpoint intact.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpt2/checkpoint.h"
#include "kgpt/rng.h"
#include "tests/tap.h"

/* What a trainer might keep: an opaque blob to the checkpoint code. */
struct trainer_state {
	uint64_t shard, offset;
	uint64_t rng[4];
	double elapsed;
	int64_t metrics_rows;
	float best_val;
	char tag[12];
};

#define PATHLEN 1024

static char tmp[PATHLEN];
static struct gpt2 a, b;

static void fill_random(struct gpt2 *m, uint64_t seed)
{
	struct kgpt_rng rng;

	kgpt_rng_seed(&rng, seed);
	for (size_t i = 0; i < m->num_params; i++) {
		m->params[i] = (real)kgpt_rng_normal(&rng);
		m->opt.m[i] = kgpt_rng_normal(&rng);
		m->opt.v[i] = kgpt_rng_uniform(&rng);
	}
	/* a tensor the configuration does not have stays absent */
}

static int same_model(const struct gpt2 *x, const struct gpt2 *y)
{
	return x->step == y->step &&
	       !memcmp(x->params, y->params, x->num_params * sizeof(real)) &&
	       !memcmp(x->opt.m, y->opt.m, x->num_params * sizeof(float)) &&
	       !memcmp(x->opt.v, y->opt.v, x->num_params * sizeof(float));
}

/* A path (PATHLEN bytes) from fmt. */
static void __attribute__((format(printf, 2, 3)))
pathf(char *buf, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, PATHLEN, fmt, ap);
	va_end(ap);
}

static void sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		diag("command failed: %s", cmd);
}

static int exists(const char *fmt, ...)
{
	char path[1024];
	struct stat st;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	return stat(path, &st) == 0;
}

static long long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) ? -1 : (long long)st.st_size;
}

static void patch(const char *path, long long off, const void *buf, size_t n)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0 || pwrite(fd, buf, n, off) != (ssize_t)n)
		diag("cannot patch %s", path);
	if (fd >= 0)
		close(fd);
}

static void flip_byte(const char *path, long long off)
{
	int fd = open(path, O_RDWR);
	unsigned char c = 0;

	if (fd < 0 || pread(fd, &c, 1, off) != 1)
		diag("cannot read %s", path);
	c ^= 0x40;
	if (fd >= 0 && pwrite(fd, &c, 1, off) != 1)
		diag("cannot write %s", path);
	if (fd >= 0)
		close(fd);
}

static int has(const char *needle)
{
	return strstr(ckpt_last_error(), needle) != NULL;
}

/* No leftover temporary directory under run/checkpoints. */
static int no_temporaries(const char *run)
{
	char cmd[PATHLEN];

	snprintf(cmd, sizeof(cmd), "ls -A %s/checkpoints | grep -q '^\\.'", run);
	return system(cmd) != 0;
}

/*
 * llm.c's reader, written from its format description: int32 header[256],
 * then the 16 tensors as float32, sizes from the header. Checks the
 * header against the model and every tensor against its parameters
 * (zeros for a tensor the configuration does not have).
 */
static int llmc_reference_read(const char *path, const struct gpt2 *m)
{
	int32_t h[256];
	size_t sz[16], total = 0;
	long long fsz = file_size(path);
	FILE *fp = fopen(path, "rb");
	int good = 1;

	if (!fp || fread(h, sizeof(int32_t), 256, fp) != 256) {
		diag("cannot read the header of %s", path);
		if (fp)
			fclose(fp);
		return 0;
	}
	if (h[0] != 20240326 || h[1] != 3 || h[2] != GPT2_MAXT || h[3] != 50257 ||
	    h[4] != GPT2_L || h[5] != GPT2_NH || h[6] != GPT2_C || h[7] != 50304) {
		diag("header %d %d %d %d %d %d %d %d", h[0], h[1], h[2], h[3], h[4], h[5],
		     h[6], h[7]);
		good = 0;
	}
	{
		size_t maxT = h[2], L = h[4], C = h[6], Vp = h[7];
		size_t D = h[8] ? (size_t)h[8] : 4 * C;
		size_t s[16] = {
			Vp * C, maxT * C, L * C, L * C, L * 3 * C * C, L * 3 * C,
			L * C * C, L * C, L * C, L * C, L * D * C, L * D,
			L * C * D, L * C, C, C,
		};

		memcpy(sz, s, sizeof(s));
	}
	for (int t = 0; t < 16; t++)
		total += sz[t];
	if ((long long)(256 * 4 + total * 4) != fsz) {
		diag("file has %lld bytes, the header describes %zu", fsz, 256 * 4 + total * 4);
		good = 0;
	}
	for (int t = 0; t < 16 && good; t++) {
		const struct gpt2_tensor_info *ti = &m->tensors[t];

		for (size_t i = 0; i < sz[t]; i++) {
			float x, want = ti->size ? (float)m->params[ti->offset + i] : 0.0f;

			if (fread(&x, 4, 1, fp) != 1 || x != want) {
				diag("tensor %s element %zu: %g, want %g", ti->name, i, x, want);
				good = 0;
				break;
			}
		}
	}
	fclose(fp);
	return good;
}

/* Offset of fingerprint field `name`'s value in a state.bin, or -1. */
static long long state_field_offset(const char *path, const char *name)
{
	unsigned char hdr[72];
	uint32_t nfields;
	FILE *fp = fopen(path, "rb");
	long long off = -1;

	if (!fp || fread(hdr, 1, sizeof(hdr), fp) != sizeof(hdr)) {
		if (fp)
			fclose(fp);
		return -1;
	}
	memcpy(&nfields, hdr + 12, 4);
	for (uint32_t i = 0; i < nfields; i++) {
		char field[40];

		if (fread(field, 1, 40, fp) != 40)
			break;
		if (!strncmp(field, name, 32)) {
			off = 72 + 40LL * i + 32;
			break;
		}
	}
	fclose(fp);
	return off;
}

static void test_roundtrip(const char *run, struct trainer_state *st)
{
	struct trainer_state got;
	char path[PATHLEN];

	fill_random(&a, 42);
	a.step = 5;
	ok(ckpt_save(run, &a, st, sizeof(*st), 2) == 0, "save step 5");
	ok(exists("%s/checkpoints/step_000005/model.bin", run) &&
	   exists("%s/checkpoints/step_000005/state.bin", run) &&
	   exists("%s/checkpoints/step_000005/DONE", run),
	   "step_000005 holds model.bin, state.bin and DONE");
	ok(no_temporaries(run), "no temporary directory left");

	memset(&got, 0, sizeof(got));
	fill_random(&b, 7);
	b.step = 0;
	ok(ckpt_load_latest(run, &b, &got, sizeof(got), path, sizeof(path)) == 0,
	   "load the latest checkpoint");
	ok(strstr(path, "step_000005") != NULL, "it is step_000005 (%s)", path);
	ok(same_model(&a, &b), "parameters, AdamW m and v and the step are bit-identical");
	ok(!memcmp(&got, st, sizeof(got)), "the trainer state is bit-identical");

	pathf(path, "%s/checkpoints/step_000005/model.bin", run);
	ok(llmc_reference_read(path, &a),
	   "model.bin reads with llm.c's layout: header fields, size = 1024 + 4 * floats, tensors");
}

static void test_llmc(const char *run)
{
	char path[PATHLEN];
	int equal = 1;

	pathf(path, "%s/model.bin", run);
	ok(ckpt_write_llmc(path, &a) == 0, "ckpt_write_llmc");
	ok(llmc_reference_read(path, &a), "the written file passes the llm.c reader");
	ok(!exists("%s/model.bin.tmp.%d", run, (int)getpid()), "no temporary file left");

	gpt2_free(&b);
	gpt2_init(&b, 3);
	ok(ckpt_load_llmc(path, &b) == 0, "ckpt_load_llmc");
	for (int t = 0; t < GPT2_LLMC_TENSORS; t++) {
		const struct gpt2_tensor_info *ti = &a.tensors[t];

		equal &= !memcmp(a.params + ti->offset, b.params + ti->offset,
				 ti->size * sizeof(real));
	}
	ok(equal, "llm.c tensors loaded bit-identical");
	if (b.tensors[P_LMHEAD].size)
		ok(!memcmp(gpt2_param(&b, P_LMHEAD), gpt2_param(&b, P_WTE),
			   b.tensors[P_WTE].size * sizeof(real)),
		   "the untied lm_head starts as a copy of wte");
	ok(b.step == 0 && b.opt.m[0] == 0.0f && b.opt.v[b.num_params - 1] == 0.0f,
	   "parameters only: step and AdamW moments untouched");
}

static void test_keep(const char *run, struct trainer_state *st)
{
	a.step = 6;
	ok(ckpt_save(run, &a, st, sizeof(*st), 2) == 0, "save step 6");
	a.params[0] += 1.0f;
	a.step = 7;
	ok(ckpt_save(run, &a, st, sizeof(*st), 2) == 0, "save step 7");
	ok(!exists("%s/checkpoints/step_000005", run) &&
	   exists("%s/checkpoints/step_000006/DONE", run) &&
	   exists("%s/checkpoints/step_000007/DONE", run),
	   "keep 2: step 5 deleted once step 7 was complete, steps 6 and 7 kept");
}

/* Copy step_000007 as step N and damage it with `how`. */
static void make_damaged(const char *run, int n, const char *how, char *dir, size_t len)
{
	snprintf(dir, len, "%s/checkpoints/step_%06d", run, n);
	sh("rm -rf %s && cp -a %s/checkpoints/step_000007 %s", dir, run, dir);
	if (!strcmp(how, "no-done")) {
		sh("rm -f %s/DONE", dir);
	} else if (!strcmp(how, "truncate-model")) {
		sh("truncate -s -100 %s/model.bin", dir);
	} else if (!strcmp(how, "truncate-state")) {
		sh("truncate -s -4096 %s/state.bin", dir);
	} else if (!strcmp(how, "flip-model")) {
		char f[PATHLEN];

		pathf(f, "%s/model.bin", dir);
		flip_byte(f, file_size(f) / 2);
	} else if (!strcmp(how, "flip-state")) {
		char f[PATHLEN];

		pathf(f, "%s/state.bin", dir);
		flip_byte(f, file_size(f) - 100);
	}
}

static void expect_fallback(const char *run, const char *what)
{
	struct trainer_state got;
	char path[PATHLEN];

	b.step = -1;
	ok(ckpt_load_latest(run, &b, &got, sizeof(got), path, sizeof(path)) == 0 &&
	   strstr(path, "step_000007") && same_model(&a, &b),
	   "%s: the loader falls back to step_000007, bit-identical", what);
}

static void test_damage(const char *run)
{
	struct trainer_state got;
	char dir[PATHLEN], path[PATHLEN];
	int r;

	make_damaged(run, 8, "no-done", dir, sizeof(dir));
	ok(ckpt_find_latest(run, path, sizeof(path)) == 0 && strstr(path, "step_000007"),
	   "a checkpoint without DONE is ignored by ckpt_find_latest");
	ok(ckpt_load(dir, &b, &got, sizeof(got)) == -ENOENT && has("no DONE marker"),
	   "ckpt_load of it: -ENOENT, \"%s\"", ckpt_last_error());
	expect_fallback(run, "no DONE marker");
	sh("rm -rf %s", dir);

	make_damaged(run, 9, "truncate-model", dir, sizeof(dir));
	r = ckpt_load(dir, &b, &got, sizeof(got));
	ok(r == -EBADMSG && has("step_000009/model.bin") && has("truncated: expected"),
	   "truncated model.bin: -EBADMSG naming the file, \"%s\"", ckpt_last_error());
	ok(ckpt_find_latest(run, path, sizeof(path)) == 0 && strstr(path, "step_000007"),
	   "ckpt_find_latest skips it");
	expect_fallback(run, "truncated model.bin");
	sh("rm -rf %s", dir);

	make_damaged(run, 10, "truncate-state", dir, sizeof(dir));
	r = ckpt_load(dir, &b, &got, sizeof(got));
	ok(r == -EBADMSG && has("step_000010/state.bin") && has("truncated: expected"),
	   "truncated state.bin: -EBADMSG naming the file, \"%s\"", ckpt_last_error());
	expect_fallback(run, "truncated state.bin");
	sh("rm -rf %s", dir);

	make_damaged(run, 11, "flip-model", dir, sizeof(dir));
	r = ckpt_verify(dir);
	ok(r == -EBADMSG && has("model.bin") && has("checksum"),
	   "a flipped byte in model.bin: checksum error, \"%s\"", ckpt_last_error());
	ok(ckpt_load(dir, &b, &got, sizeof(got)) == -EBADMSG, "ckpt_load refuses it too");
	expect_fallback(run, "flipped byte in model.bin");
	sh("rm -rf %s", dir);

	make_damaged(run, 12, "flip-state", dir, sizeof(dir));
	r = ckpt_verify(dir);
	ok(r == -EBADMSG && has("state.bin") && has("checksum"),
	   "a flipped byte in state.bin: checksum error, \"%s\"", ckpt_last_error());
	expect_fallback(run, "flipped byte in state.bin");
	sh("rm -rf %s", dir);
}

static void test_foreign(const char *run)
{
	struct trainer_state got;
	char dir[PATHLEN], path[PATHLEN];
	int32_t v;
	long long off;
	int r;

	/* an llm.c file of another depth */
	pathf(path, "%s/deeper.bin", run);
	sh("cp %s/checkpoints/step_000007/model.bin %s", run, path);
	v = GPT2_L + 8;
	patch(path, 4 * 4, &v, 4);
	memcpy(b.params, a.params, a.num_params * sizeof(real));
	b.params[1] = 123.0f;
	r = ckpt_load_llmc(path, &b);
	{
		char want[200];

		snprintf(want, sizeof(want),
			 "n_layer is %d in the file, the trainer is compiled for %d (CONFIG_GPT2_N_LAYER)",
			 GPT2_L + 8, GPT2_L);
		ok(r == -EINVAL && has(want) && has("deeper.bin"),
		   "llm.c file with another n_layer: -EINVAL, \"%s\"", ckpt_last_error());
	}
	ok(b.params[1] == 123.0f, "the model is untouched");

	v = 5;
	patch(path, 4, &v, 4);
	ok(ckpt_load_llmc(path, &b) == -EINVAL && has("version is 5"),
	   "a bfloat16 (version 5) file: -EINVAL, \"%s\"", ckpt_last_error());
	v = 1234;
	patch(path, 0, &v, 4);
	ok(ckpt_load_llmc(path, &b) == -EBADMSG && has("magic"),
	   "a file with another magic: -EBADMSG, \"%s\"", ckpt_last_error());

	/* a checkpoint of another configuration */
	pathf(dir, "%s/checkpoints/step_000013", run);
	sh("cp -a %s/checkpoints/step_000007 %s", run, dir);
	pathf(path, "%s/state.bin", dir);
	off = state_field_offset(path, "batch_size");
	ok(off > 0, "state.bin has a batch_size field");
	{
		int64_t bs = GPT2_B * 2;

		patch(path, off, &bs, 8);
	}
	b.step = -1;
	r = ckpt_load_latest(run, &b, &got, sizeof(got), NULL, 0);
	ok(r == -EINVAL && has("batch_size is") && has("(CONFIG_BATCH_SIZE)"),
	   "checkpoint of another batch size: -EINVAL, no fallback, \"%s\"", ckpt_last_error());
	ok(b.step == -1, "the model is untouched");
	sh("rm -rf %s", dir);

	pathf(dir, "%s/checkpoints/step_000007", run);
	ok(ckpt_load(dir, &b, &got, sizeof(got) - 4) == -EINVAL && has("trainer state is"),
	   "another trainer-state size: -EINVAL, \"%s\"", ckpt_last_error());
}

/*
 * Inputs the fuzz target (tests/fuzz/fuzz_checkpoint.c) found: readers
 * that computed with a header's values before checking them. Under
 * make check-asan (UndefinedBehaviorSanitizer, AddressSanitizer) each was
 * a crash.
 */
static void test_fuzz_findings(const char *run)
{
	char dir[PATHLEN], path[PATHLEN], done[256];
	unsigned long long ms, ss, nf, base, len;
	unsigned int mcrc, scrc;
	uint64_t np, extra, v64;
	int32_t v;
	FILE *fp;
	int r;

	/* llm.c header: an n_embd so large that 4 * n_embd overflows an int */
	pathf(path, "%s/wide.bin", run);
	sh("cp %s/checkpoints/step_000007/model.bin %s", run, path);
	v = 1 << 29;
	patch(path, 6 * 4, &v, 4);
	r = ckpt_load_llmc(path, &b);
	ok(r == -EINVAL && has("n_embd is 536870912 in the file"),
	   "llm.c file with n_embd 2^29: -EINVAL, \"%s\"", ckpt_last_error());

	/*
	 * state.bin cut after its fields, with a trainer-state length that
	 * makes the header's size sum wrap around to the file's size, and a
	 * DONE that agrees: damaged, not a 16-exabyte allocation.
	 */
	pathf(dir, "%s/checkpoints/step_000014", run);
	sh("cp -a %s/checkpoints/step_000007 %s", run, dir);
	pathf(path, "%s/state.bin", dir);
	fp = fopen(path, "rb");
	nf = np = extra = 0;
	if (fp) {
		uint32_t n32 = 0;

		if (fseek(fp, 12, SEEK_SET) || fread(&n32, 4, 1, fp) != 1 ||
		    fseek(fp, 32, SEEK_SET) || fread(&np, 8, 1, fp) != 1 ||
		    fread(&extra, 8, 1, fp) != 1)
			diag("cannot read the header of %s", path);
		nf = n32;
		fclose(fp);
	}
	base = 72 + 40 * nf + 8;
	len = 0 - (extra + 2 * np) * 4;
	sh("truncate -s %llu %s", base, path);
	v64 = base;
	patch(path, 16, &v64, 8);
	v64 = len;
	patch(path, 48, &v64, 8);
	pathf(path, "%s/DONE", dir);
	fp = fopen(path, "r+");
	if (fp && fscanf(fp, "kgpt-checkpoint 1 step %*d model.bin %llu %x state.bin %llu %x",
			 &ms, &mcrc, &ss, &scrc) == 4) {
		int n = snprintf(done, sizeof(done),
				 "kgpt-checkpoint 1\nstep 14\nmodel.bin %llu %08x\nstate.bin %llu %08x\n",
				 ms, mcrc, base, scrc);

		rewind(fp);
		if (fwrite(done, 1, n, fp) != (size_t)n)
			diag("cannot write %s", path);
		fflush(fp);
		if (ftruncate(fileno(fp), n))
			diag("cannot truncate %s", path);
	} else {
		diag("cannot rewrite %s", path);
	}
	if (fp)
		fclose(fp);
	r = ckpt_load(dir, &b, NULL, CKPT_STATE_ANY);
	ok(r == -EBADMSG && has("header is inconsistent"),
	   "state.bin whose sizes wrap around: -EBADMSG, \"%s\"", ckpt_last_error());
	expect_fallback(run, "state.bin whose sizes wrap around");
	sh("rm -rf %s", dir);
}

static void test_resave(const char *run, struct trainer_state *st)
{
	struct trainer_state got;

	a.params[2] = 99.0f;
	st->offset = 777;
	ok(ckpt_save(run, &a, st, sizeof(*st), 2) == 0, "save step 7 again (changed)");
	ok(ckpt_load_latest(run, &b, &got, sizeof(got), NULL, 0) == 0 && same_model(&a, &b) &&
	   got.offset == 777, "the new step 7 replaced the old one");
	ok(exists("%s/checkpoints/step_000006/DONE", run) && no_temporaries(run),
	   "step 6 kept, no temporaries");
}

static void test_empty(void)
{
	char run[PATHLEN], path[PATHLEN];
	struct trainer_state got;

	pathf(run, "%s/empty", tmp);
	ok(ckpt_find_latest(run, path, sizeof(path)) == -ENOENT &&
	   ckpt_load_latest(run, &b, &got, sizeof(got), NULL, 0) == -ENOENT,
	   "no checkpoint at all: -ENOENT");
	pathf(path, "%s/checkpoints/step_000001", run);
	sh("mkdir -p %s && echo junk > %s/DONE", path, path);
	ok(ckpt_load_latest(run, &b, &got, sizeof(got), NULL, 0) == -EBADMSG &&
	   has("no usable checkpoint"), "only damaged checkpoints: -EBADMSG, \"%s\"",
	   ckpt_last_error());
}

static long long ckpt_bytes(const char *run, int step)
{
	char p[PATHLEN];
	long long n;

	pathf(p, "%s/checkpoints/step_%06d/model.bin", run, step);
	n = file_size(p);
	pathf(p, "%s/checkpoints/step_%06d/state.bin", run, step);
	return n + file_size(p);
}

/* Save step 1 into run, then step 2 must fail with err, step 1 intact. */
static void failed_save(const char *run, const char *what, int want, const char *msg)
{
	struct trainer_state st = { .shard = 1 }, got;
	int r;

	a.step = 2;
	r = ckpt_save(run, &a, &st, sizeof(st), 2);
	ok(r == want && has(msg), "%s: save fails with %d (%d), \"%s\"", what, want, r,
	   ckpt_last_error());
	ok(ckpt_load_latest(run, &b, &got, sizeof(got), NULL, 0) == 0 && b.step == 1,
	   "%s: the previous checkpoint is intact and loads", what);
	ok(!exists("%s/checkpoints/step_000002", run), "%s: no step_000002", what);
}

static void test_write_failures(int can_mount)
{
	struct trainer_state st = { .shard = 1 };
	char mnt[PATHLEN], run[PATHLEN], opts[64];
	long long need;
	pid_t pid;
	int status;

	pathf(run, "%s/size", tmp);
	a.step = 1;
	ckpt_save(run, &a, &st, sizeof(st), 2);
	need = ckpt_bytes(run, 1);

	/* unwritable directory */
	pathf(mnt, "%s/ro", tmp);
	pathf(run, "%s/ro/run", tmp);
	mkdir(mnt, 0755);
	if (can_mount) {
		snprintf(opts, sizeof(opts), "size=%lld", 3 * need + (1 << 20));
		mount("tmpfs", mnt, "tmpfs", 0, opts);
	}
	a.step = 1;
	ok(ckpt_save(run, &a, &st, sizeof(st), 2) == 0, "unwritable: save step 1 first");
	if (can_mount)
		ok(mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL) == 0,
		   "remount the run's filesystem read-only");
	else
		sh("chmod 0555 %s/checkpoints %s %s", run, run, mnt);
	if (can_mount || geteuid() != 0)
		failed_save(run, "unwritable directory", can_mount ? -EROFS : -EACCES,
			    "cannot create");
	else
		ok(1, "# SKIP root without mount: permissions do not stop root");
	if (can_mount)
		umount(mnt);
	else
		sh("chmod -R u+w %s", mnt);

	/* full disk: room for one checkpoint and a half */
	if (can_mount) {
		pathf(mnt, "%s/full", tmp);
		pathf(run, "%s/full/run", tmp);
		mkdir(mnt, 0755);
		snprintf(opts, sizeof(opts), "size=%lld", need + need / 2);
		ok(mount("tmpfs", mnt, "tmpfs", 0, opts) == 0, "mount a %lld-byte tmpfs",
		   need + need / 2);
		a.step = 1;
		ok(ckpt_save(run, &a, &st, sizeof(st), 2) == 0, "full disk: step 1 fits");
		failed_save(run, "full disk", -ENOSPC, "disk full writing");
		ok(has("the previous checkpoint is intact"), "the message says so");
		ok(no_temporaries(run), "full disk: the partial checkpoint was removed");
		umount(mnt);
	} else {
		ok(1, "# SKIP mounting a tmpfs is not permitted here");
	}

	/* file size limit (what a full disk looks like without a mount) */
	pathf(run, "%s/fsize", tmp);
	a.step = 1;
	ok(ckpt_save(run, &a, &st, sizeof(st), 2) == 0, "file size limit: save step 1");
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		struct rlimit rl = { need / 4, need / 4 };

		signal(SIGXFSZ, SIG_IGN);
		setrlimit(RLIMIT_FSIZE, &rl);
		a.step = 2;
		_exit(ckpt_save(run, &a, &st, sizeof(st), 2) == -EFBIG &&
		      has("file size limit") ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "RLIMIT_FSIZE: the save fails with -EFBIG and says so");
	ok(ckpt_load_latest(run, &b, &st, sizeof(st), NULL, 0) == 0 && b.step == 1 &&
	   no_temporaries(run), "RLIMIT_FSIZE: step 1 intact, no temporaries");
}

static int try_mount(void)
{
	char mnt[PATHLEN];
	int okm;

	pathf(mnt, "%s/probe", tmp);
	mkdir(mnt, 0755);
	okm = mount("tmpfs", mnt, "tmpfs", 0, "size=64k") == 0;
	if (okm)
		umount(mnt);
	rmdir(mnt);
	return okm;
}

int main(void)
{
	struct trainer_state st = {
		.shard = 3, .offset = 123456, .rng = { 1, 2, 3, 0xffffffffffffffffULL },
		.elapsed = 12.5, .metrics_rows = 41, .best_val = 4.25f, .tag = "kgpt",
	};
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char run[PATHLEN];

	ok(ckpt_crc32c(0, "123456789", 9) == 0xe3069283u, "CRC-32C check value");
	ok(ckpt_crc32c(ckpt_crc32c(0, "1234", 4), "56789", 5) == 0xe3069283u,
	   "CRC-32C continues across calls");

	pathf(tmp, "%s/kgpt-ckpt-XXXXXX", base);
	if (!ok(mkdtemp(tmp) != NULL, "temporary directory") ||
	    !ok(gpt2_init(&a, 1) == 0 && gpt2_init(&b, 1) == 0, "two models initialised"))
		return tap_done();
	pathf(run, "%s/run", tmp);

	test_roundtrip(run, &st);
	test_llmc(run);
	test_keep(run, &st);
	test_damage(run);
	test_foreign(run);
	test_fuzz_findings(run);
	test_resave(run, &st);
	test_empty();
	test_write_failures(try_mount());

	if (!getenv("KGPT_KEEP_TMP"))
		sh("rm -rf %s", tmp);
	gpt2_free(&a);
	gpt2_free(&b);
	return tap_done();
}
