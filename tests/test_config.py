"""Job files: ${VAR} interpolation, .env files, unknown keys, malformed YAML, and examples/job.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from parity import config
from parity import job as jobs
from parity.errors import ConfigError, NotFound
from parity.schema.apply import schema_apply, schema_plan
from parity.schema.types import parse

from .conftest import Database

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "job.yaml"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No stray variables, and a working directory without a .env file."""
    for name in ("SOURCE_URL", "TARGET_URL", "SOURCE_SCHEMA", "TARGET_SCHEMA", "PARITY_T_VAR", "PARITY_T_PW"):
        monkeypatch.delenv(name, raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = "source: sqlite:///a.sqlite\ntarget: sqlite:///b.sqlite\n"


# ---- ${VAR} -------------------------------------------------------------------------------------------


def test_variable_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARITY_T_VAR", "postgresql://u:pw@db/x")
    loaded = config.load(
        write(tmp_path / "job.yaml", "source: ${PARITY_T_VAR}\ntarget: sqlite:///b.sqlite\n")
    )
    assert loaded.source.url == "postgresql://u:pw@db/x"


def test_variable_inside_a_string_and_in_a_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARITY_T_VAR", "orders")
    loaded = config.load(
        write(
            tmp_path / "job.yaml",
            MINIMAL + "tables:\n  - name: ${PARITY_T_VAR}\n    target: ${PARITY_T_VAR}_copy\n    key: [id]\n",
        )
    )
    assert (loaded.tables[0].name, loaded.tables[0].target) == ("orders", "orders_copy")


def test_variable_from_a_dotenv_next_to_the_job_file(tmp_path: Path) -> None:
    folder = tmp_path / "jobs"
    folder.mkdir()
    write(folder / ".env", "PARITY_T_VAR=sqlite:///from-dotenv.sqlite\n")
    loaded = config.load(write(folder / "job.yaml", "source: ${PARITY_T_VAR}\ntarget: sqlite:///b.sqlite\n"))
    assert loaded.source.url == "sqlite:///from-dotenv.sqlite"


def test_a_dotenv_line_that_sets_no_variable_is_refused_naming_its_number(tmp_path: Path) -> None:
    """python-dotenv skipped such a line with a warning (twice, where the job file is in the working
    directory), and the job went on without what it held (the audit). The line's text is not shown:
    it may hold a password."""
    folder = tmp_path / "jobs"
    folder.mkdir()
    write(folder / ".env", "PARITY_T_VAR=sqlite:///from-dotenv.sqlite\n\n\nPARITY_T_PW secret word\n")
    job = write(folder / "job.yaml", "source: ${PARITY_T_VAR}\ntarget: sqlite:///b.sqlite\n")
    with pytest.raises(ConfigError, match=r"\.env: line 4 sets no variable") as caught:
        config.load(job)
    assert "secret" not in str(caught.value)
    (folder / ".env").write_bytes(b"PARITY_T_VAR=\xff\n")
    with pytest.raises(ConfigError, match=r"cannot read .*\.env"):
        config.load(job)


def test_environment_wins_over_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / ".env", "PARITY_T_VAR=sqlite:///from-dotenv.sqlite\n")
    monkeypatch.setenv("PARITY_T_VAR", "sqlite:///from-env.sqlite")
    loaded = config.load(
        write(tmp_path / "job.yaml", "source: ${PARITY_T_VAR}\ntarget: sqlite:///b.sqlite\n")
    )
    assert loaded.source.url == "sqlite:///from-env.sqlite"


def test_default_when_unset_and_value_when_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job_file = write(
        tmp_path / "job.yaml",
        "source:\n  url: sqlite:///a.sqlite\n  schema: ${PARITY_T_VAR:-main}\n"
        "target:\n  url: sqlite:///b.sqlite\n  schema: ${PARITY_T_VAR:-}\n",
    )
    loaded = config.load(job_file)
    assert (loaded.source.db_schema, loaded.target.db_schema) == ("main", "")
    monkeypatch.setenv("PARITY_T_VAR", "sales")
    loaded = config.load(job_file)
    assert (loaded.source.db_schema, loaded.target.db_schema) == ("sales", "sales")


def test_missing_variable_is_named(tmp_path: Path) -> None:
    job_file = write(tmp_path / "job.yaml", "source: ${PARITY_T_VAR}\ntarget: sqlite:///b.sqlite\n")
    with pytest.raises(ConfigError) as failure:
        config.load(job_file)
    message = str(failure.value)
    assert "PARITY_T_VAR" in message and "is not set" in message
    assert str(job_file) in message and "source" in message


