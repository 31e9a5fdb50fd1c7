/* row_cost.c -- what one index row costs SQLite, by the way it is written:
 * the design question behind issue 11's "the rows cost, not the
 * statements".
 *
 * Usage: row_cost [ROWS [DIR]]   (default 1,000,000 rows, /tmp; ROWS is
 * rounded down to whole transactions)
 *
 * Each way inserts the same ROWS rows into a fresh index file, in
 * transactions of BATCH rows, with the daemon writer's settings (WAL,
 * synchronous=FULL, a 12 MB page cache): a table shaped like anchor_uses
 * (part, anchor, at, event row; WITHOUT ROWID), whose anchor is random, so
 * that each row lands on a random leaf of the open part as an anchor use
 * does. Printed is the CPU time (user and system, not the wall clock the
 * fsyncs wait on) per row, and each way's ratio to the first:
 *
 *   one row a statement     bind, step and reset per row: the daemon's way
 *   ... sorted by key       the batch sorted first, so consecutive rows
 *                           fall on the same leaf
 *   four rows a statement   INSERT ... VALUES (...), (...), (...), (...)
 *   INSERT ... SELECT       every row of the batch in one statement, from
 *                           a temporary table it was staged in (untimed):
 *                           the B-tree work of a row with no statement
 *                           around it, the floor of any design that still
 *                           writes one row per key
 *
 * Only the writing is timed: not making the keys, nor staging them.
 */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#define BATCH      4000  /* rows a transaction, as the daemon's batches */
#define ANCHORS    12500 /* as many as a 1M-entry bench/run drain names */
#define PART_ROWS  65536 /* uses in one part, as store/anchor_parts.c */
#define MULTI_ROWS 4     /* the rows of FOUR_A_STATEMENT's VALUES */

struct use {
    int64_t part, anchor, at, event;
};

enum way { ONE_A_STATEMENT, SORTED, FOUR_A_STATEMENT, INSERT_SELECT, WAYS };

static const char *const way_name[WAYS] = {
    "one row a statement", "... sorted by key", "four rows a statement",
    "INSERT ... SELECT"};

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static uint64_t next_random(uint64_t *state)
{
    /* xorshift64*: fast, deterministic, good enough for keys. */
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ULL;
}

static int use_order(const void *a, const void *b)
{
    const struct use *x = a, *y = b;
    if (x->part != y->part)
        return x->part < y->part ? -1 : 1;
    if (x->anchor != y->anchor)
        return x->anchor < y->anchor ? -1 : 1;
    return x->at < y->at ? -1 : x->at > y->at;
}

static int fail(sqlite3 *db, const char *what)
{
    fprintf(stderr, "row_cost: %s: %s\n", what, sqlite3_errmsg(db));
    return 1;
}

static int exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0
                                                                : fail(db, sql);
}

/* Rows first .. first + BATCH - 1, in arrival order. */
static void make_batch(uint64_t *rng, int64_t first, struct use *out)
{
    for (int i = 0; i < BATCH; i++) {
        int64_t row = first + i;
        out[i] =
            (struct use){row / PART_ROWS, (int64_t)(next_random(rng) % ANCHORS),
                         row * 6667, row};
    }
}

static int insert_batch(sqlite3 *db, sqlite3_stmt *stmt, int per_statement,
                        const struct use *uses, int n)
{
    for (int i = 0; i < n; i += per_statement) {
        for (int k = 0; k < per_statement; k++) {
            const struct use *u = &uses[i + k];
            sqlite3_bind_int64(stmt, 4 * k + 1, u->part);
            sqlite3_bind_int64(stmt, 4 * k + 2, u->anchor);
            sqlite3_bind_int64(stmt, 4 * k + 3, u->at);
            sqlite3_bind_int64(stmt, 4 * k + 4, u->event);
        }
        int step = sqlite3_step(stmt);
        sqlite3_reset(stmt);
        if (step != SQLITE_DONE)
            return fail(db, "insert");
    }
    return 0;
}

/* The statement a way writes with; INSERT_SELECT copies the batch staged
 * in the temporary table batch. */
static const char *way_sql(enum way way)
{
    switch (way) {
    case FOUR_A_STATEMENT:
        return "INSERT INTO uses VALUES (?,?,?,?), (?,?,?,?), (?,?,?,?), "
               "(?,?,?,?)";
    case INSERT_SELECT: return "INSERT INTO uses SELECT * FROM batch";
    default: return "INSERT INTO uses VALUES (?, ?, ?, ?)";
    }
}

