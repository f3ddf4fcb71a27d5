"""``parity diff`` through the CLI's entry point: exit codes, formats, stats, outputs, records, bad input."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from parity.cli import cli, main
from tests.conftest import Database


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def parity(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    def run(*args: str) -> Run:
        with pytest.raises(SystemExit) as exit_info:
            main(list(args))
            raise SystemExit(0)
        captured = capsys.readouterr()
        return Run(int(exit_info.value.code or 0), captured.out, captured.err)

    return run


@pytest.fixture
def dbs(sqlite_db: Database, duckdb_db: Database) -> tuple[Database, Database]:
    for db in (sqlite_db, duckdb_db):
        db.sql(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, status VARCHAR(20), amount DECIMAL(12,2), note TEXT)",
            "INSERT INTO orders VALUES (1, 'new', 1.50, 'a'), (2, 'paid', 2.00, NULL), (3, 'sent', 3.25, 'c')",
        )
    return sqlite_db, duckdb_db


def test_identical_tables_exit_0(parity: Callable[..., Run], dbs: tuple[Database, Database]) -> None:
    result = parity("diff", dbs[0].url, dbs[1].url, "-t", "orders")
    assert result.code == 0, result
    assert "orders: identical (3 rows; 0 rows downloaded" in result.err
    assert result.out == ""


def test_differences_exit_1_and_print_as_jsonl_with_stats(
    parity: Callable[..., Run], dbs: tuple[Database, Database]
) -> None:
    source, target = dbs
    target.sql("UPDATE orders SET status = 'lost', note = '' WHERE id = 2", "DELETE FROM orders WHERE id = 3")
    result = parity("diff", source.url, target.url, "--format", "jsonl", "--stats")
    assert result.code == 1, result
    *rows, stats = [json.loads(line) for line in result.out.splitlines()]
    assert rows == [
        {
            "table": "orders",
            "key": {"id": 2},
            "kind": "changed",
            "columns": ["status", "note"],
            "source": {"id": 2, "status": "paid", "amount": "2.00", "note": None},
            "target": {"id": 2, "status": "lost", "amount": "2.00", "note": ""},
        },
        {
            "table": "orders",
            "key": {"id": 3},
            "kind": "missing",
            "columns": [],
            "source": {"id": 3, "status": "sent", "amount": "3.25", "note": "c"},
            "target": None,
        },
    ]
    assert {k: v for k, v in stats["stats"].items() if k not in ("seconds", "queries")} == {
        "table": "orders",
        "target_table": "orders",
        "source_rows": 3,
        "target_rows": 2,
        "missing": 1,
        "extra": 0,
        "changed": 1,
        "unchanged": 1,
        "column_changes": {"note": 1, "status": 1},
        "rows_downloaded": 3,
        "limited": False,
    }
    assert "orders: 2 rows differ: 1 missing, 0 extra, 1 changed" in result.err
    # (the run's id, which `parity fix --run` takes, where a script reads it: stdout, not the prose)
    assert len(stats["run_id"]) == 32, stats


def test_jsonl_is_json_where_floats_are_nan_or_infinite(
    parity: Callable[..., Run], duckdb_db: Database, pg_db: Database
) -> None:
    """jsonl printed NaN and Infinity, which no JSON parser but Python's takes (the audit)."""
    for db in (pg_db, duckdb_db):
        db.sql("CREATE TABLE fl (id INTEGER PRIMARY KEY, x DOUBLE PRECISION)")
    pg_db.sql("INSERT INTO fl VALUES (1, 'NaN'), (2, 'Infinity')")
    duckdb_db.sql("INSERT INTO fl VALUES (1, 1.0), (2, '-Infinity')")
    result = parity(
        "diff", pg_db.url, duckdb_db.url, "--source-schema", pg_db.schema, "-t", "fl", "--format", "jsonl"
    )
    assert result.code == 1, result
    rows = [
        json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} is no JSON"))
        for line in result.out.splitlines()
    ]
    assert [(r["source"]["x"], r["target"]["x"]) for r in rows] == [("NaN", 1.0), ("Infinity", "-Infinity")]