def test_variable_values_are_not_parsed_as_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARITY_T_PW", "pa: ss # not a comment")
    loaded = config.load(
        write(tmp_path / "job.yaml", "source: sqlite:///${PARITY_T_PW}.sqlite\ntarget: sqlite:///b.sqlite\n")
    )
    assert loaded.source.url == "sqlite:///pa: ss # not a comment.sqlite"


# ---- unknown keys and bad values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "suggestion"),
    [
        (MINIMAL + "tabels: [a]\n", "tabels", "tables"),
        (MINIMAL + "tables:\n  - name: a\n  - nmae: b\n", "tables[1].nmae", "name"),
        (
            MINIMAL + "tables:\n  - name: a\n    partition: {colum: x}\n",
            "tables[0].partition.colum",
            "column",
        ),
        (MINIMAL + "defaults:\n  batchsize: 10\n", "defaults.batchsize", "batch_size"),
        (
            "source:\n  url: sqlite:///a.sqlite\n  shema: x\ntarget: sqlite:///b.sqlite\n",
            "source.shema",
            "schema",
        ),
    ],
)
def test_unknown_key_suggests_the_closest(tmp_path: Path, text: str, key: str, suggestion: str) -> None:
    with pytest.raises(ConfigError) as failure:
        config.load(write(tmp_path / "job.yaml", text))
    assert f"unknown key '{key}'; did you mean '{suggestion}'?" in str(failure.value)


def test_unknown_key_without_a_close_match(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as failure:
        config.load(write(tmp_path / "job.yaml", MINIMAL + "zzzzzz: 1\n"))
    assert str(failure.value).endswith("unknown key 'zzzzzz'")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MINIMAL + "defaults:\n  mode: upsert\n", "defaults.mode"),
        (MINIMAL + "tables:\n  - name: a\n    batch_size: 0\n", "tables.0.batch_size"),
        ("source: sqlite:///a.sqlite\n", "target"),
    ],
)
def test_invalid_value_names_the_field(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as failure:
        config.load(write(tmp_path / "job.yaml", text))
    assert expected in str(failure.value)


def test_key_lists_may_be_comma_separated(tmp_path: Path) -> None:
    """Every list of names may be one comma-separated string: ``columns: id, hash`` was taken, while
    ``exclude_columns: score`` and ``include: 'comm*'`` were refused (the audit)."""
    loaded = config.load(
        write(
            tmp_path / "job.yaml",
            MINIMAL + "include: 'comm*, ord*'\nexclude: tmp_*\n"
            "tables:\n  - name: a\n    key: 'x, y'\n    exclude_columns: score\n",
        )
    )
    assert loaded.tables[0].key == ["x", "y"]
    assert loaded.tables[0].exclude_columns == ["score"]
    assert (loaded.include, loaded.exclude) == (["comm*", "ord*"], ["tmp_*"])


def test_unknown_canonical_type_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="unknown type 'dobule'; did you mean 'double'"):
        parse("dobule")
    assert str(parse("decimal(12, 2)")) == "decimal(12,2)"
    # SQL's spellings of the kinds ('int' was told "did you mean 'bigint'?")
    assert [str(parse(t)) for t in ("int", "numeric(10,2)", "bool", "datetime", "real")] == [
        "integer", "decimal(10,2)", "boolean", "timestamp", "float"
    ]  # fmt: skip


# ---- malformed YAML ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("source: sqlite:///a.sqlite\ntarget: [unclosed\n", "line 3, column 1"),
        ("source: sqlite:///a.sqlite\n  target: x: y\n", "line 2, column 9"),
        ("source: sqlite:///a.sqlite\ntables:\n\t- a\n", "line 3, column 1"),
    ],
)
def test_malformed_yaml_gives_line_and_column(tmp_path: Path, text: str, where: str) -> None:
    job_file = write(tmp_path / "job.yaml", text)
    with pytest.raises(ConfigError) as failure:
        config.load(job_file)
    message = str(failure.value)
    assert message.startswith(f"{job_file}: malformed YAML at {where}: ")
    assert "\n" not in message


