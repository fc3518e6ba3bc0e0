// SPDX-License-Identifier: MIT
/*
 * prepare_data - tokenize a text corpus into llm.c shards.
 *
 *   build/prepare_data --input FILE --out DIR --name NAME
 *                      [--vocab DIR] [--val-fraction F]
 *   build/prepare_data --records --shard-tokens N --out DIR --name NAME
 *                      [--vocab DIR] [--resume --first-doc D]
 *
 * With --input:
 * The text is cut into documents after every blank line ("\n\n" stays at
 * the end of the document it closes; a final empty document is dropped).
 * Each document becomes <|endoftext|> (50256) followed by its tokens, as
 * llm.c's tinyshakespeare preparation does. The first documents go to
 * DIR/NAME_train.bin, the last round(F * documents) (at least one, at
 * most all but one; F defaults to 0.1) to DIR/NAME_val.bin. The
 * training shard is written first, so an existing validation shard means
 * both are complete.
 *
 * With --records: documents arrive on stdin as records (uint32
 * little-endian byte count, then the bytes; the count 0xffffffff ends the
 * stream), as scripts/parquet/parquet-text.mjs writes them. The token
 * stream (50256, then the document's tokens, for each document) is cut
 * into shards of exactly N tokens, the last one shorter: shard 0 is
 * DIR/NAME_val_000000.bin, shard k > 0 DIR/NAME_train_%06d.bin (llm.c's
 * FineWeb names; a document may continue from one shard into the next).
 * After each full shard DIR/NAME.progress records where the next one
 * starts: "next_shard K doc D skip T shard_tokens N" (document D counted
 * from 0, T of its tokens already in shard K - 1). --resume continues
 * from it (from the start without it): stdin starts at document
 * --first-doc, which must be D (0 without the file). A stream that ends
 * without the end record is an error and leaves only full shards.
 * See docs/data.md.
 * Exit status: 0 success, 1 error, 2 bad usage.
 */
#include "gpt2/dataloader.h"
#include "gpt2/tokenizer.h"
#include "kgpt/proc.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct opts {
	const char *input, *out, *name, *vocab;
	double val_fraction;
	int records, resume;	/* --records, --resume */
	size_t shard_tokens;	/* --shard-tokens */
	unsigned long long first_doc;	/* --first-doc: stdin's first document */
};

/* A document: text[off .. off + len). */
struct doc {
	size_t off, len;
};

struct tokens {
	uint16_t *v;
	size_t n, cap;
};

static int usage(void)
{
	fprintf(stderr,
		"usage: prepare_data --input FILE --out DIR --name NAME [--vocab DIR]\n"
		"                    [--val-fraction F]\n"
		"       prepare_data --records --shard-tokens N --out DIR --name NAME\n"
		"                    [--vocab DIR] [--resume --first-doc D]\n"
		"  --input: writes DIR/NAME_train.bin and DIR/NAME_val.bin (llm.c shards);\n"
		"  documents are split at blank lines, each preceded by <|endoftext|>;\n"
		"  the last fraction F of the documents (default 0.1) is validation.\n"
		"  --records: documents from stdin (uint32 LE length + bytes, 0xffffffff\n"
		"  ends) into shards of N tokens: DIR/NAME_val_000000.bin, then\n"
		"  DIR/NAME_train_000001.bin, ...; --resume continues where DIR/NAME.progress\n"
		"  says; stdin then starts at its document D, given as --first-doc D.\n"
		"  --vocab: encoder.json + vocab.bpe (default $KGPT_VOCAB_DIR, else data/gpt2)\n");
	return 2;
}

/* A decimal count in [min, max]. */
static int parse_count(const char *val, unsigned long long min, unsigned long long max,
		       unsigned long long *n)
{
	char *end;

	errno = 0;
	*n = strtoull(val, &end, 10);
	if (errno || *end || end == val || *val == '-' || *n < min || *n > max)
		return -1;
	return 0;
}

