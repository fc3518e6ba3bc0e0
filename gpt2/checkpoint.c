// SPDX-License-Identifier: MIT
/*
 * Checkpoints: llm.c's model file, kgpt's state file, atomic directories.
 * The formats and the guarantees are described in gpt2/checkpoint.h.
 *
 * Every write goes through struct wfile (checked, CRC'd, counted), every
 * read through struct rfile; a checkpoint directory is built under a
 * temporary name and renamed into place only when complete.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

#include "gpt2/checkpoint.h"
#include "gpt2/dist.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "checkpoint files are little-endian; this host is not");

#define C	GPT2_C
#define L	GPT2_L

#define IO_CHUNK	(4u << 20)	/* bytes per read/write call */
#define STATE_MAGIC	"KGPTSTAT"
#define STATE_END	"KEND"
#define DONE_MAGIC	"kgpt-checkpoint"
#define MAX_REPORTED	6		/* mismatching fields in one message */

/* ------------------------------------------------------------------------
 * Messages
 */

static char last_msg[2048];
static int quiet;	/* record messages without printing them */

const char *ckpt_last_error(void)
{
	return last_msg;
}

static void __attribute__((format(printf, 2, 3)))
report(int warning, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_msg, sizeof(last_msg), fmt, ap);
	va_end(ap);
	if (!quiet)
		fprintf(stderr, "kgpt: %s%s\n", warning ? "warning: " : "", last_msg);
}

#define error(...)	report(0, __VA_ARGS__)
#define warn(...)	report(1, __VA_ARGS__)

/* A path from fmt into buf; -ENAMETOOLONG (with a message) if too long. */
static int __attribute__((format(printf, 3, 4)))
pathf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len) {
		error("path too long: %.200s...", buf);
		return -ENAMETOOLONG;
	}
	return 0;
}

static int path_join(char *buf, size_t len, const char *dir, const char *name)
{
	return pathf(buf, len, "%s/%s", dir, name);
}

/* ------------------------------------------------------------------------
 * CRC-32C (Castagnoli polynomial 0x82f63b78, reflected), as in iSCSI and
 * ext4: the SSE4.2 instruction when the compiler targets it, else a
 * slicing-by-8 table. Both give the same value.
 */

#if !defined(__SSE4_2__)
static uint32_t crc_table[8][256];
static int crc_ready;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & -(c & 1));
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^
					  crc_table[0][crc_table[t - 1][i] & 0xff];
	crc_ready = 1;
}
#endif

