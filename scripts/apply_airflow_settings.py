"""Apply ``airflow_settings.yaml`` (the Astro CLI format) to any Airflow: connections, pools and
variables, so a compose, Helm or ``make up`` deployment gets the same setup as ``astro dev start``.

    python scripts/apply_airflow_settings.py [FILE]      # default: the project's airflow_settings.yaml
    make settings                                        # the same, for the Airflow of AIRFLOW_HOME

The metadata DB written is the one Airflow is configured with (``AIRFLOW_HOME``,
``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` and the rest of the environment), through Airflow's own
models, the way ``airflow connections``/``pools``/``variables`` do, in one process.

Idempotent, and the file is the source of truth only for what it names:

* a connection that exists is updated field by field; fields the file leaves out keep their value,
  so a password or key set from a secrets step (UI, ``airflow connections add``) survives, and
  ``conn_extra`` keys are merged into the stored extra. (``airflow connections import --overwrite``
  and Astro's delete-and-add would drop those secrets.) Passwords and extras are stored encrypted
  with the Fernet key when one is configured. A missing connection is created.
* a pool gets the slots and description of the file; a variable gets its value.
* connections, pools and variables the file does not name are left alone (nothing is deleted).

Running it twice changes nothing the second time; the summary line counts what was created,
updated and left unchanged. The file is checked first, and an error names the key and the fix
(``airflow.pools[1].pool_slot: expected a positive integer, got 0``). Nothing secret is printed:
not the file's values, not what the DB holds, not the SQL of a failed statement.

Keys (Astro's): connections ``conn_id``, ``conn_type``, ``conn_host``, ``conn_schema``,
``conn_login``, ``conn_password``, ``conn_port``, ``conn_extra`` (a mapping or a JSON object
string), ``conn_uri``, plus ``conn_description`` (shown in the Airflow UI; the Astro CLI ignores
it); pools ``pool_name``, ``pool_slot``, ``pool_description``; variables ``variable_name``,
``variable_value``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
KEYS = {
    "connections": {"conn_id", "conn_type", "conn_host", "conn_login", "conn_password", "conn_schema",
                    "conn_port", "conn_extra", "conn_description", "conn_uri"},
    "pools": {"pool_name", "pool_slot", "pool_description"},
    "variables": {"variable_name", "variable_value"},
}
ID_KEY = {"connections": "conn_id", "pools": "pool_name", "variables": "variable_name"}
CONN_ATTRS = {"conn_type": "conn_type", "conn_host": "host", "conn_login": "login", "conn_password": "password",
              "conn_schema": "schema", "conn_port": "port", "conn_description": "description"}
Settings = dict[str, list[dict[str, Any]]]


class SettingsError(ValueError):
    """The settings file is malformed; the message names the key and the fix."""


class ApplyError(RuntimeError):
    """The metadata DB could not be written; the message holds no statement parameters."""


# --------------------------------------------------------------------------- validation
def load(path: Path) -> Settings:
    """The validated settings: ``{"connections": [...], "pools": [...], "variables": [...]}``."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"{path}: cannot read: {exc}") from None
    airflow = data.get("airflow") if isinstance(data, dict) else None
    if not isinstance(airflow, dict):
        raise SettingsError(f"{path}: expected a top-level `airflow:` mapping (Astro format)")
    unknown = sorted(set(airflow) - set(KEYS))
    if unknown:
        raise SettingsError(f"airflow.{unknown[0]}: unknown section; use connections, pools or variables")
    out: Settings = {}
    for section in KEYS:
        items = airflow.get(section) or []
        if not isinstance(items, list):
            raise SettingsError(f"airflow.{section}: expected a list, got {type(items).__name__}")
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            where = f"airflow.{section}[{i}]"
            if not isinstance(item, dict):
                raise SettingsError(f"{where}: expected a mapping of {', '.join(sorted(KEYS[section]))}")
            _check_keys(section, where, item)
            {"connections": _check_connection, "pools": _check_pool, "variables": _check_variable}[section](
                where, item)
            ident = item[ID_KEY[section]]
            if ident in seen:
                raise SettingsError(f"{where}.{ID_KEY[section]}: {ident!r} is already defined at "
                                    f"airflow.{section}[{seen[ident]}]; keep one entry per {ID_KEY[section]}")
            seen[ident] = i
        out[section] = [_normalized(section, item) for item in items]
    return out


