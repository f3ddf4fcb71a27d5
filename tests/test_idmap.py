"""A copy whose IDs the target assigned (--remap-ids), proven by diff through the ID map.

A live target holds rows of its own and numbers the copied rows itself; diff must read the target's
IDs, and its children's references, as the source's, compare only the rows the copy wrote or matched,
and find every planted difference. fix and sync, which would write the source's IDs beside the
target's, refuse such tables before any write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from parity.copy import copy
from parity.diff import DiffResult, diff
from parity.errors import ConfigError
from parity.fix import fix
from parity.job import Job, build
from parity.state import SYNC_WAITS, State
from parity.sync import sync
from tests.conftest import Database


def _job(source: Database, target: Database, **kw: Any) -> Job:
    return build(source.url, target.url, source_schema=source.schema, target_schema=target.schema, **kw)


def _diff(job: Job, **kw: Any) -> DiffResult:
    try:
        return diff(job, **kw)
    finally:
        job.close()


def _sync(job: Job, **kw: Any) -> Any:
    try:
        return sync(job, **kw)
    finally:
        job.close()


REPOSITORIES_AND_COMMITS = (
    "  - {name: repositories, remap_ids: true, natural_key: [slug]}\n  - {name: commits, remap_ids: true}\n"
)
"""The ``tables:`` lines of a job copying repositories (matched by slug) and their commits, new IDs."""


def _copy_ok(job_file: Path) -> None:
    """The job file's copy, every table of it ok."""
    job = build(config_file=str(job_file))
    try:
        assert all(t.status == "ok" for t in copy(job).tables)
    finally:
        job.close()


def _job_file(tmp_path: Path, source: Database, target: Database, tables: str) -> Path:
    """A job file of the two databases with these ``tables:`` lines (YAML)."""
    job_file = tmp_path / "job.yaml"
    schema = f", schema: {target.schema}" if target.schema else ""
    job_file.write_text(
        f"source: {{url: '{source.url}'}}\ntarget: {{url: '{target.url}'{schema}}}\ntables:\n{tables}"
    )
    return job_file


def _commits(target: Database) -> list[tuple[Any, ...]]:
    """(hash, repository slug, message) of the target's commits, by hash."""
    rows = target.query(
        "SELECT c.hash, r.slug, c.message FROM commits c LEFT JOIN repositories r ON r.id = c.repository_id"
        " ORDER BY c.hash"
    )
    return [tuple(r) for r in rows]


def _own_repositories(target: Database) -> list[Any]:
    """The live target's own repositories (never the copy's to write)."""
    return target.query("SELECT id, slug, name FROM repositories WHERE slug LIKE 'other%' ORDER BY id")


def _found(result: DiffResult) -> dict[str, list[tuple[str, Any, tuple[str, ...]]]]:
    return {
        t.stats.table: sorted((d.kind, d.key["id"], d.columns) for d in t.differences) for t in result.tables
    }


