// SPDX-License-Identifier: MIT
/*
 * Fuzz target: the checkpoint readers (llm.c's model file and kgpt's
 * checkpoint directory) on arbitrary files, against the model of the
 * configuration this is built for (tests/fuzz/fuzz.config).
 *
 * A complete checkpoint of that model is written once at start-up and
 * kept as a template. An input then replaces one of its files:
 *
 *   byte 0        which file (low two bits):
 *                   0  model.bin read alone by ckpt_load_llmc(),
 *                   1  model.bin of the checkpoint,
 *                   2  state.bin of the checkpoint,
 *                   3  DONE of the checkpoint;
 *   bytes 1..8    the file's length L (little-endian uint64);
 *   bytes 9..     the file's first bytes; past them, up to L, the file
 *                 holds the template's bytes (zeros past the template).
 *                 An L beyond the template by more than 64 bytes means
 *                 "the given bytes alone".
 *
 * So a short input describes a whole file of the right size with a
 * damaged header, and truncated or padded files are one field away.
 * For files 1 and 2 the DONE marker is rewritten to match the file's new
 * size and checksum, so that the reader goes past it into the file.
 * Each of files 1..3 has a checkpoint directory of its own, whose other
 * files stay the template's.
 * Checked: every reader returns 0 or a negative errno without crashing;
 * a checkpoint that loads also verifies; ckpt_load_llmc() accepts only a
 * file of the template's size.
 *
 * KGPT_FUZZ_TMPDIR: where the files go (default /dev/shm when writable,
 * else $TMPDIR or /tmp). KGPT_FUZZ_SEEDS=DIR: write seed inputs (the
 * template's headers) into DIR and exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpt2/checkpoint.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PATHLEN		1024
#define STATE_LEN	40		/* the template's trainer state, bytes */
#define HEAD		9		/* input bytes before the file's */
#define SLACK		64		/* L may exceed the template by this */

enum { F_LLMC, F_MODEL, F_STATE, F_DONE, F_NUM };
enum { T_MODEL, T_STATE, T_DONE, T_NUM };

static const char *const tmpl_name[T_NUM] = { "model.bin", "state.bin", "DONE" };

static struct gpt2 model;
static char work[PATHLEN];
static char run_dir[F_NUM][PATHLEN], ckpt_dir[F_NUM][PATHLEN];
static char llmc_path[PATHLEN];
static uint8_t *tmpl[T_NUM];
static size_t tmpl_len[T_NUM];
static uint32_t tmpl_crc[T_NUM];

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz_checkpoint: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

static void __attribute__((format(printf, 2, 3)))
pathf(char *buf, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, PATHLEN, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= PATHLEN)
		die("path too long");
}

static uint8_t *read_all(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	size_t off = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st))
		die("cannot open %s", path);
	buf = malloc(st.st_size ? st.st_size : 1);
	if (!buf)
		die("out of memory");
	while (off < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + off, st.st_size - off);

		if (r <= 0)
			die("cannot read %s", path);
		off += (size_t)r;
	}
	close(fd);
	*len = off;
	return buf;
}

static void write_all(const char *path, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		die("cannot create %s", path);
	while (len) {
		ssize_t w = write(fd, p, len);

		if (w <= 0)
			die("cannot write %s", path);
		p += w;
		len -= (size_t)w;
	}
	if (close(fd))
		die("cannot write %s", path);
}

/* DONE as ckpt_save() writes it, for the given sizes and checksums. */
static void write_done(const char *dir, size_t msize, uint32_t mcrc,
		       size_t ssize, uint32_t scrc)
{
	char path[PATHLEN], buf[256];
	int n;

	n = snprintf(buf, sizeof(buf),
		     "kgpt-checkpoint 1\nstep 0\nmodel.bin %zu %08x\nstate.bin %zu %08x\n",
		     msize, mcrc, ssize, scrc);
	pathf(path, "%s/DONE", dir);
	write_all(path, buf, (size_t)n);
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	remove(path);
	return 0;
}

