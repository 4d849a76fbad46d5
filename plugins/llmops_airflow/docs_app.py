"""Serves published Data Docs from the object store through Airflow's API server.

Mounted by the plugin at ``/llmops``: ``GET /llmops/docs/<object key>`` returns a file below a
version's ``docs/`` folder (local folder or S3, whatever ``storage.root`` is), so the "Data Docs"
link of a task works from the Airflow UI without exposing the store itself. Only keys of the form
``datasets/<dataset>/<stage>/versions/<id>/docs/...`` (or ``.../gates/...``) are served.
"""

from __future__ import annotations

import mimetypes
import os
import re
from typing import Any

from fastapi import FastAPI, HTTPException, Response

_ALLOWED = re.compile(r"^datasets/[\w.-]+/[\w.-]+/versions/[\w.-]+/(docs|gates)/[\w./-]+$")


def _store() -> Any:
    from llmops.config import load_config
    from llmops_airflow.hooks.store import ObjectStoreHook
    from llmops_airflow.operators.collection import DEFAULT_CONFIG, resolve_config_path

    cfg = load_config(resolve_config_path(os.environ.get("LLMOPS_CONFIG") or DEFAULT_CONFIG))
    return ObjectStoreHook.for_config(cfg).store


def create_app(store_factory: Any = _store) -> FastAPI:
    app = FastAPI(title="LLMOps Data Docs", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/docs/{key:path}")
    def docs(key: str) -> Response:
        if ".." in key.split("/") or not _ALLOWED.match(key):
            raise HTTPException(status_code=404, detail="not a Data Docs file")
        store = store_factory()
        if not store.exists(key):
            raise HTTPException(status_code=404, detail="no such file")
        media = mimetypes.guess_type(key)[0] or "application/octet-stream"
        return Response(content=store.read_bytes(key), media_type=media)

    return app


def docs_url(key: str) -> str:
    """The URL of a Data Docs file: through the API server when its base URL is known."""
    base = os.environ.get("AIRFLOW__API__BASE_URL", "").rstrip("/")
    return f"{base}/llmops/docs/{key}" if base else key
