"""Serves published Data Docs from the object store through Airflow's API server.

Mounted by the plugin at ``/llmops``: ``GET /llmops/docs/<object key>`` returns a file below a
version's ``docs/`` folder (local folder or S3, whatever ``storage.root`` is), so the "Data Docs"
link of a task works from the Airflow UI without exposing the store itself. Only keys of the form
``datasets/<dataset>/<stage>/versions/<id>/docs/...`` (or ``.../gates/...``) are served, and only
to a signed-in user (Airflow's JWT or UI session, through the core API's own security
dependencies) with read permission on the DAG that published them (:data:`STAGE_DAGS`).
"""

from __future__ import annotations

import mimetypes
import os
import re
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response

_ALLOWED = re.compile(r"^datasets/[\w.-]+/([\w.-]+)/versions/[\w.-]+/(docs|gates)/[\w./-]+$")
#: the DAG whose read permission a version's Data Docs need: the DAG that publishes the stage
#: (a gate run on demand: the gate DAG)
STAGE_DAGS = {"raw": "llm_data_collection", "curated": "llm_data_collection", "labeled": "llm_annotation"}
GATE_DAG = "llm_dataset_gate"


async def _user(request: Request) -> Any:
    """The signed-in user, by Airflow's own API security (``get_user``: a bearer JWT, else the
    UI's session cookie): 401 without one, 403 for a bad token. Imported on the first request,
    not when the plugin is loaded by every Airflow process."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    return await get_user(request, None, await bearer_scheme(request))


def dag_for(key: str) -> str:
    """The DAG whose read permission the Data Docs file ``key`` needs."""
    m = _ALLOWED.match(key)
    if m is None:
        raise ValueError(key)
    return GATE_DAG if m.group(2) == "gates" else STAGE_DAGS.get(m.group(1), GATE_DAG)


def _store() -> Any:
    from llmops.config import load_config
    from llmops_airflow.hooks.store import ObjectStoreHook
    from llmops_airflow.operators.collection import DEFAULT_CONFIG, resolve_config_path

    cfg = load_config(resolve_config_path(os.environ.get("LLMOPS_CONFIG") or DEFAULT_CONFIG))
    return ObjectStoreHook.for_config(cfg).store


def create_app(store_factory: Any = _store) -> FastAPI:
    app = FastAPI(title="LLMOps Data Docs", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/docs/{key:path}")
    def docs(key: str, request: Request, user: Annotated[Any, Depends(_user)]) -> Response:
        if ".." in key.split("/") or not _ALLOWED.match(key):
            raise HTTPException(status_code=404, detail="not a Data Docs file")
        from airflow.api_fastapi.core_api.security import requires_access_dag

        # the DAG-level read permission, checked as the core API checks it (403 without it)
        requires_access_dag("GET", param_dag_id=dag_for(key))(request, user)
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