static int parse_opt(struct opts *o, const char *a, const char *val)
{
	char *end;

	if (!strcmp(a, "--input"))
		o->input = val;
	else if (!strcmp(a, "--out"))
		o->out = val;
	else if (!strcmp(a, "--name"))
		o->name = val;
	else if (!strcmp(a, "--vocab"))
		o->vocab = val;
	else if (!strcmp(a, "--first-doc"))
		return parse_count(val, 0, ULLONG_MAX, &o->first_doc);
	else if (!strcmp(a, "--shard-tokens")) {
		unsigned long long n;

		if (parse_count(val, 1, INT32_MAX, &n))	/* the format's count */
			return -1;
		o->shard_tokens = n;
	} else if (!strcmp(a, "--val-fraction")) {
		o->val_fraction = strtod(val, &end);
		if (*end || end == val || !(o->val_fraction > 0) || !(o->val_fraction < 1))
			return -1;
	} else {
		return -1;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	const char *v = getenv("KGPT_VOCAB_DIR");

	*o = (struct opts){ .vocab = v && *v ? v : "data/gpt2", .val_fraction = 0.1 };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--records")) {
			o->records = 1;
			continue;
		}
		if (!strcmp(a, "--resume")) {
			o->resume = 1;
			continue;
		}
		if (i + 1 >= argc || parse_opt(o, a, argv[i + 1]))
			return -1;
		i++;
	}
	if (!o->out || !o->name || !*o->name)
		return -1;
	if (o->records)
		return !o->input && o->shard_tokens && (o->resume || !o->first_doc) ? 0 : -1;
	return o->input && !o->shard_tokens && !o->resume && !o->first_doc ? 0 : -1;
}

