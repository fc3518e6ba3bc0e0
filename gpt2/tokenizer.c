// SPDX-License-Identifier: MIT
/*
 * GPT-2 byte-level BPE tokenizer. See tokenizer.h for the contract.
 *
 * Tokens are handled as ids throughout: every merge "A B" of vocab.bpe is
 * stored as (id(A), id(B)) -> (rank, id(AB)), so BPE never compares
 * strings. Each pre-token is merged with a binary heap of candidate pairs
 * ordered by (rank, position), which applies the lowest-ranked pair to
 * all its occurrences left to right, exactly as the reference encoder,
 * in O(n log n) rather than O(n^2) for long pre-tokens.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "gpt2/tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GPT2_PATTERN							\
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+"			\
	"| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

#define FETCH_HINT	"run `make data` (or scripts/fetch-data.sh DIR) to fetch it"

#define CACHE_MAX_ENTRIES	(1u << 18)	/* then cleared: <= ~20 MB */
#define CACHE_MAX_KEY		256	/* longer pre-tokens are not cached */

/* ---------------------------------------------------------------------
 * Small helpers
 */

static uint64_t hash_bytes(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;	/* FNV-1a, then a final mix */

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 32;
	return h ? h : 1;	/* 0 marks an empty slot */
}

static uint64_t hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* Grow *buf (elements of @size bytes) to hold at least @need elements. */
static int grow(void **buf, size_t *cap, size_t need, size_t size)
{
	size_t ncap = *cap ? *cap : 64;
	void *p;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	p = realloc(*buf, ncap * size);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = ncap;
	return 0;
}

/* Read a whole file into a malloc()ed, NUL-terminated buffer. */
static int read_whole(const char *path, char **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 0, n = 0;
	char *b = NULL;
	int err = 0;

	if (!f)
		return -errno;
	for (;;) {
		size_t got;

		if (grow((void **)&b, &cap, n + 65536 + 1, 1)) {
			err = -ENOMEM;
			goto out;
		}
		got = fread(b + n, 1, cap - n - 1, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f))
		err = -EIO;
out:
	fclose(f);
	if (err) {
		free(b);
		return err;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

/* ---------------------------------------------------------------------
 * GPT-2's byte <-> unicode map: printable Latin-1 bytes map to
 * themselves, the other 68 bytes to U+0100.. in byte order.
 */

static int byte_is_printable(int b)
{
	return (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) ||
	       (b >= 0xae && b <= 0xff);
}

/* cp_to_byte[cp] for cp < 324, -1 where no byte maps there. */
static void build_unicode_map(int cp_to_byte[324])
{
	int n = 0;

	for (int i = 0; i < 324; i++)
		cp_to_byte[i] = -1;
	for (int b = 0; b < 256; b++) {
		if (byte_is_printable(b))
			cp_to_byte[b] = b;
		else
			cp_to_byte[256 + n++] = b;
	}
}

/*
 * Decode one UTF-8 code point of a (valid, cJSON-produced) string.
 * Returns its length in bytes, 0 at a malformed sequence.
 */
static int utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	int len, i;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0)
		len = 2, *cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		len = 3, *cp = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		len = 4, *cp = s[0] & 0x07;
	else
		return 0;
	if ((size_t)len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		*cp = (*cp << 6) | (s[i] & 0x3f);
	}
	return len;
}

/*
 * Map a token string of encoder.json / vocab.bpe (UTF-8 of the byte
 * map's code points) to raw bytes in @out (room for strlen(s) bytes).
 * Returns the byte count, or -1 when a character is outside the map.
 */
static long token_to_bytes(const int cp_to_byte[324], const char *s,
			   size_t n, char *out)
{
	const unsigned char *u = (const unsigned char *)s;
	long m = 0;
	size_t i = 0;

	while (i < n) {
		uint32_t cp;
		int l = utf8_next(u + i, n - i, &cp);

		if (!l || cp >= 324 || cp_to_byte[cp] < 0)
			return -1;
		out[m++] = (char)cp_to_byte[cp];
		i += l;
	}
	return m;
}

/* ---------------------------------------------------------------------
 * Hash map: token bytes -> id (only while loading vocab.bpe)
 */

struct id_map {
	int *slot;	/* id, or -1 */
	size_t mask;
};