@pytest.fixture
def remapped(make_db: Callable[[str], Database], request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A SQLite source copied into a live target (rows of its own, taken IDs) with new IDs assigned,
    a repository matched by its natural key; and the job file the copy ran with."""
    source = make_db("sqlite")
    source.sql(
        "CREATE TABLE repositories (id INTEGER PRIMARY KEY, slug VARCHAR(40) NOT NULL UNIQUE, name TEXT)",
        "CREATE TABLE commits (id INTEGER PRIMARY KEY, repository_id INTEGER REFERENCES repositories(id),"
        " hash VARCHAR(40) NOT NULL, message TEXT)",
        "INSERT INTO repositories VALUES (1, 'alpha', 'A'), (2, 'beta', 'B'), (3, 'gamma', 'x')",
        "INSERT INTO commits VALUES (10, 1, 'a1', 'm'), (11, 1, 'a2', 'm'), (12, 3, 'c1', 'm'),"
        " (13, 2, 'b1', 'm'), (14, NULL, 'n1', 'm')",
    )
    target = make_db(request.param)
    copy(_job(source, target), limit=0)
    target.sql(
        *(f"INSERT INTO repositories (id, slug, name) VALUES ({i}, 'other{i}', 'x')" for i in range(1, 31))
    )
    target.sql("UPDATE repositories SET slug = 'gamma' WHERE id = 20")
    if request.param == "postgresql":
        target.sql("SELECT setval(pg_get_serial_sequence('repositories', 'id'), 30)")
    job_file = _job_file(tmp_path, source, target, REPOSITORIES_AND_COMMITS)
    job = build(config_file=str(job_file))
    try:
        result = copy(job)
    finally:
        job.close()
    assert [t.status for t in result.tables] == ["ok", "ok"]
    # (the IDs differ: the target numbered the rows after its own)
    assert target.query("SELECT COUNT(*) FROM commits WHERE id >= 10")[0][0] == 0
    return source, target, job_file


@pytest.mark.parametrize("remapped", ["mariadb", "postgresql", "sqlite"], indirect=True)
def test_diff_reads_ids_the_target_assigned_through_the_id_map(remapped: Any) -> None:
    source, target, job_file = remapped
    # without the map, every row of the copy differs, and diff says why
    plain = _diff(_job(source, target))
    assert not plain.identical
    warnings = [w for t in plain.tables for w in t.warnings]
    assert any("commits: id, repository_id hold IDs the target assigned" in w for w in warnings), warnings

    # through the map: the copy is exact but for the repository its natural key matched
    found = _diff(_job(source, target), remap_ids=True)
    assert _found(found) == {"repositories": [], "commits": []}
    repositories = {t.stats.table: t for t in found.tables}["repositories"]
    assert (repositories.stats.source_rows, repositories.stats.target_rows) == (3, 3)
    assert repositories.warnings == [
        "repositories: 29 rows are not in the ID map (not written by parity's copy): not compared"
    ]
    # the job file that ran the copy asks for the map itself
    assert _diff(build(config_file=str(job_file))).identical

    source.sql("UPDATE repositories SET name = 'G' WHERE id = 3")  # (the matched row: 'x' in the target)
    new = {old: new for old, new in target.query("SELECT hash, id FROM commits")}
    repo = {slug: i for slug, i in target.query("SELECT slug, id FROM repositories")}
    target.sql(
        f"UPDATE commits SET message = 'changed' WHERE id = {new['a2']}",
        f"UPDATE commits SET repository_id = {repo['beta']} WHERE id = {new['a1']}",  # (another parent)
        # (the target's own repository 3, not the copy of the source's 3: equal numbers, other rows)
        f"UPDATE commits SET repository_id = {repo['other3']} WHERE id = {new['c1']}",
        f"UPDATE commits SET repository_id = {repo['other9']} WHERE id = {new['n1']}",  # (was NULL)
        f"DELETE FROM commits WHERE id = {new['b1']}",
        "INSERT INTO commits (repository_id, hash, message) VALUES (NULL, 'live', 'the application wrote it')",
    )
    target.sql("ALTER TABLE commits ADD extra_note TEXT")  # (a target column diff does not compare)
    found = _diff(build(config_file=str(job_file)))
    assert _found(found) == {
        "repositories": [("changed", 3, ("name",))],
        "commits": [
            ("changed", 10, ("repository_id",)),
            ("changed", 11, ("message",)),
            ("changed", 12, ("repository_id",)),
            ("changed", 14, ("repository_id",)),
            ("missing", 13, ()),
        ],
    }
    tables = {t.stats.table: t for t in found.tables}
    commits = {d.key["id"]: d for d in tables["commits"].differences}
    assert (commits[10].source["repository_id"], commits[10].target["repository_id"]) == (1, 2)
    assert (commits[12].source["repository_id"], commits[12].target["repository_id"]) == (3, "unmapped:3")
    assert commits[14].target == {"id": 14, "repository_id": f"unmapped:{repo['other9']}", "hash": "n1",
                                  "message": "m"}  # fmt: skip
    assert tables["commits"].warnings == [
        "commits: target columns not in the source are not compared: extra_note",
        "commits: 1 rows are not in the ID map (not written by parity's copy): not compared",
    ]
    # by another key, the rows still meet (their values read by column, not by position)
    by_hash = _diff(build(config_file=str(job_file), tables=["commits"], table_options={"key": "hash"}))
    assert sorted((d.kind, d.key["hash"], d.columns) for d in by_hash.tables[0].differences) == [
        ("changed", "a1", ("repository_id",)),
        ("changed", "a2", ("message",)),
        ("changed", "c1", ("repository_id",)),
        ("changed", "n1", ("repository_id",)),
        ("missing", "b1", ()),
    ]
    # a condition reads the IDs as the source's, on both sides
    narrowed = _diff(
        build(config_file=str(job_file), tables=["commits"], table_options={"where": "commits.id <= 11"})
    )
    assert _found(narrowed) == {
        "commits": [("changed", 10, ("repository_id",)), ("changed", 11, ("message",))]
    }
    # one row, both versions: by the source's key
    record = _diff(build(config_file=str(job_file), tables=["commits"]), record="10").tables[0].record
    assert record is not None and record.target is not None
    assert (record.target["id"], record.target["repository_id"]) == (10, 2)


@pytest.mark.parametrize("remapped", ["mariadb"], indirect=True)
def test_fix_and_sync_without_the_map_refuse_tables_whose_ids_the_target_assigned(remapped: Any) -> None:
    """Written with the source's IDs, the missing rows would be duplicates of rows the target holds
    under its own IDs, and the changed rows would land on other rows: refused before any write,
    unless sync is told to write through the map."""
    source, target, job_file = remapped
    target.sql("DELETE FROM commits WHERE hash = 'b1'")
    before = target.query("SELECT id, repository_id, hash, message FROM commits ORDER BY id")
    # (a run that compared the target's own IDs: its keys are no source's)
    found = _diff(_job(source, target), output="_parity_discrepancies")
    assert not found.identical and all(t.through_map is not None for t in found.tables)
    for job in (build(config_file=str(job_file)), _job(source, target)):
        try:
            with pytest.raises(
                ConfigError,
                match=r"table 'commits': its IDs \(id, repository_id\) were assigned.* fix a run of diff --remap-ids",
            ):
                fix(job, found.run_id, apply=True, delete=True)
        finally:
            job.close()
    job = _job(source, target)
    try:
        with pytest.raises(
            ConfigError, match=r"table 'commits': its IDs \(id, repository_id\) were .* give it --remap-ids"
        ):
            sync(job, extra="delete")
    finally:
        job.close()
    assert target.query("SELECT id, repository_id, hash, message FROM commits ORDER BY id") == before


@pytest.mark.parametrize("remapped", ["mariadb", "postgresql", "sqlite"], indirect=True)
def test_sync_writes_through_the_id_map(remapped: Any) -> None:
    """New source rows get IDs the target assigns (a new commit references a new repository), changed
    ones are updated by their new IDs with references translated, a row deleted from the target comes
    back under a new ID, extra ones go with their map entries; the live target's own rows are left
    alone; the dry run prints the inserts without the IDs the target assigns."""
    source, target, job_file = remapped
    source.sql(
        "UPDATE repositories SET name = 'Alpha' WHERE id = 1",
        "INSERT INTO repositories VALUES (4, 'delta', 'D')",
        "INSERT INTO commits VALUES (15, 4, 'd1', 'new' || char(10) || 'DELETE FROM commits;'), (16, 1, 'a3', 'new')",
        "UPDATE commits SET repository_id = 2 WHERE id = 10",
        "DELETE FROM commits WHERE id IN (11, 14)",
    )
    new = {h: i for h, i in target.query("SELECT hash, id FROM commits")}
    target.sql(
        f"DELETE FROM commits WHERE id IN ({new['b1']}, {new['n1']})",  # (n1: gone on both sides)
        f"UPDATE commits SET message = 'x' WHERE id = {new['c1']}",
    )
    own_rows = _own_repositories(target)
    job = build(config_file=str(job_file))
    try:
        planned = sync(job, dry_run=True, extra="delete")
    finally:
        job.close()
    printed = "\n".join(planned.statements)
    assert "the target assigns id" in printed and "'delta'" in printed
    # (the new commit's repository gets its ID as the run goes: its statement is printed commented out)
    assert any(s.startswith("-- INSERT") and "'d1'" in s for s in planned.statements), printed
    assert all(line.startswith("-- ") for s in planned.statements if "'d1'" in s for line in s.splitlines())
    assert not any(
        s.startswith("INSERT") and "(id," in s.replace('"', "").replace("`", "") for s in planned.statements
    )
    job = build(config_file=str(job_file))
    try:
        result = sync(job, extra="delete")
    finally:
        job.close()
    assert result.verified, (result.remaining, [t.errors for t in result.tables])
    done = {t.table: (t.inserted, t.updated, t.deleted, t.failed) for t in result.tables}
    assert done == {"repositories": (1, 1, 0, 0), "commits": (3, 2, 1, 0)}
    assert _commits(target) == [
        ("a1", "beta", "m"), ("a3", "alpha", "new"), ("b1", "beta", "m"), ("c1", "gamma", "m"),
        ("d1", "delta", "new\nDELETE FROM commits;"),
    ]  # fmt: skip
    assert _own_repositories(target) == own_rows
    # (n1's entry, its row gone from the target, taken back: an ID given again is no copied row)
    assert target.query("SELECT COUNT(*) FROM _parity_id_map WHERE table_name = 'commits'")[0][0] == 5
    assert _diff(build(config_file=str(job_file))).identical


@pytest.mark.parametrize("remapped", ["postgresql", "sqlite"], indirect=True)
def test_sync_dry_run_refuses_what_the_sync_refuses(remapped: Any) -> None:
    """A new commit of a repository this sync neither maps nor inserts (repositories not selected) is
    refused by the sync; the dry run printed its INSERT with the source's repository ID in place, a
    statement that, run as printed, gave the commit one of the live target's own repositories."""
    source, target, job_file = remapped
    source.sql(
        "INSERT INTO repositories VALUES (4, 'delta', 'D')",
        "INSERT INTO commits VALUES (15, 4, 'd1', 'new'), (16, 1, 'a3', 'new')",
        "UPDATE commits SET repository_id = 4 WHERE id = 12",
    )
    outcomes = []
    for dry_run in (True, False):
        job = build(config_file=str(job_file), tables=["commits"])
        try:
            outcomes.append(sync(job, dry_run=dry_run))
        finally:
            job.close()
    planned, done = ({t.table: t for t in r.tables}["commits"] for r in outcomes)
    printed = "\n".join(outcomes[0].statements)
    assert "'a3'" in printed and "'d1'" not in printed, printed
    assert (planned.inserted, planned.updated, planned.failed) == (done.inserted, done.updated, done.failed)
    assert (done.inserted, done.updated, done.failed) == (1, 0, 2)
    assert sorted(planned.errors) == sorted(done.errors), (planned.errors, done.errors)
    assert any("repository_id=4: no row with that ID" in e for e in planned.errors), planned.errors
    assert target.query("SELECT COUNT(*) FROM commits WHERE hash = 'd1'")[0][0] == 0


@pytest.mark.parametrize("remapped", ["mariadb", "postgresql", "sqlite"], indirect=True)
def test_fix_applies_a_run_diffed_through_the_id_map(remapped: Any) -> None:
    """A run of diff --remap-ids stored with --output holds the source's IDs: fix checks each row
    against the target read through the map (a row changed there since the diff is a conflict) and
    writes as sync --remap-ids does: new rows get IDs the target assigns, changed ones are updated by
    their new IDs, references translated, extra ones deleted with their map entries. It refused."""
    source, target, job_file = remapped
    source.sql(
        "UPDATE repositories SET name = 'Alpha' WHERE id = 1",
        "INSERT INTO repositories VALUES (4, 'delta', 'D')",
        "INSERT INTO commits VALUES (15, 4, 'd1', 'new'), (16, 1, 'a3', 'new')",
        "UPDATE commits SET repository_id = 2 WHERE id = 10",
        "UPDATE commits SET message = 'm2' WHERE id = 13",
        "DELETE FROM commits WHERE id IN (11, 14)",
    )
    target.sql("UPDATE commits SET message = 'x' WHERE hash = 'c1'")
    own_rows = _own_repositories(target)
    found = _diff(build(config_file=str(job_file)), output="_parity_discrepancies")
    assert _found(found)["commits"] == [
        ("changed", 10, ("repository_id",)), ("changed", 12, ("message",)), ("changed", 13, ("message",)),
        ("extra", 11, ()), ("extra", 14, ()), ("missing", 15, ()), ("missing", 16, ()),
    ]  # fmt: skip
    target.sql("UPDATE commits SET message = 'late' WHERE hash = 'b1'")  # (since the diff)
    job = build(config_file=str(job_file))
    try:
        planned = fix(job, found.run_id, delete=True)
    finally:
        job.close()
    assert (planned.inserted, planned.updated, planned.deleted) == (3, 3, 2)  # (would be)
    printed = "\n".join(planned.statements)
    assert "'delta'" in printed and any(s.startswith("-- INSERT") and "'d1'" in s for s in planned.statements)
    assert target.query("SELECT COUNT(*) FROM commits")[0][0] == 5
    job = build(config_file=str(job_file))
    try:
        done = fix(job, found.run_id, apply=True, delete=True)
    finally:
        job.close()
    assert (done.inserted, done.updated, done.deleted, done.failed) == (3, 3, 2, 0), done.errors
    assert len(done.conflicts) == 1 and 'commits {"id": 13}: changed in the target' in done.conflicts[0]
    assert _commits(target) == [
        ("a1", "beta", "m"), ("a3", "alpha", "new"), ("b1", "beta", "late"), ("c1", "gamma", "m"),
        ("d1", "delta", "new"),
    ]  # fmt: skip
    assert _own_repositories(target) == own_rows
    assert target.query("SELECT COUNT(*) FROM _parity_id_map WHERE table_name = 'commits'")[0][0] == 5
    left = _found(_diff(build(config_file=str(job_file))))
    assert left == {"repositories": [], "commits": [("changed", 13, ("message",))]}


def test_references_are_ids_where_they_name_the_parent_s_key_as_either_side_declares_them(
    make_db: Callable[[str], Database],
) -> None:
    """A reference to a parent's other unique column (a number) is no ID: copied and compared as it is
    (copy rejected every row, diff found them all changed). A reference only the target declares (into
    a live database from a SQLite file that declares none) is one: diff reads it through the map, and
    sync refuses its table (it wrote rows pointing at the target's own parents)."""
    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql(
        "CREATE TABLE repositories (id INTEGER PRIMARY KEY, number INTEGER NOT NULL UNIQUE, name TEXT)",
        "CREATE TABLE builds (id INTEGER PRIMARY KEY, repo_number INTEGER REFERENCES repositories(number))",
        "CREATE TABLE tags (repository_id INTEGER NOT NULL, tag VARCHAR(10) NOT NULL,"
        " PRIMARY KEY (repository_id, tag))",
        "INSERT INTO repositories VALUES (1, 501, 'a'), (2, 502, 'b')",
        "INSERT INTO builds VALUES (1, 501), (2, 502), (3, 502)",
        "INSERT INTO tags VALUES (1, 'x'), (2, 'x'), (2, 'y')",
    )
    target.sql(
        "CREATE TABLE repositories (id SERIAL PRIMARY KEY, number INTEGER NOT NULL UNIQUE, name TEXT)",
        "CREATE TABLE tags (repository_id INTEGER NOT NULL REFERENCES repositories (id),"
        " tag VARCHAR(10) NOT NULL, PRIMARY KEY (repository_id, tag))",
        "INSERT INTO repositories (number, name) SELECT 900 + i, 'own' FROM generate_series(1, 5) i",
    )
    job = _job(source, target)
    try:
        result = copy(job, remap_ids=True, mode="append")
    finally:
        job.close()
    assert {t.table: (t.rows_written, t.rejected) for t in result.tables} == {
        "builds": (3, 0),
        "repositories": (2, 0),
        "tags": (3, 0),
    }
    assert target.query("SELECT repo_number FROM builds ORDER BY id") == [(501,), (502,), (502,)]
    found = _diff(_job(source, target), remap_ids=True)
    assert found.identical, _found(found)
    kinds = {t.stats.table: t.through_map for t in found.tables}
    assert kinds["builds"] is not None and kinds["builds"].references == {}  # (its own IDs only)
    assert kinds["tags"] is not None and kinds["tags"].references == {"repository_id": "repositories"}
    # a row of the target's own repository 1 (not the copy of the source's 1): the live target's,
    # left out; the copy's row it stands beside the source's for is gone: missing
    target.sql("DELETE FROM tags WHERE tag = 'x' AND repository_id = (SELECT id FROM repositories WHERE number = 501)",
               "INSERT INTO tags VALUES (1, 'x')")  # fmt: skip
    found = _diff(_job(source, target, tables=["tags"]), remap_ids=True)
    assert sorted((d.kind, d.key["repository_id"], d.key["tag"]) for d in found.tables[0].differences) == [
        ("missing", 1, "x"),
    ]
    assert found.tables[0].warnings == [
        "tags: 1 rows are not in the ID map (not written by parity's copy): not compared"
    ]
    before = target.query("SELECT repository_id, tag FROM tags ORDER BY 1, 2")
    job = _job(source, target, tables=["tags"])
    try:
        with pytest.raises(ConfigError, match=r"table 'tags': its IDs \(repository_id\) were assigned"):
            sync(job, extra="delete")
    finally:
        job.close()
    assert target.query("SELECT repository_id, tag FROM tags ORDER BY 1, 2") == before


@pytest.mark.parametrize("remapped", ["postgresql"], indirect=True)
def test_sync_maps_no_second_source_row_onto_a_target_row_by_its_natural_key(remapped: Any) -> None:
    """The source's repository 2 gone and a new one holding its slug: its natural key matched the
    target's row the map gave to 2, and two map entries on one row doubled every later read (diff
    stopped on duplicate keys). Refused with the reason; the next sync, the old row deleted, inserts it."""
    source, target, job_file = remapped
    source.sql(
        "UPDATE commits SET repository_id = 1 WHERE repository_id = 2",
        "DELETE FROM repositories WHERE id = 2",
        "INSERT INTO repositories VALUES (9, 'beta', 'B2')",
    )
    first = _sync(build(config_file=str(job_file)), extra="delete")
    repositories = {t.table: t for t in first.tables}["repositories"]
    assert repositories.failed == 1 and "natural key matches" in repositories.errors[0], repositories.errors
    doubled = "SELECT new_id FROM _parity_id_map GROUP BY table_name, new_id HAVING COUNT(*) > 1"
    assert target.query(doubled) == []
    again = _sync(build(config_file=str(job_file)), extra="delete")
    assert again.verified and {t.table: t.inserted for t in again.tables} == {"repositories": 1, "commits": 0}
    assert target.query("SELECT name FROM repositories WHERE slug = 'beta'") == [("B2",)]


def test_sync_inserts_new_rows_of_a_table_referencing_itself_parents_first_and_keeps_live_rows(
    make_db: Callable[[str], Database],
) -> None:
    """A new child with a lower ID than its new parent was refused ("no row with that ID"), and an
    existing row re-pointed at a new one too (updates ran before the table's inserts). In a table of
    references only, --delete deleted the live target's rows (their references not in the map)."""
    source, target = make_db("sqlite"), make_db("mariadb")
    source.sql(
        "CREATE TABLE tree (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES tree(id), name TEXT)",
        "CREATE TABLE labels (tree_id INTEGER NOT NULL REFERENCES tree(id), label VARCHAR(10) NOT NULL,"
        " PRIMARY KEY (tree_id, label))",
        "INSERT INTO tree VALUES (1, NULL, 'root'), (2, 1, 'a'), (3, 1, 'b')",
        "INSERT INTO labels VALUES (1, 'x'), (2, 'x')",
    )
    copy(_job(source, target), limit=0)
    target.sql(
        "INSERT INTO tree (id, parent_id, name) VALUES (1, NULL, 'own'), (2, 1, 'own2')",
        "INSERT INTO labels VALUES (1, 'own'), (2, 'x')",  # (the live target's: its own tree rows)
    )
    job = _job(source, target)
    try:
        assert all(t.status == "ok" for t in copy(job, remap_ids=True, mode="append").tables)
    finally:
        job.close()
    live = target.query("SELECT tree_id, label FROM labels WHERE tree_id <= 2 ORDER BY 1, 2")
    source.sql(
        "INSERT INTO tree VALUES (7, NULL, 'p7'), (5, 7, 'c5')",
        "UPDATE tree SET parent_id = 7 WHERE id = 3",
        "DELETE FROM labels WHERE tree_id = 2",
        "INSERT INTO labels VALUES (5, 'y')",
    )
    result = _sync(_job(source, target), remap_ids=True, extra="delete")
    assert result.verified, [t.errors for t in result.tables]
    done = {t.table: (t.inserted, t.updated, t.deleted, t.extra_kept, t.failed) for t in result.tables}
    # (a table of references only: nothing records which rows the copy wrote, so an extra one is kept)
    assert done == {"tree": (2, 1, 0, 0, 0), "labels": (1, 0, 0, 1, 0)}
    assert any("labels: 2 rows are not in the ID map" in note for note in result.notes), result.notes
    assert target.query("SELECT tree_id, label FROM labels WHERE tree_id <= 2 ORDER BY 1, 2") == live
    rows = target.query("SELECT t.name, p.name FROM tree t JOIN tree p ON p.id = t.parent_id ORDER BY t.name")
    assert [tuple(r) for r in rows] == [("a", "root"), ("b", "p7"), ("c5", "p7"), ("own2", "own")]
    # a row the target refuses is reported (it was dropped without a word)
    target.sql("ALTER TABLE labels ADD CONSTRAINT no_bad CHECK (label <> 'bad')")
    source.sql("INSERT INTO labels VALUES (1, 'bad')")
    refused = _sync(_job(source, target), remap_ids=True)
    labels = {t.table: t for t in refused.tables}["labels"]
    assert (labels.inserted, labels.failed) == (0, 1) and not refused.ok, labels.errors


@pytest.mark.parametrize("kind", ["mariadb", "postgresql"])
def test_sync_inserts_new_rows_that_reference_each_other_in_a_cycle(
    make_db: Callable[[str], Database], kind: str
) -> None:
    """New rows in a cycle (two rows of a table, or rows of two tables referencing each other) were
    refused ("no row with that ID"): each waited for the other's new ID. They are written with NULL
    there and pointed at their parents once all new rows are in; a changed row pointed at a row of
    a table inserted after its own is updated then. A new row referencing no row at all is refused."""
    source, target = make_db("sqlite"), make_db(kind)
    source.sql(
        "CREATE TABLE tree (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES tree(id), name TEXT)",
        "CREATE TABLE a (id INTEGER PRIMARY KEY, b_id INTEGER REFERENCES b(id), name TEXT)",
        "CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a(id), name TEXT)",
        "INSERT INTO tree VALUES (1, NULL, 'root')",
        "INSERT INTO a VALUES (1, NULL, 'a1')",
        "INSERT INTO b VALUES (1, 1, 'b1')",
    )
    copy(_job(source, target), limit=0)
    target.sql(
        *(
            f"INSERT INTO {t} (id, name) VALUES ({i}, 'own{i}')"
            for t in ("tree", "a", "b")
            for i in range(1, 21)
        )
    )
    if kind == "postgresql":
        target.sql(*(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), 20)" for t in ("tree", "a", "b")))
    job = _job(source, target)
    try:
        assert all(t.status == "ok" for t in copy(job, remap_ids=True, mode="append").tables)
    finally:
        job.close()
    source.sql(
        "INSERT INTO tree VALUES (8, 9, 't8'), (9, 8, 't9'), (12, 99, 'lost')",
        "INSERT INTO a VALUES (5, 6, 'a5'), (7, NULL, 'a7')",
        "INSERT INTO b VALUES (6, 5, 'b6'), (8, 7, 'b8')",
        "UPDATE a SET b_id = 8 WHERE id = 1",  # (a changed row to a new row of the other table)
        "UPDATE b SET a_id = 7 WHERE id = 1",
    )
    result = _sync(_job(source, target), remap_ids=True)
    done = {t.table: (t.inserted, t.updated, t.failed) for t in result.tables}
    assert done == {"tree": (2, 0, 1), "a": (2, 1, 0), "b": (2, 1, 0)}, [t.errors for t in result.tables]
    assert "parent_id=99: no row with that ID in the ID map of tree" in " ".join(
        next(t for t in result.tables if t.table == "tree").errors
    )
    pairs = "SELECT c.name, p.name FROM {c} c JOIN {p} p ON p.id = c.{ref} WHERE c.id > 20 ORDER BY 1"
    assert [tuple(r) for r in target.query(pairs.format(c="tree", p="tree", ref="parent_id"))] == [
        ("t8", "t9"),
        ("t9", "t8"),
    ]
    assert [tuple(r) for r in target.query(pairs.format(c="a", p="b", ref="b_id"))] == [
        ("a1", "b8"),
        ("a5", "b6"),
    ]
    assert [tuple(r) for r in target.query(pairs.format(c="b", p="a", ref="a_id"))] == [
        ("b1", "a7"),
        ("b6", "a5"),
        ("b8", "a7"),
    ]
    source.sql("DELETE FROM tree WHERE id = 12")
    again = _sync(_job(source, target), remap_ids=True)
    assert again.verified and again.ok
    assert all((t.inserted, t.updated, t.failed) == (0, 0, 0) for t in again.tables), again.to_dict()

    # a changed row waiting for a new row the target refuses fails with the reason (it was dropped
    # without a word: put back to wait, and never read again)
    target.sql("ALTER TABLE tree ADD CONSTRAINT no_bad CHECK (name <> 'bad')")
    source.sql("INSERT INTO tree VALUES (15, NULL, 'bad')", "UPDATE tree SET parent_id = 15 WHERE id = 1")
    refused = {t.table: t for t in _sync(_job(source, target), remap_ids=True).tables}["tree"]
    assert (refused.inserted, refused.updated, refused.failed) == (0, 0, 2), refused.errors
    assert "parent_id=15: no row with that ID in the ID map of tree" in " ".join(refused.errors)
    source.sql("DELETE FROM tree WHERE id = 15", "UPDATE tree SET parent_id = NULL WHERE id = 1")

    # a reference left waiting (a run stopped before it set it) is not set later as recorded: the
    # source set it NULL since, and a later run's new cycle set it back to its old parent
    job = _job(source, target)
    try:
        t8 = target.query("SELECT id, parent_id FROM tree WHERE name = 't8'")[0]
        with job.target.begin() as conn:
            State(job.target).wait_reference(conn, "tree", t8[0], "parent_id", "9")
    finally:
        job.close()
    source.sql("UPDATE tree SET parent_id = NULL WHERE id = 8")
    assert _sync(_job(source, target), remap_ids=True).verified
    source.sql("INSERT INTO tree VALUES (30, 31, 't30'), (31, 30, 't31')")
    later = _sync(_job(source, target), remap_ids=True)
    assert later.verified, later.to_dict()
    assert target.query("SELECT parent_id FROM tree WHERE name = 't8'") == [(None,)]
    # nor by a copy: a sync stopped with t9 NULL where it waits for t8, and the source's NULL since
    t9 = target.query("SELECT id FROM tree WHERE name = 't9'")[0][0]
    target.sql(f"UPDATE tree SET parent_id = NULL WHERE id = {t9}")
    job = _job(source, target)
    try:
        with job.target.begin() as conn:
            State(job.target, waits=SYNC_WAITS).wait_reference(conn, "tree", t9, "parent_id", "8")
        source.sql("UPDATE tree SET parent_id = NULL WHERE id = 9")
        assert all(t.status == "ok" for t in copy(job, remap_ids=True, mode="append").tables)
    finally:
        job.close()
    assert target.query(f"SELECT parent_id FROM tree WHERE id = {t9}") == [(None,)]


@pytest.mark.parametrize("remapped", ["mariadb", "postgresql"], indirect=True)
def test_sync_takes_a_live_row_a_new_row_matches_by_its_natural_key_in_one_run(remapped: Any) -> None:
    """A new source row whose natural key a live target row holds is mapped to that row (as copy maps
    it); its values stayed the live row's, so the run's own check found it changed, and only the next
    sync made it the source's. It is updated in the same run, with references to rows inserted then."""
    source, target, job_file = remapped
    target.sql("INSERT INTO repositories (id, slug, name) VALUES (40, 'epsilon', 'live')")
    source.sql(
        "INSERT INTO repositories VALUES (5, 'epsilon', 'E')",
        "INSERT INTO commits VALUES (17, 5, 'e1', 'new')",
    )
    result = _sync(build(config_file=str(job_file)))
    assert result.verified, (result.remaining, [t.errors for t in result.tables])
    done = {t.table: (t.inserted, t.updated, t.failed) for t in result.tables}
    assert done == {"repositories": (0, 1, 0), "commits": (1, 0, 0)}
    assert target.query("SELECT id, name FROM repositories WHERE slug = 'epsilon'") == [(40, "E")]
    assert target.query("SELECT repository_id FROM commits WHERE hash = 'e1'") == [(40,)]
    assert _diff(build(config_file=str(job_file))).identical


@pytest.mark.parametrize("kind", ["mariadb", "postgresql"])
def test_fix_through_the_map_writes_no_live_row_and_finishes_what_a_stopped_fix_began(
    make_db: Callable[[str], Database], kind: str, tmp_path: Path
) -> None:
    """fix of a run of diff --remap-ids: a missing row whose natural key a live row took since the diff
    is a conflict (fix mapped the live row to it, and exited 0); an extra row of a table of references
    only, kept, is said (it was skipped without a word); a new row a stopped fix wrote with its
    reference NULL, waiting, is finished on the rerun (it was a conflict, "now in the target")."""
    source, target = make_db("sqlite"), make_db(kind)
    source.sql(
        "CREATE TABLE tree (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES tree(id),"
        " slug VARCHAR(20) NOT NULL UNIQUE)",
        "CREATE TABLE labels (tree_id INTEGER NOT NULL REFERENCES tree(id), label VARCHAR(10) NOT NULL,"
        " PRIMARY KEY (tree_id, label))",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(20) NOT NULL UNIQUE)",
        "INSERT INTO tree VALUES (1, NULL, 'root'), (2, 1, 'a')",
        "INSERT INTO labels VALUES (1, 'x'), (2, 'x')",
        "INSERT INTO users VALUES (1, 'one@x')",
    )
    copy(_job(source, target), limit=0)
    for table, column in (("tree", "slug"), ("users", "email")):
        target.sql(*(f"INSERT INTO {table} (id, {column}) VALUES ({i}, 'own{i}')" for i in range(1, 11)))
        if kind == "postgresql":
            target.sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 10)")
    job_file = _job_file(
        tmp_path,
        source,
        target,
        "  - {name: tree, remap_ids: true}\n  - {name: labels}\n"
        "  - {name: users, remap_ids: true, natural_key: [email]}\n",
    )
    first = build(config_file=str(job_file))
    try:
        assert all(t.status == "ok" for t in copy(first).tables)
    finally:
        first.close()
    source.sql(
        "INSERT INTO tree VALUES (5, 6, 'five'), (6, 5, 'six')",
        "DELETE FROM labels WHERE tree_id = 2",
        "INSERT INTO users VALUES (7, 'seven@x')",
        "UPDATE users SET email = 'uno@x' WHERE id = 1",
        "INSERT INTO users VALUES (8, 'one@x')",  # (the copy's row of 1 holds it, in the target)
    )
    found = _diff(build(config_file=str(job_file)), output="_parity_discrepancies")
    assert {t: sorted((k, d["tree_id"] if "tree_id" in d else d["id"]) for k, d, _ in rows) for t, rows in
            {t.stats.table: [(d.kind, d.key, d.columns) for d in t.differences] for t in found.tables}.items()} == {
        "tree": [("missing", 5), ("missing", 6)], "labels": [("extra", 2)],
        "users": [("changed", 1), ("missing", 7), ("missing", 8)],
    }  # fmt: skip
    # a fix stopped before its late phase: 5 and 6 written and mapped, 5 NULL where it waits for 6
    target.sql("INSERT INTO tree (slug) VALUES ('five'), ('six')")
    new = {slug: i for slug, i in target.query("SELECT slug, id FROM tree WHERE slug IN ('five', 'six')")}
    target.sql(
        f"UPDATE tree SET parent_id = {new['five']} WHERE id = {new['six']}",
        f"INSERT INTO _parity_id_map (table_name, old_id, new_id) VALUES ('tree', '5', '{new['five']}'),"
        f" ('tree', '6', '{new['six']}')",
    )
    job = build(config_file=str(job_file))
    try:
        with job.target.begin() as conn:
            State(job.target, waits=SYNC_WAITS).wait_reference(conn, "tree", new["five"], "parent_id", "6")
    finally:
        job.close()
    target.sql("INSERT INTO users (id, email) VALUES (50, 'seven@x')")  # (the live application, since)
    job = build(config_file=str(job_file))
    try:
        done = fix(job, found.run_id, apply=True, delete=True)
    finally:
        job.close()
    assert (done.inserted, done.updated, done.deleted, done.failed, done.already) == (0, 2, 0, 0, 1), (
        done.to_dict()
    )
    assert any("now in the target (its natural key email=seven@x is the target's row id=50; sync --remap-ids"
               " takes it)" in c for c in done.conflicts), done.conflicts  # fmt: skip
    assert any(
        'users {"id": 8}: now in the target (its natural key email=one@x is the target\'s row id=' in c
        and "the ID map gives it to the source's id=1)" in c
        for c in done.conflicts
    ), done.conflicts
    assert any("labels: 1 extra rows kept" in c for c in done.conflicts), done.conflicts
    assert target.query(f"SELECT parent_id FROM tree WHERE id = {new['five']}") == [(new["six"],)]
    assert target.query("SELECT COUNT(*) FROM _parity_id_map WHERE table_name = 'users'")[0][0] == 1
    # (B) sync: a new row whose natural key a changed row gives up in the same run is inserted after
    # the updates (it was refused, and only the next sync inserted it)
    # (and 7 takes the live row 50 that holds its natural key, 8 the one 1 gave up in the fix)
    source.sql("UPDATE users SET email = 'eins@x' WHERE id = 1", "INSERT INTO users VALUES (9, 'uno@x')")
    swapped = _sync(build(config_file=str(job_file), tables=["users"]))
    assert swapped.verified, swapped.to_dict()
    assert {t.table: (t.inserted, t.updated, t.failed) for t in swapped.tables} == {"users": (2, 2, 0)}
    assert target.query("SELECT email FROM users WHERE id = 50") == [("seven@x",)]
    assert target.query("SELECT id FROM users WHERE email = 'seven@x'") == [(50,)]


