"""Run a suite over a DataFrame with Great Expectations and apply the suite's policy.

Policies:

* ``fail`` – any failed expectation fails the gate with one line per failed expectation
  (name, column, unexpected count);
* ``warn`` – the result is recorded in the manifest and logged, the run continues;
* ``quarantine`` – rows failing a row-level expectation are moved to the version's quarantine
  with ``gx:<expectation>`` as the reason; a failed table-level expectation (row count, ...) still
  fails, since no row can be moved to fix it.

Data Docs are built by GX's own ``UpdateDataDocsAction`` into a local folder that is published
with the version. GX's pages load Bootstrap, jQuery and fonts from CDNs; the published copy has
those references removed and a small inline stylesheet added, so it reads offline (tables and
results are server-rendered HTML; only sorting/collapsing widgets are lost).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.quality.suites import SuiteSpec, build_suite

__all__ = ["GateFailedError", "GateOutcome", "run_gate"]

log = logging.getLogger(__name__)


class GateFailedError(RuntimeError):
    """The data failed a quality gate; the message has one line per failed expectation."""


@dataclass
class GateOutcome:
    suite: str
    suite_version: int
    policy: str
    success: bool
    run_id: str
    evaluated: int
    rows: int
    failed: list[dict[str, Any]] = field(default_factory=list)
    row_reasons: dict[int, str] = field(default_factory=dict)  # row position -> reason (row-level failures)
    table_failures: list[str] = field(default_factory=list)
    docs_dir: Path | None = None
    seconds: float = 0.0

    def failure_lines(self) -> list[str]:
        return [f"{f['expectation']}({f['column'] or 'table'}): {f['unexpected_count']} unexpected of "
                f"{f['element_count']}" + (f" e.g. {f['examples']}" if f.get("examples") else "")
                for f in self.failed]

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "suite_version": self.suite_version,
            "policy": self.policy,
            "success": self.success,
            "gx_run_id": self.run_id,
            "rows": self.rows,
            "evaluated_expectations": self.evaluated,
            "failed_expectations": len(self.failed),
            "unexpected": [{k: v for k, v in f.items() if k != "examples"} for f in self.failed],
            "quarantined_rows": len(self.row_reasons) if self.policy == "quarantine" else 0,
            "seconds": round(self.seconds, 3),
        }


def _quiet_gx() -> None:
    """GX logs hundreds of INFO lines when imported after Airflow configured logging, and some
    of its modules set their own levels: cap every GX logger at WARNING."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("great_expectations."):
            logging.getLogger(name).setLevel(logging.WARNING)


# resources a browser would fetch on its own: stylesheets, scripts, images from remote hosts
_CDN = re.compile(r"<(link|script|img)\b[^>]*(href|src)=\"https?://[^\"]*\"[^>]*>(\s*</script>)?", re.IGNORECASE)
_OFFLINE_CSS = """<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.3rem .5rem;vertical-align:top}
.alert-danger,.text-danger{color:#b00020}.text-success,.alert-success{color:#1b7a1b}
.card{border:1px solid #ddd;border-radius:4px;margin:.75rem 0;padding:.5rem}.d-none,.hide{display:none}
nav,footer{font-size:.85rem;color:#666}code,pre{background:#f5f5f5;padding:0 .2rem}
</style>"""


def make_docs_offline(docs_dir: Path) -> int:
    """Strip CDN references from GX Data Docs pages and add an inline stylesheet."""
    n = 0
    for page in docs_dir.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        if _OWN_PAGE in html:  # the index write_docs_index wrote: offline already
            continue
        cleaned = _CDN.sub("", html)
        if "</head>" in cleaned and _OFFLINE_CSS not in cleaned:
            cleaned = cleaned.replace("</head>", _OFFLINE_CSS + "</head>", 1)
        if cleaned != html:
            page.write_text(cleaned, encoding="utf-8")
            n += 1
    return n


# values are shown in Data Docs only for these columns (codes, not people's text)
EXAMPLE_COLUMNS = {"lang", "source", "label", "stage", "channel"}
_VALUE_KEYS = ("unexpected_list", "partial_unexpected_list", "partial_unexpected_counts", "unexpected_index_list",
               "partial_unexpected_index_list", "unexpected_index_query", "unexpected_rows", "observed_value")