def test_a_job_file_that_is_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    """A Latin-1 comment ('café') stopped every command with "unexpected UnicodeDecodeError", naming
    no file (the audit)."""
    job_file = tmp_path / "job.yaml"
    job_file.write_bytes(b"source: sqlite:///a.sqlite\n# job for caf\xe9 tables\ntables: [v]\n")
    with pytest.raises(ConfigError) as failure:
        config.load(job_file)
    assert str(failure.value) == f"{job_file}: line 2 is not UTF-8 (byte 0xe9); save the job file as UTF-8"


def test_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        config.load(write(tmp_path / "job.yaml", "- just\n- a list\n"))


def test_missing_job_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read job file .*nope\.yaml"):
        config.load(tmp_path / "nope.yaml")


# ---- job files and options together --------------------------------------------------------------------


def test_options_win_over_the_job_file(tmp_path: Path) -> None:
    job_file = write(
        tmp_path / "job.yaml",
        MINIMAL + "tables:\n  - name: orders\n    key: [id]\n    where: 'id > 1'\ndefaults:\n  workers: 2\n",
    )
    job = jobs.build(
        target_url="duckdb:///c.duckdb", config_file=str(job_file), tables=["orders:orders_copy"]
    )
    assert job.target.backend == "duckdb"
    (orders,) = job.config.tables
    assert (orders.name, orders.target, orders.key, orders.where) == (
        "orders",
        "orders_copy",
        ["id"],
        "id > 1",
    )
    assert job.config.defaults.workers == 2


def test_a_job_file_may_leave_the_urls_to_the_command_line(tmp_path: Path) -> None:
    """A job file of tables alone, the URLs given beside it: it was refused ("source: Field
    required"), though options win over the file. Without either, the file still needs them."""
    job_file = write(tmp_path / "job.yaml", "tables:\n  - name: orders\n    key: [id]\n")
    job = jobs.build("sqlite:///a.db", "duckdb:///c.duckdb", config_file=str(job_file))
    assert (job.source.backend, job.target.backend) == ("sqlite", "duckdb")
    assert [t.name for t in job.config.tables] == ["orders"]
    with pytest.raises(ConfigError, match="target"):
        jobs.build("sqlite:///a.db", config_file=str(job_file))


def test_exclude_columns_are_glob_patterns(sqlite_db: Database, tmp_path: Path) -> None:
    sqlite_db.sql("CREATE TABLE t (id INTEGER PRIMARY KEY, secret_a TEXT, secret_b TEXT, keep TEXT)")
    job_file = write(
        tmp_path / "job.yaml",
        f"source: {sqlite_db.url}\ntarget: sqlite:///{tmp_path}/t.sqlite\n"
        "tables:\n  - name: t\n    exclude_columns: ['secret_*']\n",
    )
    job = jobs.build(config_file=str(job_file))
    try:
        (table,) = job.source_tables()
    finally:
        job.close()
    assert table.column_names == ["id", "keep"]

    write(job_file, job_file.read_text().replace("secret_*", "sekret_*"))
    job = jobs.build(config_file=str(job_file))
    try:
        with pytest.raises(NotFound, match="column 'sekret_\\*' not found in table 't'"):
            job.source_tables()
    finally:
        job.close()