@pytest.mark.parametrize("kind", ["mariadb", "postgresql"])
def test_references_to_source_rows_that_share_a_target_row_compare_equal(
    make_db: Callable[[str], Database], kind: str, tmp_path: Path
) -> None:
    """Source rows sharing a natural key share one target row (copy maps both to it), which reads as
    the least of them: a child of the other one differed (5 against 1) in every diff, and sync,
    writing the same reference again, never converged. They name the same row: equal."""
    source, target = make_db("sqlite"), make_db(kind)
    source.sql(
        "CREATE TABLE repositories (id INTEGER PRIMARY KEY, slug VARCHAR(20) NOT NULL, name TEXT)",
        "CREATE TABLE commits (id INTEGER PRIMARY KEY, repository_id INTEGER REFERENCES repositories(id),"
        " hash VARCHAR(10) NOT NULL)",
        "INSERT INTO repositories VALUES (1, 'alpha', 'A'), (5, 'alpha', 'A'), (6, 'beta', 'B')",
        "INSERT INTO commits VALUES (10, 1, 'a'), (11, 5, 'b'), (12, 6, 'c')",
    )
    job_file = _job_file(tmp_path, source, target, REPOSITORIES_AND_COMMITS)
    _copy_ok(job_file)
    assert target.query("SELECT COUNT(*) FROM repositories")[0][0] == 2
    assert _found(_diff(build(config_file=str(job_file)))) == {"repositories": [], "commits": []}
    source.sql(
        "INSERT INTO commits VALUES (13, 5, 'd')", "UPDATE commits SET repository_id = 5 WHERE id = 12"
    )
    result = _sync(build(config_file=str(job_file)))
    assert result.verified, result.to_dict()
    assert {t.table: (t.inserted, t.updated) for t in result.tables} == {
        "repositories": (0, 0),
        "commits": (1, 1),
    }
    rows = target.query(
        "SELECT c.hash, r.slug FROM commits c JOIN repositories r ON r.id = c.repository_id ORDER BY 1"
    )
    assert [tuple(r) for r in rows] == [("a", "alpha"), ("b", "alpha"), ("c", "alpha"), ("d", "alpha")]


