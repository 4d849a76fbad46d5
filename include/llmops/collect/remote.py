"""Remote sources: a paginated HTTP JSON API, an S3 prefix and a saved `datasets` dataset."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from llmops.collect.base import CollectContext, Item, SourceError, register_source, to_record
from llmops.collect.files import SUPPORTED, parse_file
from llmops.records import Quarantined

log = logging.getLogger(__name__)


def _http_session(retries: int, backoff_s: float) -> Any:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff_s,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def stable_location(url: str) -> str:
    """Where an API item came from, without the parts that change when nothing else did: the
    scheme, host and port (a local server on an ephemeral port, a load balancer, a mirror) are
    left out, the path and query kept (``/v1/dt=2026-11-20/page-1.json``). Record ids and version
    ids hash it, so the same items served from another address give the same versions."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@register_source("http")
def http_source(cfg: Any, ctx: CollectContext) -> Iterator[Item]:
    import requests

    session = _http_session(cfg.retries, cfg.backoff_s)
    if cfg.conn_id:
        if ctx.secret_resolver is None:
            raise SourceError(f"source {cfg.name!r} needs conn_id {cfg.conn_id!r} but no secret resolver")
        session.headers["Authorization"] = f"Bearer {ctx.secret_resolver('conn:' + cfg.conn_id)}"
    url: str | None = ctx.substitute(cfg.url)
    pages = 0
    seen: set[str] = set()
    while url and pages < cfg.max_pages:
        if url in seen:
            raise SourceError(f"source {cfg.name!r}: pagination loops back to {url}")
        seen.add(url)
        try:
            resp = session.get(url, timeout=cfg.timeout_s)
        except requests.RequestException as exc:
            raise SourceError(f"source {cfg.name!r}: GET {url} failed after {cfg.retries} retries: "
                              f"{type(exc).__name__}") from None
        if resp.status_code >= 400:
            raise SourceError(f"source {cfg.name!r}: GET {url} answered HTTP {resp.status_code}")
        pages += 1
        try:
            body = resp.json()
        except ValueError:
            yield Quarantined(cfg.name, url, "malformed_json", detail="page is not JSON",
                              raw=resp.text[:4000])
            break
        items = body.get(cfg.items_key) if isinstance(body, dict) else body
        if not isinstance(items, list):
            yield Quarantined(cfg.name, url, "malformed_page",
                              detail=f"no list under {cfg.items_key!r}", raw=str(body)[:4000])
            break
        where = stable_location(url)
        for idx, payload in enumerate(items):
            yield to_record(payload, cfg, f"{where}#{idx}", ctx)
        nxt = body.get(cfg.next_key) if (cfg.next_key and isinstance(body, dict)) else None
        url = urljoin(url, nxt) if nxt else None
    if url and pages >= cfg.max_pages:
        log.warning("source %s: stopped after max_pages=%s", cfg.name, cfg.max_pages)


@register_source("s3")
def s3_source(cfg: Any, ctx: CollectContext) -> Iterator[Item]:
    from llmops.storage import S3Store

    uri = ctx.substitute(cfg.uri)
    if ctx.s3_client_factory is not None:
        client = ctx.s3_client_factory(cfg.conn_id, cfg.endpoint_url)
    else:
        import boto3

        client = boto3.client("s3", endpoint_url=cfg.endpoint_url)
    store = S3Store(uri, client)
    keys = [k for k in store.list() if Path(k).suffix.lower() in SUPPORTED]
    if not keys:
        log.warning("source %s: no supported objects under %s", cfg.name, uri)
    with tempfile.TemporaryDirectory(prefix="llmops-s3-") as tmp:
        for key in keys:
            local = store.download(key, Path(tmp) / key)
            yield from parse_file(local, cfg, ctx, display=store.url(key))
            local.unlink()


@register_source("hf_disk")
def hf_disk_source(cfg: Any, ctx: CollectContext) -> Iterator[Item]:
    import datasets

    path = Path(ctx.substitute(cfg.path))
    if not path.is_absolute():
        path = ctx.base_dir / path
    if not path.exists():
        raise SourceError(f"source {cfg.name!r}: no saved dataset at {path}")
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        if cfg.split is None:
            raise SourceError(f"source {cfg.name!r}: {path} holds splits {list(ds)}; set `split`")
        ds = ds[cfg.split]
    for idx, payload in enumerate(ds):
        yield to_record(payload, cfg, f"{path.name}#{idx}", ctx)