def test_csv_and_table_formats(parity: Callable[..., Run], dbs: tuple[Database, Database]) -> None:
    source, target = dbs
    target.sql("UPDATE orders SET amount = 9.99 WHERE id = 1", "INSERT INTO orders VALUES (4, 'x', 0, 'x')")
    as_csv = parity("diff", source.url, target.url, "--format", "csv")
    assert as_csv.code == 1
    rows = list(csv.DictReader(io.StringIO(as_csv.out)))
    assert [(r["kind"], r["key"], r["column_name"], r["source_value"], r["target_value"]) for r in rows] == [
        ("changed", '{"id": 1}', "amount", "1.50", "9.99"),
        ("extra", '{"id": 4}', "", "", '{"id": 4, "status": "x", "amount": "0.00", "note": "x"}'),
    ]
    assert len({r["run_id"] for r in rows}) == 1 and rows[0]["run_id"]
    # printed beside --output TABLE: the rows printed and stored hold one time of the run (they differed)
    stored = parity(
        "diff", source.url, target.url, "--format", "csv", "--output", "recon", "--output-mismatches"
    )
    printed = {(r["run_id"], r["diffed_at"]) for r in csv.DictReader(io.StringIO(stored.out))}
    (run_id, _), *others = printed
    assert not others
    (at,) = target.query("SELECT DISTINCT diffed_at FROM recon WHERE run_id = :r", r=run_id)
    assert printed == {(run_id, str(at[0]).replace("T", " "))}  # (as SQLite holds it, or its datetime)
    as_table = parity("diff", source.url, target.url, "--stats")
    assert as_table.code == 1
    assert "changed" in as_table.out and "amount" in as_table.out and "9.99" in as_table.out
    assert "diff statistics" in as_table.out and "changed values per column" in as_table.out