@pytest.mark.parametrize("kind", ["mariadb", "postgresql"])
def test_a_target_row_that_source_rows_share_stands_for_the_least_the_source_holds(
    make_db: Callable[[str], Database], kind: str, tmp_path: Path
) -> None:
    """Two authors with one e-mail (the natural key) share one target row, which diff read once for
    each: every sync wrote the other one's name into it, and said "still differ" (the audit). The row
    stands for the least ID the source holds; once that one is gone, for the next."""
    source, target = make_db("sqlite"), make_db(kind)
    source.sql(
        "CREATE TABLE authors (id INTEGER PRIMARY KEY, email VARCHAR(40) NOT NULL, name TEXT)",
        "INSERT INTO authors VALUES (1, 'a@x.com', 'A'), (2, 'a@x.com', 'A2'), (3, 'b@x.com', 'B')",
    )
    job_file = _job_file(
        tmp_path, source, target, "  - {name: authors, remap_ids: true, natural_key: [email]}\n"
    )
    _copy_ok(job_file)
    assert sorted(target.query("SELECT email, name FROM authors")) == [("a@x.com", "A"), ("b@x.com", "B")]
    found = _diff(build(config_file=str(job_file)), remap_ids=True)
    assert _found(found) == {"authors": []}
    assert any("1 source rows share their target row" in w for w in found.tables[0].warnings)
    for _ in range(2):  # (it wrote 'A2', then 'A' ... and never converged)
        synced = _sync(build(config_file=str(job_file)), remap_ids=True)
        assert synced.verified and [(t.inserted, t.updated) for t in synced.tables] == [(0, 0)]
    source.sql("DELETE FROM authors WHERE id = 1")  # the row now stands for author 2
    assert _found(_diff(build(config_file=str(job_file)), remap_ids=True)) == {
        "authors": [("changed", 2, ("name",))]
    }
    synced = _sync(build(config_file=str(job_file)), remap_ids=True)
    assert synced.verified and [(t.inserted, t.updated, t.deleted) for t in synced.tables] == [(0, 1, 0)]
    assert sorted(target.query("SELECT email, name FROM authors")) == [("a@x.com", "A2"), ("b@x.com", "B")]
    # the row gone from the source: every entry of the map that gave it to a source row goes with it (one
    # stayed, and a new source row of that ID was read as the deleted row's)
    source.sql("DELETE FROM authors WHERE email = 'a@x.com'")
    synced = _sync(build(config_file=str(job_file)), remap_ids=True, extra="delete")
    assert synced.verified and [t.deleted for t in synced.tables] == [1]
    assert target.query("SELECT old_id FROM _parity_id_map WHERE table_name = 'authors'") == [("3",)]
    source.sql("INSERT INTO authors VALUES (1, 'c@x.com', 'C')")
    synced = _sync(build(config_file=str(job_file)), remap_ids=True)
    assert synced.verified and [t.inserted for t in synced.tables] == [1]
    assert sorted(target.query("SELECT email, name FROM authors")) == [("b@x.com", "B"), ("c@x.com", "C")]