/* One transaction of the batch in uses, the given way; *spent grows by
 * the CPU time of writing it (the sort included, staging and clearing the
 * temporary table not). */
static int write_batch(sqlite3 *db, enum way way, sqlite3_stmt *stmt,
                       sqlite3_stmt *stage, struct use *uses, double *spent)
{
    int rc = exec(db, "BEGIN");
    if (!rc && way == INSERT_SELECT)
        rc = insert_batch(db, stage, 1, uses, BATCH);
    double start = cpu_seconds();
    if (!rc && way == SORTED)
        qsort(uses, BATCH, sizeof *uses, use_order);
    if (!rc && way == INSERT_SELECT) {
        int step = sqlite3_step(stmt);
        sqlite3_reset(stmt);
        if (step != SQLITE_DONE)
            rc = fail(db, "insert ... select");
    } else if (!rc) {
        rc = insert_batch(db, stmt, way == FOUR_A_STATEMENT ? MULTI_ROWS : 1,
                          uses, BATCH);
    }
    if (!rc)
        rc = exec(db, "COMMIT");
    *spent += cpu_seconds() - start;
    if (!rc && way == INSERT_SELECT)
        rc = exec(db, "DELETE FROM batch");
    return rc;
}

/* CPU seconds spent writing rows (a multiple of BATCH) the given way into
 * a fresh file at path, or a negative value on failure. */
static double run_way(enum way way, int64_t rows, const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL, *stage = NULL;
    struct use *uses = malloc(BATCH * sizeof *uses);
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    double spent = 0;
    int rc = 0;
    if (uses == NULL) {
        fprintf(stderr, "row_cost: out of memory\n");
        return -1;
    }
    if (sqlite3_open(path, &db) != SQLITE_OK)
        rc = fail(db, "open");
    if (!rc)
        rc = exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; "
                      "PRAGMA cache_size = -12000; PRAGMA temp_store = "
                      "MEMORY; CREATE TABLE uses (part INTEGER NOT NULL, "
                      "anchor INTEGER NOT NULL, at INTEGER NOT NULL, event "
                      "INTEGER NOT NULL, PRIMARY KEY (part, anchor, at, "
                      "event)) WITHOUT ROWID; CREATE TEMP TABLE batch (part, "
                      "anchor, at, event)");
    if (!rc &&
        (sqlite3_prepare_v2(db, way_sql(way), -1, &stmt, NULL) != SQLITE_OK ||
         sqlite3_prepare_v2(db, "INSERT INTO batch VALUES (?, ?, ?, ?)", -1,
                            &stage, NULL) != SQLITE_OK))
        rc = fail(db, "prepare");
    for (int64_t first = 0; !rc && first < rows; first += BATCH) {
        make_batch(&rng, first, uses);
        rc = write_batch(db, way, stmt, stage, uses, &spent);
    }
    sqlite3_finalize(stmt);
    sqlite3_finalize(stage);
    sqlite3_close(db);
    free(uses);
    char wal[300], shm[300];
    snprintf(wal, sizeof wal, "%s-wal", path);
    snprintf(shm, sizeof shm, "%s-shm", path);
    remove(path);
    remove(wal);
    remove(shm);
    return rc ? -1 : spent;
}

int main(int argc, char **argv)
{
    int64_t rows = (argc > 1 ? atoll(argv[1]) : 1000000) / BATCH * BATCH;
    const char *dir = argc > 2 ? argv[2] : "/tmp";
    if (rows < BATCH) {
        fprintf(stderr, "usage: row_cost [ROWS>=%d [DIR]]\n", BATCH);
        return 2;
    }
    char path[256];
    snprintf(path, sizeof path, "%s/row_cost.%d.db", dir, (int)getpid());
    printf("%lld rows into a WITHOUT ROWID table of 4 integers, %d a "
           "transaction, synchronous=FULL; CPU per row\n",
           (long long)rows, BATCH);
    double first = 0;
    for (int way = 0; way < WAYS; way++) {
        double spent = run_way((enum way)way, rows, path);
        if (spent < 0)
            return 1;
        if (way == 0)
            first = spent;
        printf("%-24s %6.3f us   %.2fx\n", way_name[way],
               spent / (double)rows * 1e6, spent / first);
    }
    return 0;
}
