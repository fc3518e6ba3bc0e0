// SPDX-License-Identifier: MIT
/*
 * prepare_data - tokenize a text corpus into llm.c shards.
 *
 *   build/prepare_data --input FILE --out DIR --name NAME
 *                      [--vocab DIR] [--val-fraction F]
 *
 * The text is cut into documents after every blank line ("\n\n" stays at
 * the end of the document it closes; a final empty document is dropped).
 * Each document becomes <|endoftext|> (50256) followed by its tokens, as
 * llm.c's tinyshakespeare preparation does. The first documents go to
 * DIR/NAME_train.bin, the last round(F * documents) (at least one, at
 * most all but one; F defaults to 0.1) to DIR/NAME_val.bin. The
 * training shard is written first, so an existing validation shard means
 * both are complete. See docs/data.md.
 * Exit status: 0 success, 1 error, 2 bad usage.
 */
#include "gpt2/dataloader.h"
#include "gpt2/tokenizer.h"
#include "kgpt/proc.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct opts {
	const char *input, *out, *name, *vocab;
	double val_fraction;
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
		"  writes DIR/NAME_train.bin and DIR/NAME_val.bin (llm.c shards);\n"
		"  documents are split at blank lines, each preceded by <|endoftext|>;\n"
		"  the last fraction F of the documents (default 0.1) is validation.\n"
		"  --vocab: encoder.json + vocab.bpe (default $KGPT_VOCAB_DIR, else data/gpt2)\n");
	return 2;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	const char *v = getenv("KGPT_VOCAB_DIR");

	*o = (struct opts){ .vocab = v && *v ? v : "data/gpt2", .val_fraction = 0.1 };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		char *end;

		if (!val)
			return -1;
		if (!strcmp(a, "--input"))
			o->input = val;
		else if (!strcmp(a, "--out"))
			o->out = val;
		else if (!strcmp(a, "--name"))
			o->name = val;
		else if (!strcmp(a, "--vocab"))
			o->vocab = val;
		else if (!strcmp(a, "--val-fraction")) {
			o->val_fraction = strtod(val, &end);
			if (*end || end == val || !(o->val_fraction > 0) ||
			    !(o->val_fraction < 1))
				return -1;
		} else {
			return -1;
		}
		i++;
	}
	return o->input && o->out && o->name && *o->name ? 0 : -1;
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

int main(int argc, char **argv)
{
	struct tokenizer tok;
	struct opts o;
	size_t len;
	char *text;
	int err;

	if (parse_args(argc, argv, &o))
		return usage();
	text = read_input(o.input, &len);
	if (!text)
		return 1;
	err = tokenizer_load(&tok, o.vocab);
	if (!err) {
		err = prepare(&o, &tok, text, len);
		tokenizer_free(&tok);
	}
	free(text);
	return err ? 1 : 0;
}