static int id_map_init(struct id_map *m, const struct tokenizer *t)
{
	size_t cap = 1u << 17;

	m->slot = malloc(cap * sizeof(*m->slot));
	if (!m->slot)
		return -ENOMEM;
	m->mask = cap - 1;
	for (size_t i = 0; i < cap; i++)
		m->slot[i] = -1;
	for (int id = 0; id < TOKENIZER_VOCAB; id++) {
		size_t len = t->off[id + 1] - t->off[id];
		size_t h = hash_bytes(t->bytes + t->off[id], len) & m->mask;

		while (m->slot[h] >= 0)
			h = (h + 1) & m->mask;
		m->slot[h] = id;
	}
	return 0;
}

static int id_map_find(const struct id_map *m, const struct tokenizer *t,
		       const char *p, size_t n)
{
	size_t h = hash_bytes(p, n) & m->mask;

	for (; m->slot[h] >= 0; h = (h + 1) & m->mask) {
		int id = m->slot[h];
		size_t len = t->off[id + 1] - t->off[id];

		if (len == n && !memcmp(t->bytes + t->off[id], p, n))
			return id;
	}
	return -1;
}

/* ---------------------------------------------------------------------
 * Merge table: (left id, right id) -> (rank, merged id)
 */

struct merge_slot {
	uint64_t key;		/* (left + 1) << 32 | (right + 1); 0 = empty */
	int32_t rank;
	int32_t id;
};

struct tok_merges {
	struct merge_slot *slot;
	size_t mask;
};

static inline uint64_t pair_key(int a, int b)
{
	return ((uint64_t)(a + 1) << 32) | (uint32_t)(b + 1);
}

static const struct merge_slot *merge_find(const struct tok_merges *m,
					   int a, int b)
{
	uint64_t key = pair_key(a, b);
	size_t h = hash_u64(key) & m->mask;

	for (; m->slot[h].key; h = (h + 1) & m->mask)
		if (m->slot[h].key == key)
			return &m->slot[h];
	return NULL;
}

/* Returns 0, or -EEXIST when the pair is already present. */
static int merge_add(struct tok_merges *m, int a, int b, int rank, int id)
{
	uint64_t key = pair_key(a, b);
	size_t h = hash_u64(key) & m->mask;

	for (; m->slot[h].key; h = (h + 1) & m->mask)
		if (m->slot[h].key == key)
			return -EEXIST;
	m->slot[h].key = key;
	m->slot[h].rank = rank;
	m->slot[h].id = id;
	return 0;
}

/* ---------------------------------------------------------------------
 * Loading encoder.json
 */

static int vocab_corrupt(const char *path, const char *what)
{
	fprintf(stderr, "tokenizer: %s is corrupt: %s\n  delete it and %s\n",
		path, what, FETCH_HINT);
	return -EINVAL;
}

static int open_error(const char *path, int err)
{
	fprintf(stderr, "tokenizer: cannot read %s: %s\n  %s\n", path,
		strerror(-err), FETCH_HINT);
	return err;
}

/* First pass: check every entry; record each id's byte length in off[]. */
static int encoder_scan(struct tokenizer *t, const cJSON *root,
			const int cp_to_byte[324], const char *path,
			size_t *total)
{
	char tmp[1024];
	const cJSON *it;
	size_t count = 0;

	*total = 0;
	cJSON_ArrayForEach(it, root) {
		size_t klen = strlen(it->string);
		long blen;
		double v = it->valuedouble;

		if (!cJSON_IsNumber(it) || v < 0 || v >= TOKENIZER_VOCAB ||
		    v != (int)v)
			return vocab_corrupt(path, "an id is not in 0..50256");
		if (klen == 0 || klen >= sizeof(tmp))
			return vocab_corrupt(path, "a token is empty or too long");
		blen = token_to_bytes(cp_to_byte, it->string, klen, tmp);
		if (blen <= 0)
			return vocab_corrupt(path,
					     "a token has a character outside GPT-2's byte map");
		if (t->off[(int)v])
			return vocab_corrupt(path, "two tokens share one id");
		t->off[(int)v] = (uint32_t)blen;
		*total += blen;
		count++;
	}
	if (count != TOKENIZER_VOCAB)
		return vocab_corrupt(path, "it does not hold 50257 tokens");
	return 0;
}