def _check_keys(section: str, where: str, item: dict[str, Any]) -> None:
    unknown = sorted(str(k) for k in set(item) - KEYS[section])
    if unknown:
        raise SettingsError(f"{where}.{unknown[0]}: unknown key; use one of {', '.join(sorted(KEYS[section]))}")


def _nonempty_str(where: str, key: str, value: Any, hint: str) -> None:
    if value is None or value == "":
        raise SettingsError(f"{where}.{key}: missing; {hint}")
    if not isinstance(value, str):
        raise SettingsError(f"{where}.{key}: expected a string, got {type(value).__name__}")


def _check_connection(where: str, item: dict[str, Any]) -> None:
    _nonempty_str(where, "conn_id", item.get("conn_id"), "every connection needs an id")
    if not item.get("conn_uri"):
        _nonempty_str(where, "conn_type", item.get("conn_type"), "e.g. aws, http, generic, smtp (or give conn_uri)")
    for key in ("conn_type", "conn_host", "conn_login", "conn_password", "conn_schema", "conn_description",
                "conn_uri"):
        if item.get(key) is not None and not isinstance(item[key], str):
            raise SettingsError(f"{where}.{key}: expected a string, got {type(item[key]).__name__}")
    port = item.get("conn_port")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536):
        raise SettingsError(f"{where}.conn_port: expected a port number (1-65535), got {port!r}")
    extra = item.get("conn_extra")
    if isinstance(extra, str):
        try:
            extra = json.loads(extra) if extra.strip() else {}
        except json.JSONDecodeError:
            extra = None
    if extra is not None and not isinstance(extra, dict):
        raise SettingsError(f"{where}.conn_extra: expected a mapping of extra fields (or a JSON object string)")


def _check_pool(where: str, item: dict[str, Any]) -> None:
    _nonempty_str(where, "pool_name", item.get("pool_name"), "every pool needs a name")
    slots = item.get("pool_slot")
    if not isinstance(slots, int) or isinstance(slots, bool) or slots < 1:
        raise SettingsError(f"{where}.pool_slot: expected a positive integer, got {slots!r}")
    if item.get("pool_description") is not None and not isinstance(item["pool_description"], str):
        raise SettingsError(f"{where}.pool_description: expected a string")


def _check_variable(where: str, item: dict[str, Any]) -> None:
    _nonempty_str(where, "variable_name", item.get("variable_name"), "every variable needs a name")
    if "variable_value" not in item or item["variable_value"] is None:
        raise SettingsError(f"{where}.variable_value: missing (use an empty string for none)")


def _normalized(section: str, item: dict[str, Any]) -> dict[str, Any]:
    """``conn_extra`` as a dict, a variable's value as the string Airflow stores (JSON for others)."""
    item = dict(item)
    if section == "connections" and isinstance(item.get("conn_extra"), str):
        text = item["conn_extra"].strip()
        item["conn_extra"] = json.loads(text) if text else {}
    if section == "variables" and not isinstance(item["variable_value"], str):
        item["variable_value"] = json.dumps(item["variable_value"], sort_keys=True)
    return item


def warnings_for(settings: Settings) -> list[str]:
    """Hints about secrets written into the file (names the key, never the value)."""
    out = []
    for i, item in enumerate(settings["connections"]):
        if item.get("conn_password") or (item.get("conn_uri") and "@" in item["conn_uri"]):
            key = "conn_password" if item.get("conn_password") else "conn_uri"
            out.append(f"airflow.connections[{i}].{key}: credentials in the settings file; prefer a secrets "
                       f"backend, AIRFLOW_CONN_{item['conn_id'].upper()} or `airflow connections add`")
    return out


