"""Apply ``airflow_settings.yaml`` (the Astro CLI format) to any Airflow: connections, pools and
variables, written with Airflow's own models into the metadata DB it is configured with, so a compose, Helm or ``make up`` deployment gets the same
setup as ``astro dev start``.

    python scripts/apply_airflow_settings.py [FILE]      # default: the project's airflow_settings.yaml

Idempotent: a connection that exists is updated field by field (secrets it holds and the file
does not name are kept; connection passwords and extras are encrypted with the Fernet key), a
missing one is created; pools and variables are set. The file is
checked first: an error names the key and the fix. Nothing secret is printed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONN_FIELDS = {"conn_id", "conn_type", "conn_host", "conn_login", "conn_password", "conn_schema", "conn_port",
               "conn_extra", "conn_description", "conn_uri"}


class SettingsError(ValueError):
    pass


def load(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The validated settings: ``{"connections": [...], "pools": [...], "variables": [...]}``."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"{path}: cannot read: {exc}") from None
    airflow = data.get("airflow") if isinstance(data, dict) else None
    if not isinstance(airflow, dict):
        raise SettingsError(f"{path}: expected a top-level `airflow:` mapping (Astro format)")
    out: dict[str, list[dict[str, Any]]] = {}
    for section in ("connections", "pools", "variables"):
        items = airflow.get(section) or []
        if not isinstance(items, list):
            raise SettingsError(f"airflow.{section}: expected a list, got {type(items).__name__}")
        for i, item in enumerate(items):
            where = f"airflow.{section}[{i}]"
            if not isinstance(item, dict):
                raise SettingsError(f"{where}: expected a mapping")
            _check(section, where, item)
        out[section] = items
    return out


def _check(section: str, where: str, item: dict[str, Any]) -> None:
    if section == "connections":
        if not item.get("conn_id"):
            raise SettingsError(f"{where}.conn_id: missing; every connection needs an id")
        if not item.get("conn_type") and not item.get("conn_uri"):
            raise SettingsError(f"{where}.conn_type: missing; e.g. aws, http, generic, smtp")
        unknown = sorted(set(item) - CONN_FIELDS)
        if unknown:
            raise SettingsError(f"{where}.{unknown[0]}: unknown key; use one of {', '.join(sorted(CONN_FIELDS))}")
        if "conn_port" in item and not isinstance(item["conn_port"], int):
            raise SettingsError(f"{where}.conn_port: expected an integer port, got {item['conn_port']!r}")
        if "conn_extra" in item and not isinstance(item["conn_extra"], dict):
            raise SettingsError(f"{where}.conn_extra: expected a mapping of extra fields")
    elif section == "pools":
        if not item.get("pool_name"):
            raise SettingsError(f"{where}.pool_name: missing")
        slots = item.get("pool_slot")
        if not isinstance(slots, int) or isinstance(slots, bool) or slots < 1:
            raise SettingsError(f"{where}.pool_slot: expected a positive integer, got {slots!r}")
    else:
        if not item.get("variable_name"):
            raise SettingsError(f"{where}.variable_name: missing")
        if "variable_value" not in item:
            raise SettingsError(f"{where}.variable_value: missing (use an empty string for none)")


FIELD_ATTRS = {"conn_type": "conn_type", "conn_host": "host", "conn_login": "login", "conn_password": "password",
               "conn_schema": "schema", "conn_port": "port", "conn_description": "description"}


def apply(path: Path) -> dict[str, int]:
    """Write the settings into the metadata DB Airflow is configured with (AIRFLOW_HOME / env)."""
    settings = load(path)
    # the metadata DB's own models (the Task SDK's Connection/Variable only read through the API)
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    counts = {"connections_created": 0, "connections_updated": 0, "connections_unchanged": 0, "pools": 0,
              "variables": 0}
    with create_session() as session:
        for item in settings["connections"]:
            conn = session.scalar(select(Connection).where(Connection.conn_id == item["conn_id"]))
            if item.get("conn_uri"):
                wanted = Connection(conn_id=item["conn_id"], uri=item["conn_uri"])
                fields = {a: getattr(wanted, a) for a in ("conn_type", "host", "login", "password", "schema", "port")}
                extra = wanted.extra_dejson
            else:
                fields = {attr: item[key] for key, attr in FIELD_ATTRS.items() if item.get(key) is not None}
                extra = dict(item.get("conn_extra") or {})
            if conn is None:
                conn = Connection(conn_id=item["conn_id"], **fields)
                if extra:
                    conn.set_extra(json.dumps(extra))
                session.add(conn)
                counts["connections_created"] += 1
                continue
            # only the fields the file names change; a password set from a secret stays
            merged_extra = conn.extra_dejson | extra
            changed = [a for a, v in fields.items() if getattr(conn, a) != v]
            for attr in changed:
                setattr(conn, attr, fields[attr])
            if merged_extra != conn.extra_dejson:
                conn.set_extra(json.dumps(merged_extra))
                changed.append("extra")
            counts["connections_updated" if changed else "connections_unchanged"] += 1
        for pool in settings["pools"]:
            Pool.create_or_update_pool(pool["pool_name"], pool["pool_slot"], pool.get("pool_description") or "",
                                       include_deferred=bool(pool.get("include_deferred", False)), session=session)
            counts["pools"] += 1
    for var in settings["variables"]:
        value = var["variable_value"]
        Variable.set(var["variable_name"], value, serialize_json=not isinstance(value, str))
        counts["variables"] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else ROOT / "airflow_settings.yaml"
    try:
        counts = apply(path)
    except SettingsError as exc:
        print(f"apply_airflow_settings: {exc}", file=sys.stderr)
        return 2
    print(f"apply_airflow_settings: {path.name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