def test_the_table_format_shows_the_first_differences_and_counts_the_others(
    parity: Callable[..., Run], sqlite_db: Database, duckdb_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table of 80,000 differing rows took Rich a minute and a half to print (the audit); the table
    format shows the first ones, says how many more, and jsonl still prints them all."""
    from parity import cli

    for db in (sqlite_db, duckdb_db):
        db.sql("CREATE TABLE m (k INTEGER PRIMARY KEY, v INTEGER)")
    sqlite_db.sql("INSERT INTO m VALUES " + ", ".join(f"({i}, {i})" for i in range(12)))
    monkeypatch.setattr(cli._FirstDifferences, "SHOWN", 5)
    shown = parity("diff", sqlite_db.url, duckdb_db.url, "-t", "m")
    assert shown.code == 1
    assert sum(line.count("missing") for line in shown.out.splitlines()) == 5
    assert "and 7 more differing rows" in shown.out
    every = parity("diff", sqlite_db.url, duckdb_db.url, "-t", "m", "--format", "jsonl")
    assert len(every.out.splitlines()) == 12


def test_the_table_format_quotes_a_key_with_spaces_around_it(
    parity: Callable[..., Run], sqlite_db: Database, duckdb_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys 'k1' and 'k1 ' are two rows; the table printed both as k=k1 (values were quoted, keys
    not), and a key holding rich markup ('[red]') was taken as markup."""
    for db in (sqlite_db, duckdb_db):
        db.sql("CREATE TABLE sk (k VARCHAR(10) PRIMARY KEY, v INTEGER)")
    sqlite_db.sql("INSERT INTO sk VALUES ('k1', 1), ('[red]x', 2)")
    duckdb_db.sql("INSERT INTO sk VALUES ('k1 ', 1)")
    from parity import cli

    monkeypatch.setattr(cli.out, "width", 160)  # (cells fold on a narrow terminal)
    shown = parity("diff", sqlite_db.url, duckdb_db.url, "-t", "sk")
    assert shown.code == 1
    keys = sorted(line.split("│")[2].strip() for line in shown.out.splitlines() if line.count("│") > 3)
    assert keys == ["k='k1 '", "k=[red]x", "k=k1"], shown.out


def test_csv_tells_null_from_an_empty_string(
    parity: Callable[..., Run], dbs: tuple[Database, Database], tmp_path: Path
) -> None:
    """As PostgreSQL's CSV: NULL an empty field, '' a quoted one (both were empty), printed and in a file."""
    source, target = dbs
    source.sql("UPDATE orders SET note = '' WHERE id = 1")
    target.sql("UPDATE orders SET note = '' WHERE id = 2")
    file = tmp_path / "found.csv"
    printed = parity(
        "diff", source.url, target.url, "--format", "csv", "--output", str(file), "--output-mismatches"
    )
    for text in (printed.out, file.read_text()):
        lines = [line.split(",", 3)[3] for line in text.splitlines()[1:]]
        assert lines == ['"{""id"": 1}",changed,note,"",a', '"{""id"": 2}",changed,note,,""'], text


def test_output_table_prints_nothing_unless_asked(
    parity: Callable[..., Run], dbs: tuple[Database, Database], tmp_path: Path
) -> None:
    source, target = dbs
    target.sql("DELETE FROM orders WHERE id = 1")
    quiet = parity("diff", source.url, target.url, "--output", "recon", "--format", "jsonl")
    assert quiet.code == 1 and quiet.out == ""
    (run_id,) = {r[0] for r in target.query("SELECT run_id FROM recon")}
    assert f"run id {run_id}" in quiet.err
    assert f"parity fix SOURCE TARGET --run {run_id} --discrepancies recon" in quiet.err  # (not the default)
    job_file = tmp_path / "job.yaml"  # (a job file's natural keys and maps: fix needs them as diff did)
    job_file.write_text(f"source: {{url: '{source.url}'}}\ntarget: {{url: '{target.url}'}}\n")
    by_file = parity("diff", "-j", str(job_file), "--output", "recon_by_file", "--format", "jsonl")
    assert by_file.code == 1 and f"parity fix -j {job_file} --run " in by_file.err, by_file.err
    alone = parity("diff", source.url, target.url, "--output-mismatches")
    assert alone.code == 2 and "give --output too" in alone.err
    nowhere = parity("diff", source.url, target.url, "--output", "/no/such/folder/d.jsonl")
    assert nowhere.code == 2 and "there is no folder /no/such/folder" in nowhere.err
    loud = parity(
        "diff", source.url, target.url, "--output", "recon", "--output-mismatches", "--format", "jsonl"
    )
    assert [json.loads(line)["key"] for line in loud.out.splitlines()] == [{"id": 1}]
    kinds = target.query("SELECT kind, source_value FROM recon ORDER BY run_id")
    assert [k for k, _ in kinds] == ["missing", "missing"]
    assert json.loads(kinds[0][1]) == {"id": 1, "status": "new", "amount": "1.50", "note": "a"}


def test_a_diff_that_fails_or_is_stopped_leaves_no_part_of_its_run(
    parity: Callable[..., Run],
    dbs: tuple[Database, Database],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``diff --output disc --output-mismatches | head -2`` stored the 16 rows found before the pipe
    closed, which fix then applied as the whole run; a diff of a table not there created the output
    table (the audits). A run's rows are taken back now, and its table made only once it has rows."""
    from parity import job as jobs
    from parity.diff import diff
    from parity.diff.output import TableSink

    monkeypatch.setattr(TableSink, "BATCH", 1)  # (rows written before the run stops: taken back)
    source, target = dbs
    target.sql("DELETE FROM orders WHERE id > 1")
    missing = parity("diff", source.url, target.url, "-t", "nosuch", "--output", "disc")
    assert missing.code == 2 and "disc" not in target.tables()
    assert parity("diff", source.url, target.url, "--output", "disc").code == 1  # (one whole run)

    def closed(row: Any) -> None:
        raise BrokenPipeError

    for where in ("disc", str(tmp_path / "d.jsonl"), str(tmp_path / "d.csv")):
        job = jobs.build(source.url, target.url, tables=["orders"])
        try:
            with pytest.raises(BrokenPipeError):
                diff(job, output=where, on_difference=closed)
        finally:
            job.close()
    assert len(target.query("SELECT DISTINCT run_id FROM disc")) == 1
    assert not (tmp_path / "d.jsonl").exists() and not (tmp_path / "d.csv").exists()
    flush = TableSink.flush

    def last_flush_fails(sink: Any) -> None:  # (the run's last rows refused: its others taken back too)
        flush(sink)
        raise OSError("refused")

    monkeypatch.setattr(TableSink, "BATCH", 1000)
    monkeypatch.setattr(TableSink, "close", last_flush_fails)
    job = jobs.build(source.url, target.url, tables=["orders"])
    try:
        with pytest.raises(OSError, match="refused"):
            diff(job, output="disc")
    finally:
        job.close()
    assert len(target.query("SELECT DISTINCT run_id FROM disc")) == 1


def test_record_shows_both_versions_side_by_side(
    parity: Callable[..., Run], dbs: tuple[Database, Database]
) -> None:
    source, target = dbs
    target.sql("UPDATE orders SET status = 'late' WHERE id = 1")
    result = parity("diff", source.url, target.url, "-t", "orders", "--record", "1")
    assert result.code == 1
    line = next(ln for ln in result.out.splitlines() if "status" in ln)
    assert "new" in line and "late" in line and "differs" in line
    same = parity("diff", source.url, target.url, "-t", "orders", "--record", "2", "--format", "jsonl")
    assert same.code == 0
    assert json.loads(same.out)["target"] == {"id": 2, "status": "paid", "amount": "2.00", "note": None}
    assert json.loads(same.out)["kind"] == "identical"
    changed = parity("diff", source.url, target.url, "-t", "orders", "--record", "1", "--format", "jsonl")
    assert (json.loads(changed.out)["kind"], json.loads(changed.out)["columns"]) == ("changed", ["status"])
    as_csv = parity("diff", source.url, target.url, "-t", "orders", "--record", "1", "--format", "csv")
    assert as_csv.code == 1
    with io.StringIO(as_csv.out) as f:
        rows = [(r["column"], r["source"], r["target"], r["differs"]) for r in csv.DictReader(f)]
    assert rows == [("id", "1", "1", "no"), ("status", "new", "late", "yes"), ("amount", "1.50", "1.50", "no"),
                    ("note", "a", "a", "no")]  # fmt: skip


def test_columns_maps_and_tolerance_options(
    parity: Callable[..., Run], dbs: tuple[Database, Database]
) -> None:
    source, target = dbs
    target.sql(
        "ALTER TABLE orders RENAME COLUMN note TO remark",
        "UPDATE orders SET status = 'other', amount = amount + 0.01",
    )
    only_amount = parity(
        "diff", source.url, target.url, "-c", "id", "-c", "am*", "--tolerance", "amount=0.02"
    )
    assert only_amount.code == 0, only_amount
    mapped = parity("diff", source.url, target.url, "-C", "note", "-C", "id", "--map", "note=remark")
    assert mapped.code == 0, mapped
    everything = parity("diff", source.url, target.url, "--map", "note=remark", "--format", "jsonl")
    assert everything.code == 1
    assert {tuple(json.loads(x)["columns"]) for x in everything.out.splitlines()} == {("status", "amount")}


def test_fix_takes_the_key_and_maps_the_diff_was_given(
    parity: Callable[..., Run], sqlite_db: Database, pg_db: Database
) -> None:
    """A diff by another key with a renamed column, stored in the target; fix given the same -k and
    --map applies it (without them its columns cannot be matched: one line, exit 2)."""
    source, target = sqlite_db, pg_db
    source.sql(
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, slug VARCHAR(20) UNIQUE, note TEXT)",
        "INSERT INTO tags VALUES (1, 'a', 'one'), (2, 'b', 'two'), (3, 'c', 'three')",
    )
    target.sql(
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, slug VARCHAR(20) UNIQUE, remark TEXT)",
        "INSERT INTO tags VALUES (10, 'a', 'one'), (20, 'b', 'old')",
    )
    assert target.schema is not None
    given = ["-t", "tags", "-k", "slug", "-C", "slug", "-C", "note", "--map", "note=remark"]
    found = parity(
        "diff", source.url, target.url, "--target-schema", target.schema, *given, "--output", "recon"
    )
    assert found.code == 1, found
    run_id = target.query("SELECT DISTINCT run_id FROM recon")[0][0]
    fixing = [
        "fix",
        source.url,
        target.url,
        "--target-schema",
        target.schema,
        "--run",
        run_id,
        "--discrepancies",
        "recon",
    ]
    for preview in ((), ("--dry-run",)):  # (prints the SQL, changes nothing; exit 1 as sync --dry-run)
        planned = parity(*fixing, *given[:4], "--map", "note=remark", *preview)
        assert planned.code == 1 and "UPDATE" in planned.out and "INSERT" in planned.out, planned
    both = parity(*fixing, "--apply", "--dry-run")
    assert both.code == 2 and "--apply and --dry-run exclude each other" in both.err, both
    unmatched = parity(*fixing, "-t", "tags", "--apply")
    assert unmatched.code == 2 and len(unmatched.err.strip().splitlines()) == 1, unmatched
    assert "'note'" in unmatched.err, unmatched
    applied = parity(*fixing, *given[:4], "--map", "note=remark", "--apply")
    assert applied.code == 0, applied
    assert target.query("SELECT slug, remark FROM tags WHERE slug IN ('b', 'c') ORDER BY slug") == [
        ("b", "two"),
        ("c", "three"),
    ]
    # a row changed in the target since the diff is a conflict, left alone: the tables still differ,
    # exit 1 (it was 0, as if all was applied; the review)
    source.sql("UPDATE tags SET note = 'new' WHERE slug = 'a'")
    found = parity(
        "diff", source.url, target.url, "--target-schema", target.schema, *given, "--output", "recon"
    )
    assert found.code == 1, found
    run_id = target.query("SELECT run_id FROM recon ORDER BY diffed_at DESC LIMIT 1")[0][0]
    target.sql("UPDATE tags SET remark = 'edited' WHERE slug = 'a'")
    fixing[fixing.index("--run") + 1] = "latest"  # (the run stored last)
    conflicted = parity(*fixing, *given[:4], "--map", "note=remark", "--apply")
    assert conflicted.code == 1 and "conflict, left alone" in conflicted.err, conflicted
    assert f"run {run_id}: applied" in conflicted.err, conflicted


