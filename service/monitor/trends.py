"""Stance trends per outlet and day / week / month, from the pre-aggregated daily counts.

Per bucket and outlet: articles and statements scored, stance-bearing statements
(at least one label) and articles, and per label the statements carrying it, their share
of the stance-bearing statements, and a Wilson 95% interval for that share. The Wilson
interval treats statements as independent draws; statements of one article are not quite
(see docs/MONITORING.md). The answer names the model versions whose scores it sums.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from sqlalchemy import String, func, select, type_coerce

from service.monitor.tables import ALL, STANCE, DailyCount
from service.store.engine import Database

Bucket = Literal["day", "week", "month"]
Z95 = 1.959963984540054


class TrendQueryError(ValueError):
    pass


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of k successes in n trials; (0, 1) when there is no trial."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class TrendQuery:
    outlets: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    start: date | None = None
    end: date | None = None  # inclusive
    bucket: Bucket = "week"


def query(db: Database, q: TrendQuery, schema: Sequence[str], max_rows: int) -> dict[str, Any]:
    unknown = [lab for lab in q.labels if lab not in schema]
    if unknown:
        raise TrendQueryError(f"unknown label(s) {unknown}; known: {list(schema)}")
    labels = list(q.labels) or list(schema)
    if q.start and q.end and q.start > q.end:  # an empty range: nothing in it (not an error)
        return {
            "bucket": q.bucket,
            "from": q.start.isoformat(),
            "to": q.end.isoformat(),
            "labels": labels,
            "interval": "wilson-95",
            "share_of": "stance_statements",
            "model_versions": [],
            "rows": [],
        }
    # The bucket as text: 'YYYY-MM-DD' from SQLite and str(date) from PostgreSQL alike,
    # without parsing a date per row.
    col = type_coerce({"day": DailyCount.day, "week": DailyCount.week, "month": DailyCount.month}[q.bucket], String)
    conds = [DailyCount.label.in_([ALL, STANCE, *labels])]
    if q.outlets:
        conds.append(DailyCount.outlet.in_(q.outlets))
    if q.start:
        conds.append(DailyCount.day >= q.start)
    if q.end:
        conds.append(DailyCount.day <= q.end)
    # One scan: grouped by model version too, summed over versions below.
    stmt = (
        select(
            DailyCount.outlet,
            col,
            DailyCount.label,
            DailyCount.model_version,
            func.sum(DailyCount.statements),
            func.sum(DailyCount.articles),
        )
        .where(*conds)
        .group_by(DailyCount.outlet, col, DailyCount.label, DailyCount.model_version)
    )
    with db.read() as s:
        rows = s.execute(stmt.limit(max_rows * (len(labels) + 2) * 4 + 1)).all()
    cells: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(dict)
    versions: dict[str, int] = defaultdict(int)
    for outlet, bucket, label, version, n_st, n_art in rows:
        cell = cells[(outlet, str(bucket)[:10])].setdefault(label, [0, 0])
        cell[0] += int(n_st)
        cell[1] += int(n_art)
        if label == ALL:
            versions[version] += int(n_st)
    if len(cells) > max_rows:
        raise TrendQueryError(f"more than {max_rows} rows; narrow the outlets or dates, or use a larger bucket")
    out_rows = []
    none = (0, 0)
    for (outlet, bucket), counts in sorted(cells.items()):
        statements, articles = counts.get(ALL, none)
        stance, stance_articles = counts.get(STANCE, none)
        per_label = {}
        for lab in labels:
            k, k_art = counts.get(lab, none)
            if stance:
                low, high = wilson(k, stance)
                per_label[lab] = {
                    "statements": k,
                    "articles": k_art,
                    "share": round(k / stance, 6),
                    "low": round(low, 6),
                    "high": round(high, 6),
                }
            else:
                per_label[lab] = {"statements": k, "articles": k_art, "share": None, "low": None, "high": None}
        out_rows.append(
            {
                "outlet": outlet,
                "bucket_start": bucket,
                "articles": articles,
                "statements": statements,
                "stance_articles": stance_articles,
                "stance_statements": stance,
                "labels": per_label,
            }
        )
    return {
        "bucket": q.bucket,
        "from": q.start.isoformat() if q.start else None,
        "to": q.end.isoformat() if q.end else None,
        "labels": labels,
        "interval": "wilson-95",
        "share_of": "stance_statements",
        "model_versions": [{"version": v, "statements": n} for v, n in sorted(versions.items(), key=lambda r: -r[1])],
        "rows": out_rows,
    }


CSV_COLUMNS = [
    "outlet",
    "bucket_start",
    "articles",
    "statements",
    "stance_articles",
    "stance_statements",
    "label",
    "label_statements",
    "label_articles",
    "share",
    "low",
    "high",
]


def to_csv(result: dict[str, Any]) -> str:
    """One line per outlet, bucket and label (long format: spreadsheets pivot it)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in result["rows"]:
        for lab, cell in row["labels"].items():
            writer.writerow(
                [
                    row["outlet"],
                    row["bucket_start"],
                    row["articles"],
                    row["statements"],
                    row["stance_articles"],
                    row["stance_statements"],
                    lab,
                    cell["statements"],
                    cell["articles"],
                    _blank(cell["share"]),
                    _blank(cell["low"]),
                    _blank(cell["high"]),
                ]
            )
    return buf.getvalue()


def _blank(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"