static char *read_input(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n = -1;

	if (f && !fseek(f, 0, SEEK_END))
		n = ftell(f);
	if (n >= 0 && !fseek(f, 0, SEEK_SET))
		buf = malloc(n + 1);
	if (buf && fread(buf, 1, n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	if (!buf)
		fprintf(stderr, "prepare_data: cannot read %s: %s\n", path,
			strerror(errno ? errno : EIO));
	else
		*len = n;
	if (f)
		fclose(f);
	return buf;
}

/* Split after each "\n\n"; returns the number of non-empty documents. */
static size_t split_docs(const char *text, size_t len, struct doc *docs)
{
	size_t n = 0, start = 0, i = 0;

	while (i + 1 < len) {
		if (text[i] != '\n' || text[i + 1] != '\n') {
			i++;
			continue;
		}
		i += 2;
		docs[n++] = (struct doc){ start, i - start };
		start = i;
	}
	if (start < len)
		docs[n++] = (struct doc){ start, len - start };
	return n;
}

static int push(struct tokens *t, const int *ids, size_t n)
{
	if (t->n + n > t->cap) {
		size_t cap = t->cap ? t->cap : 1 << 16;
		uint16_t *v;

		while (cap < t->n + n)
			cap *= 2;
		v = realloc(t->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		t->v = v;
		t->cap = cap;
	}
	for (size_t i = 0; i < n; i++)
		t->v[t->n++] = (uint16_t)ids[i];
	return 0;
}

/* <|endoftext|> + tokens of each document in docs[0..n) into @out. */
static int encode_docs(struct tokenizer *tok, const char *text,
		       const struct doc *docs, size_t n, struct tokens *out)
{
	const int eot = TOKENIZER_EOT;

	for (size_t i = 0; i < n; i++) {
		size_t m;
		int *ids, err;

		err = push(out, &eot, 1);
		if (!err)
			err = tokenizer_encode(tok, text + docs[i].off, docs[i].len,
					       &ids, &m);
		if (err)
			return err;
		err = push(out, ids, m);
		free(ids);
		if (err)
			return err;
	}
	return 0;
}

/* mkdir -p */
static int make_dirs(const char *path)
{
	char *p = strdup(path);
	int err = 0;

	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; !err; s++) {
		int last = *s == '\0';

		if (*s != '/' && !last)
			continue;
		*s = '\0';
		if (mkdir(p, 0755) && errno != EEXIST)
			err = -errno;
		if (last)
			break;
		*s = '/';
	}
	free(p);
	if (err)
		fprintf(stderr, "prepare_data: cannot create %s: %s\n", path,
			strerror(-err));
	return err;
}

static int write_split(const struct opts *o, const char *split,
		       const struct tokens *t)
{
	size_t len = strlen(o->out) + strlen(o->name) + 16;
	char *path = malloc(len);
	int err;

	if (!path)
		return -ENOMEM;
	snprintf(path, len, "%s/%s_%s.bin", o->out, o->name, split);
	err = shard_write(path, t->v, t->n);
	if (!err)
		printf("prepare_data: wrote %s: %zu tokens\n", path, t->n);
	free(path);
	return err;
}

static int prepare(const struct opts *o, struct tokenizer *tok,
		   const char *text, size_t len)
{
	struct doc *docs = malloc((len / 2 + 2) * sizeof(*docs));
	struct tokens train = { 0 }, val = { 0 };
	size_t n, n_val, n_train;
	double t0, dt;
	int err = -ENOMEM;

	if (!docs)
		goto out;
	n = split_docs(text, len, docs);
	err = -EINVAL;
	if (n < 2) {
		fprintf(stderr, "prepare_data: %s has %zu document(s); a train and a "
			"val split need at least 2 (documents end at blank lines)\n",
			o->input, n);
		goto out;
	}
	n_val = (size_t)llround(o->val_fraction * n);
	n_val = n_val < 1 ? 1 : n_val > n - 1 ? n - 1 : n_val;
	n_train = n - n_val;
	t0 = kgpt_now_s();
	err = encode_docs(tok, text, docs, n_train, &train);
	if (!err)
		err = encode_docs(tok, text, docs + n_train, n_val, &val);
	dt = kgpt_now_s() - t0;
	if (err)
		goto out;
	printf("prepare_data: %s: %zu bytes, %zu documents (train %zu, val %zu), "
	       "%zu tokens in %.3f s (%.0f tokens/s)\n", o->input, len, n, n_train,
	       n_val, train.n + val.n, dt, (train.n + val.n) / (dt > 0 ? dt : 1e-9));
	err = make_dirs(o->out);
	if (!err)
		err = write_split(o, "train", &train);
	if (!err)
		err = write_split(o, "val", &val);
out:
	if (err == -ENOMEM)
		fprintf(stderr, "prepare_data: out of memory\n");
	free(train.v);
	free(val.v);
	free(docs);
	return err;
}

/* ---------------------------------------------------------------------
 * --records: a stream of documents into shards of a fixed size
 */

#define RECORD_END	0xffffffffu	/* the length that ends the stream */

/* One document's bytes, the buffer reused from record to record. */
struct record {
	char *buf;
	size_t len, cap;
};

struct sharder {
	const struct opts *o;
	uint16_t *buf;		/* o->shard_tokens */
	size_t n;		/* tokens in buf */
	long shard;		/* index of the shard in buf: 0 val, then train */
	uint64_t doc;		/* the document being read, counted from 0 */
	uint64_t docs, tokens;	/* read and added by this run */
	char *path, *progress;	/* a shard's name, DIR/NAME.progress */
	size_t path_len;
};

/*
 * read_record - the record of document @doc from @f into @r.
 * Returns 1 for a document, 0 for the end record, -EIO when the stream
 * stops before the end record (message naming the document), -ENOMEM.
 */
static int read_record(FILE *f, uint64_t doc, struct record *r)
{
	unsigned long long d = doc;
	unsigned char h[4];
	size_t got = fread(h, 1, sizeof(h), f);
	uint32_t n;

	if (got != sizeof(h)) {
		if (ferror(f))
			fprintf(stderr, "prepare_data: cannot read stdin: %s\n", strerror(errno));
		else
			fprintf(stderr, "prepare_data: stdin ended %s document %llu without the "
				"end record: the reader that feeds it failed?\n",
				got ? "inside the length of" : "before", d);
		return -EIO;
	}
	n = h[0] | h[1] << 8 | h[2] << 16 | (uint32_t)h[3] << 24;
	if (n == RECORD_END)
		return 0;
	if (n > r->cap) {
		char *b = realloc(r->buf, n);

		if (!b)
			return -ENOMEM;
		r->buf = b;
		r->cap = n;
	}
	if (fread(r->buf, 1, n, f) != n) {
		fprintf(stderr, "prepare_data: stdin ended inside document %llu (of %u bytes)\n",
			d, n);
		return -EIO;
	}
	r->len = n;
	return 1;
}

static const char *shard_path(struct sharder *s, long k)
{
	snprintf(s->path, s->path_len, "%s/%s_%s_%06ld.bin", s->o->out, s->o->name,
		 k ? "train" : "val", k);
	return s->path;
}

/* DIR/NAME.progress = "next_shard K doc D skip T shard_tokens N", atomically. */
static int write_progress(struct sharder *s, uint64_t doc, size_t skip)
{
	size_t plen = strlen(s->progress) + 16;
	char line[160], *tmp = malloc(plen);
	int fd, len, err = 0;

	if (!tmp)
		return -ENOMEM;
	len = snprintf(line, sizeof(line), "next_shard %ld doc %llu skip %zu shard_tokens %zu\n",
		       s->shard, (unsigned long long)doc, skip, s->o->shard_tokens);
	snprintf(tmp, plen, "%s.tmpXXXXXX", s->progress);
	fd = mkstemp(tmp);
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	if (write(fd, line, len) != len)
		err = -EIO;
	if (!err && (fchmod(fd, 0644) || fsync(fd)))
		err = -errno;
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, s->progress))
		err = -errno;
	if (err)
		unlink(tmp);
out:
	if (err)
		fprintf(stderr, "prepare_data: cannot write %s: %s\n", s->progress,
			strerror(-err));
	free(tmp);
	return err;
}

