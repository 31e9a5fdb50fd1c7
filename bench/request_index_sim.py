#!/usr/bin/env python3
"""request_index_sim.py -- the request-id index alone, in SQLite, under the
daemon's write pattern: how much its moves cost per event at N events.

Batches of 4,000 (request_key, event_rowid) pairs with random 63-bit keys go
into a small tier, one transaction each (WAL, synchronous=FULL, a 12 MB page
cache, checkpoints every 8,000 pages: the daemon's settings, store/handle.c).

  tiers L0,L1,...   each full tier moves into the next in key order, the last
                    one is unbounded (store/request_tiers.c before schema 16:
                    65536,1048576)
  slices L0,L1,...  a full tier drains into the next in key-ordered slices,
                    four times the batch's pairs per tier per commit, so that
                    no commit moves a whole tier (with --whole 1, tier 0
                    still moves whole: store/request_tiers.c, with
                    65536,1048576,16777216,268435456)
  runs L0 F         the small tier becomes a new sorted run when it holds L0;
                    F runs of one level merge into one of the next

With --lookups R, R look-ups per event of keys already stored are timed too
(every tier or run is sought). Prints seconds in the inserts, in the commits
with their moves, and the per-event figures. Only the Python standard
library; for design studies, not part of bench/run.
"""
import argparse
import os
import random
import sqlite3
import time

BATCH = 4000


def remove_db(path):
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass


def open_db(path):
    remove_db(path)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA cache_size = -12000")
    db.execute("PRAGMA wal_autocheckpoint = 8000")
    return db


def pair_table(db, name, with_run=False):
    run = "run INTEGER NOT NULL, " if with_run else ""
    key = "run, k, r" if with_run else "k, r"
    db.execute(f"CREATE TABLE {name} ({run}k INTEGER NOT NULL, "
               f"r INTEGER NOT NULL, PRIMARY KEY ({key})) WITHOUT ROWID")


class Tiers:
    def __init__(self, db, limits):
        self.db, self.limits = db, limits
        self.rows = [0] * (len(limits) + 1)
        for t in range(len(self.rows)):
            pair_table(db, f"tier_{t}")
        self.lookup_sql = " UNION ALL ".join(
            f"SELECT r FROM tier_{t} WHERE k = :k" for t in range(len(self.rows)))

    def added(self, n):
        self.rows[0] += n
        for t, limit in enumerate(self.limits):
            if self.rows[t] < limit:
                return
            self.db.execute(f"INSERT INTO tier_{t + 1} SELECT * FROM tier_{t} "
                            "ORDER BY 1, 2")
            self.db.execute(f"DELETE FROM tier_{t}")
            self.rows[t + 1] += self.rows[t]
            self.rows[t] = 0


class Slices(Tiers):
    def __init__(self, db, limits, whole_from=None):
        super().__init__(db, limits)
        self.whole = whole_from
        self.cursor = [None] * len(limits)

    def added(self, n):
        self.rows[0] += n
        for t, limit in enumerate(self.limits):
            if self.cursor[t] is None and self.rows[t] >= limit:
                self.cursor[t] = (-2**63, -2**63)
            if self.cursor[t] is None:
                continue
            start = self.cursor[t]
            end = None if self.whole is not None and t < self.whole else \
                self.db.execute(
                f"SELECT k, r FROM tier_{t} WHERE (k, r) > (?, ?) "
                "ORDER BY k, r LIMIT 1 OFFSET ?", (*start, 4 * n - 1)).fetchone()
            bound = "(k, r) > (?, ?)" + (" AND (k, r) <= (?, ?)" if end else "")
            args = (*start, *end) if end else start
            moved = self.db.execute(f"INSERT INTO tier_{t + 1} SELECT * FROM "
                                    f"tier_{t} WHERE {bound} ORDER BY 1, 2",
                                    args).rowcount
            self.db.execute(f"DELETE FROM tier_{t} WHERE {bound}", args)
            self.rows[t] -= moved
            self.rows[t + 1] += moved
            self.cursor[t] = end