# --------------------------------------------------------------------------- applying
def _wanted_connection(item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The connection fields (model attribute -> value) and extra fields the file names."""
    from airflow.models.connection import Connection

    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if item.get("conn_uri"):
        parsed = Connection(conn_id=item["conn_id"], uri=item["conn_uri"])
        fields = {a: getattr(parsed, a) for a in ("conn_type", "host", "login", "password", "schema", "port")
                  if getattr(parsed, a) not in (None, "")}
        extra = parsed.extra_dejson
    fields |= {attr: item[key] for key, attr in CONN_ATTRS.items() if item.get(key) is not None}
    return fields, extra | dict(item.get("conn_extra") or {})


def _apply_connection(session: Any, item: dict[str, Any]) -> str:
    from airflow.models.connection import Connection
    from sqlalchemy import select

    fields, extra = _wanted_connection(item)
    conn = session.scalar(select(Connection).where(Connection.conn_id == item["conn_id"]))
    if conn is None:
        conn = Connection(conn_id=item["conn_id"], **fields)
        if extra:
            conn.set_extra(json.dumps(extra))
        session.add(conn)
        return "created"
    changed = [attr for attr, value in fields.items() if getattr(conn, attr) != value]
    for attr in changed:
        setattr(conn, attr, fields[attr])
    stored = conn.extra_dejson
    if stored | extra != stored:
        conn.set_extra(json.dumps(stored | extra))
        changed.append("extra")
    return "updated" if changed else "unchanged"


def _apply_pool(session: Any, item: dict[str, Any]) -> str:
    from airflow.models.pool import Pool
    from sqlalchemy import select

    description = item.get("pool_description") or ""
    pool = session.scalar(select(Pool).where(Pool.pool == item["pool_name"]))
    if pool is None:
        session.add(Pool(pool=item["pool_name"], slots=item["pool_slot"], description=description,
                         include_deferred=False))
        return "created"
    if (pool.slots, pool.description or "") == (item["pool_slot"], description):
        return "unchanged"
    pool.slots, pool.description = item["pool_slot"], description
    return "updated"


def _apply_variable(session: Any, item: dict[str, Any]) -> str:
    from airflow.models.variable import Variable
    from sqlalchemy import select

    var = session.scalar(select(Variable).where(Variable.key == item["variable_name"]))
    if var is not None and var.val == item["variable_value"]:
        return "unchanged"
    if var is None:
        session.add(Variable(key=item["variable_name"], val=item["variable_value"]))
        return "created"
    var.val = item["variable_value"]
    return "updated"


APPLY = {"connections": _apply_connection, "pools": _apply_pool, "variables": _apply_variable}


def apply(path: Path) -> dict[str, int]:
    """Write the settings of ``path`` into the metadata DB Airflow is configured with."""
    return write(load(path))


def write(settings: Settings) -> dict[str, int]:
    """Write validated settings into the metadata DB Airflow is configured with; returns the counts
    ``<section>_created`` / ``_updated`` / ``_unchanged``."""
    from sqlalchemy.exc import SQLAlchemyError

    counts = {f"{section}_{what}": 0 for section in KEYS for what in ("created", "updated", "unchanged")}
    try:
        from airflow.utils.session import create_session

        with create_session() as session:
            for section, items in settings.items():
                for item in items:
                    counts[f"{section}_{APPLY[section](session, item)}"] += 1
    except SQLAlchemyError as exc:
        raise ApplyError(_db_error(exc)) from None
    return counts


def _db_error(exc: Exception) -> str:
    """What went wrong with the DB, without the failed statement or its parameters."""
    from airflow.configuration import conf
    from sqlalchemy.engine import make_url

    try:
        url = make_url(conf.get("database", "sql_alchemy_conn")).render_as_string(hide_password=True)
    except Exception:
        url = "the configured metadata DB"
    reason = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0]
    if any(s in reason.lower() for s in ("no such table", "does not exist", "undefinedtable")):
        return (f"{url} has no Airflow tables ({reason}); run `airflow db migrate` first, or point "
                f"AIRFLOW_HOME / AIRFLOW__DATABASE__SQL_ALCHEMY_CONN at your Airflow")
    return f"{url}: {type(exc).__name__}: {reason}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0] in ("-h", "--help")):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    path = Path(args[0]) if args else ROOT / "airflow_settings.yaml"
    try:
        settings = load(path)
        for hint in warnings_for(settings):
            print(f"apply_airflow_settings: warning: {hint}", file=sys.stderr)
        counts = write(settings)
    except SettingsError as exc:
        print(f"apply_airflow_settings: {exc}", file=sys.stderr)
        return 2
    except ApplyError as exc:
        print(f"apply_airflow_settings: {exc}", file=sys.stderr)
        return 1
    print(f"apply_airflow_settings: {path.name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