/* The resume point of --resume; none (a fresh start) without the file. */
static int read_progress(struct sharder *s, size_t *skip)
{
	unsigned long long doc;
	size_t n;
	FILE *f = fopen(s->progress, "r");
	int ok;

	if (!f && errno == ENOENT)
		return 0;
	if (!f) {
		int err = -errno;

		fprintf(stderr, "prepare_data: cannot read %s: %s\n", s->progress,
			strerror(-err));
		return err;
	}
	ok = fscanf(f, "next_shard %ld doc %llu skip %zu shard_tokens %zu", &s->shard, &doc,
		    skip, &n) == 4 && s->shard >= 1;
	fclose(f);
	if (!ok) {
		fprintf(stderr, "prepare_data: %s is not a line \"next_shard K doc D skip T "
			"shard_tokens N\" (K >= 1); remove it and %s/%s_*.bin to start over\n",
			s->progress, s->o->out, s->o->name);
		return -EINVAL;
	}
	if (n != s->o->shard_tokens) {
		fprintf(stderr, "prepare_data: %s: the shards there hold %zu tokens each, not "
			"--shard-tokens %zu; use %zu, or remove %s/%s_*.bin and the progress "
			"file to start over\n", s->progress, n, s->o->shard_tokens, n,
			s->o->out, s->o->name);
		return -EINVAL;
	}
	s->doc = doc;
	return 0;
}

/* --resume: the resume point, and stdin must start at its document. */
static int resume_at(struct sharder *s, size_t *skip)
{
	int err = read_progress(s, skip);

	if (err)
		return err;
	if (s->doc != s->o->first_doc) {
		fprintf(stderr, "prepare_data: %s: shard %ld starts at document %llu, but stdin "
			"starts at document %llu (--first-doc)\n", s->progress, s->shard,
			(unsigned long long)s->doc, s->o->first_doc);
		return -EINVAL;
	}
	if (s->shard)
		printf("prepare_data: continuing: shard %ld starts at document %llu, token %zu\n",
		       s->shard, (unsigned long long)s->doc, *skip);
	return 0;
}

static int flush_shard(struct sharder *s)
{
	const char *path = shard_path(s, s->shard);
	int err = shard_write(path, s->buf, s->n);

	if (err)
		return err;
	printf("prepare_data: wrote %s: %zu tokens\n", path, s->n);
	fflush(stdout);
	s->n = 0;
	s->shard++;
	return 0;
}

/*
 * add_doc - document s->doc, 50256 then @ids[0..m), less its first @skip
 * tokens (those already in earlier shards), into the shards. Each full
 * shard is written, then the progress file names where the next starts.
 */
