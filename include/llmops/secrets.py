"""Resolve secret references. Secrets are never stored in config, only references to them:

* ``conn:<conn_id>`` – the password of an Airflow connection (or ``extra["key"]`` when the
  password is empty); works with any Airflow secrets backend, e.g. ``AIRFLOW_CONN_<ID>``.
* ``env:<VAR>`` – an environment variable (for shells, CI, pods with mounted secrets).
* ``file:<path>`` – the stripped contents of a file (Kubernetes/Docker secrets).

Every resolved value is registered with Airflow's secrets masker (when Airflow is importable), so
it shows as ``***`` in task logs, whichever scheme it came from.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SecretError", "resolve_secret"]


class SecretError(RuntimeError):
    """A secret reference could not be resolved. The message never contains the secret."""


def _masked(value: str) -> str:
    """Register ``value`` with Airflow's secrets masker (task and supervisor logs)."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - outside Airflow nothing writes task logs
        return value
    mask_secret(value)
    return value


def resolve_secret(ref: str) -> str:
    return _masked(_resolve(ref))


def _resolve(ref: str) -> str:
    scheme, _, name = ref.partition(":")
    if not name:
        raise SecretError(f"secret reference {ref!r} must look like conn:<id>, env:<VAR> or file:<path>")
    if scheme == "env":
        value = os.environ.get(name)
        if not value:
            raise SecretError(f"environment variable {name} (from {ref!r}) is not set or empty")
        return value
    if scheme == "file":
        path = Path(name)
        if not path.is_file():
            raise SecretError(f"secret file {name} (from {ref!r}) does not exist")
        return path.read_text(encoding="utf-8").strip()
    if scheme == "conn":
        try:
            from airflow.sdk import BaseHook
        except ImportError as exc:  # pragma: no cover - Airflow is installed with the project
            raise SecretError(f"{ref!r} needs Airflow to read connections: {exc}") from None
        try:
            conn = BaseHook.get_connection(name)
        except Exception as exc:
            raise SecretError(f"Airflow connection {name!r} (from {ref!r}) is not defined: {type(exc).__name__}") from None
        value = conn.password or (conn.extra_dejson or {}).get("key")
        if not value:
            raise SecretError(f"Airflow connection {name!r} has no password nor extra 'key'")
        return str(value)
    raise SecretError(f"unknown secret scheme {scheme!r} in {ref!r}; use conn:, env: or file:")
