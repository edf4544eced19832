"""The database ceiling: pgbench running taskgate's own SQL, no Python in the path.

The statements come from store/queries.py at run time (INSERT_TASK, and task_page_statements
for ListTasks(page_size=10) with no sort_by/filter: created_at ASC, id ASC, LIMIT 11, then
count(*), in one REPEATABLE READ READ ONLY transaction), against the tasks table created by
store/migrations/*.sql in a fresh database on the machine's PG15. $n parameters become pgbench
variables; the INSERT's id ($1, a uuid4 made in Python by taskgate) is gen_random_uuid()::text.

Two variants per statement, each pgbench -c32 -j1 -T10 (--clients/--duration to change):
  prepared        -M prepared: the statements alone (asyncpg also prepares and caches them)
  +pool reset     -M simple, plus the query asyncpg's pool sends on every release,
                  "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;",
                  as one compound statement (one round trip, as asyncpg sends it). Simple
                  protocol means every statement is parsed and planned each time, so this
                  variant over-counts parse/plan cost against asyncpg.

    python bench/pgbench.py [--repeat 2] [--clients 32] [--duration 10]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess

from _harness import (
    BENCH_DB,
    PG_HOST,
    PG_PASSWORD,
    PG_PORT,
    RAW,
    REPO,
    ensure_postgres,
    fresh_database,
    log,
    machine,
    psql,
    save_json,
    stop_postgres_if,
    table,
)

from taskgate.store import queries
from taskgate.store.records import TaskQuery

PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
RESET = r"SELECT pg_advisory_unlock_all() \; CLOSE ALL \; UNLISTEN * \; RESET ALL;"


def _one_line(sql: str) -> str:
    return " ".join(sql.split())


def list_script(with_reset: bool) -> str:
    page = queries.task_page_statements(TaskQuery(limit=10))
    rows_sql = page.rows_sql
    lines = ["\\set lim " + str(page.rows_args[-1])]
    rows_sql = re.sub(rf"\${len(page.rows_args)}\b", ":lim", rows_sql)
    if page.rows_args[:-1]:
        raise RuntimeError("unexpected parameters in the default ListTasks statements")
    lines += [
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;",
        _one_line(rows_sql) + ";",
        _one_line(page.count_sql) + ";",
        "COMMIT;",
    ]
    if with_reset:
        lines.append(RESET)
    return "\n".join(lines) + "\n"


def insert_script(with_reset: bool) -> str:
    values = {
        "$1": "gen_random_uuid()::text",
        "$2": ":ns",
        "$3": ":pipeline",
        "$4": ":run",
        "$5": ":mlmd",
        "$6": ":created",
        "$7": ":finished",
        "$8": ":fp",
    }
    sql = re.sub(r"\$\d\b", lambda m: values[m.group(0)], _one_line(queries.INSERT_TASK))
    lines = [
        "\\set created 1704164645",
        "\\set finished 0",
        # pgbench variables are untyped text here; the tasks columns make them text/bigint.
        "\\set ns 1",
        "\\set pipeline 2",
        "\\set run 3",
        "\\set mlmd 7",
        "\\set fp 9",
        sql + ";",
    ]
    if with_reset:
        lines.append(RESET)
    return "\n".join(lines) + "\n"


def prepare_schema() -> None:
    fresh_database()
    for migration in sorted((REPO / "store" / "migrations").glob("*.sql")):
        psql(migration.read_text())


def seed() -> None:
    psql(
        "TRUNCATE tasks; INSERT INTO tasks SELECT gen_random_uuid()::text, 'ns1', 'p' || i,"
        " 'r' || i, i::text, 1685577600 + i, 0, 'f' || i FROM generate_series(1, 20) AS i"
    )


def pgbench(script: str, name: str, mode: str, clients: int, duration: int) -> dict[str, object]:
    RAW.mkdir(parents=True, exist_ok=True)
    path = RAW / f"pgbench-{name}.sql"
    path.write_text(script)
    env = {**os.environ, "PGPASSWORD": PG_PASSWORD}
    argv = [PGBENCH, "-h", PG_HOST, "-p", str(PG_PORT), "-U", "postgres", "-n", "-M", mode]
    argv += ["-c", str(clients), "-j", "1", "-T", str(duration), "-f", str(path), BENCH_DB]
    out = subprocess.run(
        argv, env=env, capture_output=True, text=True, check=True, timeout=duration + 120
    ).stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))  # type: ignore[union-attr]
    failed = int(re.search(r"number of failed transactions: (\d+)", out).group(1))  # type: ignore[union-attr]
    return {"tps": tps, "latency_avg_ms": latency, "failed": failed}


def main() -> None:
    parser = argparse.ArgumentParser(description="pgbench with taskgate's SQL")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    info = machine()
    pg_started = ensure_postgres()
    runs = []
    try:
        prepare_schema()
        for rep in range(1, args.repeat + 1):
            for statement, make in (("list", list_script), ("insert", insert_script)):
                for variant, mode, with_reset in (
                    ("prepared", "prepared", False),
                    ("+pool reset (simple)", "simple", True),
                ):
                    if statement == "list":
                        seed()
                    name = f"{statement}{'-reset' if with_reset else ''}"
                    result = pgbench(make(with_reset), name, mode, args.clients, args.duration)
                    runs.append({"rep": rep, "statement": statement, "variant": variant,
                                 **result})  # fmt: skip
                    log(f"rep {rep} {statement} {variant}: {result}")
    finally:
        stop_postgres_if(pg_started)
    path = save_json("pgbench", {"machine": info, "runs": runs})
    rows = [
        [r["rep"], r["statement"], r["variant"], f"{r['tps']:.0f}",
         f"{r['latency_avg_ms']:.2f}", r["failed"]]
        for r in runs
    ]  # fmt: skip
    print(table(["rep", "statement", "variant", "tps", "latency avg ms", "failed"], rows))
    print(f"\nscripts: {RAW}/pgbench-*.sql")
    log(f"raw figures: {path}")


if __name__ == "__main__":
    main()