def test_bad_input_is_one_line_and_exit_2(parity: Callable[..., Run], dbs: tuple[Database, Database]) -> None:
    source, target = dbs
    unknown = parity("diff", source.url, target.url, "-t", "order")
    assert unknown.code == 2
    assert unknown.err.strip().startswith("parity: error: table 'order' not found")
    assert "did you mean 'orders'" in unknown.err
    column = parity("diff", source.url, target.url, "-k", "idd")
    assert column.code == 2 and "column 'idd' not found" in column.err and "did you mean 'id'" in column.err
    bad_map = parity("diff", source.url, target.url, "--map", "note")
    assert bad_map.code == 2 and "expected NAME=VALUE" in bad_map.err


def test_diff_help_names_every_option() -> None:
    command = cli.commands["diff"]
    for option in ("--key", "--column", "--map", "--where", "--target-where", "--limit", "--record", "--stats", "--format",
                   "--output", "--output-mismatches", "--threads", "--tolerance"):  # fmt: skip
        assert any(option in p.opts for p in command.params), option
    assert all(getattr(p, "help", None) for p in command.params if p.param_type_name == "option")


def test_where_limits_both_sides(
    parity: Callable[..., Run], dbs: tuple[Database, Database], tmp_path: Path
) -> None:
    source, target = dbs
    target.sql("UPDATE orders SET status = 'x' WHERE id = 3")
    assert parity("diff", source.url, target.url, "--where", "id < 3").code == 0
    out = tmp_path / "d.jsonl"
    assert parity("diff", source.url, target.url, "--where", "id >= 3", "--output", str(out)).code == 1
    assert [json.loads(x)["key"] for x in out.read_text().splitlines()] == [{"id": 3}]
    # a column named otherwise in the target (--map): the target's own condition
    target.sql("ALTER TABLE orders RENAME COLUMN id TO order_id")
    renamed = ["--map", "id=order_id", "--where", "id < 3"]
    assert parity("diff", source.url, target.url, *renamed).code == 2  # (no id in the target)
    assert parity("diff", source.url, target.url, *renamed, "--target-where", "order_id < 3").code == 0
    both = parity("diff", source.url, target.url, "--map", "id=order_id", "--where", "id >= 2",
                  "--target-where", "order_id >= 2", "--format", "jsonl")  # fmt: skip
    assert both.code == 1 and [json.loads(x)["key"] for x in both.out.splitlines()] == [{"id": 3}]