/* Second pass: copy each token's bytes to its place. */
static void encoder_fill(struct tokenizer *t, const cJSON *root,
			 const int cp_to_byte[324])
{
	const cJSON *it;

	cJSON_ArrayForEach(it, root) {
		int id = (int)it->valuedouble;

		token_to_bytes(cp_to_byte, it->string, strlen(it->string),
			       t->bytes + t->off[id]);
	}
}

/* Turn the per-id lengths of encoder_scan() into offsets. */
static void encoder_offsets(struct tokenizer *t)
{
	uint32_t pos = 0;

	for (int id = 0; id < TOKENIZER_VOCAB; id++) {
		uint32_t l = t->off[id];

		t->off[id] = pos;
		pos += l;
	}
	t->off[TOKENIZER_VOCAB] = pos;
}

/* byte_id[b] = the token made of byte b alone; all 256 must exist. */
static int encoder_byte_ids(struct tokenizer *t, const char *path)
{
	for (int b = 0; b < 256; b++)
		t->byte_id[b] = -1;
	for (int id = 0; id < TOKENIZER_VOCAB; id++)
		if (t->off[id + 1] - t->off[id] == 1)
			t->byte_id[(unsigned char)t->bytes[t->off[id]]] = id;
	for (int b = 0; b < 256; b++)
		if (t->byte_id[b] < 0)
			return vocab_corrupt(path, "a single-byte token is missing");
	return 0;
}

static int load_encoder(struct tokenizer *t, const char *path)
{
	int cp_to_byte[324];
	cJSON *root = NULL;
	char *text = NULL;
	size_t len, total;
	int err;

	build_unicode_map(cp_to_byte);
	err = read_whole(path, &text, &len);
	if (err)
		return open_error(path, err);
	root = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(root)) {
		err = vocab_corrupt(path, "not a JSON object");
		goto out;
	}
	t->off = calloc(TOKENIZER_VOCAB + 1, sizeof(*t->off));
	if (!t->off) {
		err = -ENOMEM;
		goto out;
	}
	err = encoder_scan(t, root, cp_to_byte, path, &total);
	if (err)
		goto out;
	encoder_offsets(t);
	t->bytes = malloc(total + 1);
	if (!t->bytes) {
		err = -ENOMEM;
		goto out;
	}
	encoder_fill(t, root, cp_to_byte);
	err = encoder_byte_ids(t, path);
out:
	cJSON_Delete(root);
	free(text);
	return err;
}

/* ---------------------------------------------------------------------
 * Loading vocab.bpe
 */

/* One merge line "A B" (NUL-terminated, no newline). */
static int merge_line(struct tokenizer *t, const struct id_map *map,
		      const int cp_to_byte[324], char *line, int rank,
		      const char *path)
{
	char buf[2048];
	char *sp = strchr(line, ' ');
	long la, lb;
	int a, b, ab;

	if (!sp || strchr(sp + 1, ' ') || sp == line || !sp[1])
		return vocab_corrupt(path, "a merge line is not \"A B\"");
	if (strlen(line) >= sizeof(buf))
		return vocab_corrupt(path, "a merge line is too long");
	la = token_to_bytes(cp_to_byte, line, sp - line, buf);
	lb = la > 0 ? token_to_bytes(cp_to_byte, sp + 1, strlen(sp + 1),
				     buf + la) : -1;
	if (lb <= 0)
		return vocab_corrupt(path, "a merge has a character outside GPT-2's byte map");
	a = id_map_find(map, t, buf, la);
	b = id_map_find(map, t, buf + la, lb);
	ab = id_map_find(map, t, buf, la + lb);
	if (a < 0 || b < 0 || ab < 0)
		return vocab_corrupt(path, "a merge uses a token missing from encoder.json");
	if (merge_add(t->merges, a, b, rank, ab))
		return vocab_corrupt(path, "a merge appears twice");
	return 0;
}

static int parse_merges(struct tokenizer *t, const struct id_map *map,
			char *text, const char *path)
{
	int cp_to_byte[324];
	char *line = text, *nl;
	int rank = 0, err;

	build_unicode_map(cp_to_byte);
	if (strncmp(text, "#version", 8))
		return vocab_corrupt(path, "the first line is not \"#version: ...\"");
	for (; line; line = nl) {
		nl = strchr(line, '\n');
		if (nl)
			*nl++ = '\0';
		if (line == text)
			continue;	/* the #version header */
		if (*line && line[strlen(line) - 1] == '\r')
			line[strlen(line) - 1] = '\0';
		if (!*line)
			continue;
		if (rank >= TOKENIZER_N_MERGES)
			return vocab_corrupt(path, "more than 50000 merges");
		err = merge_line(t, map, cp_to_byte, line, rank++, path);
		if (err)
			return err;
	}
	if (rank != TOKENIZER_N_MERGES)
		return vocab_corrupt(path, "fewer than 50000 merges (truncated?)");
	return 0;
}

