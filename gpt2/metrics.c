// SPDX-License-Identifier: MIT
/*
 * The metrics sink (gpt2/metrics.h): one table of subscribers, each told
 * about every row, the summary and the end of the run. Subscribers that
 * are off in Kconfig are not in the table, so they cost nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "gpt2/config.h"
#include "gpt2/metrics.h"
#include "tracker/wandb.h"

struct metrics_sink {
	const char *name;
	int (*open)(struct metrics *m, const struct metrics_run *run);
	void (*row)(struct metrics *m, long index, const cJSON *row);
	void (*summary)(struct metrics *m, const cJSON *summary);
	int (*close)(struct metrics *m, int exit_code);
};

/* ------------------------------------------------------------------------
 * jsonl: RUN/metrics.jsonl, one object per line, flushed at once.
 */

/* Rows (newline-terminated lines) in the open file f, read from the start. */
static long count_rows(FILE *f)
{
	long n = 0;
	int c;

	rewind(f);
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	return n;
}

static int jsonl_cut(struct metrics *m, uint64_t bytes)
{
	struct stat sb;

	if (stat(m->path, &sb) || (uint64_t)sb.st_size < bytes) {
		fprintf(stderr, "kgpt: warning: %s is shorter than at the checkpoint (%llu bytes); "
			"rows before it may be missing\n", m->path, (unsigned long long)bytes);
		return 0;
	}
	if (truncate(m->path, (off_t)bytes)) {
		int rc = -errno;

		fprintf(stderr, "kgpt: cannot cut %s back to the checkpoint: %s\n", m->path,
			strerror(-rc));
		return rc;
	}
	return 0;
}

static int jsonl_open(struct metrics *m, const struct metrics_run *run)
{
	int rc = 0;

	if (run->resume)
		rc = jsonl_cut(m, run->resume_bytes);
	if (rc)
		return rc;
	m->jsonl = fopen(m->path, "a+");
	if (!m->jsonl) {
		rc = -errno;
		fprintf(stderr, "kgpt: cannot write %s: %s\n", m->path, strerror(-rc));
		return rc;
	}
	m->rows = count_rows(m->jsonl);
	return 0;
}

static void jsonl_row(struct metrics *m, long index, const cJSON *row)
{
	char *s = cJSON_PrintUnformatted(row);

	if (s && m->jsonl) {
		fprintf(m->jsonl, "%s\n", s);
		fflush(m->jsonl);
	}
	free(s);
}

static int jsonl_close(struct metrics *m, int exit_code)
{
	int rc = 0;

	if (m->jsonl && fclose(m->jsonl)) {
		fprintf(stderr, "kgpt: error closing %s: %s\n", m->path, strerror(errno));
		rc = 1;
	}
	m->jsonl = NULL;
	return rc;
}

static const struct metrics_sink jsonl_sink = {
	.name = "metrics.jsonl",
	.open = jsonl_open,
	.row = jsonl_row,
	.close = jsonl_close,
};

#if IS_ENABLED(CONFIG_ENABLE_WANDB)
/* wandb: the W&B uploader (tracker/wandb.c), after metrics.jsonl so that a
 * resumed run's row count is known when it opens. */
static const struct metrics_sink wandb_sink = {
	.name = "wandb",
	.open = wandb_open,
	.row = wandb_row,
	.summary = wandb_summary,
	.close = wandb_close,
};
#endif

/* ------------------------------------------------------------------------
 * The subscribers, in the order they are told.
 */
static const struct metrics_sink *const sinks[] = {
	&jsonl_sink,
#if IS_ENABLED(CONFIG_ENABLE_WANDB)
	&wandb_sink,
#endif
};

#define N_SINKS	((int)(sizeof(sinks) / sizeof(sinks[0])))

int metrics_open(struct metrics *m, const struct metrics_run *run)
{
	int rc = 0;

	memset(m, 0, sizeof(*m));
	snprintf(m->run_dir, sizeof(m->run_dir), "%s", run->run_dir);
	snprintf(m->path, sizeof(m->path), "%s/metrics.jsonl", run->run_dir);
	for (int i = 0; i < N_SINKS && !rc; i++)
		rc = sinks[i]->open ? sinks[i]->open(m, run) : 0;
	return rc;
}

void metrics_log(struct metrics *m, cJSON *row)
{
	for (int i = 0; i < N_SINKS; i++)
		if (sinks[i]->row)
			sinks[i]->row(m, m->rows, row);
	m->rows++;
	cJSON_Delete(row);
}

void metrics_summary(struct metrics *m, const cJSON *summary)
{
	for (int i = 0; i < N_SINKS; i++)
		if (sinks[i]->summary)
			sinks[i]->summary(m, summary);
}

int metrics_sync(struct metrics *m, uint64_t *bytes)
{
	struct stat st;
	int err;

	*bytes = 0;
	if (!m->jsonl)
		return 0;
	if (fflush(m->jsonl) || fsync(fileno(m->jsonl)) || fstat(fileno(m->jsonl), &st)) {
		err = errno;
		fprintf(stderr, "kgpt: cannot put %s on disk: %s\n", m->path, strerror(err));
		return -err;
	}
	*bytes = (uint64_t)st.st_size;
	return 0;
}

int metrics_close(struct metrics *m, int exit_code)
{
	int rc = 0;

	for (int i = N_SINKS - 1; i >= 0; i--)
		if (sinks[i]->close && sinks[i]->close(m, exit_code))
			rc = 1;
	return rc;
}