def test_remapped_ids_into_32_bit_columns_are_no_warning(
    make_db: Callable[[str], Database], tmp_path: Path
) -> None:
    """A SQLite INTEGER holds 64-bit values, which a live target's INT may refuse: a warning, which
    came for every ID column too (ten on a six-table job, the audit), where the target's own IDs go."""
    source, target = make_db("sqlite"), make_db("mariadb")
    source.sql(
        "CREATE TABLE repositories (id INTEGER PRIMARY KEY, slug VARCHAR(20) NOT NULL, stars INTEGER)",
        "CREATE TABLE commits (id INTEGER PRIMARY KEY, repository_id INTEGER REFERENCES repositories(id))",
        "INSERT INTO repositories VALUES (1, 'a', 5)",
        "INSERT INTO commits VALUES (10, 1)",
    )
    target.sql(
        "CREATE TABLE repositories (id INT AUTO_INCREMENT PRIMARY KEY, slug VARCHAR(20) NOT NULL, stars INT)",
        "CREATE TABLE commits (id INT AUTO_INCREMENT PRIMARY KEY, repository_id INT,"
        " FOREIGN KEY (repository_id) REFERENCES repositories(id))",
    )
    job = build(source.url, target.url)
    try:
        result = copy(job, remap_ids=True)
    finally:
        job.close()
    assert all(t.status == "ok" for t in result.tables)
    wide = [w for w in result.schema.warnings if "holds 64-bit values" in w]
    assert [w.split(" ", 1)[0] for w in wide] == ["repositories.stars"], wide