static int load_merges(struct tokenizer *t, const char *path)
{
	struct id_map map = { 0 };
	char *text = NULL;
	size_t len, cap = 1u << 17;	/* load <= 0.38 */
	int err;

	err = read_whole(path, &text, &len);
	if (err)
		return open_error(path, err);
	err = -ENOMEM;
	t->merges = calloc(1, sizeof(*t->merges));
	if (!t->merges)
		goto out;
	t->merges->slot = calloc(cap, sizeof(*t->merges->slot));
	if (!t->merges->slot)
		goto out;
	t->merges->mask = cap - 1;
	if (id_map_init(&map, t))
		goto out;
	err = parse_merges(t, &map, text, path);
out:
	free(map.slot);
	free(text);
	return err;
}

/* ---------------------------------------------------------------------
 * Pre-token cache: bytes -> ids
 */

struct cache_slot {
	uint64_t hash;		/* 0 = empty */
	uint32_t key_off, key_len;
	uint32_t ids_off, ids_len;
};

struct tok_cache {
	struct cache_slot *slot;
	size_t cap, count;
	char *keys;
	size_t keys_len, keys_cap;
	int *ids;
	size_t ids_len, ids_cap;
};

static void cache_clear(struct tok_cache *c)
{
	if (c->slot)
		memset(c->slot, 0, c->cap * sizeof(*c->slot));
	c->count = 0;
	c->keys_len = 0;
	c->ids_len = 0;
}

static void cache_free(struct tok_cache *c)
{
	if (!c)
		return;
	free(c->slot);
	free(c->keys);
	free(c->ids);
	free(c);
}

static struct cache_slot *cache_probe(struct tok_cache *c, uint64_t h,
				      const char *p, size_t n)
{
	size_t i = h & (c->cap - 1);

	for (;; i = (i + 1) & (c->cap - 1)) {
		struct cache_slot *s = &c->slot[i];

		if (!s->hash)
			return s;
		if (s->hash == h && s->key_len == n &&
		    !memcmp(c->keys + s->key_off, p, n))
			return s;
	}
}