def test_a_table_that_cannot_be_compared_fails_alone(
    parity: Callable[..., Run], dbs: tuple[Database, Database]
) -> None:
    """Duplicate keys in one table, or a table the target lacks, ended the whole run: the tables after it
    were never compared. Now each such table is reported, the others are compared, and the exit code
    is 2 (an error) whatever they found."""
    source, target = dbs
    for db in dbs:
        db.sql("CREATE TABLE dup (id INTEGER, v TEXT)", "INSERT INTO dup VALUES (1, 'a'), (1, 'b')")
    source.sql("CREATE TABLE lone (id INTEGER PRIMARY KEY)")
    target.sql("UPDATE orders SET status = 'x' WHERE id = 2")
    result = parity("diff", source.url, target.url, "-t", "dup", "-t", "lone", "-t", "orders", "-k", "id")
    assert result.code == 2, result
    assert "dup: not compared:" in result.err and "lone: not compared:" in result.err
    assert "orders: 1 rows differ" in result.err
    assert "2 of 3 tables not compared: dup, lone" in result.err
    stats = parity("diff", source.url, target.url, "-t", "dup", "-t", "orders", "-k", "id", "--stats",
                   "--format", "jsonl")  # fmt: skip
    assert stats.code == 2
    lines = [json.loads(x)["stats"] for x in stats.out.splitlines() if "stats" in x]
    assert "duplicate" in lines[0]["error"] and "error" not in lines[1]