def test_remap_ids_in_the_job_file_s_defaults_is_the_option(
    make_db: Callable[[str], Database], tmp_path: Path
) -> None:
    """``defaults: {remap_ids: true}`` was refused as an unknown key (the audit): it is --remap-ids,
    for copy, diff and sync."""
    source, target = make_db("sqlite"), make_db("postgresql")
    source.sql(
        "CREATE TABLE repositories (id INTEGER PRIMARY KEY, slug VARCHAR(20) NOT NULL)",
        "CREATE TABLE commits (id INTEGER PRIMARY KEY, repository_id INTEGER REFERENCES repositories(id))",
        "INSERT INTO repositories VALUES (7, 'a')",
        "INSERT INTO commits VALUES (70, 7)",
    )
    target.sql(
        "CREATE TABLE repositories (id SERIAL PRIMARY KEY, slug VARCHAR(20) NOT NULL)",
        "CREATE TABLE commits (id SERIAL PRIMARY KEY, repository_id INT REFERENCES repositories(id))",
        "INSERT INTO repositories (slug) VALUES ('live')",
    )
    job_file = _job_file(tmp_path, source, target, "  - {name: repositories}\n  - {name: commits}\n")
    job_file.write_text(job_file.read_text() + "defaults: {remap_ids: true}\n")
    _copy_ok(job_file)
    assert target.query("SELECT id, slug FROM repositories ORDER BY id") == [(1, "live"), (2, "a")]
    assert target.query("SELECT repository_id FROM commits") == [(2,)]
    assert _found(_diff(build(config_file=str(job_file)))) == {"repositories": [], "commits": []}
    source.sql("UPDATE repositories SET slug = 'b'")
    synced = _sync(build(config_file=str(job_file)))
    assert synced.verified and target.query("SELECT slug FROM repositories WHERE id = 2") == [("b",)]