static int cache_rehash(struct tok_cache *c)
{
	size_t ncap = c->cap ? c->cap * 2 : 4096;
	struct cache_slot *old = c->slot, *ns;
	size_t ocap = c->cap;

	ns = calloc(ncap, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	c->slot = ns;
	c->cap = ncap;
	for (size_t i = 0; i < ocap; i++) {
		size_t j = old[i].hash & (ncap - 1);

		if (!old[i].hash)
			continue;
		while (ns[j].hash)
			j = (j + 1) & (ncap - 1);
		ns[j] = old[i];
	}
	free(old);
	return 0;
}

/* Remember ids[0..n) for pre-token p[0..len). Failure only loses speed. */
static void cache_put(struct tok_cache *c, uint64_t h, const char *p,
		      size_t len, const int *ids, size_t n)
{
	struct cache_slot *s;

	if (c->count >= CACHE_MAX_ENTRIES)
		cache_clear(c);
	if ((c->count + 1) * 2 > c->cap && cache_rehash(c))
		return;
	if (grow((void **)&c->keys, &c->keys_cap, c->keys_len + len, 1) ||
	    grow((void **)&c->ids, &c->ids_cap, c->ids_len + n, sizeof(int)))
		return;
	s = cache_probe(c, h, p, len);
	s->hash = h;
	s->key_off = (uint32_t)c->keys_len;
	s->key_len = (uint32_t)len;
	s->ids_off = (uint32_t)c->ids_len;
	s->ids_len = (uint32_t)n;
	memcpy(c->keys + c->keys_len, p, len);
	memcpy(c->ids + c->ids_len, ids, n * sizeof(int));
	c->keys_len += len;
	c->ids_len += n;
	c->count++;
}

/* ---------------------------------------------------------------------
 * BPE of one pre-token
 */

struct cand {
	int32_t rank;
	uint32_t left, right;	/* node indices */
	int32_t a, b;		/* their ids when the pair was found */
};

struct bpe_work {
	int *id;		/* per node; -1 once merged away */
	int *next;		/* next live node, or -1 */
	int *prev;
	struct cand *heap, *later;
	size_t nheap, nlater;
	size_t cap, heap_cap, later_cap;
};

static int cand_less(const struct cand *x, const struct cand *y)
{
	return x->rank < y->rank || (x->rank == y->rank && x->left < y->left);
}

static int heap_push(struct bpe_work *w, struct cand c)
{
	size_t i;

	if (grow((void **)&w->heap, &w->heap_cap, w->nheap + 1, sizeof(c)))
		return -ENOMEM;
	i = w->nheap++;
	while (i && cand_less(&c, &w->heap[(i - 1) / 2])) {
		w->heap[i] = w->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	w->heap[i] = c;
	return 0;
}

static struct cand heap_pop(struct bpe_work *w)
{
	struct cand top = w->heap[0], last = w->heap[--w->nheap];
	size_t i = 0, n = w->nheap;

	for (;;) {
		size_t k = 2 * i + 1;

		if (k >= n)
			break;
		if (k + 1 < n && cand_less(&w->heap[k + 1], &w->heap[k]))
			k++;
		if (!cand_less(&w->heap[k], &last))
			break;
		w->heap[i] = w->heap[k];
		i = k;
	}
	if (n)
		w->heap[i] = last;
	return top;
}

/*
 * Queue the pair (left, next[left]) if it is a merge. A pair ranked below
 * the rank being applied (impossible for GPT-2's vocab.bpe, where every
 * merge ranks after the merges making its parts) waits until that rank is
 * done, as in the reference encoder.
 */
static int consider(const struct tokenizer *t, struct bpe_work *w, int left,
		    int cur_rank)
{
	const struct merge_slot *m;
	struct cand c;
	int right;

	if (left < 0 || (right = w->next[left]) < 0)
		return 0;
	m = merge_find(t->merges, w->id[left], w->id[right]);
	if (!m)
		return 0;
	c = (struct cand){ m->rank, left, right, w->id[left], w->id[right] };
	if (m->rank >= cur_rank)
		return heap_push(w, c);
	if (grow((void **)&w->later, &w->later_cap, w->nlater + 1, sizeof(c)))
		return -ENOMEM;
	w->later[w->nlater++] = c;
	return 0;
}

static int bpe_setup(const struct tokenizer *t, struct bpe_work *w,
		     const unsigned char *p, size_t n)
{
	size_t cap = w->cap;

	if (grow((void **)&w->id, &cap, n, sizeof(int)))
		return -ENOMEM;
	cap = w->cap;
	if (grow((void **)&w->next, &cap, n, sizeof(int)))
		return -ENOMEM;
	cap = w->cap;
	if (grow((void **)&w->prev, &cap, n, sizeof(int)))
		return -ENOMEM;
	w->cap = cap;
	for (size_t i = 0; i < n; i++) {
		w->id[i] = t->byte_id[p[i]];
		w->next[i] = i + 1 < n ? (int)i + 1 : -1;
		w->prev[i] = (int)i - 1;
	}
	w->nheap = 0;
	w->nlater = 0;
	for (size_t i = 0; i + 1 < n; i++)
		if (consider(t, w, (int)i, -1))
			return -ENOMEM;
	return 0;
}

static int cand_valid(const struct bpe_work *w, const struct cand *c)
{
	return w->id[c->left] == c->a && w->next[c->left] == (int)c->right &&
	       w->id[c->right] == c->b;
}

/* Apply merges to nodes 0..n-1 until no pair is a merge. */
static int bpe_run(const struct tokenizer *t, struct bpe_work *w)
{
	int cur = -1;

	for (;;) {
		struct cand c;
		int l, r;

		if (w->nlater && (!w->nheap || w->heap[0].rank > cur)) {
			while (w->nlater)
				if (heap_push(w, w->later[--w->nlater]))
					return -ENOMEM;
		}
		if (!w->nheap)
			return 0;
		c = heap_pop(w);
		if (!cand_valid(w, &c))
			continue;
		cur = c.rank;
		l = c.left;
		r = c.right;
		w->id[l] = merge_find(t->merges, c.a, c.b)->id;
		w->id[r] = -1;
		w->next[l] = w->next[r];
		if (w->next[r] >= 0)
			w->prev[w->next[r]] = l;
		if (consider(t, w, w->prev[l], cur) || consider(t, w, l, cur))
			return -ENOMEM;
	}
}

/* Append the ids of pre-token p[0..n) to the output array. */
struct id_out {
	int *ids;
	size_t n, cap;
};

static int emit(struct id_out *o, int id)
{
	if (grow((void **)&o->ids, &o->cap, o->n + 1, sizeof(int)))
		return -ENOMEM;
	o->ids[o->n++] = id;
	return 0;
}

static int bpe_pretoken(struct tokenizer *t, struct bpe_work *w,
			const char *p, size_t n, struct id_out *o)
{
	size_t start = o->n;
	uint64_t h = 0;
	int err;

	if (n == 1)
		return emit(o, t->byte_id[(unsigned char)p[0]]);
	if (n <= CACHE_MAX_KEY) {
		struct cache_slot *s;

		h = hash_bytes(p, n);
		s = t->cache->cap ? cache_probe(t->cache, h, p, n) : NULL;
		if (s && s->hash) {
			if (grow((void **)&o->ids, &o->cap, o->n + s->ids_len,
				 sizeof(int)))
				return -ENOMEM;
			memcpy(o->ids + o->n, t->cache->ids + s->ids_off,
			       s->ids_len * sizeof(int));
			o->n += s->ids_len;
			return 0;
		}
	}
	err = bpe_setup(t, w, (const unsigned char *)p, n);
	if (!err)
		err = bpe_run(t, w);
	for (int i = 0; !err && i >= 0; i = w->next[i])
		err = emit(o, w->id[i]);
	if (!err && h)
		cache_put(t->cache, h, p, n, o->ids + start, o->n - start);
	return err;
}

/* ---------------------------------------------------------------------
 * Public API
 */

static int compile_regex(struct tokenizer *t)
{
	PCRE2_SIZE eoff;
	int ecode;

	t->re = pcre2_compile((PCRE2_SPTR)GPT2_PATTERN, PCRE2_ZERO_TERMINATED,
			      PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF,
			      &ecode, &eoff, NULL);
	if (!t->re) {
		PCRE2_UCHAR msg[256];

		pcre2_get_error_message(ecode, msg, sizeof(msg));
		fprintf(stderr, "tokenizer: PCRE2 rejects the GPT-2 pattern at %zu: %s\n",
			(size_t)eoff, (char *)msg);
		return -EINVAL;
	}
	t->jit = pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;
	t->md = pcre2_match_data_create_from_pattern(t->re, NULL);
	return t->md ? 0 : -ENOMEM;
}

int tokenizer_load(struct tokenizer *t, const char *dir)
{
	size_t plen = strlen(dir) + 32;
	char *path = malloc(plen);
	int err = -ENOMEM;

	memset(t, 0, sizeof(*t));
	if (!path)
		goto out;
	snprintf(path, plen, "%s/encoder.json", dir);
	err = load_encoder(t, path);
	if (err)
		goto out;
	snprintf(path, plen, "%s/vocab.bpe", dir);
	err = load_merges(t, path);
	if (err)
		goto out;
	err = -ENOMEM;
	t->cache = calloc(1, sizeof(*t->cache));
	if (!t->cache)
		goto out;
	err = compile_regex(t);
out:
	free(path);
	if (err) {
		if (err == -ENOMEM)
			fprintf(stderr, "tokenizer: out of memory\n");
		tokenizer_free(t);
	}
	return err;
}

void tokenizer_free(struct tokenizer *t)
{
	free(t->bytes);
	free(t->off);
	if (t->merges)
		free(t->merges->slot);
	free(t->merges);
	cache_free(t->cache);
	pcre2_match_data_free(t->md);
	pcre2_code_free(t->re);
	memset(t, 0, sizeof(*t));
}

static void bpe_work_free(struct bpe_work *w)
{
	free(w->id);
	free(w->next);
	free(w->prev);
	free(w->heap);
	free(w->later);
}

/* Next regex match at or after @start: 1 found, 0 none, <0 error. */
static int next_match(struct tokenizer *t, const char *text, size_t len,
		      size_t start, size_t *ms, size_t *me)
{
	PCRE2_SIZE *ov;
	int rc;

	if (t->jit)
		rc = pcre2_jit_match(t->re, (PCRE2_SPTR)text, len, start, 0,
				     t->md, NULL);
	else
		rc = pcre2_match(t->re, (PCRE2_SPTR)text, len, start, 0,
				 t->md, NULL);
	if (rc == PCRE2_ERROR_NOMATCH)
		return 0;
	if (rc < 0) {
		PCRE2_UCHAR msg[256];

		pcre2_get_error_message(rc, msg, sizeof(msg));
		fprintf(stderr, "tokenizer: regex match failed at byte %zu: %s\n",
			start, (char *)msg);
		return -EIO;
	}
	ov = pcre2_get_ovector_pointer(t->md);
	*ms = ov[0];
	*me = ov[1];
	return *me > *ms ? 1 : -EIO;
}

static int encode_text(struct tokenizer *t, struct bpe_work *w,
		       const char *text, size_t len, struct id_out *o)
{
	size_t pos = 0, ms, me;
	int err = 0, rc;

	while (!err && pos < len) {
		rc = next_match(t, text, len, pos, &ms, &me);
		if (rc < 0)
			return rc;
		if (rc == 0)
			ms = me = len;
		/* Bytes no alternative can match (invalid UTF-8): one each. */
		for (; !err && pos < ms; pos++)
			err = emit(o, t->byte_id[(unsigned char)text[pos]]);
		if (!err && me > ms)
			err = bpe_pretoken(t, w, text + ms, me - ms, o);
		pos = me;
	}
	return err;
}

int tokenizer_encode(struct tokenizer *t, const char *text, size_t len,
		     int **ids, size_t *n)
{
	struct id_out o = { 0 };
	struct bpe_work w = { 0 };
	int err;

	err = grow((void **)&o.ids, &o.cap, len / 3 + 16, sizeof(int));
	if (!err)
		err = encode_text(t, &w, text ? text : "", text ? len : 0, &o);
	bpe_work_free(&w);
	if (err) {
		if (err == -ENOMEM)
			fprintf(stderr, "tokenizer: out of memory encoding %zu bytes\n", len);
		free(o.ids);
		*ids = NULL;
		*n = 0;
		return err;
	}
	*ids = o.ids;
	*n = o.n;
	return 0;
}

int tokenizer_decode(const struct tokenizer *t, const int *ids, size_t n,
		     char **out, size_t *len)
{
	size_t total = 0, pos = 0;
	char *buf;

	*out = NULL;
	*len = 0;
	for (size_t i = 0; i < n; i++) {
		if (ids[i] < 0 || ids[i] >= TOKENIZER_VOCAB) {
			fprintf(stderr, "tokenizer: id %d at position %zu is outside 0..%d\n",
				ids[i], i, TOKENIZER_VOCAB - 1);
			return -EINVAL;
		}
		total += t->off[ids[i] + 1] - t->off[ids[i]];
	}
	buf = malloc(total + 1);
	if (!buf) {
		fprintf(stderr, "tokenizer: out of memory decoding %zu ids\n", n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t l = t->off[ids[i] + 1] - t->off[ids[i]];

		memcpy(buf + pos, t->bytes + t->off[ids[i]], l);
		pos += l;
	}
	buf[pos] = '\0';
	*out = buf;
	*len = pos;
	return 0;
}

const char *tokenizer_token(const struct tokenizer *t, int id, size_t *len)
{
	if (id < 0 || id >= TOKENIZER_VOCAB || !t->off) {
		*len = 0;
		return NULL;
	}
	*len = t->off[id + 1] - t->off[id];
	return t->bytes + t->off[id];
}

/*
 * Length of the well-formed UTF-8 sequence at s[0..n), or, when it is
 * ill-formed, minus the length of its maximal subpart (>= 1 byte).
 */
static int utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	int need, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		need = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		need = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		need = 4;
	else
		return -1;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	for (i = 1; i < need; i++) {
		if ((size_t)i >= n || s[i] < lo || s[i] > hi)
			return -i;
		lo = 0x80;
		hi = 0xbf;
	}
	return need;
}

char *utf8_sanitize(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	char *out = malloc(len * 3 + 1);	/* a byte becomes <= 3 */
	size_t i = 0, o = 0;

	if (!out)
		return NULL;
	while (i < len) {
		int l = utf8_seq(u + i, len - i);

		if (l > 0) {
			memcpy(out + o, s + i, l);
			o += l;
			i += l;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i += -l;
		}
	}
	out[o] = '\0';
	return out;
}