static int add_doc(struct sharder *s, const int *ids, size_t m, size_t skip)
{
	int err;

	for (size_t pos = skip; pos <= m; pos++) {
		s->buf[s->n++] = pos ? (uint16_t)ids[pos - 1] : TOKENIZER_EOT;
		if (s->n < s->o->shard_tokens)
			continue;
		err = flush_shard(s);
		if (!err)
			err = pos == m ? write_progress(s, s->doc + 1, 0) :
					 write_progress(s, s->doc, pos + 1);
		if (err)
			return err;
	}
	s->tokens += m + 1 - skip;
	return 0;
}

/* The end record: the last, shorter shard; shards past it are stale. */
static int finish_shards(struct sharder *s)
{
	unsigned long long total = (unsigned long long)s->shard * s->o->shard_tokens + s->n;
	int err = 0;

	if (s->shard == 0 || (s->shard == 1 && s->n == 0)) {
		fprintf(stderr, "prepare_data: the documents hold %llu tokens, not more than the "
			"val shard of %zu: no training shard; use a smaller --shard-tokens or "
			"more documents\n", total, s->o->shard_tokens);
		return -EINVAL;
	}
	if (s->n)
		err = flush_shard(s);
	for (long k = s->shard; !err && !unlink(shard_path(s, k)); k++)
		printf("prepare_data: removed %s, left from a longer input\n", s->path);
	if (!err)
		printf("prepare_data: %ld shards in %s (%s_val_000000.bin, %s_train_*.bin), "
		       "%llu tokens\n", s->shard, s->o->out, s->o->name, s->o->name, total);
	return err;
}

static int sharder_init(struct sharder *s, const struct opts *o)
{
	size_t len = strlen(o->out) + strlen(o->name) + 32;

	*s = (struct sharder){ .o = o, .path_len = len };
	s->buf = malloc(o->shard_tokens * sizeof(*s->buf));
	s->path = malloc(len);
	s->progress = malloc(len);
	if (!s->buf || !s->path || !s->progress)
		return -ENOMEM;
	snprintf(s->progress, len, "%s/%s.progress", o->out, o->name);
	return make_dirs(o->out);
}

static int prepare_records(const struct opts *o, struct tokenizer *tok)
{
	struct record r = { 0 };
	struct sharder s;
	size_t skip = 0;
	double t0 = kgpt_now_s(), dt;
	int err, got = 1;

	err = sharder_init(&s, o);
	if (!err && o->resume)
		err = resume_at(&s, &skip);
	while (!err && (got = read_record(stdin, s.doc, &r)) > 0) {
		size_t m;
		int *ids;

		err = tokenizer_encode(tok, r.buf, r.len, &ids, &m);
		if (err)
			break;
		if (skip > m) {
			fprintf(stderr, "prepare_data: document %llu has %zu tokens, fewer than "
				"%s says are in earlier shards: stdin does not start where the "
				"progress file was written\n", (unsigned long long)s.doc, m + 1,
				s.progress);
			err = -EINVAL;
		} else {
			err = add_doc(&s, ids, m, skip);
		}
		free(ids);
		skip = 0;
		s.doc++;
		s.docs++;
	}
	if (!err)
		err = got < 0 ? got : finish_shards(&s);
	dt = kgpt_now_s() - t0;
	if (!err)
		printf("prepare_data: %llu documents, %llu tokens in %.1f s (%.0f tokens/s)\n",
		       (unsigned long long)s.docs, (unsigned long long)s.tokens, dt,
		       s.tokens / (dt > 0 ? dt : 1e-9));
	if (err == -ENOMEM)
		fprintf(stderr, "prepare_data: out of memory\n");
	free(r.buf);
	free(s.buf);
	free(s.path);
	free(s.progress);
	return err;
}

int main(int argc, char **argv)
{
	struct tokenizer tok;
	struct opts o;
	char *text = NULL;
	size_t len = 0;
	int err;

	if (parse_args(argc, argv, &o))
		return usage();
	if (!o.records) {
		text = read_input(o.input, &len);
		if (!text)
			return 1;
	}
	err = tokenizer_load(&tok, o.vocab);
	if (!err) {
		err = o.records ? prepare_records(&o, &tok) : prepare(&o, &tok, text, len);
		tokenizer_free(&tok);
	}
	free(text);
	return err ? 1 : 0;
}