@pytest.mark.parametrize("changed", [1, 3])
def test_a_source_row_that_leaves_a_shared_target_row_gets_a_row_of_its_own(
    make_db: Callable[[str], Database], changed: int, tmp_path: Path
) -> None:
    """Three repositories with one slug (the natural key) share a target row. One of them takes another
    slug: the standing one (1) took the shared row with it, and the other two were left with no row of
    theirs; another one (3) never reached the target; and diff called both identical (the audit). Now
    the row stays the standing one's, the one that left gets a row of its own."""
    source, target = make_db("sqlite"), make_db("mariadb")
    source.sql(
        "CREATE TABLE repos (id INTEGER PRIMARY KEY, slug VARCHAR(20) NOT NULL, name TEXT)",
        "INSERT INTO repos VALUES (1, 'a', 'A1'), (2, 'b', 'B'), (3, 'a', 'A3'), (4, 'a', 'A4')",
    )
    job_file = _job_file(
        tmp_path, source, target, "  - {name: repos, remap_ids: true, natural_key: [slug]}\n"
    )
    _copy_ok(job_file)
    assert sorted(target.query("SELECT slug FROM repos")) == [("a",), ("b",)]
    source.sql(f"UPDATE repos SET slug = 'z', name = 'Z' WHERE id = {changed}")
    found = _diff(build(config_file=str(job_file)), remap_ids=True)
    assert not found.identical
    synced = _sync(build(config_file=str(job_file)), remap_ids=True)
    assert synced.verified, synced.to_dict()
    assert _found(_diff(build(config_file=str(job_file)), remap_ids=True)) == {"repos": []}
    slugs = sorted(s for (s,) in target.query("SELECT slug FROM repos"))
    assert slugs == ["a", "b", "z"], slugs
    again = _sync(build(config_file=str(job_file)), remap_ids=True)
    assert again.verified and [(t.inserted, t.updated) for t in again.tables] == [(0, 0)]


