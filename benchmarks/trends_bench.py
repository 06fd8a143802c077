"""Trend-query benchmark: a year of 100 outlets (~2 million statements) in the monitoring
tables, then the `/v1/trends` queries timed through the service's own code
(service.monitor.trends.query), plus the review queue's candidate query and the daily
re-aggregation that every ingest runs.

    nice -n 15 .venv/bin/python benchmarks/trends_bench.py --url sqlite:///data/bench/trends.db \
        --output benchmarks/trends_sqlite.json
    nice -n 15 .venv/bin/python benchmarks/trends_bench.py \
        --url postgresql+psycopg://postgres@127.0.0.1:5433/stance_bench --output benchmarks/trends_postgres.json

Rows are bulk-generated (executemany; COPY on PostgreSQL) with a fixed seed: articles
per outlet-day ~ Poisson(5), statements per article ~ Poisson(11), stance rates varying by
outlet; the daily counts are computed from the generated statements, and a sample of
outlet-days is checked against `rebuild_daily` (the ingest path).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select, text  # noqa: E402

from service.monitor import trends  # noqa: E402
from service.monitor.ingest import month_start, rebuild_daily, week_start  # noqa: E402
from service.monitor.review import ReviewQueue  # noqa: E402
from service.monitor.tables import ALL, STANCE, Article, DailyCount, StoredStatement  # noqa: E402
from service.monitor.wiring import ensure_tables  # noqa: E402
from service.settings import load_service_settings as load_settings  # noqa: E402
from service.store.engine import Database  # noqa: E402
from service.store.repository import AnnotationStore  # noqa: E402

VERSION = "vbench"
START = date(2025, 1, 1)
BATCH = 50_000


def generate(db: Database, outlets: int, days: int, seed: int, labels: list[str]) -> dict:
    rng = np.random.default_rng(seed)
    stance_rate = rng.uniform(0.1, 0.4, outlets)
    label_p = rng.dirichlet(np.ones(len(labels)) * 2, outlets)  # which label a stance statement carries
    art_rows, st_cols = [], {k: [] for k in ("id", "article_id", "position", "mask", "margin")}
    daily: dict[tuple, list] = {}
    aid = sid = 0
    now = datetime.now(UTC)
    for o in range(outlets):
        outlet = f"outlet-{o:03d}"
        for d in range(days):
            day = START + timedelta(days=d)
            for _ in range(rng.poisson(5)):
                aid += 1
                n = max(1, rng.poisson(11))
                art_rows.append(
                    {
                        "id": aid,
                        "feed_id": None,
                        "outlet": outlet,
                        "guid": f"g{aid}",
                        "url": None,
                        "content_hash": f"{aid:064x}",
                        "title": f"article {aid}",
                        "published_at": datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
                        "published_given": True,
                        "day": day,
                        "fetched_at": now,
                        "model_version": VERSION,
                        "n_statements": n,
                        "n_boilerplate": 0,
                    }
                )
                stance = rng.random(n) < stance_rate[o]
                which = rng.choice(len(labels), size=n, p=label_p[o])
                masks = np.where(stance, 1 << which, 0)
                for p_, m in enumerate(masks):
                    sid += 1
                    st_cols["id"].append(sid)
                    st_cols["article_id"].append(aid)
                    st_cols["position"].append(p_)
                    st_cols["mask"].append(int(m))
                    st_cols["margin"].append(float(rng.exponential(2.0)))
                    names = [ALL] + ([STANCE] if m else []) + [labels[i] for i in range(len(labels)) if m >> i & 1]
                    for name in names:
                        cell = daily.setdefault((outlet, day, name), [0, set()])
                        cell[0] += 1
                        cell[1].add(aid)
    print(f"generated {aid} articles, {sid} statements", file=sys.stderr)
    t0 = time.perf_counter()
    if db.is_sqlite:
        _insert_sqlite(db, art_rows, st_cols, labels)
    else:
        _copy_postgres(db, art_rows, st_cols, labels)
    daily_rows = [
        {
            "outlet": o,
            "day": d,
            "model_version": VERSION,
            "label": name,
            "week": week_start(d),
            "month": month_start(d),
            "statements": c[0],
            "articles": len(c[1]),
        }
        for (o, d, name), c in daily.items()
    ]
    with db.engine.begin() as conn:
        for i in range(0, len(daily_rows), BATCH):
            conn.execute(insert(DailyCount), daily_rows[i : i + BATCH])
    with db.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return {
        "articles": aid,
        "statements": sid,
        "daily_rows": len(daily_rows),
        "load_seconds": round(time.perf_counter() - t0, 1),
    }


def _statement_dicts(st: dict, labels: list[str], lo: int, hi: int):
    for i in range(lo, hi):
        m = st["mask"][i]
        labs = [labels[j] for j in range(len(labels)) if m >> j & 1]
        yield {
            "id": st["id"][i],
            "article_id": st["article_id"][i],
            "position": st["position"][i],
            "text": f"Synthetic statement {st['id'][i]} about the alliance.",
            "key": f"{st['id'][i]:064x}",
            "boilerplate": None,
            "scores": json.dumps({n: 0.9 if n in labs else 0.1 for n in labels}),
            "labels": json.dumps(labs),
            "label_mask": m,
            "margin": st["margin"][i],
            "model_version": VERSION,
        }


def _insert_sqlite(db: Database, arts: list[dict], st: dict, labels: list[str]) -> None:
    with db.engine.begin() as conn:
        for i in range(0, len(arts), BATCH):
            conn.execute(insert(Article), arts[i : i + BATCH])
    n = len(st["id"])
    for i in range(0, n, BATCH):
        with db.engine.begin() as conn:
            conn.execute(insert(StoredStatement), list(_statement_dicts(st, labels, i, min(n, i + BATCH))))


def _copy_postgres(db: Database, arts: list[dict], st: dict, labels: list[str]) -> None:
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        acols = list(arts[0])
        with cur.copy(f"COPY monitor_articles ({', '.join(acols)}) FROM STDIN") as cp:
            for a in arts:
                cp.write_row([a[c] for c in acols])
        scols = [
            "id",
            "article_id",
            "position",
            "text",
            "key",
            "boilerplate",
            "scores",
            "labels",
            "label_mask",
            "margin",
            "model_version",
        ]
        with cur.copy(f"COPY monitor_statements ({', '.join(scols)}) FROM STDIN") as cp:
            for row in _statement_dicts(st, labels, 0, len(st["id"])):
                cp.write_row([row[c] for c in scols])
        raw.commit()
    finally:
        raw.close()


class CpuClock:
    """CPU seconds spent on a query: this process (SQLite runs in it) plus, on PostgreSQL,
    the server backend serving our connection (read from /proc). On a shared, overloaded
    machine this is the honest measure of a query's cost; wall time is reported beside it."""

    def __init__(self, db: Database) -> None:
        self.backend_pid: int | None = None
        if not db.is_sqlite:
            # Pin one connection so every read runs on the backend whose CPU we read.
            self.conn = db.engine.connect()
            self.backend_pid = self.conn.execute(text("SELECT pg_backend_pid()")).scalar()
            self.conn.commit()
            db._read.configure(bind=self.conn)

    def _backend(self) -> float:
        if self.backend_pid is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def now(self) -> float:
        return time.process_time() + self._backend()


