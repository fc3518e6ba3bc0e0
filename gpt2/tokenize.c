// SPDX-License-Identifier: MIT
/*
 * tokenize - GPT-2 BPE from the command line.
 *
 *   build/tokenize encode [--vocab DIR] < text > ids
 *   build/tokenize decode [--vocab DIR] < ids  > text
 *
 * encode reads bytes (UTF-8 text) on stdin and writes the ids as decimal
 * numbers separated by single spaces, with a newline at the end. decode
 * reads ids separated by any whitespace and writes their bytes unchanged.
 * The vocabulary directory (encoder.json, vocab.bpe) is --vocab, else
 * $KGPT_VOCAB_DIR, else data/gpt2.
 * Exit status: 0 success, 1 error (message on stderr), 2 bad usage.
 */
#include "gpt2/tokenizer.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WS	" \n\t\r\v\f"	/* separators between ids */

static int usage(void)
{
	fprintf(stderr,
		"usage: tokenize encode|decode [--vocab DIR]\n"
		"  encode: UTF-8 text on stdin -> space-separated GPT-2 ids on stdout\n"
		"  decode: whitespace-separated ids on stdin -> bytes on stdout\n"
		"  DIR holds encoder.json and vocab.bpe (default: $KGPT_VOCAB_DIR,\n"
		"  else data/gpt2; `make data` puts them there)\n");
	return 2;
}

/* Read all of @f into a malloc()ed buffer. Returns 0 or -errno. */
static int slurp(FILE *f, char **buf, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	char *b = malloc(cap + 1), *nb;

	if (!b)
		return -ENOMEM;
	for (;;) {
		size_t got = fread(b + n, 1, cap - n, f);

		n += got;
		if (n < cap) {
			if (ferror(f)) {
				free(b);
				return -EIO;
			}
			if (feof(f))
				break;
			continue;
		}
		cap *= 2;
		nb = realloc(b, cap + 1);
		if (!nb) {
			free(b);
			return -ENOMEM;
		}
		b = nb;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

static int do_encode(struct tokenizer *t, const char *in, size_t len)
{
	size_t n;
	int *ids;

	if (tokenizer_encode(t, in, len, &ids, &n))
		return 1;
	for (size_t i = 0; i < n; i++)
		printf(i ? " %d" : "%d", ids[i]);
	printf("\n");
	free(ids);
	return 0;
}

static int bad_id(const char *p)
{
	size_t n = strcspn(p, WS);

	fprintf(stderr, "tokenize: bad id \"%.*s\" (ids are 0..%d)\n",
		(int)(n > 32 ? 32 : n), p, TOKENIZER_VOCAB - 1);
	return -EINVAL;
}

/* Parse whitespace-separated decimal ids; -EINVAL on anything else. */
static int parse_ids(const char *in, int **ids, size_t *n)
{
	size_t cap = 0, cnt = 0;
	const char *p = in;
	int *v = NULL, *nv;

	for (;;) {
		char *end;
		long x;

		p += strspn(p, WS);
		if (!*p)
			break;
		errno = 0;
		x = strtol(p, &end, 10);
		if (!isdigit((unsigned char)*p) || end == p || errno ||
		    x >= TOKENIZER_VOCAB ||
		    (*end && !strchr(WS, *end))) {
			free(v);
			return bad_id(p);
		}
		if (cnt == cap) {
			cap = cap ? cap * 2 : 1024;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		v[cnt++] = (int)x;
		p = end;
	}
	*ids = v;
	*n = cnt;
	return 0;
}

static int do_decode(struct tokenizer *t, const char *in, size_t in_len)
{
	size_t n, len;
	char *out;
	int *ids;

	if (memchr(in, '\0', in_len)) {
		fprintf(stderr, "tokenize: NUL byte in the ids on stdin\n");
		return 1;
	}
	if (parse_ids(in, &ids, &n))
		return 1;
	if (tokenizer_decode(t, ids, n, &out, &len)) {
		free(ids);
		return 1;
	}
	fwrite(out, 1, len, stdout);
	free(out);
	free(ids);
	return 0;
}

int main(int argc, char **argv)
{
	const char *vocab = getenv("KGPT_VOCAB_DIR");
	struct tokenizer t;
	int encode, rc;
	size_t len;
	char *in;

	if (!vocab || !*vocab)
		vocab = "data/gpt2";
	if (argc != 2 && argc != 4)
		return usage();
	if (!strcmp(argv[1], "encode"))
		encode = 1;
	else if (!strcmp(argv[1], "decode"))
		encode = 0;
	else
		return usage();
	if (argc == 4) {
		if (strcmp(argv[2], "--vocab"))
			return usage();
		vocab = argv[3];
	}
	if (tokenizer_load(&t, vocab))
		return 1;
	if (slurp(stdin, &in, &len)) {
		fprintf(stderr, "tokenize: cannot read stdin\n");
		tokenizer_free(&t);
		return 1;
	}
	rc = encode ? do_encode(&t, in, len) : do_decode(&t, in, len);
	free(in);
	tokenizer_free(&t);
	if (fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, "tokenize: write error on stdout\n");
		rc = 1;
	}
	return rc;
}