def test_sync_names_the_cycle_a_not_null_reference_cannot_wait_in(make_db: Callable[[str], Database]) -> None:
    """New rows referencing each other through a NOT NULL column cannot be written (neither can wait
    for the other's new ID): refused, as before, and now with that reason, not "no row with that ID"."""
    source, target = make_db("sqlite"), make_db("mariadb")
    source.sql(
        "CREATE TABLE nn (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES nn(id), name TEXT)",
        "INSERT INTO nn VALUES (1, 1, 'root')",
    )
    copy(_job(source, target), limit=0)
    target.sql(
        "INSERT INTO nn (id, parent_id, name) VALUES (7, 7, 'root')",
        "INSERT INTO _parity_id_map (table_name, old_id, new_id) VALUES ('nn', '1', '7')",
    )
    assert _diff(_job(source, target), remap_ids=True).identical
    source.sql("INSERT INTO nn VALUES (3, 4, 'x'), (4, 3, 'y'), (5, 1, 'z')")
    result = _sync(_job(source, target), remap_ids=True)
    (nn,) = result.tables
    assert (nn.inserted, nn.failed) == (1, 2), nn.errors
    assert all(
        "a row of nn this sync inserts after it (a cycle), and parent_id is NOT NULL" in e for e in nn.errors
    )
    assert target.query("SELECT name FROM nn ORDER BY id") == [("root",), ("z",)]


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb"])
def test_sync_through_the_map_refuses_values_the_target_would_change(
    make_db: Callable[[str], Database], tmp_path: Path, target_name: str
) -> None:
    """A new row with a time of day in a DATE went in through the ID map with the time cut off (the
    dry run refused it: the two disagreed); its child waited for it as for a row "inserted above".
    Both runs refuse the row with its reason, and its child for want of it."""
    source, target = make_db("sqlite"), make_db(target_name)
    source.sql(
        "CREATE TABLE repos (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL UNIQUE, created DATE)",
        "CREATE TABLE commits (id INTEGER PRIMARY KEY, repo_id INTEGER REFERENCES repos (id), msg TEXT)",
        "INSERT INTO repos VALUES (1, 'a', '2024-01-01'), (2, 'b', '2024-01-02')",
        "INSERT INTO commits VALUES (10, 1, 'm')",
    )
    job_file = _job_file(
        tmp_path, source, target,
        "  - {name: repos, remap_ids: true, natural_key: [name]}\n  - {name: commits, remap_ids: true}\n",
    )  # fmt: skip
    _copy_ok(job_file)
    source.sql(
        "INSERT INTO repos VALUES (3, 'c', '2024-01-03 10:00'), (4, 'd', '2024-01-04')",
        "INSERT INTO commits VALUES (11, 3, 'on c'), (12, 4, 'on d')",
    )
    outcomes = []
    for dry_run in (True, False):
        outcomes.append({t.table: t for t in _sync(build(config_file=str(job_file)), dry_run=dry_run).tables})
    for by_table in outcomes:
        repos, commits = by_table["repos"], by_table["commits"]
        assert (repos.inserted, repos.failed, commits.inserted, commits.failed) == (1, 1, 1, 1), by_table
        assert 'repos {"id": 3}: created: ' in repos.errors[0], repos.errors
        assert "repo_id=3: no row with that ID" in commits.errors[0], commits.errors
    assert [r[0] for r in target.query("SELECT name FROM repos ORDER BY name")] == ["a", "b", "d"]
    assert target.query("SELECT COUNT(*) FROM commits WHERE msg = 'on c'") == [(0,)]


@pytest.mark.parametrize("remapped", ["mariadb", "postgresql", "sqlite"], indirect=True)
def test_soft_delete_through_the_map_unmarks_a_row_back_in_the_source(remapped: Any) -> None:
    """Through the ID map, a commit marked deleted stayed marked when the source held it again, and
    the sync said identical (the audit): it is unmarked by its new ID; the live target's own rows,
    marked or not, are never touched; a dry run in a steady state prints nothing."""
    source, target, job_file = remapped
    target.sql(
        "ALTER TABLE commits ADD COLUMN gone INTEGER", "ALTER TABLE repositories ADD COLUMN gone INTEGER"
    )
    own = target.query("SELECT id FROM repositories WHERE slug = 'other1'")[0][0]
    target.sql(f"INSERT INTO commits (repository_id, hash, message, gone) VALUES ({own}, 'mine', 'x', 1)")

    def synced(**kw: Any) -> Any:
        return {
            t.table: t
            for t in _sync(
                build(config_file=str(job_file)), extra="soft-delete", soft_delete_column="gone", **kw
            ).tables
        }

    source.sql("DELETE FROM commits WHERE id = 13")
    assert synced()["commits"].soft_deleted == 1
    assert target.query("SELECT hash FROM commits WHERE gone = 1 ORDER BY hash") == [("b1",), ("mine",)]
    source.sql("INSERT INTO commits VALUES (13, 2, 'b1', 'm')")
    planned = _sync(
        build(config_file=str(job_file)), extra="soft-delete", soft_delete_column="gone", dry_run=True
    )
    assert [t.updated for t in planned.tables if t.table == "commits"] == [1]
    done = _sync(build(config_file=str(job_file)), extra="soft-delete", soft_delete_column="gone")
    assert done.verified and {t.table: t.updated for t in done.tables}["commits"] == 1
    assert target.query("SELECT hash FROM commits WHERE gone = 1 ORDER BY hash") == [("mine",)]
    steady = _sync(
        build(config_file=str(job_file)), extra="soft-delete", soft_delete_column="gone", dry_run=True
    )
    assert steady.statements == [] and all(t.updated == t.soft_deleted == 0 for t in steady.tables)


def test_the_id_map_is_counted_after_a_copy_so_mariadb_joins_through_its_index(
    make_db: Callable[[str], Database],
) -> None:
    """Right after copy --remap-ids, MariaDB's counts of _parity_id_map were those of the empty table,
    and its plan for diff's join through the map read every entry of the table for each row: a
    20,000-row diff took 47 s, 100,000 rows with 300,000 children never ended (the audit). The copy
    has the map counted: the join looks each row's new ID up by the map's (table_name, new_id) index."""
    source, target = make_db("postgresql"), make_db("mariadb")
    source.sql(
        "CREATE TABLE p (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name text)",
        "INSERT INTO p (name) SELECT 'p' || g FROM generate_series(1, 3000) g",
    )
    job = _job(source, target)
    try:
        assert copy(job, remap_ids=True).ok
        assert diff(job, remap_ids=True).identical
    finally:
        job.close()
    plan = target.query(
        "EXPLAIN SELECT count(*) FROM p JOIN _parity_id_map m ON m.table_name = 'p' AND m.new_id = concat(p.id)"
    )
    used = {row[2]: row[5] for row in plan}  # (table: the index it reads by)
    assert used["m"] == "ix_parity_id_map_new_id", plan


@pytest.mark.parametrize("remapped", ["mariadb"], indirect=True)
def test_references_join_the_map_as_it_is_where_no_target_row_is_shared(
    remapped: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A reference was joined to the map's entries grouped by target row, for the rows several source
    rows share (natural keys): MariaDB looked each of 300,000 references up in a grouped copy of the
    map (17 s; 1.3 s through the map's index). Where no target row of the parent is shared, the
    reference meets the map as it is; the diff finds the same differences."""
    source, target, job_file = remapped
    target.sql("UPDATE commits SET message = 'edited' WHERE hash = 'b1'")
    with caplog.at_level(logging.DEBUG, logger="parity"):
        found = _found(_diff(build(config_file=str(job_file)), remap_ids=True))
    assert found["commits"] == [("changed", 13, ("message",))]
    statements = [r.getMessage() for r in caplog.records if "_parity_id_map" in r.getMessage()]
    assert statements and not any("GROUP BY parity_ids" in s for s in statements), statements
    source.sql("INSERT INTO repositories VALUES (4, 'alpha2', 'A')")
    target.sql("INSERT INTO _parity_id_map VALUES ('repositories', '4', (SELECT new_id FROM"
               " (SELECT new_id FROM _parity_id_map WHERE table_name = 'repositories' AND old_id = '1') t))")  # fmt: skip
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="parity"):
        _diff(build(config_file=str(job_file)), remap_ids=True)
    statements = [r.getMessage() for r in caplog.records if "_parity_id_map" in r.getMessage()]
    assert any("GROUP BY parity_ids" in s for s in statements), statements  # (4 shares 1's row: grouped)