class Runs:
    def __init__(self, db, small, fanout):
        self.db, self.small, self.fanout = db, small, fanout
        self.rows, self.next_run = 0, 0
        pair_table(db, "tier_0")
        pair_table(db, "runs", with_run=True)
        db.execute("CREATE TABLE run_levels (run INTEGER PRIMARY KEY, "
                   "level INTEGER NOT NULL)")
        self.lookup_sql = ("SELECT r FROM tier_0 WHERE k = :k UNION ALL "
                           "SELECT r FROM runs WHERE run IN "
                           "(SELECT run FROM run_levels) AND k = :k")

    def new_run(self, level, select, args):
        run = self.next_run
        self.next_run += 1
        self.db.execute(f"INSERT INTO runs SELECT ?, k, r FROM ({select}) "
                        "ORDER BY k, r", (run, *args))
        self.db.execute("INSERT INTO run_levels VALUES (?, ?)", (run, level))

    def added(self, n):
        self.rows += n
        if self.rows < self.small:
            return
        self.new_run(0, "SELECT k, r FROM tier_0", ())
        self.db.execute("DELETE FROM tier_0")
        self.rows = 0
        level = 0
        while True:
            runs = [r for (r,) in self.db.execute(
                "SELECT run FROM run_levels WHERE level = ? ORDER BY run",
                (level,))]
            if len(runs) < self.fanout:
                return
            span = (runs[0], runs[-1])
            self.new_run(level + 1, "SELECT k, r FROM runs WHERE run "
                         "BETWEEN ? AND ?", span)
            self.db.execute("DELETE FROM runs WHERE run BETWEEN ? AND ?", span)
            self.db.execute("DELETE FROM run_levels WHERE run BETWEEN ? AND ?",
                            span)
            level += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--lookups", type=float, default=0.0,
                    help="look-ups per event, of keys already stored")
    ap.add_argument("--db", default="/tmp/request_index_sim.db")
    ap.add_argument("--whole", type=int, default=None,
                    help="slices: tiers below this one move whole")
    ap.add_argument("scheme", choices=("tiers", "slices", "runs"))
    ap.add_argument("sizes", nargs="+",
                    help="tiers, slices: L0,L1,...; runs: L0 F")
    a = ap.parse_args()
    db = open_db(a.db)
    if a.scheme in ("tiers", "slices"):
        limits = [int(x) for x in a.sizes[0].split(",")]
        index = Tiers(db, limits) if a.scheme == "tiers" else \
            Slices(db, limits, a.whole)
    else:
        index = Runs(db, int(a.sizes[0]), int(a.sizes[1]))
    rnd = random.Random(1)
    sample = []
    t_add = t_commit = t_look = 0.0
    slowest = 0.0
    tenth = max(a.events // 10 // BATCH, 1)
    first = last = 0.0
    rowid = 0
    while rowid < a.events:
        batch = [(rnd.getrandbits(63), rowid + i) for i in range(BATCH)]
        sample.extend(k for k, _ in batch[:50])
        rowid += BATCH
        t0 = time.perf_counter()
        db.execute("BEGIN")
        db.executemany("INSERT INTO tier_0 VALUES (?, ?)", batch)
        t1 = time.perf_counter()
        for _ in range(int(BATCH * a.lookups)):
            db.execute(index.lookup_sql,
                       {"k": sample[rnd.randrange(len(sample))]}).fetchall()
        t2 = time.perf_counter()
        index.added(BATCH)
        db.execute("COMMIT")
        t3 = time.perf_counter()
        t_add, t_look, t_commit = t_add + t1 - t0, t_look + t2 - t1, \
            t_commit + t3 - t2
        slowest = max(slowest, t3 - t0)
        batch_no = rowid // BATCH
        if batch_no <= tenth:
            first += t3 - t0
        elif batch_no > a.events // BATCH - tenth:
            last += t3 - t0
    us = 1e6 / a.events
    print(f"{a.scheme} {' '.join(a.sizes)}: inserts {t_add:.1f} s, commits "
          f"with moves {t_commit:.1f} s ({t_commit * us:.2f} us/event), "
          f"look-ups {t_look:.1f} s ({t_look * us:.2f} us/event); slowest "
          f"transaction {slowest:.2f} s; last / first 10 % "
          f"{first / last:.2f} (rate)")
    db.close()
    remove_db(a.db)


if __name__ == "__main__":
    main()
