// keep-guest: sqlite
// A SQLite database, for tests and benchmarks on (sealed) directories:
//   sqlite DB insert N        inserts N rows in transactions of 100 (each commit synced by
//                             SQLite), printing "committed <rows in the table>" after each
//   sqlite DB check           runs PRAGMA integrity_check; prints "<rows> rows, <sum>" and
//                             exits 1 unless the database is intact and rows are numbered
//                             1..rows
//   sqlite DB bench N         times (from inside) N inserts in transactions of 100, then
//                             1000 point queries and a full scan; prints the seconds
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sqlite3.h"

static sqlite3 *db;

static int fail(const char *what) {
    fprintf(stderr, "error: %s: %s\n", what, sqlite3_errmsg(db));
    return 1;
}

static long long single(const char *sql) {
    sqlite3_stmt *statement;
    long long value = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &statement, 0) == SQLITE_OK &&
        sqlite3_step(statement) == SQLITE_ROW) {
        value = sqlite3_column_int64(statement, 0);
    }
    sqlite3_finalize(statement);
    return value;
}

// Inserts `count` rows in transactions of 100; prints progress when `report`.
static int insert(long count, int report) {
    sqlite3_stmt *statement;
    if (sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES (?)", -1, &statement, 0) != SQLITE_OK) {
        return fail("prepare");
    }
    for (long done = 0; done < count;) {
        if (sqlite3_exec(db, "BEGIN", 0, 0, 0) != SQLITE_OK) return fail("begin");
        for (int i = 0; i < 100 && done < count; i++, done++) {
            char value[64];
            snprintf(value, sizeof value, "value %ld padded to look like a real row", done);
            sqlite3_bind_text(statement, 1, value, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(statement) != SQLITE_DONE) return fail("insert");
            sqlite3_reset(statement);
        }
        if (sqlite3_exec(db, "COMMIT", 0, 0, 0) != SQLITE_OK) return fail("commit");
        if (report) {
            printf("committed %lld\n", single("SELECT count(*) FROM t"));
            fflush(stdout);
        }
    }
    sqlite3_finalize(statement);
    return 0;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: sqlite DB insert N | check | bench N\n");
        return 2;
    }
    // WASI has no file locks: the one process using the database needs none.
    if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "unix-none") !=
        SQLITE_OK) {
        return fail("open");
    }
    // TRUNCATE: a transaction commits by truncating the journal, which SQLite then syncs.
    // In the default DELETE mode the commit is the journal's unlink, made durable only by
    // syncing the directory, which WASI cannot do (wasmtime-wasi refuses fsync on a
    // directory): a commit would then survive a crash only once the next one is synced.
    if (sqlite3_exec(db, "PRAGMA journal_mode = TRUNCATE", 0, 0, 0) != SQLITE_OK) {
        return fail("journal_mode");
    }
    if (sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS t(k INTEGER PRIMARY KEY, v TEXT)", 0, 0, 0) !=
        SQLITE_OK) {
        return fail("create");
    }
    const char *op = argv[2];
    int status = 0;
    if (!strcmp(op, "insert") && argc == 4) {
        status = insert(atol(argv[3]), 1);
    } else if (!strcmp(op, "check")) {
        sqlite3_stmt *statement;
        if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &statement, 0) != SQLITE_OK ||
            sqlite3_step(statement) != SQLITE_ROW) {
            return fail("integrity_check");
        }
        const char *verdict = (const char *)sqlite3_column_text(statement, 0);
        if (strcmp(verdict, "ok") != 0) {
            fprintf(stderr, "error: integrity_check: %s\n", verdict);
            return 1;
        }
        sqlite3_finalize(statement);
        long long rows = single("SELECT count(*) FROM t");
        long long top = single("SELECT coalesce(max(k), 0) FROM t");
        if (rows != top) {
            fprintf(stderr, "error: %lld rows, but the last is %lld\n", rows, top);
            return 1;
        }
        printf("%lld rows, %lld\n", rows, single("SELECT coalesce(sum(k), 0) FROM t"));
    } else if (!strcmp(op, "bench") && argc == 4) {
        double start = now();
        status = insert(atol(argv[3]), 0);
        long long rows = single("SELECT count(*) FROM t");
        sqlite3_stmt *statement;
        sqlite3_prepare_v2(db, "SELECT v FROM t WHERE k = ?", -1, &statement, 0);
        unsigned long long state = 88172645463325252ULL, found = 0;
        for (int i = 0; i < 1000 && rows > 0; i++) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            sqlite3_bind_int64(statement, 1, (long long)(state % (unsigned long long)rows) + 1);
            if (sqlite3_step(statement) == SQLITE_ROW) found++;
            sqlite3_reset(statement);
        }
        sqlite3_finalize(statement);
        long long length = single("SELECT sum(length(v)) FROM t");
        fprintf(stderr, "%llu found, %lld bytes\n", found, length);
        printf("%.6f\n", now() - start);
    } else {
        fprintf(stderr, "usage: sqlite DB insert N | check | bench N\n");
        status = 2;
    }
    sqlite3_close(db);
    return status;
}