uint32_t ckpt_crc32c(uint32_t crc, const void *buf, size_t n)
{
	const unsigned char *p = buf;
	uint64_t c = ~crc;

#if defined(__SSE4_2__)
	while (n >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c = _mm_crc32_u64(c, w);
		p += 8;
		n -= 8;
	}
	while (n--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
#else
	if (!crc_ready)
		crc_init();
	while (n >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		w ^= c;
		c = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
		    crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
		    crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
		    crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
		p += 8;
		n -= 8;
	}
	while (n--)
		c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
#endif
	return ~(uint32_t)c;
}

/* ------------------------------------------------------------------------
 * Checked writing
 */

struct wfile {
	int fd;
	const char *path;
	const char *intact;	/* what is still safe, for error messages */
	uint32_t crc;
	uint64_t bytes;
};

static int write_failed(const struct wfile *f, int err)
{
	if (err == ENOSPC || err == EDQUOT)
		error("disk full writing %s; %s", f->path, f->intact);
	else if (err == EFBIG)
		error("file size limit reached writing %s (ulimit -f); %s", f->path, f->intact);
	else
		error("cannot write %s: %s; %s", f->path, strerror(err), f->intact);
	return -err;
}

static int wf_write(struct wfile *f, const void *buf, size_t n)
{
	const char *p = buf;

	f->crc = ckpt_crc32c(f->crc, buf, n);
	f->bytes += n;
	while (n) {
		ssize_t w = write(f->fd, p, n < IO_CHUNK ? n : IO_CHUNK);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return write_failed(f, errno);
		}
		if (w == 0)
			return write_failed(f, EIO);
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* n reals as float32. */
static int wf_write_reals(struct wfile *f, const real *x, size_t n)
{
	float buf[4096];
	int err = 0;

	if (sizeof(real) == sizeof(float))
		return wf_write(f, x, n * sizeof(float));
	for (size_t i = 0; i < n && !err; i += 4096) {
		size_t k = n - i < 4096 ? n - i : 4096;

		for (size_t j = 0; j < k; j++)
			buf[j] = (float)x[i + j];
		err = wf_write(f, buf, k * sizeof(float));
	}
	return err;
}

static int wf_write_zeros(struct wfile *f, size_t nfloats)
{
	static const float zeros[4096];
	int err = 0;

	while (nfloats && !err) {
		size_t k = nfloats < 4096 ? nfloats : 4096;

		err = wf_write(f, zeros, k * sizeof(float));
		nfloats -= k;
	}
	return err;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = 0;

	if (fd < 0 || fsync(fd) < 0)
		err = errno;
	if (fd >= 0)
		close(fd);
	/* some filesystems cannot fsync a directory; that is not a failure */
	if (err == EINVAL || err == EROFS)
		err = 0;
	if (err)
		error("cannot sync directory %s: %s", dir, strerror(err));
	return -err;
}

typedef int (*write_fn)(struct wfile *f, const void *arg);

/*
 * Create path (replacing it), fill it with fn, fsync and close it.
 * The size and CRC of what was written come back in *out.
 */
static int write_file(const char *path, const char *intact, write_fn fn,
		      const void *arg, struct wfile *out)
{
	struct wfile f = { .path = path, .intact = intact };
	int err;

	f.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (f.fd < 0) {
		err = errno;
		error("cannot create %s: %s; %s", path, strerror(err), intact);
		return -err;
	}
	err = fn(&f, arg);
	if (!err && fsync(f.fd) < 0)
		err = write_failed(&f, errno);
	if (close(f.fd) < 0 && !err)
		err = write_failed(&f, errno);
	if (out)
		*out = f;
	return err;
}

/* ------------------------------------------------------------------------
 * Checked reading
 */

struct rfile {
	int fd;
	const char *path;
	uint32_t crc;
	uint64_t pos;
	uint64_t size;		/* from fstat */
};

static int rf_open(struct rfile *f, const char *path)
{
	struct stat st;
	int err;

	memset(f, 0, sizeof(*f));
	f->path = path;
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0) {
		err = errno;
		error("cannot open %s: %s", path, strerror(err));
		return -err;
	}
	if (fstat(f->fd, &st) < 0) {
		err = errno;
		error("cannot stat %s: %s", path, strerror(err));
		close(f->fd);
		return -err;
	}
	f->size = (uint64_t)st.st_size;
	return 0;
}

static void rf_close(struct rfile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

static int truncated(const char *path, uint64_t want, uint64_t have)
{
	if (have < want)
		error("%s: truncated: expected %llu bytes, found %llu", path,
		      (unsigned long long)want, (unsigned long long)have);
	else
		error("%s: wrong size: expected %llu bytes, found %llu (trailing data)",
		      path, (unsigned long long)want, (unsigned long long)have);
	return -EBADMSG;
}

static int rf_read(struct rfile *f, void *buf, size_t n)
{
	char *p = buf;

	while (n) {
		ssize_t r = read(f->fd, p, n < IO_CHUNK ? n : IO_CHUNK);

		if (r < 0) {
			int err = errno;

			if (err == EINTR)
				continue;
			error("cannot read %s: %s", f->path, strerror(err));
			return -err;
		}
		if (r == 0)	/* shrank since fstat */
			return truncated(f->path, f->pos + n, f->pos);
		f->crc = ckpt_crc32c(f->crc, p, (size_t)r);
		f->pos += (uint64_t)r;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int rf_read_reals(struct rfile *f, real *x, size_t n)
{
	float buf[4096];
	int err = 0;

	if (sizeof(real) == sizeof(float))
		return rf_read(f, x, n * sizeof(float));
	for (size_t i = 0; i < n && !err; i += 4096) {
		size_t k = n - i < 4096 ? n - i : 4096;

		err = rf_read(f, buf, k * sizeof(float));
		for (size_t j = 0; !err && j < k; j++)
			x[i + j] = buf[j];
	}
	return err;
}

/* Read n floats into nowhere (still checksummed); *nonzero if any is. */
static int rf_skip_floats(struct rfile *f, size_t n, int *nonzero)
{
	float buf[4096];
	int err = 0;

	while (n && !err) {
		size_t k = n < 4096 ? n : 4096;

		err = rf_read(f, buf, k * sizeof(float));
		for (size_t j = 0; !err && nonzero && j < k; j++)
			if (buf[j] != 0.0f)
				*nonzero = 1;
		n -= k;
	}
	return err;
}

/* CRC of the next n bytes (or of the rest with n = UINT64_MAX). */
static int rf_crc_rest(struct rfile *f, uint64_t n)
{
	static char buf[1 << 20];

	if (n == UINT64_MAX)
		n = f->size - f->pos;
	while (n) {
		size_t k = n < sizeof(buf) ? (size_t)n : sizeof(buf);
		int err = rf_read(f, buf, k);

		if (err)
			return err;
		n -= k;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * The configuration fingerprint: every compile-time size and mechanism
 * symbol as a named field. Derived fields (tensor sizes) are reported only
 * when no primary field explains the difference.
 */

struct fp_field {
	char name[32];
	int64_t value;
	const char *symbol;	/* the Kconfig symbol that sets it */
	int derived;
};

struct state_field {		/* on disk */
	char name[32];
	int64_t value;
};

#define FP_MAX	(64 + GPT2_L)	/* fields of this configuration */
#define FP_FILE_MAX	256		/* fields any state file may hold */
_Static_assert(FP_MAX <= FP_FILE_MAX, "n_layer too large for the state file's field table");

#ifdef CONFIG_RMLP
#define FP_RMLP		1
#define FP_R_FF		CONFIG_RMLP_R_FF
#else
#define FP_RMLP		0
#define FP_R_FF		0
#endif
#ifdef CONFIG_KV_CACHE_PRUNE
#define FP_KV		1
#define FP_KV_K		CONFIG_KV_PRUNE_K
#define FP_KV_REC	CONFIG_KV_PRUNE_RECENCY
#else
#define FP_KV		0
#define FP_KV_K		0
#define FP_KV_REC	0
#endif

static void fp_add(struct fp_field *f, int *n, const char *name, int64_t value,
		   const char *symbol, int derived)
{
	struct fp_field *x = &f[(*n)++];

	memset(x->name, 0, sizeof(x->name));
	snprintf(x->name, sizeof(x->name), "%s", name);
	x->value = value;
	x->symbol = symbol;
	x->derived = derived;
}

/* The compiled configuration's fingerprint; returns the field count. */
static int fingerprint(const struct gpt2 *m, struct fp_field *f)
{
#ifdef KGPT_RMLP_R_FF_LIST
	static const int r_ff[GPT2_L] = KGPT_RMLP_R_FF_LIST;
#endif
	int n = 0;

	fp_add(f, &n, "n_layer", GPT2_L, "CONFIG_GPT2_N_LAYER", 0);
	fp_add(f, &n, "n_head", GPT2_NH, "CONFIG_GPT2_N_HEAD", 0);
	fp_add(f, &n, "n_embd", GPT2_C, "CONFIG_GPT2_N_EMBD", 0);
	fp_add(f, &n, "block_size", GPT2_MAXT, "CONFIG_GPT2_BLOCK_SIZE", 0);
	fp_add(f, &n, "vocab_size", GPT2_V, "the GPT-2 tokenizer", 0);
	fp_add(f, &n, "padded_vocab_size", GPT2_VP, "the GPT-2 tokenizer", 0);
	fp_add(f, &n, "batch_size", GPT2_B, "CONFIG_BATCH_SIZE", 0);
	/* micro-batches per step over all ranks: N ranks at accumulation A
	 * continue a run of one process at A * N, and the reverse */
	fp_add(f, &n, "grad_accum", (int64_t)GPT2_ACCUM * dist_size(),
	       dist_size() > 1 ? "CONFIG_GPT2_GRADIENT_ACCUMULATION x ranks (NP)" :
	       "CONFIG_GPT2_GRADIENT_ACCUMULATION", 0);
	fp_add(f, &n, "bias", GPT2_HAS_BIAS, "CONFIG_GPT2_BIAS", 0);
	fp_add(f, &n, "weight_tying", IS_ENABLED(CONFIG_GPT2_WEIGHT_TYING),
	       "CONFIG_GPT2_WEIGHT_TYING", 0);
	fp_add(f, &n, "d_ff", GPT2_DFF, "CONFIG_RMLP_EXPANSION", 0);
	fp_add(f, &n, "optimizer_adamw", IS_ENABLED(CONFIG_OPTIMIZER_SELECT_ADAMW),
	       "CONFIG_OPTIMIZER_SELECT_ADAMW", 0);
	fp_add(f, &n, "rmlp", FP_RMLP, "CONFIG_RMLP", 0);
	for (int l = 0; l < GPT2_L; l++) {
		char name[32];

		snprintf(name, sizeof(name), "rmlp_r_ff.%d", l);
#ifdef KGPT_RMLP_R_FF_LIST
		fp_add(f, &n, name, r_ff[l], "CONFIG_RMLP_R_FF_PER_LAYER", 0);
#else
		fp_add(f, &n, name, FP_R_FF, "CONFIG_RMLP_R_FF", 0);
#endif
	}
	fp_add(f, &n, "rmlp_mixer", IS_ENABLED(CONFIG_RMLP_USE_MIXER),
	       "CONFIG_RMLP_USE_MIXER", 0);
	fp_add(f, &n, "rmlp_gates", IS_ENABLED(CONFIG_RMLP_USE_GATES),
	       "CONFIG_RMLP_USE_GATES", 0);
	fp_add(f, &n, "kv_prune", FP_KV, "CONFIG_KV_CACHE_PRUNE", 0);
	fp_add(f, &n, "kv_k", FP_KV_K, "CONFIG_KV_PRUNE_K", 0);
	fp_add(f, &n, "kv_recency", FP_KV_REC, "CONFIG_KV_PRUNE_RECENCY", 0);
	fp_add(f, &n, "kv_mode_v_only", IS_ENABLED(CONFIG_KV_PRUNE_MODE_V_ONLY),
	       "CONFIG_KV_PRUNE_MODE_V_ONLY", 0);
	fp_add(f, &n, "kv_learned", IS_ENABLED(CONFIG_KV_PRUNE_LEARNED),
	       "CONFIG_KV_PRUNE_LEARNED", 0);
	fp_add(f, &n, "ra", IS_ENABLED(CONFIG_RA), "CONFIG_RA", 0);
	fp_add(f, &n, "ra_r", GPT2_RA_R, "CONFIG_RA_R", 0);
	fp_add(f, &n, "ra_per_head_gates", IS_ENABLED(CONFIG_RA_PER_HEAD_GATES),
	       "CONFIG_RA_PER_HEAD_GATES", 0);
	fp_add(f, &n, "ra_self_restart", IS_ENABLED(CONFIG_RA_SELF_RESTART),
	       "CONFIG_RA_SELF_RESTART", 0);
	fp_add(f, &n, "num_params", (int64_t)m->num_params, "the model layout", 1);
	for (int t = 0; t < GPT2_NUM_TENSORS; t++) {
		char name[32];

		snprintf(name, sizeof(name), "size.%s", m->tensors[t].name);
		fp_add(f, &n, name, (int64_t)m->tensors[t].size, "the model layout", 1);
	}
	return n;
}

/* Append "; " + text to a message being built in buf. */
static void msg_add(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	if (used + 3 >= len)
		return;
	if (used) {
		strcpy(buf + used, "; ");
		used += 2;
	}
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

/*
 * Compare a file's fields with the compiled ones; -EINVAL with one
 * message naming each differing field, else 0.
 */
static int fp_compare(const char *path, const struct state_field *file, int nfile,
		      const struct fp_field *want, int nwant)
{
	char msg[1536] = "";
	int primary = 0, shown = 0, hidden = 0;

	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < nwant; i++) {
			const struct fp_field *w = &want[i];
			const struct state_field *got = NULL;

			if (w->derived != pass || (pass && primary))
				continue;
			for (int j = 0; j < nfile && !got; j++)
				if (!strncmp(file[j].name, w->name, sizeof(file[j].name)))
					got = &file[j];
			if (got && got->value == w->value)
				continue;
			/* a field newer than the file: its mechanism did not
			 * exist then, so the file's value is 0 (off, empty) */
			if (!got && w->value == 0)
				continue;
			primary += !pass;
			if (shown == MAX_REPORTED) {
				hidden++;
				continue;
			}
			shown++;
			if (!got)
				msg_add(msg, sizeof(msg), "%s is not in the file (an older kgpt?)",
					w->name);
			else
				msg_add(msg, sizeof(msg),
					"%s is %lld in the file, the trainer is compiled for %lld (%s)",
					w->name, (long long)got->value, (long long)w->value,
					w->symbol);
		}
	}
	if (!shown) {
		for (int j = 0; j < nfile; j++) {
			int known = 0;

			for (int i = 0; i < nwant && !known; i++)
				known = !strncmp(file[j].name, want[i].name, sizeof(file[j].name));
			known |= file[j].value == 0;	/* the rule above, backwards */
			if (!known && shown < MAX_REPORTED) {
				shown++;
				msg_add(msg, sizeof(msg), "field %.32s (%lld) is unknown to this trainer",
					file[j].name, (long long)file[j].value);
			}
		}
	}
	if (!shown)
		return 0;
	if (hidden)
		msg_add(msg, sizeof(msg), "and %d more", hidden);
	error("%s: checkpoint of another configuration: %s", path, msg);
	return -EINVAL;
}

/* ------------------------------------------------------------------------
 * llm.c's model file
 */

/* Element counts of llm.c's 16 tensors for a header. */
static void llmc_sizes(const int32_t *h, size_t *sz)
{
	const size_t maxt = (size_t)h[2], l = (size_t)h[4], c = (size_t)h[6],
		     vp = (size_t)h[7], d = h[8] ? (size_t)h[8] : 4 * c;

	sz[P_WTE] = vp * c;
	sz[P_WPE] = maxt * c;
	sz[P_LN1W] = l * c;
	sz[P_LN1B] = l * c;
	sz[P_QKVW] = l * 3 * c * c;
	sz[P_QKVB] = l * 3 * c;
	sz[P_ATTPROJW] = l * c * c;
	sz[P_ATTPROJB] = l * c;
	sz[P_LN2W] = l * c;
	sz[P_LN2B] = l * c;
	sz[P_FCW] = l * d * c;
	sz[P_FCB] = l * d;
	sz[P_FCPROJW] = l * c * d;
	sz[P_FCPROJB] = l * c;
	sz[P_LNFW] = c;
	sz[P_LNFB] = c;
}

static void llmc_header(int32_t *h)
{
	memset(h, 0, CKPT_LLMC_HEADER * sizeof(*h));
	h[0] = CKPT_LLMC_MAGIC;
	h[1] = CKPT_LLMC_VERSION;
	h[2] = GPT2_MAXT;
	h[3] = GPT2_V;
	h[4] = GPT2_L;
	h[5] = GPT2_NH;
	h[6] = GPT2_C;
	h[7] = GPT2_VP;
	h[8] = GPT2_DFF == 4 * GPT2_C ? 0 : GPT2_DFF;
}

static uint64_t llmc_file_size(const int32_t *h)
{
	size_t sz[GPT2_LLMC_TENSORS];
	uint64_t n = 0;

	llmc_sizes(h, sz);
	for (int t = 0; t < GPT2_LLMC_TENSORS; t++)
		n += sz[t];
	return CKPT_LLMC_HEADER * sizeof(int32_t) + n * sizeof(float);
}

/* Magic and version: -EBADMSG / -EINVAL with a message, else 0. */
static int llmc_check_format(const char *path, const int32_t *h)
{
	if (h[0] != CKPT_LLMC_MAGIC) {
		error("%s: not a GPT-2 model file in llm.c's format (magic %d, expected %d)",
		      path, h[0], CKPT_LLMC_MAGIC);
		return -EBADMSG;
	}
	if (h[1] != CKPT_LLMC_VERSION) {
		error("%s: version is %d in the file; kgpt reads version %d (float32, padded vocabulary)%s",
		      path, h[1], CKPT_LLMC_VERSION,
		      h[1] == 5 ? ": version 5 is bfloat16" : "");
		return -EINVAL;
	}
	for (int i = 2; i <= 7; i++)
		if (h[i] <= 0) {
			error("%s: header entry %d is %d; the file is damaged", path, i, h[i]);
			return -EBADMSG;
		}
	if (h[8] < 0) {
		error("%s: header entry 8 (d_ff) is %d; the file is damaged", path, h[8]);
		return -EBADMSG;
	}
	return 0;
}

/* Every header field against the compiled configuration. */
static int llmc_check_config(const char *path, const int32_t *h)
{
	static const struct {
		int idx;
		const char *name, *symbol;
	} fields[] = {
		{ 2, "block_size (maxT)", "CONFIG_GPT2_BLOCK_SIZE" },
		{ 3, "vocab_size (V)", "the GPT-2 tokenizer" },
		{ 4, "n_layer", "CONFIG_GPT2_N_LAYER" },
		{ 5, "n_head", "CONFIG_GPT2_N_HEAD" },
		{ 6, "n_embd", "CONFIG_GPT2_N_EMBD" },
		{ 7, "padded_vocab_size (Vp)", "the GPT-2 tokenizer" },
		{ 8, "d_ff", "CONFIG_RMLP_EXPANSION" },
	};
	int32_t want[CKPT_LLMC_HEADER];
	char msg[1536] = "";

	llmc_header(want);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		int k = fields[i].idx;
		int32_t got = h[k], exp = want[k];

		if (k == 8) {	/* 0 means 4 * n_embd */
			if (h[6] != GPT2_C)
				continue;	/* already explained by n_embd */
			got = got ? got : 4 * GPT2_C;
			exp = GPT2_DFF;
		}
		if (got != exp)
			msg_add(msg, sizeof(msg), "%s is %d in the file, the trainer is compiled for %d (%s)",
				fields[i].name, got, exp, fields[i].symbol);
	}
	if (!msg[0])
		return 0;
	error("%s: %s", path, msg);
	return -EINVAL;
}

struct model_writer {
	const struct gpt2 *m;
};

static int write_model(struct wfile *f, const void *arg)
{
	const struct gpt2 *m = ((const struct model_writer *)arg)->m;
	int32_t h[CKPT_LLMC_HEADER];
	size_t sz[GPT2_LLMC_TENSORS];
	int err;

	llmc_header(h);
	llmc_sizes(h, sz);
	err = wf_write(f, h, sizeof(h));
	for (int t = 0; t < GPT2_LLMC_TENSORS && !err; t++) {
		const struct gpt2_tensor_info *ti = &m->tensors[t];

		if (ti->size == sz[t]) {
			err = wf_write_reals(f, m->params + ti->offset, ti->size);
		} else if (ti->size == 0) {
			err = wf_write_zeros(f, sz[t]);
		} else {
			error("%s: tensor %s has %zu elements, llm.c's layout %zu",
			      f->path, ti->name, ti->size, sz[t]);
			err = -EINVAL;
		}
	}
	return err;
}

/*
 * Open an llm.c model file, read and check its header (format, compiled
 * configuration, size). On success the file is positioned at the first
 * tensor and f->crc covers the header.
 */
static int model_open(struct rfile *f, const char *path)
{
	int32_t h[CKPT_LLMC_HEADER];
	uint64_t want;
	int err;

	err = rf_open(f, path);
	if (err)
		return err;
	if (f->size < sizeof(h)) {
		err = truncated(path, sizeof(h), f->size);
		goto fail;
	}
	err = rf_read(f, h, sizeof(h));
	if (!err)
		err = llmc_check_format(path, h);
	if (!err)
		err = llmc_check_config(path, h);
	if (err)
		goto fail;
	want = llmc_file_size(h);
	if (f->size != want) {
		err = truncated(path, want, f->size);
		goto fail;
	}
	return 0;
fail:
	rf_close(f);
	return err;
}

/* The 16 tensors into m->params; *dropped set if a nonzero absent tensor. */
static int model_read_tensors(struct rfile *f, struct gpt2 *m, int *dropped)
{
	int32_t h[CKPT_LLMC_HEADER];
	size_t sz[GPT2_LLMC_TENSORS];
	int err = 0;

	llmc_header(h);
	llmc_sizes(h, sz);
	for (int t = 0; t < GPT2_LLMC_TENSORS && !err; t++) {
		const struct gpt2_tensor_info *ti = &m->tensors[t];

		if (ti->size == sz[t])
			err = rf_read_reals(f, m->params + ti->offset, ti->size);
		else
			err = rf_skip_floats(f, sz[t], dropped);
	}
	return err;
}

/* Write to a temporary file beside `file`, then rename it into place. */
static int write_atomic(const char *file, const char *intact, write_fn fn,
			const void *arg)
{
	char tmp[4096], dir[4096];
	char *slash;
	int err;

	if (pathf(tmp, sizeof(tmp), "%s.tmp.%d", file, (int)getpid()) ||
	    pathf(dir, sizeof(dir), "%s", file))
		return -ENAMETOOLONG;
	slash = strrchr(dir, '/');
	if (slash == dir)
		dir[1] = 0;
	else if (slash)
		*slash = 0;
	else
		strcpy(dir, ".");

	err = write_file(tmp, intact, fn, arg, NULL);
	if (!err && rename(tmp, file) < 0) {
		err = -errno;
		error("cannot rename %s to %s: %s; %s", tmp, file, strerror(-err), intact);
	}
	if (err) {
		unlink(tmp);
		return err;
	}
	return fsync_dir(dir);
}

static int write_llmc(const char *file, const struct gpt2 *m)
{
	struct model_writer w = { m };
	char intact[4200];

	if (access(file, F_OK))
		snprintf(intact, sizeof(intact), "nothing was overwritten");
	else
		snprintf(intact, sizeof(intact), "%s is unchanged", file);
	return write_atomic(file, intact, write_model, &w);
}

/* The parameters are read on the host (gpt2/gpt2.h). */
int ckpt_write_llmc(const char *file, const struct gpt2 *m)
{
	int err;

	gpt2_sync_for_host(m);
	err = write_llmc(file, m);
	gpt2_sync_for_backend(m);
	return err;
}

static int load_llmc(const char *file, struct gpt2 *m)
{
	struct rfile f;
	int dropped = 0, err;

	err = model_open(&f, file);
	if (err)
		return err;
	err = model_read_tensors(&f, m, &dropped);
	rf_close(&f);
	if (err)
		return err;
	if (dropped)
		warn("%s: the file's linear biases are not zero, but the trainer is compiled without biases (CONFIG_GPT2_BIAS=n): they are dropped",
		     file);
	if (m->tensors[P_LMHEAD].size)
		memcpy(gpt2_param(m, P_LMHEAD), gpt2_param(m, P_WTE),
		       m->tensors[P_WTE].size * sizeof(real));
	return 0;
}

/* The parameters are written on the host (gpt2/gpt2.h). */
int ckpt_load_llmc(const char *file, struct gpt2 *m)
{
	int err;

	gpt2_sync_for_host(m);
	err = load_llmc(file, m);
	gpt2_sync_for_backend(m);
	return err;
}

/* ------------------------------------------------------------------------
 * kgpt's state file
 */

struct state_header {		/* on disk, 72 bytes */
	char magic[8];		/* STATE_MAGIC */
	uint32_t version;	/* CKPT_STATE_VERSION */
	uint32_t nfields;	/* struct state_field entries that follow */
	uint64_t file_size;	/* bytes, trailer included */
	int64_t step;		/* optimizer steps taken */
	uint64_t num_params;	/* floats in m and in v */
	uint64_t extra_floats;	/* kgpt's own tensors, floats */
	uint64_t state_len;	/* trainer state bytes */
	uint64_t optim_bytes;	/* optimizer section after m and v (0: AdamW) */
	uint64_t reserved;
};

struct state_trailer {		/* on disk, 8 bytes */
	uint32_t crc;		/* CRC-32C of every byte before the trailer */
	char end[4];		/* STATE_END */
};

struct state_writer {
	const struct gpt2 *m;
	const void *blob;
	size_t len;
};

static uint64_t extra_floats(const struct gpt2 *m)
{
	uint64_t n = 0;

	for (int t = GPT2_LLMC_TENSORS; t < GPT2_NUM_TENSORS; t++)
		n += m->tensors[t].size;
	return n;
}

static uint64_t state_file_size(const struct state_header *h)
{
	return sizeof(struct state_header) + (uint64_t)h->nfields * sizeof(struct state_field) +
	       (h->extra_floats + 2 * h->num_params) * sizeof(float) + h->optim_bytes +
	       h->state_len + sizeof(struct state_trailer);
}

static int write_state(struct wfile *f, const void *arg)
{
	const struct state_writer *w = arg;
	const struct gpt2 *m = w->m;
	struct fp_field fp[FP_MAX];
	struct state_field sf[FP_MAX];
	struct state_header h;
	struct state_trailer tr;
	struct optim_buf ob[OPTIM_MAX_BUFS];
	int n = fingerprint(m, fp), nb, err;

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, STATE_MAGIC, 8);
	h.version = CKPT_STATE_VERSION;
	h.nfields = (uint32_t)n;
	h.step = m->step;
	h.num_params = m->num_params;
	h.extra_floats = extra_floats(m);
	h.state_len = w->len;
	h.optim_bytes = optim_extra_bytes(m->num_params);
	h.file_size = state_file_size(&h);
	memset(sf, 0, sizeof(sf));
	for (int i = 0; i < n; i++) {
		memcpy(sf[i].name, fp[i].name, sizeof(sf[i].name));
		sf[i].value = fp[i].value;
	}
	err = wf_write(f, &h, sizeof(h));
	if (!err)
		err = wf_write(f, sf, n * sizeof(sf[0]));
	for (int t = GPT2_LLMC_TENSORS; t < GPT2_NUM_TENSORS && !err; t++)
		err = wf_write_reals(f, m->params + m->tensors[t].offset, m->tensors[t].size);
	nb = optim_state_bufs((struct gpt2_optim *)&m->opt, m->num_params, ob);
	for (int i = 0; i < nb && !err; i++)
		err = wf_write(f, ob[i].p, ob[i].bytes);
	if (!err && w->len)
		err = wf_write(f, w->blob, w->len);
	if (err)
		return err;
	tr.crc = f->crc;
	memcpy(tr.end, STATE_END, 4);
	return wf_write(f, &tr, sizeof(tr));
}

/*
 * The header's sizes add up to its file size, and each part fits in that
 * size: a damaged header whose sum only wraps around to it is refused
 * before anything is allocated from its sizes.
 */
static int state_sizes_valid(const struct state_header *h)
{
	uint64_t fs = h->file_size;

	return h->nfields <= FP_FILE_MAX && fs <= (uint64_t)1 << 60 &&
	       h->state_len <= fs && h->num_params <= fs / 8 &&
	       h->extra_floats <= fs / 4 && h->optim_bytes <= fs &&
	       fs == state_file_size(h);
}

/* Header and fields of state.bin; file size and format checked. */
static int state_open(struct rfile *f, const char *path, struct state_header *h,
		      struct state_field *sf, int *nfields)
{
	int err = rf_open(f, path);

	if (err)
		return err;
	if (f->size < sizeof(*h) + sizeof(struct state_trailer)) {
		err = truncated(path, sizeof(*h) + sizeof(struct state_trailer), f->size);
		goto fail;
	}
	err = rf_read(f, h, sizeof(*h));
	if (err)
		goto fail;
	if (memcmp(h->magic, STATE_MAGIC, 8)) {
		error("%s: not a kgpt state file (bad magic)", path);
		err = -EBADMSG;
		goto fail;
	}
	if (h->version != CKPT_STATE_VERSION) {
		error("%s: state file version is %u, this trainer reads version %d",
		      path, h->version, CKPT_STATE_VERSION);
		err = -EINVAL;
		goto fail;
	}
	if (!state_sizes_valid(h)) {
		error("%s: header is inconsistent (fields %u, size %llu); the file is damaged",
		      path, h->nfields, (unsigned long long)h->file_size);
		err = -EBADMSG;
		goto fail;
	}
	if (f->size != h->file_size) {
		err = truncated(path, h->file_size, f->size);
		goto fail;
	}
	*nfields = (int)h->nfields;
	err = rf_read(f, sf, h->nfields * sizeof(*sf));
	if (!err)
		return 0;
fail:
	rf_close(f);
	return err;
}

static int state_check_trailer(struct rfile *f)
{
	uint32_t crc = f->crc;
	struct state_trailer tr;
	int err = rf_read(f, &tr, sizeof(tr));

	if (err)
		return err;
	if (memcmp(tr.end, STATE_END, 4) || tr.crc != crc) {
		error("%s: checksum mismatch (stored %08x, computed %08x): the file is damaged",
		      f->path, tr.crc, crc);
		return -EBADMSG;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * The completion marker
 */

struct manifest {
	long long step;
	uint64_t model_size, state_size;
	uint32_t model_crc, state_crc;
};

static int write_done(struct wfile *f, const void *arg)
{
	const struct manifest *mf = arg;
	char buf[256];
	int n = snprintf(buf, sizeof(buf),
			 "%s 1\nstep %lld\nmodel.bin %llu %08x\nstate.bin %llu %08x\n",
			 DONE_MAGIC, mf->step, (unsigned long long)mf->model_size,
			 mf->model_crc, (unsigned long long)mf->state_size, mf->state_crc);

	return wf_write(f, buf, (size_t)n);
}

static int read_done(const char *dir, struct manifest *mf)
{
	char path[4096], magic[32];
	unsigned long long ms, ss;
	int version, err;
	FILE *fp;

	err = path_join(path, sizeof(path), dir, "DONE");
	if (err)
		return err;
	fp = fopen(path, "re");
	if (!fp) {
		err = errno;
		if (err == ENOENT)
			error("%s: no DONE marker (an unfinished checkpoint)", dir);
		else
			error("cannot open %s: %s", path, strerror(err));
		return -err;
	}
	if (fscanf(fp, "%31s %d step %lld model.bin %llu %x state.bin %llu %x",
		   magic, &version, &mf->step, &ms, &mf->model_crc, &ss,
		   &mf->state_crc) != 7 || strcmp(magic, DONE_MAGIC) || version != 1) {
		fclose(fp);
		error("%s: damaged completion marker", path);
		return -EBADMSG;
	}
	fclose(fp);
	mf->model_size = ms;
	mf->state_size = ss;
	return 0;
}

static int check_against_done(const struct rfile *f, uint64_t size, uint32_t crc)
{
	if (f->size != size)
		return truncated(f->path, size, f->size);
	if (f->crc != crc) {
		error("%s: checksum mismatch (DONE says %08x, computed %08x): the file is damaged",
		      f->path, crc, f->crc);
		return -EBADMSG;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Checkpoint directories
 */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (remove(path) < 0 && errno != ENOENT)
		warn("cannot remove %s: %s", path, strerror(errno));
	return 0;
}

static void rm_rf(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

struct ckpt_entry {
	long long step;
	char name[64];
};

static int entry_cmp(const void *a, const void *b)
{
	long long x = ((const struct ckpt_entry *)a)->step;
	long long y = ((const struct ckpt_entry *)b)->step;

	return x < y ? 1 : x > y ? -1 : 0;	/* newest first */
}

/*
 * The step_N directories of dir, newest first, in *out (malloc'ed; free
 * it). Returns their count, 0 when dir does not exist, or -errno.
 */
static int list_checkpoints(const char *dir, struct ckpt_entry **out)
{
	struct ckpt_entry *e = NULL;
	struct dirent *d;
	int n = 0, cap = 0;
	DIR *dp;

	*out = NULL;
	dp = opendir(dir);
	if (!dp) {
		int err = errno;

		if (err == ENOENT)
			return 0;
		error("cannot read directory %s: %s", dir, strerror(err));
		return -err;
	}
	while ((d = readdir(dp))) {
		char *end;
		long long s;

		if (strncmp(d->d_name, "step_", 5) || !d->d_name[5] ||
		    strlen(d->d_name) >= sizeof(e->name))
			continue;
		s = strtoll(d->d_name + 5, &end, 10);
		if (*end || s < 0)
			continue;
		if (n == cap) {
			struct ckpt_entry *x;

			cap = cap ? 2 * cap : 16;
			x = realloc(e, cap * sizeof(*e));
			if (!x) {
				closedir(dp);
				free(e);
				error("out of memory listing %s", dir);
				return -ENOMEM;
			}
			e = x;
		}
		e[n].step = s;
		strcpy(e[n].name, d->d_name);
		n++;
	}
	closedir(dp);
	if (n)
		qsort(e, n, sizeof(*e), entry_cmp);
	*out = e;
	return n;
}

static int has_done(const char *ckdir, const char *name)
{
	char path[4096];
	struct stat st;

	return !pathf(path, sizeof(path), "%s/%s/DONE", ckdir, name) &&
	       stat(path, &st) == 0;
}

/* Delete all but the `keep` newest complete checkpoints up to step. */
static void prune(const char *ckdir, long long step, int keep)
{
	struct ckpt_entry *e;
	int n = list_checkpoints(ckdir, &e), kept = 0;
	struct dirent *d;
	DIR *dp;

	for (int i = 0; i < n; i++) {
		char path[4096];

		if (e[i].step <= step && has_done(ckdir, e[i].name) &&
		    (keep <= 0 || kept < keep)) {
			kept++;
			continue;
		}
		if (e[i].step < step && keep <= 0)
			continue;	/* keep everything older */
		if (!path_join(path, sizeof(path), ckdir, e[i].name))
			rm_rf(path);
	}
	free(e);

	/* leftovers of interrupted saves */
	dp = opendir(ckdir);
	if (!dp)
		return;
	while ((d = readdir(dp))) {
		char path[4096];

		char final[4096];

		if (strncmp(d->d_name, ".tmp-step_", 10) && strncmp(d->d_name, ".old-step_", 10))
			continue;
		if (path_join(path, sizeof(path), ckdir, d->d_name))
			continue;
		/* an old copy whose replacement never arrived is the only copy */
		if (!strncmp(d->d_name, ".old-", 5) &&
		    !path_join(final, sizeof(final), ckdir, d->d_name + 5) &&
		    access(final, F_OK) && errno == ENOENT && rename(path, final) == 0)
			continue;
		rm_rf(path);
	}
	closedir(dp);
}

static int make_dir(const char *path, const char *intact)
{
	int err;

	if (mkdir(path, 0755) == 0 || errno == EEXIST)
		return 0;
	err = errno;
	error("cannot create %s: %s; %s", path, strerror(err), intact);
	return -err;
}

/* Put the complete directory tmp in place of final (which may exist). */
static int install(const char *ckdir, const char *tmp, const char *final,
		   const char *name, const char *intact)
{
	char old[4096];
	int err;

	if (rename(tmp, final) == 0)
		return 0;
	err = errno;
	if (err != EEXIST && err != ENOTEMPTY)
		goto fail;
	/* same step saved again: swap atomically, then drop the old one */
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_EXCHANGE) == 0) {
		rm_rf(tmp);
		return 0;
	}
	/* no RENAME_EXCHANGE here: move the old one aside first */
	if (pathf(old, sizeof(old), "%s/.old-%s", ckdir, name))
		return -ENAMETOOLONG;
	rm_rf(old);
	if (rename(final, old) < 0) {
		err = errno;
		goto fail;
	}
	if (rename(tmp, final) < 0) {
		err = errno;
		if (rename(old, final) < 0)
			warn("cannot move %s back to %s: %s", old, final, strerror(errno));
		goto fail;
	}
	rm_rf(old);
	return 0;
fail:
	error("cannot rename %s to %s: %s; %s", tmp, final, strerror(err), intact);
	return -err;
}

static int save(const char *run_dir, const struct gpt2 *m, const void *trainer_state,
	      size_t state_len, int keep)
{
	char ckdir[4096], name[64], tmp[4096], final[4096], path[4096];
	const char *intact = "nothing was overwritten";
	struct state_writer sw = { m, trainer_state, state_len };
	struct model_writer mw = { m };
	struct manifest mf = { .step = m->step };
	struct ckpt_entry *e;
	struct wfile out = { .fd = -1 };
	int n, err;

	if (m->step < 0) {
		error("ckpt_save: negative step %d", m->step);
		return -EINVAL;
	}
	err = path_join(ckdir, sizeof(ckdir), run_dir, "checkpoints");
	if (err)
		return err;
	n = list_checkpoints(ckdir, &e);
	for (int i = 0; i < n; i++)
		if (has_done(ckdir, e[i].name)) {
			intact = "the previous checkpoint is intact";
			break;
		}
	if (n > 0)
		free(e);

	snprintf(name, sizeof(name), "step_%06d", m->step);
	err = make_dir(run_dir, intact);
	if (!err)
		err = make_dir(ckdir, intact);
	if (err)
		return err;
	if (pathf(tmp, sizeof(tmp), "%s/.tmp-%s", ckdir, name) ||
	    path_join(final, sizeof(final), ckdir, name) ||
	    pathf(path, sizeof(path), "%s/model.bin", tmp))
		return -ENAMETOOLONG;
	rm_rf(tmp);
	if (mkdir(tmp, 0755) < 0) {
		err = -errno;
		error("cannot create %s: %s; %s", tmp, strerror(errno), intact);
		return err;
	}

	err = write_file(path, intact, write_model, &mw, &out);
	mf.model_size = out.bytes;
	mf.model_crc = out.crc;
	/* fault injection (tests/train/kill.sh): freeze half-way through */
	if (!err && getenv("KGPT_CKPT_STOP_MIDWAY"))
		raise(SIGSTOP);
	if (!err) {
		pathf(path, sizeof(path), "%s/state.bin", tmp);
		err = write_file(path, intact, write_state, &sw, &out);
		mf.state_size = out.bytes;
		mf.state_crc = out.crc;
	}
	if (!err) {
		pathf(path, sizeof(path), "%s/DONE", tmp);
		err = write_file(path, intact, write_done, &mf, NULL);
	}
	if (!err)
		err = fsync_dir(tmp);
	if (!err)
		err = install(ckdir, tmp, final, name, intact);
	if (err) {
		rm_rf(tmp);
		return err;
	}
	err = fsync_dir(ckdir);
	if (!err)
		err = fsync_dir(run_dir);	/* checkpoints/ itself, on the first save */
	if (err)
		return err;
	prune(ckdir, m->step, keep);
	return 0;
}

/* The model state is read on the host (gpt2/gpt2.h). */
int ckpt_save(const char *run_dir, const struct gpt2 *m, const void *trainer_state,
	      size_t state_len, int keep)
{
	int err;

	gpt2_sync_for_host(m);
	err = save(run_dir, m, trainer_state, state_len, keep);
	gpt2_sync_for_backend(m);
	return err;
}

int ckpt_verify(const char *dir)
{
	char mpath[4096], spath[4096];
	struct state_field sf[FP_FILE_MAX];
	struct state_header h;
	struct manifest mf;
	struct rfile f;
	int nf, err;

	err = read_done(dir, &mf);
	if (err)
		return err;
	if (path_join(mpath, sizeof(mpath), dir, "model.bin") ||
	    path_join(spath, sizeof(spath), dir, "state.bin"))
		return -ENAMETOOLONG;

	/* model.bin: size from its header, checksum from DONE */
	err = rf_open(&f, mpath);
	if (err)
		return err;
	if (f.size >= CKPT_LLMC_HEADER * sizeof(int32_t)) {
		int32_t hd[CKPT_LLMC_HEADER];

		err = rf_read(&f, hd, sizeof(hd));
		if (!err)
			err = llmc_check_format(mpath, hd);
		if (!err && llmc_file_size(hd) != f.size)
			err = truncated(mpath, llmc_file_size(hd), f.size);
	}
	if (!err && f.size != mf.model_size)
		err = truncated(mpath, mf.model_size, f.size);
	if (!err)
		err = rf_crc_rest(&f, UINT64_MAX);
	if (!err)
		err = check_against_done(&f, mf.model_size, mf.model_crc);
	rf_close(&f);
	if (err)
		return err;

	/* state.bin: size from its header, its own checksum and DONE's */
	err = state_open(&f, spath, &h, sf, &nf);
	if (err)
		return err;
	err = rf_crc_rest(&f, f.size - f.pos - sizeof(struct state_trailer));
	if (!err)
		err = state_check_trailer(&f);
	if (!err)
		err = check_against_done(&f, mf.state_size, mf.state_crc);
	rf_close(&f);
	return err;
}

static int load(const char *dir, struct gpt2 *m, void *trainer_state, size_t state_len)
{
	char mpath[4096], spath[4096];
	struct state_field sf[FP_FILE_MAX];
	struct fp_field fp[FP_MAX];
	struct state_header h;
	struct rfile mf_, sf_;
	struct manifest mf;
	struct optim_buf ob[OPTIM_MAX_BUFS];
	void *blob = NULL;
	int nf, nfp, nb, err;

	err = read_done(dir, &mf);
	if (err)
		return err;
	if (path_join(mpath, sizeof(mpath), dir, "model.bin") ||
	    path_join(spath, sizeof(spath), dir, "state.bin"))
		return -ENAMETOOLONG;

	/* every check that does not need the payload first: m untouched */
	err = state_open(&sf_, spath, &h, sf, &nf);
	if (err)
		return err;
	nfp = fingerprint(m, fp);
	err = fp_compare(spath, sf, nf, fp, nfp);
	if (!err && !trainer_state && state_len == CKPT_STATE_ANY)
		state_len = h.state_len;	/* read (for the checksum), then dropped */
	if (!err && h.state_len != state_len) {
		error("%s: the trainer state is %llu bytes in the file, this trainer keeps %zu (a checkpoint of another kgpt version)",
		      spath, (unsigned long long)h.state_len, state_len);
		err = -EINVAL;
	}
	if (!err && (h.num_params != m->num_params || h.extra_floats != extra_floats(m))) {
		error("%s: holds %llu parameters, the model has %zu", spath,
		      (unsigned long long)h.num_params, m->num_params);
		err = -EINVAL;
	}
	if (!err && h.optim_bytes != optim_extra_bytes(m->num_params)) {
		error("%s: its optimizer section is %llu bytes, this trainer's optimizer (%s) keeps %zu: a checkpoint of another optimizer or kgpt version; resume it with the trainer that wrote it",
		      spath, (unsigned long long)h.optim_bytes,
		      IS_ENABLED(CONFIG_OPTIMIZER_SELECT_ADAMWSPAM) ? "AdamW-SPAM" : "AdamW",
		      optim_extra_bytes(m->num_params));
		err = -EINVAL;
	}
	if (!err && h.file_size != mf.state_size)
		err = truncated(spath, mf.state_size, h.file_size);
	if (!err && state_len && !(blob = malloc(state_len))) {
		error("out of memory reading %s", spath);
		err = -ENOMEM;
	}
	if (err) {
		rf_close(&sf_);
		return err;
	}
	err = model_open(&mf_, mpath);
	if (!err && mf_.size != mf.model_size) {
		err = truncated(mpath, mf.model_size, mf_.size);
		rf_close(&mf_);
	}
	if (err) {
		rf_close(&sf_);
		free(blob);
		return err;
	}

	/* payload */
	err = model_read_tensors(&mf_, m, NULL);
	if (!err)
		err = check_against_done(&mf_, mf.model_size, mf.model_crc);
	rf_close(&mf_);
	for (int t = GPT2_LLMC_TENSORS; t < GPT2_NUM_TENSORS && !err; t++)
		err = rf_read_reals(&sf_, m->params + m->tensors[t].offset, m->tensors[t].size);
	nb = optim_state_bufs(&m->opt, m->num_params, ob);
	for (int i = 0; i < nb && !err; i++)
		err = rf_read(&sf_, ob[i].p, ob[i].bytes);
	if (!err && state_len)
		err = rf_read(&sf_, blob, state_len);
	if (!err)
		err = state_check_trailer(&sf_);
	if (!err)
		err = check_against_done(&sf_, mf.state_size, mf.state_crc);
	rf_close(&sf_);
	if (!err) {
		if (state_len && trainer_state)
			memcpy(trainer_state, blob, state_len);
		m->step = (int)h.step;
	}
	free(blob);
	return err;
}

/* The model state is written on the host (gpt2/gpt2.h). */
int ckpt_load(const char *dir, struct gpt2 *m, void *trainer_state, size_t state_len)
{
	int err;

	gpt2_sync_for_host(m);
	err = load(dir, m, trainer_state, state_len);
	gpt2_sync_for_backend(m);
	return err;
}

static int checkpoints_of(const char *run_dir, char *ckdir, size_t len,
			  struct ckpt_entry **e)
{
	int err = path_join(ckdir, len, run_dir, "checkpoints");

	return err ? err : list_checkpoints(ckdir, e);
}

static int set_path(char *path, size_t len, const char *ckdir, const char *name)
{
	if (!path)
		return 0;
	return path_join(path, len, ckdir, name);
}

/* Warn that dir is skipped, with the reason just reported. */
static void skipping(const char *dir)
{
	char why[sizeof(last_msg)];
	const char *w = why;
	size_t n = strlen(dir);

	memcpy(why, last_msg, sizeof(why));
	if (!strncmp(w, dir, n))	/* "DIR/model.bin: ..." -> "model.bin: ..." */
		w += n + (w[n] == '/' ? 1 : w[n] == ':' ? 2 : 0);
	warn("skipping checkpoint %s: %s", dir, w);
}

static int none_usable(const char *ckdir, int n)
{
	error("%s: no usable checkpoint (%d damaged or unfinished, listed above)", ckdir, n);
	return -EBADMSG;
}

/*
 * Run op on the checkpoints of run_dir, newest first, until it succeeds;
 * damaged or unfinished ones are skipped with a warning. -EINVAL (a
 * format this trainer does not read), -ENOMEM and -ENAMETOOLONG end the
 * search: an older checkpoint would not fare better. path gets the
 * directory of the one that worked.
 */
static int newest_usable(const char *run_dir, char *path, size_t len,
			 int (*op)(const char *dir, void *arg), void *arg)
{
	struct ckpt_entry *e;
	char ckdir[4096], dir[4096];
	int n, err;

	n = checkpoints_of(run_dir, ckdir, sizeof(ckdir), &e);
	if (n <= 0)
		return n ? n : -ENOENT;
	for (int i = 0; i < n; i++) {
		path_join(dir, sizeof(dir), ckdir, e[i].name);
		quiet = 1;
		err = op(dir, arg);
		quiet = 0;
		if (!err)
			err = set_path(path, len, ckdir, e[i].name);
		if (!err || err == -EINVAL || err == -ENOMEM || err == -ENAMETOOLONG) {
			if (err)
				fprintf(stderr, "kgpt: %s\n", last_msg);
			free(e);
			return err;
		}
		skipping(dir);
	}
	free(e);
	return none_usable(ckdir, n);
}

static int verify_op(const char *dir, void *arg)
{
	(void)arg;
	return ckpt_verify(dir);
}

int ckpt_find_latest(const char *run_dir, char *path, size_t len)
{
	return newest_usable(run_dir, path, len, verify_op, NULL);
}

struct load_args {
	struct gpt2 *m;
	void *state;
	size_t state_len;
};

static int load_op(const char *dir, void *arg)
{
	struct load_args *a = arg;

	return ckpt_load(dir, a->m, a->state, a->state_len);
}

int ckpt_load_latest(const char *run_dir, struct gpt2 *m, void *trainer_state,
		     size_t state_len, char *path, size_t len)
{
	struct load_args a = { m, trainer_state, state_len };

	return newest_usable(run_dir, path, len, load_op, &a);
}