def _build_docs(context: Any, validated: list[tuple[Any, Any]], docs_dir: Path) -> None:
    """Build GX Data Docs for the validation(s) from copies of their results with the row values
    removed (unexpected values of a text column may be exactly the PII the gate caught)."""
    import copy

    docs_dir.mkdir(parents=True, exist_ok=True)
    context.add_data_docs_site(
        site_name="llmops",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    for key, suite_result in validated:
        scrubbed = copy.deepcopy(suite_result)
        for r in scrubbed.results:
            cfg = r.expectation_config
            column = (cfg.kwargs.get("column") or (cfg.meta or {}).get("column")) if cfg is not None else None
            if r.result and column not in EXAMPLE_COLUMNS:
                for k in _VALUE_KEYS:
                    if k in r.result and not (k == "observed_value" and isinstance(r.result[k], int | float)):
                        r.result.pop(k)
        context.validation_results_store.set(key, scrubbed)
    context.build_data_docs(site_names=["llmops"])
    make_docs_offline(docs_dir)
    write_docs_index(docs_dir, [
        {"page": "validations/" + "/".join(key.to_tuple()) + ".html", "suite": str(key.to_tuple()[0]),
         "suite_page": "expectations/" + "/".join(key.to_tuple()[:-3]) + ".html",
         "run_time": str(key.to_tuple()[-2]), "success": bool(res.success),
         "failed": sum(1 for r in res.results if not r.success), "evaluated": len(res.results)}
        for key, res in validated])


_OWN_PAGE = '<meta name="generator" content="llmops">'
_INDEX_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem;color:#1f2328}
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #d0d7de;padding:.35rem .7rem;text-align:left}
th{background:#f6f8fa}td.num{text-align:right}.passed{color:#1a7f37;font-weight:600}
.failed{color:#cf222e;font-weight:600}.meta{color:#57606a}"""


def _when(run_time: str) -> str:
    """GX's run-time folder name (``20261204T155020.920552Z``) as ``2026-12-04 15:50:20 UTC``."""
    m = re.fullmatch(r"(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)(?:\.\d+)?Z", run_time)
    return f"{m[1]}-{m[2]}-{m[3]} {m[4]}:{m[5]}:{m[6]} UTC" if m else run_time


def write_docs_index(docs_dir: Path, entries: list[dict[str, Any]]) -> Path:
    """Replace GX's index page (an empty shell its stripped JavaScript would have filled) with a
    plain HTML list of every validation whose result page is in ``docs_dir``: suite, time, result,
    failed expectations, each linking to its result page, newest first. ``entries`` describe the
    pages just built; ``llmops_index.json`` keeps them for a later rebuild of the index."""
    import html
    import json

    sidecar = docs_dir / "llmops_index.json"
    known = {e["page"]: e for e in (json.loads(sidecar.read_text()) if sidecar.exists() else [])}
    known.update({e["page"]: e for e in entries})
    # a GX build keeps only the pages of its own store: list what is there
    rows = sorted((e for e in known.values() if (docs_dir / e["page"]).exists()),
                  key=lambda e: (e["run_time"], e["page"]), reverse=True)
    sidecar.write_text(json.dumps(rows, indent=2, sort_keys=True))
    e = html.escape
    body = []
    for r in rows:
        result = '<span class="passed">passed</span>' if r["success"] else '<span class="failed">FAILED</span>'
        suite = (f'<a href="{e(r["suite_page"])}">{e(r["suite"])}</a>' if (docs_dir / r["suite_page"]).exists()
                 else e(r["suite"]))
        body.append(f"<tr><td>{suite}</td><td>{e(_when(r['run_time']))}</td><td>{result}</td>"
                    f'<td class="num">{r["failed"]} of {r["evaluated"]}</td>'
                    f'<td><a href="{e(r["page"])}">validation result</a></td></tr>')
    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n" + _OWN_PAGE + "\n<title>Data Docs: validations</title>\n"
            f"<style>\n{_INDEX_CSS}\n</style>\n</head>\n<body>\n<h1>Data Docs: validations</h1>\n"
            f'<p class="meta">{len(rows)} validation(s) with Great Expectations; failed expectations are counted, '
            "row values of text columns are never shown.</p>\n"
            "<table><thead><tr><th>suite</th><th>validated</th><th>result</th><th>failed expectations</th>"
            f"<th></th></tr></thead>\n<tbody>\n{chr(10).join(body)}\n</tbody></table>\n</body>\n</html>\n")
    (docs_dir / "index.html").write_text(page, encoding="utf-8")
    return docs_dir / "index.html"


def log_to_mlflow(entry: dict[str, Any], docs_dir: Path | None = None) -> bool:
    """Log a gate result to the active MLflow run, if there is one (a training or evaluation run
    that validates its inputs). Only counts and the scrubbed Data Docs are logged, never rows."""
    import sys

    if "mlflow" not in sys.modules:  # nothing imported MLflow, so no run can be active
        return False
    import mlflow

    if mlflow.active_run() is None:
        return False
    suite = entry["suite"]
    mlflow.log_metrics({
        f"gx.{suite}.success": float(entry["success"]),
        f"gx.{suite}.failed_expectations": float(entry["failed_expectations"]),
        f"gx.{suite}.quarantined_rows": float(entry.get("quarantined_rows", 0)),
        f"gx.{suite}.rows": float(entry["rows"]),
    })
    mlflow.log_dict(entry, f"quality/{suite}/validation.json")
    if docs_dir is not None and docs_dir.exists():
        mlflow.log_artifacts(str(docs_dir), f"quality/{suite}/data_docs")
    return True


def _collect_failure(r: Any, chunk: Any, offset: int, failed: dict[str, dict[str, Any]], outcome: GateOutcome,
                     examples: int) -> None:
    """Fold one expectation result of one chunk into the aggregated outcome."""
    if r.success:
        return
    cfg = r.expectation_config
    assert cfg is not None
    name = (cfg.meta or {}).get("llmops_name") or cfg.type
    key = f"{name}#{(cfg.meta or {}).get('position', name)}"
    res = r.result or {}
    indices = res.get("unexpected_index_list")
    column = cfg.kwargs.get("column") or (cfg.meta or {}).get("column")
    entry = failed.setdefault(key, {"expectation": name, "column": column, "unexpected_count": 0,
                                    "element_count": 0})
    count = int(res.get("unexpected_count") or (0 if indices is None else len(indices)))
    entry["unexpected_count"] += count
    entry["element_count"] += int(res.get("element_count") or len(chunk))
    partial = res.get("partial_unexpected_list")
    if partial and column in EXAMPLE_COLUMNS and "examples" not in entry:  # never people's text (maybe PII)
        entry["examples"] = [str(x)[:80] for x in partial[:examples]]
    if r.exception_info and r.exception_info.get("raised_exception"):
        entry["error"] = str(r.exception_info.get("exception_message"))[:300]
    if indices is None or column is None:
        if name not in outcome.table_failures:
            outcome.table_failures.append(name)
        if not count:
            entry["unexpected_count"] += 1
    else:
        for idx in indices:
            pos = offset + int(idx["index"] if isinstance(idx, dict) else idx)
            outcome.row_reasons.setdefault(pos, f"gx:{name}")


def _run_id(run_id: Any) -> str:
    """GX run identifier as text: its name if set, else its timestamp."""
    name = getattr(run_id, "run_name", None)
    when = getattr(run_id, "run_time", None)
    return f"{name or 'run'}@{when.isoformat() if when else ''}"


def run_gate(df: Any, spec: SuiteSpec, params: dict[str, Any], *, policy: str,
             docs_dir: Path | None = None, examples: int = 3) -> GateOutcome:
    """Validate ``df`` against ``spec`` and apply ``policy``.

    ``df`` is a pandas DataFrame, or an iterable of DataFrames (a version's data files, one at a
    time, so memory stays bounded); chunks are validated in one GX context and the outcome is
    aggregated, row positions counting across chunks. Table-level expectations (row count) are
    evaluated per chunk. Raises :class:`GateFailedError` for ``fail`` (any failure) and for
    ``quarantine`` when a table-level expectation failed; otherwise returns the outcome, whose
    ``row_reasons`` are the rows to move under ``quarantine``.
    """
    if policy not in ("fail", "warn", "quarantine"):
        raise ValueError(f"unknown gate policy {policy!r}; use fail, warn or quarantine")
    started = time.perf_counter()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    _quiet_gx()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("llmops")
    asset = source.add_dataframe_asset(name=spec.name)
    batch_def = asset.add_batch_definition_whole_dataframe("version")
    suite = context.suites.add(build_suite(spec, params))
    vd = context.validation_definitions.add(gx.ValidationDefinition(name=f"{spec.name}_gate", data=batch_def,
                                                                    suite=suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=f"{spec.name}_checkpoint", validation_definitions=[vd], actions=[],
        result_format={"result_format": "COMPLETE", "partial_unexpected_count": examples},
    ))
    frames = [df] if hasattr(df, "columns") else df
    outcome = GateOutcome(suite=spec.name, suite_version=spec.version, policy=policy, success=True, run_id="",
                          evaluated=0, rows=0)
    failed: dict[str, dict[str, Any]] = {}
    validated: list[tuple[Any, Any]] = []
    for chunk in frames:
        chunk = chunk.reset_index(drop=True)
        offset = outcome.rows
        result = checkpoint.run(batch_parameters={"dataframe": chunk})
        ((result_key, suite_result),) = result.run_results.items()
        validated.append((result_key, suite_result))
        outcome.run_id = outcome.run_id or _run_id(result.run_id)
        outcome.evaluated = len(suite_result.results)
        outcome.success = outcome.success and bool(suite_result.success)
        outcome.rows += len(chunk)
        for r in suite_result.results:
            _collect_failure(r, chunk, offset, failed, outcome, examples)
    outcome.failed = list(failed.values())
    if docs_dir is not None:
        _build_docs(context, validated, docs_dir)
        outcome.docs_dir = docs_dir
    outcome.seconds = time.perf_counter() - started
    if not outcome.success:
        lines = outcome.failure_lines()
        if policy == "fail" or (policy == "quarantine" and outcome.table_failures):
            raise GateFailedError(f"quality gate {spec.name!r} failed ({policy}):\n  " + "\n  ".join(lines))
        for line in lines:
            log.warning("quality gate %s (%s): %s", spec.name, policy, line)
    return outcome