def test_columns_given_on_the_command_line_win_over_the_job_files_exclusions(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """``-c name`` beside a job file's ``exclude_columns: [name]`` compared no column, and diff said
    identical where only name differed (the audit): the command line's -c wins, as its options do."""
    sqlite_db.sql("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, other TEXT)")
    job_file = write(
        tmp_path / "job.yaml",
        f"source: {sqlite_db.url}\ntarget: sqlite:///{tmp_path}/t.sqlite\n"
        "tables:\n  - name: t\n    exclude_columns: [name]\n",
    )
    job = jobs.build(config_file=str(job_file), table_options={"columns": ["name"]})
    try:
        (table,) = job.source_tables()
    finally:
        job.close()
    assert "name" in table.column_names


def test_include_patterns_select_tables_beside_those_named(sqlite_db: Database, tmp_path: Path) -> None:
    """An include pattern beside a tables: list was ignored (per-table settings meant naming every
    table), and one matching nothing selected nothing, exit 0: now the tables it matches are added,
    and a pattern matching none is an error with the closest name."""
    sqlite_db.sql(*(f"CREATE TABLE {t} (id INTEGER PRIMARY KEY)" for t in ("customers", "carts", "products")))
    job_file = write(
        tmp_path / "job.yaml",
        f"source: {sqlite_db.url}\ntarget: sqlite:///{tmp_path}/t.sqlite\n"
        "include: ['c*']\ntables:\n  - {name: products, target: goods}\n",
    )

    def selected(**options: object) -> list[tuple[str, str]]:
        job = jobs.build(config_file=str(job_file), **options)  # type: ignore[arg-type]
        try:
            return [(t.name, t.target or t.name) for t in job.selected()]
        finally:
            job.close()

    assert selected() == [("products", "goods"), ("carts", "carts"), ("customers", "customers")]
    assert selected(exclude=["cart*"]) == [("products", "goods"), ("customers", "customers")]
    # -t on the command line names the run's tables: the file's include adds none to them
    assert selected(tables=["carts"]) == [("carts", "carts")]
    assert selected(tables=["products"], include=["cust*"]) == [
        ("products", "goods"),
        ("customers", "customers"),
    ]
    with pytest.raises(NotFound, match=r"table 'Customers' not found.*did you mean 'customers'"):
        selected(include=["Customers"])


# ---- examples/job.yaml -----------------------------------------------------------------------------------


def test_example_job_file_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_URL", "postgresql://app:secret@db.internal:5432/shop")
    monkeypatch.setenv("TARGET_URL", "duckdb:///warehouse.duckdb")
    loaded = config.load(EXAMPLE)
    assert loaded.source.url == "postgresql://app:secret@db.internal:5432/shop"
    assert loaded.target.url == "duckdb:///warehouse.duckdb"
    tables = {t.name: t for t in loaded.tables}
    assert list(tables) == ["employees", "customers", "products", "orders", "order history", "order_items"]
    assert tables["products"].target == "catalog_products"
    assert tables["products"].types == {"price": "decimal(14,2)", "weight_kg": "double"}
    assert tables["customers"].natural_key == ["email"] and tables["customers"].remap_ids
    assert tables["orders"].mode == "merge" and tables["orders"].key == ["id"]
    assert tables["orders"].partition is not None and tables["orders"].partition.by == "month"
    assert tables["orders"].tolerance == {"total": 0.01}
    assert tables["order history"].map == {"select": "status", "Changed At": "changed_at"}
    assert tables["order_items"].key == ["order_id", "line_no"]


def test_example_job_file_needs_its_variables() -> None:
    with pytest.raises(ConfigError, match="SOURCE_URL is not set"):
        config.load(EXAMPLE)


def test_example_job_file_fits_the_demo(
    demo_db: Database, duckdb_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_URL", demo_db.url)
    monkeypatch.setenv("TARGET_URL", duckdb_db.url)
    job = jobs.build(config_file=str(EXAMPLE))
    try:
        plan = schema_plan(job)
        schema_apply(job, plan)
    finally:
        job.close()
    assert duckdb_db.tables() == [
        "catalog_products",
        "customers",
        "employees",
        "order_history",
        "order_items",
        "orders",
    ]
    (history,) = duckdb_db.reflect("order_history")
    assert history.column_names == ["id", "order_id", "status", "changed_at"]
    (customers,) = duckdb_db.reflect("customers")
    assert "external_id" not in customers.column_names
    (products,) = duckdb_db.reflect("catalog_products")
    assert str(products.column("price").type) == "decimal(14,2)"


def test_the_prior_tools_names_of_defaults_are_read_as_parity_s(tmp_path: Path) -> None:
    """table-sync's `threads`, database-migrator's `max_workers` and `page_size` were unknown keys
    ("did you mean 'remap_ids'?"; the audit): they are parity's workers and batch size."""
    loaded = config.load(write(tmp_path / "job.yaml", MINIMAL + "defaults: {threads: 3, page_size: 500}\n"))
    assert (loaded.defaults.workers, loaded.defaults.batch_size) == (3, 500)
    loaded = config.load(write(tmp_path / "job.yaml", MINIMAL + "defaults: {max_workers: 2}\n"))
    assert loaded.defaults.workers == 2
    with pytest.raises(ConfigError, match="'threads' and 'workers' are one setting"):
        config.load(write(tmp_path / "job.yaml", MINIMAL + "defaults: {threads: 3, workers: 4}\n"))
    with pytest.raises(ConfigError, match="'max_workers' and 'threads' are one setting"):  # (as written)
        config.load(write(tmp_path / "job.yaml", MINIMAL + "defaults: {threads: 2, max_workers: 3}\n"))
    with pytest.raises(ConfigError, match=r"defaults\.workers"):  # (at most 64, as --workers)
        config.load(write(tmp_path / "job.yaml", MINIMAL + "defaults: {threads: 100}\n"))