static void cleanup(void)
{
	if (work[0])
		nftw(work, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *tmp_base(void)
{
	const char *d = getenv("KGPT_FUZZ_TMPDIR");

	if (d && *d)
		return d;
	if (!access("/dev/shm", W_OK | X_OK))
		return "/dev/shm";
	d = getenv("TMPDIR");
	return d && *d ? d : "/tmp";
}

/* One seed: which file, its length, its first n bytes. */
static void seed(const char *dir, const char *name, int which, uint64_t len,
		 const uint8_t *head, size_t n)
{
	char path[PATHLEN];
	uint8_t *buf = malloc(HEAD + n);

	if (!buf)
		die("out of memory");
	buf[0] = (uint8_t)which;
	memcpy(buf + 1, &len, 8);
	memcpy(buf + HEAD, head, n);
	pathf(path, "%s/%s", dir, name);
	write_all(path, buf, HEAD + n);
	free(buf);
}

static void write_seeds(const char *dir)
{
	size_t mh = CKPT_LLMC_HEADER * 4 + 64, sh;
	uint32_t nfields;

	/* state.bin: the 72-byte header, then nfields 40-byte fields */
	memcpy(&nfields, tmpl[T_STATE] + 12, 4);
	sh = 72 + (size_t)nfields * 40 + 64;
	if (sh > tmpl_len[T_STATE])
		sh = tmpl_len[T_STATE];
	mkdir(dir, 0755);
	seed(dir, "llmc", F_LLMC, tmpl_len[T_MODEL], tmpl[T_MODEL], mh);
	seed(dir, "llmc-truncated", F_LLMC, mh - 1, tmpl[T_MODEL], mh);
	seed(dir, "model", F_MODEL, tmpl_len[T_MODEL], tmpl[T_MODEL], mh);
	seed(dir, "state", F_STATE, tmpl_len[T_STATE], tmpl[T_STATE], sh);
	seed(dir, "state-truncated", F_STATE, sh, tmpl[T_STATE], sh);
	seed(dir, "done", F_DONE, tmpl_len[T_DONE], tmpl[T_DONE], tmpl_len[T_DONE]);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[PATHLEN], tdir[PATHLEN];
	uint8_t blob[STATE_LEN];
	const char *seeds;

	pathf(work, "%s/kgpt-fuzz-ckpt.XXXXXX", tmp_base());
	if (!mkdtemp(work)) {
		work[0] = '\0';
		die("cannot create a directory in %s", tmp_base());
	}
	atexit(cleanup);
	if (gpt2_init(&model, 1))
		die("gpt2_init failed");
	for (int i = 0; i < STATE_LEN; i++)
		blob[i] = (uint8_t)(i * 37 + 1);
	model.step = 0;
	pathf(tdir, "%s/template", work);
	if (ckpt_save(tdir, &model, blob, STATE_LEN, 0))
		die("cannot write the template checkpoint");
	for (int t = 0; t < T_NUM; t++) {
		pathf(path, "%s/checkpoints/step_000000/%s", tdir, tmpl_name[t]);
		tmpl[t] = read_all(path, &tmpl_len[t]);
		tmpl_crc[t] = ckpt_crc32c(0, tmpl[t], tmpl_len[t]);
	}

	seeds = getenv("KGPT_FUZZ_SEEDS");
	if (seeds && *seeds) {
		write_seeds(seeds);
		exit(0);
	}

	/* the checkpoints the inputs damage: runN/checkpoints/step_000000 */
	pathf(llmc_path, "%s/llmc.bin", work);
	for (int f = F_MODEL; f < F_NUM; f++) {
		pathf(run_dir[f], "%s/run%d", work, f);
		pathf(path, "%s/checkpoints", run_dir[f]);
		pathf(ckpt_dir[f], "%s/step_000000", path);
		if (mkdir(run_dir[f], 0755) || mkdir(path, 0755) ||
		    mkdir(ckpt_dir[f], 0755))
			die("cannot create %s", ckpt_dir[f]);
		for (int t = 0; t < T_NUM; t++) {
			pathf(path, "%s/%s", ckpt_dir[f], tmpl_name[t]);
			write_all(path, tmpl[t], tmpl_len[t]);
		}
	}
	return 0;
}

/* The file an input describes, in a malloc()ed buffer of *len bytes. */
static uint8_t *make_file(const uint8_t *data, size_t size, int t, size_t *len)
{
	const uint8_t *head = data + HEAD;
	size_t n = size - HEAD, l;
	uint64_t want;
	uint8_t *buf;

	memcpy(&want, data + 1, 8);
	l = want > tmpl_len[t] + SLACK ? n : (size_t)want;
	buf = malloc(l ? l : 1);
	if (!buf)
		die("out of memory");
	memcpy(buf, head, n < l ? n : l);
	if (n < l) {
		size_t from_tmpl = tmpl_len[t] > n ? tmpl_len[t] - n : 0;

		if (from_tmpl > l - n)
			from_tmpl = l - n;
		memcpy(buf + n, tmpl[t] + n, from_tmpl);
		memset(buf + n + from_tmpl, 0, l - n - from_tmpl);
	}
	*len = l;
	return buf;
}

static void check_rc(const char *what, int err)
{
	if (err > 0)
		die("%s returned %d, neither 0 nor a negative errno", what, err);
}

/* The readers of a whole checkpoint directory. */
static void read_checkpoint(int f)
{
	static uint8_t blob[STATE_LEN];
	char found[PATHLEN];
	int verify, latest, load;

	verify = ckpt_verify(ckpt_dir[f]);
	check_rc("ckpt_verify()", verify);
	latest = ckpt_load_latest(run_dir[f], &model, NULL, CKPT_STATE_ANY,
				  found, sizeof(found));
	check_rc("ckpt_load_latest()", latest);
	load = ckpt_load(ckpt_dir[f], &model, blob, sizeof(blob));
	check_rc("ckpt_load()", load);
	if ((!latest || !load) && verify)
		die("a checkpoint that does not verify (%d) was loaded", verify);
	if (!latest && strcmp(found, ckpt_dir[f]))
		die("ckpt_load_latest() loaded %s, not %s", found, ckpt_dir[f]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int which, t, err;
	uint8_t *file;
	size_t len;
	char path[PATHLEN];

	if (size < HEAD)
		return 0;
	which = data[0] & 3;
	t = which == F_STATE ? T_STATE : which == F_DONE ? T_DONE : T_MODEL;
	file = make_file(data, size, t, &len);

	if (which == F_LLMC) {
		write_all(llmc_path, file, len);
		err = ckpt_load_llmc(llmc_path, &model);
		check_rc("ckpt_load_llmc()", err);
		if (!err && len != tmpl_len[T_MODEL])
			die("ckpt_load_llmc() accepted a file of %zu bytes, not %zu",
			    len, tmpl_len[T_MODEL]);
		free(file);
		return 0;
	}

	pathf(path, "%s/%s", ckpt_dir[which], tmpl_name[t]);
	write_all(path, file, len);
	if (which == F_MODEL)
		write_done(ckpt_dir[which], len, ckpt_crc32c(0, file, len),
			   tmpl_len[T_STATE], tmpl_crc[T_STATE]);
	else if (which == F_STATE)
		write_done(ckpt_dir[which], tmpl_len[T_MODEL], tmpl_crc[T_MODEL],
			   len, ckpt_crc32c(0, file, len));
	free(file);
	read_checkpoint(which);
	return 0;
}