def test_job_file_with_per_table_settings(
    parity: Callable[..., Run], dbs: tuple[Database, Database], tmp_path: Path
) -> None:
    source, target = dbs
    target.sql(
        "ALTER TABLE orders RENAME TO sales",
        "ALTER TABLE sales RENAME COLUMN note TO remark",
        "UPDATE sales SET amount = amount + 0.01",
        "UPDATE sales SET status = 'lost' WHERE id = 3",
    )
    job = tmp_path / "job.yaml"
    job.write_text(
        f"""
source: {source.url}
target: {target.url}
tables:
  - name: orders
    target: sales
    key: id
    map: {{note: remark}}
    tolerance: {{amount: 0.02}}
    partition: {{by: key, size: 2, stagger: true}}
"""
    )
    result = parity("diff", "--config", str(job), "--format", "jsonl", "--stats")
    assert result.code == 1, result
    *rows, stats = [json.loads(line) for line in result.out.splitlines()]
    assert [(r["key"], r["columns"]) for r in rows] == [({"id": 3}, ["status"])]
    assert stats["stats"]["target_table"] == "sales" and stats["stats"]["source_rows"] == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"source: {source.url}\ntarget: {target.url}\ntables: [{{name: orders, tolerence: {{a: 1}}}}]\n"
    )
    wrong = parity("diff", "-j", str(bad))
    assert wrong.code == 2 and "unknown key 'tables[0].tolerence'; did you mean 'tolerance'?" in wrong.err
    # -c names columns in diff (as in data-diff and reladiff): a job file given to it is pointed out
    mistaken = parity("diff", "-c", str(job))
    assert mistaken.code == 2 and "-c names columns in diff" in mistaken.err and "--config" in mistaken.err


def test_the_job_file_names_the_discrepancy_table_for_diff_and_fix(
    parity: Callable[..., Run], sqlite_db: Database, pg_db: Database, tmp_path: Path
) -> None:
    """table-sync's users set the output table in their config; a job file's `output:` was an unknown
    key (the audit). diff writes there without --output, and fix reads it without --discrepancies."""
    for db in (sqlite_db, pg_db):
        db.sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    sqlite_db.sql("UPDATE t SET v = 'new' WHERE id = 2")
    job_file = tmp_path / "job.yaml"
    job_file.write_text(
        f"source: '{sqlite_db.url}'\ntarget: {{url: '{pg_db.url}', schema: {pg_db.schema}}}\n"
        "output: recon\ndefaults: {threads: 2}\n"
    )
    found = parity("diff", "-j", str(job_file))
    assert found.code == 1 and "differences written to table recon" in found.err, found
    assert pg_db.query("SELECT COUNT(*) FROM recon") == [(1,)]
    applied = parity("fix", "-j", str(job_file), "--run", "latest", "--apply")
    assert applied.code == 0 and "1 updates" in applied.err, applied
    assert pg_db.query("SELECT v FROM t WHERE id = 2") == [("new",)]
