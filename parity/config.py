"""Job files: YAML with ${VAR} from the environment or a .env file, parsed into frozen models.

Unknown keys are errors that suggest the closest valid key; a missing variable is an error naming it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from parity.errors import ConfigError, did_you_mean

Mode = Literal["replace", "append", "merge"]
LogLevel = Literal["low", "medium", "high"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _listify(value: Any) -> Any:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(value: Any) -> Any:
    """'90', '30s', '10m', '2h' or '1d' as seconds; a number as it is; other values as they are (the
    model's check then names them)."""
    if isinstance(value, bool):  # (YAML's yes/true: no duration, though Python counts it 1)
        raise ValueError(f"{value!r} is no duration: a number of seconds, or one followed by s, m, h or d")
    if not isinstance(value, str):
        return value
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"{value!r} is no duration: a number of seconds, or one followed by s, m, h or d")
    return float(match.group(1)) * _UNITS[match.group(2)]


class ConnectionConfig(_Model):
    """A database: its URL and, optionally, the schema (or MariaDB database) to work in."""

    url: str
    db_schema: str | None = Field(default=None, alias="schema")


class PartitionConfig(_Model):
    """How diff splits a table: by a date column per month/week/day, or by key ranges."""

    column: str | None = None
    by: Literal["month", "week", "day", "key"] = "key"
    stagger: bool = True
    size: int | None = Field(default=None, gt=0)
    """``by: key``: the key span of one partition (default: the key range cut in 4 x threads)."""

    @model_validator(mode="after")
    def _column_of_periods(self) -> PartitionConfig:
        if self.by != "key" and not self.column:
            raise ValueError(
                f"partition by {self.by} needs a column (partition: {{column: ..., by: {self.by}}})"
            )
        return self


class TableConfig(_Model):
    """Per-table settings. ``name`` is the source table; everything else is optional."""

    name: str
    target: str | None = None
    key: list[str] | None = None
    columns: list[str] | None = None
    exclude_columns: list[str] = []
    map: dict[str, str] = {}
    types: dict[str, str] = {}
    where: str | None = None
    target_where: str | None = None
    """diff and sync: the condition on the target's rows, where it differs from ``where`` (columns
    named otherwise there, another SQL dialect); by default ``where`` applies to both sides."""
    mode: Mode | None = None
    since: str | None = None
    """copy in merge mode: the column that says when a row last changed (``updated_at``); each run
    copies the rows it says changed since the last run began (the watermark, kept in the target)."""
    lookback: float | None = Field(default=None, ge=0)
    """With ``since``: each run also copies the rows up to this long before the watermark (seconds, or
    '30s', '10m', '2h', '1d'; for a numeric column, in its own units): a row a long transaction
    commits with a time older than a run's start is copied by a later run that looks that far back."""
    natural_key: list[str] | None = None
    remap_ids: bool = False
    atomic: bool = False
    """copy: the table in one transaction (sqlite-to-mariadb-migration's per-table transactions): one
    that fails leaves none of its rows or new IDs; its chunks are one, and a run stopped copies it anew."""
    batch_size: int | None = Field(default=None, gt=0)
    tolerance: dict[str, float] = {}
    partition: PartitionConfig | None = None

    _split = field_validator("key", "natural_key", "columns", "exclude_columns", mode="before")(_listify)
    _duration = field_validator("lookback", mode="before")(duration_seconds)


SYNONYMS = {"threads": "workers", "max_workers": "workers", "page_size": "batch_size"}
"""``defaults:`` keys of the tools parity takes over (database-migrator's max workers and page size,
table-sync's threads), read as parity's own."""


class Defaults(_Model):
    batch_size: int = Field(default=20_000, gt=0)
    workers: int = Field(default=4, gt=0, le=64)
    """Tables and chunks copied at once; diff's and sync's queries per database at once (at most 64,
    as ``--workers``)."""
    mode: Mode = "append"
    remap_ids: bool = False
    """As ``--remap-ids``: every table the target numbers itself gets new IDs (copy), and is read through
    the ID map (diff, sync)."""
    atomic: bool = False
    """As ``--atomic``: every table copied in one transaction (``TableConfig.atomic``)."""

    @model_validator(mode="before")
    @classmethod
    def _synonyms(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = dict(value)
        named = {own: own for own in SYNONYMS.values() if own in out}  # (as the file names each)
        for other, own in SYNONYMS.items():
            if other in out:
                given = out.pop(other)
                if own in out and out[own] != given:
                    raise ValueError(f"'{other}' and '{named[own]}' are one setting: give one of them")
                out[own], named[own] = given, other
        return out


class JobConfig(_Model):
    """A whole job file."""

    source: ConnectionConfig
    target: ConnectionConfig
    tables: list[TableConfig] = []
    include: list[str] = []
    exclude: list[str] = []
    defaults: Defaults = Defaults()
    output: str | None = None
    """Where diff writes its differences when ``--output`` is not given: a table in the target (which
    ``parity fix`` then reads), or a .jsonl/.csv file."""
    log_level: LogLevel | None = None
    log_file: str | None = None

    _split = field_validator("include", "exclude", mode="before")(_listify)

    @field_validator("source", "target", mode="before")
    @classmethod
    def _url_alone(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value

    @field_validator("tables", mode="before")
    @classmethod
    def _table_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("tables")
    @classmethod
    def _each_once(cls, tables: list[TableConfig]) -> list[TableConfig]:
        """A source table is read once (one entry won without a word: its other target never made)."""
        seen: set[str] = set()
        for t in tables:
            if t.name in seen:
                raise ValueError(f"table '{t.name}' is listed twice; give each source table once")
            seen.add(t.name)
        return tables

    def table(self, name: str) -> TableConfig:
        for t in self.tables:
            if t.name == name:
                return t
        return TableConfig(name=name)


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str], where: str, path: str = "") -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string of a parsed YAML document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, where, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, where, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"{where}: environment variable {name} is not set (used in {path})")

    return _VAR.sub(substitute, value)