def timed(fn, repeat: int, clock: CpuClock) -> dict:
    walls, cpus = [], []
    result = None
    for _ in range(repeat):
        c0, t0 = clock.now(), time.perf_counter()
        result = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(clock.now() - c0)
    return {
        "cpu_median_s": round(statistics.median(cpus), 4),
        "cpu_max_s": round(max(cpus), 4),
        "wall_first_s": round(walls[0], 4),
        "wall_median_s": round(statistics.median(walls), 4),
        "wall_max_s": round(max(walls), 4),
        "result_rows": len(result) if isinstance(result, list) else result,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="SQLAlchemy URL of an EMPTY database (its tables are created)")
    p.add_argument("--outlets", type=int, default=100)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--reuse", action="store_true", help="time a database this script filled before")
    p.add_argument(
        "--note",
        default="",
        help="how the machine was loaded during the run (kept in the JSON beside the load averages)",
    )
    args = p.parse_args()

    settings = load_settings()
    labels = list(settings.labels)
    db = Database(args.url, settings.store.busy_timeout_ms)
    ensure_tables(db)
    with db.read() as s:
        present = s.scalar(select(func.count()).select_from(Article))
        if present and not args.reuse:
            sys.exit(f"{args.url} already holds articles; give an empty database (or --reuse)")
        if present:
            volume = {
                "articles": present,
                "statements": s.scalar(select(func.count()).select_from(StoredStatement)),
                "daily_rows": s.scalar(select(func.count()).select_from(DailyCount)),
                "load_seconds": None,
            }
    if not present:
        volume = generate(db, args.outlets, args.days, args.seed, labels)
    clock = CpuClock(db)
    load_at_start = os.getloadavg()  # the timings start here; generation is not timed

    end = START + timedelta(days=args.days - 1)
    max_rows = settings.monitor.trends_max_rows
    q = lambda **kw: lambda: trends.query(db, trends.TrendQuery(**kw), labels, max_rows)["rows"]  # noqa: E731
    one = ("outlet-007",)
    ten = tuple(f"outlet-{i:03d}" for i in range(10))
    queries = {
        "one outlet, week, full year": q(outlets=one, start=START, end=end, bucket="week"),
        "one outlet, day, full year": q(outlets=one, start=START, end=end, bucket="day"),
        "ten outlets, week, full year": q(outlets=ten, start=START, end=end, bucket="week"),
        "all outlets, week, full year": q(start=START, end=end, bucket="week"),
        "all outlets, month, full year": q(start=START, end=end, bucket="month"),
        "all outlets, day, one month": q(start=date(2025, 6, 1), end=date(2025, 6, 30), bucket="day"),
        "all outlets, one label, week, one quarter": q(
            labels=("opposition",), start=date(2025, 4, 1), end=date(2025, 6, 30), bucket="week"
        ),
        "csv: all outlets, week, full year": lambda: trends.to_csv(
            trends.query(db, trends.TrendQuery(start=START, end=end, bucket="week"), labels, max_rows)
        ).count("\n"),
    }
    timings = {name: timed(fn, args.repeat, clock) for name, fn in queries.items()}

    review = ReviewQueue(AnnotationStore(settings, db), settings.monitor.review_pool, settings.monitor.review_lambda)
    timings["review candidates (pool 200)"] = timed(
        lambda: review.candidates(settings.monitor.review_pool), args.repeat, clock
    )

    # The ingest path's re-aggregation of one outlet-day, and a check that it reproduces
    # the generated daily counts.
    rng = np.random.default_rng(args.seed + 1)
    sample = [
        (f"outlet-{rng.integers(args.outlets):03d}", START + timedelta(days=int(rng.integers(args.days))))
        for _ in range(20)
    ]

    def daily_rows() -> dict[tuple[str, date], list[Any]]:
        with db.read() as s:
            q = select(DailyCount.label, DailyCount.statements, DailyCount.articles)
            return {
                pair: sorted(s.execute(q.where(DailyCount.outlet == pair[0], DailyCount.day == pair[1])).all())
                for pair in sample
            }

    before = daily_rows()
    c0, t0 = time.process_time(), time.perf_counter()
    for pair in sample:
        with db.write() as s:
            rebuild_daily(s, {pair}, labels)
    rebuild_s = (time.perf_counter() - t0) / len(sample)
    rebuild_cpu = (time.process_time() - c0) / len(sample)
    after = daily_rows()
    timings["rebuild_daily, one outlet-day (ingest/rescore path), mean"] = {
        "wall_mean_s": round(rebuild_s, 4),
        "client_cpu_mean_s": round(rebuild_cpu, 4),
    }

    size = None
    if db.is_sqlite:
        path = Path(args.url.split("///", 1)[-1])
        size = sum(f.stat().st_size for f in path.parent.glob(path.name + "*"))
    else:
        with db.engine.connect() as conn:
            size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar()
    result = {
        "command": ".venv/bin/python benchmarks/trends_bench.py " + " ".join(sys.argv[1:]),
        "database": db.engine.dialect.name,
        "server_version": ".".join(map(str, db.engine.dialect.server_version_info or ())) or None,
        "machine": {
            "python": platform.python_version(),
            "cpus": __import__("os").cpu_count(),
            "note": args.note,
        },
        "outlets": args.outlets,
        "days": args.days,
        **volume,
        "database_bytes": size,
        "daily_counts_reproduced_by_rebuild": before == after,
        "under_one_second_cpu": all(v["cpu_max_s"] < 1.0 for v in timings.values() if "cpu_max_s" in v),
        "under_one_second_wall_median": all(v["wall_median_s"] < 1.0 for v in timings.values() if "wall_median_s" in v),
        "under_one_second_wall_max": all(v["wall_max_s"] < 1.0 for v in timings.values() if "wall_max_s" in v),
        "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
        "timings": timings,
    }
    args.output.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