def _environment(job_file: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for dotenv in dict.fromkeys((Path.cwd() / ".env", job_file.parent / ".env")):
        if dotenv.is_file():
            env.update(_dotenv(dotenv))
    env.update(os.environ)
    return env


def _dotenv(path: Path) -> dict[str, str]:
    """The variables a .env file sets; a line that sets none is refused, naming its number (not its
    text, which may hold a password): python-dotenv skips such a line with a warning, and a variable
    it held would be missing, or the one a shell gives instead taken."""
    from dotenv import dotenv_values  # (here, as yaml below: only a job file needs them)
    from dotenv.parser import parse_stream

    try:
        with path.open(encoding="utf-8") as f:
            for binding in parse_stream(f):
                if binding.error:  # (its text starts with the blank lines before it)
                    text = binding.original.string
                    line = binding.original.line + text[: len(text) - len(text.lstrip())].count("\n")
                    raise ConfigError(f"{path}: line {line} sets no variable (NAME=value)")
        return {k: v for k, v in dotenv_values(path).items() if v is not None}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def _field_names(model: type[BaseModel]) -> dict[str, type[BaseModel] | None]:
    """Valid keys of a model (aliases as written in YAML) and the sub-model each one holds, if any."""
    out: dict[str, type[BaseModel] | None] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        sub = None
        annotation = info.annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                sub = candidate
        out[key] = sub
    return out


def check_keys(data: Any, model: type[BaseModel], where: str, path: str = "") -> None:
    """Reject unknown keys before validation, with the closest valid key suggested."""
    if not isinstance(data, dict):
        return
    fields = _field_names(model)
    for key, value in data.items():
        here = f"{path}.{key}" if path else str(key)
        if key not in fields and not (model is Defaults and key in SYNONYMS):
            raise ConfigError(f"{where}: unknown key '{here}'{did_you_mean(str(key), fields)}")
        sub = fields.get(key)
        if sub is TableConfig and isinstance(value, list):
            for i, item in enumerate(value):
                check_keys(item, sub, where, f"{here}[{i}]")
        elif sub is not None:
            check_keys(value, sub, where, here)


def load(path: str | Path, urls: dict[str, str | None] | None = None) -> JobConfig:
    """Read, interpolate and validate a job file; ``urls``: the source and target URLs given beside it,
    which stand in for a ``source:`` or ``target:`` the file leaves out."""
    job_file = Path(path)
    where = str(job_file)
    import yaml

    try:
        text = job_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read job file {where}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:  # (a comment in Latin-1: 'café')
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{where}: line {line} is not UTF-8 (byte 0x{exc.object[exc.start]:02x}); save the job file as UTF-8"
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}: malformed YAML{at}: {problem}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of settings at the top level")
    data = interpolate(data, _environment(job_file), where)
    for role, url in (urls or {}).items():
        if url and data.get(role) is None:
            data[role] = {"url": url}
    return parse(data, where)


def parse(data: dict[str, Any], where: str = "job") -> JobConfig:
    """Validate an already-loaded job mapping."""
    check_keys(data, JobConfig, where)
    try:
        return JobConfig.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc, where) from exc


def check_table_options(options: dict[str, Any], where: str = "options") -> None:
    """Per-table settings given for every table (the command line's), checked before any table is
    chosen: a bad value is one line naming it, not a model's error at the first table."""
    try:
        TableConfig.model_validate({"name": "-", **options})
    except ValidationError as exc:
        raise _invalid(exc, where) from exc


def _invalid(exc: ValidationError, where: str) -> ConfigError:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    return ConfigError(f"{where}: {loc}: {str(first['msg']).removeprefix('Value error, ')}")
