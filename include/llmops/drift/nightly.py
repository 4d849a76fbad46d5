"""One nightly drift run, Airflow-free (the ``llm_drift_nightly`` tasks and ``llmops drift`` call it).

* **window**: the newest curated version of every partition dated inside the run's window
  (``lookback_days`` ending with the data interval), so a backfill over a month gives one
  comparable report per night;
* **reference**: the champion's training data, found through its model version's dataset lineage
  (the ``llmops.dataset_versions`` tag: labeled versions);
* **analysis**: :func:`llmops.drift.detect.analyze` with MiniLM embeddings and the champion's
  predictions;
* **performance**: the champion on its golden suites (robustness and attributions left out) and
  on items of the window that have been labeled since, against its promotion-time numbers;
* **report**: ``drift/<dataset>/<night>/report.json`` and ``report.html`` on the object store,
  with the trend over earlier nights, and the same files in one MLflow run per night (found again
  by tag, so a retry reuses it).
"""

from __future__ import annotations

import json
import logging
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from llmops.config import PipelineConfig, expand_vars

__all__ = ["champion_reference", "compare_versions", "find_stage", "read_rows", "report_key", "run_nightly",
           "window_versions"]

log = logging.getLogger(__name__)
ROW_FIELDS = ("id", "text", "lang", "source", "meta", "label")


def report_key(dataset: str, night: str, name: str = "report.json") -> str:
    return f"drift/{dataset}/{night}/{name}"


def window_versions(cfg: PipelineConfig, store: Any, night: date, stage: str = "curated") -> dict[str, str]:
    """``{partition: version}`` of ``stage`` for the partitions in ``(night - lookback, night]``."""
    from llmops.versions import latest_versions

    first = night - timedelta(days=cfg.drift.lookback_days - 1)
    out = {}
    for partition, version in latest_versions(store, cfg.dataset, stage).items():
        try:
            day = date.fromisoformat(partition)
        except ValueError:
            continue
        if first <= day <= night:
            out[partition] = version
    return out


def read_rows(store: Any, dataset: str, stage: str, versions: list[str], *, limit: int | None = None,
              seed: int = 0) -> list[dict[str, Any]]:
    """The rows of ``versions`` (only the fields drift needs); a seeded sample of ``limit`` rows."""
    from llmops.versions import iter_batches, read_manifest

    rows: list[dict[str, Any]] = []
    for version in versions:
        manifest = read_manifest(store, dataset, stage, version)
        for batch in iter_batches(store, manifest):
            cols = [c for c in ROW_FIELDS if c in batch.schema.names]
            rows.extend(batch.select(cols).to_pylist())
    if limit is not None and len(rows) > limit:
        import random

        rows = random.Random(seed).sample(rows, limit)
    return rows


def champion_reference(cfg: PipelineConfig) -> dict[str, Any] | None:
    """The champion version, its task, the labeled versions it was trained on and its
    promotion-time metrics (``eval.<suite>.<metric>`` tags); None without a champion."""
    from llmops.evaluation.promotion import _client, champion_version

    version = champion_version(cfg)
    if version is None:
        return None
    client = _client(cfg)
    mv = client.get_model_version(cfg.training.registered_model, version)
    task = client.get_run(mv.run_id).data.tags.get("llmops.task") if mv.run_id else None
    lineage = [v for v in (mv.tags.get("llmops.dataset_versions") or "").split(",") if v]
    promoted = {k[len("eval."):]: float(v) for k, v in mv.tags.items()
                if k.startswith("eval.") and k.count(".") == 2 and _is_float(v)}
    return {"version": str(version), "task": task, "dataset_versions": lineage, "promoted": promoted}


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _performance(cfg: PipelineConfig, champion: dict[str, Any], predictor: Any,
                 labeled: list[dict[str, Any]]) -> dict[str, Any]:
    from llmops.evaluation.metrics import FAST
    from llmops.evaluation.promotion import suites_for
    from llmops.evaluation.runner import evaluate_model

    drop_limit = cfg.drift.thresholds.performance_drop
    out: dict[str, Any] = {"suites": {}, "labeled": None, "breaches": []}
    uri = f"models:/{cfg.training.registered_model}/{champion['version']}"
    for suite in suites_for(cfg, champion["task"]):
        quick = suite.model_copy(update={"robustness": [], "explain": None, "pii_probe": False})
        report = evaluate_model(uri, quick, predictor=predictor)
        value = float(report["metrics"][suite.primary]["value"])
        before = champion["promoted"].get(f"{suite.name}.{suite.primary}")
        entry = {"metric": suite.primary, "value": round(value, 6), "ci": report["metrics"][suite.primary]["ci"],
                 "at_promotion": before, "drop": None if before is None else round(before - value, 6)}
        entry["breach"] = bool(entry["drop"] is not None and entry["drop"] > drop_limit)
        out["suites"][suite.name] = entry
        if entry["breach"]:
            out["breaches"].append({"check": f"performance:{suite.name}.{suite.primary}", "drop": entry["drop"]})
    rows = [r for r in labeled if r.get("label")]
    if rows:
        preds = [str(p) for p in predictor.predict([str(r["text"]) for r in rows]).labels]
        refs = [str(r["label"]) for r in rows]
        accuracy = float(FAST["accuracy"](preds, refs))
        before = next((v for k, v in champion["promoted"].items() if k.endswith(".accuracy")), None)
        entry = {"items": len(rows), "accuracy": round(accuracy, 6), "macro_f1": round(float(FAST["macro_f1"](preds, refs)), 6),
                 "golden_accuracy_at_promotion": before,
                 "drop": None if before is None else round(before - accuracy, 6)}
        entry["breach"] = bool(entry["drop"] is not None and entry["drop"] > drop_limit)
        out["labeled"] = entry
        if entry["breach"]:
            out["breaches"].append({"check": "performance:labeled_in_window.accuracy", "drop": entry["drop"]})
    return out


def _trend(store: Any, dataset: str, night: str) -> list[dict[str, Any]]:
    """Headline numbers of earlier nights' reports (oldest first), for the trend plot."""
    out = []
    prefix = f"drift/{dataset}/"
    for key in sorted(store.list(prefix)):
        if not key.endswith("/report.json"):
            continue
        other = key[len(prefix):].split("/")[0]
        if other >= night:
            continue
        rep = json.loads(store.read_bytes(key))
        out.append(_headline(rep))
    return out


def _headline(rep: dict[str, Any]) -> dict[str, Any]:
    a = rep.get("analysis") or {}
    perf = rep.get("performance") or {}
    suites = perf.get("suites") or {}
    first: dict[str, Any] = next(iter(suites.values()), {})
    return {"night": rep.get("night"), "drift": rep.get("drift"),
            "embedding_auc": (a.get("embedding") or {}).get("auc"),
            "length_psi": ((a.get("features") or {}).get("length") or {}).get("psi"),
            "primary": first.get("value"), "metric": first.get("metric")}


def run_nightly(cfg: PipelineConfig, night: date, *, store: Any = None, embed: Any = None,
                airflow_run: str | None = None) -> dict[str, Any]:
    """Analyse the window ending ``night``; publish the report; return the summary for alerts/actions."""
    from llmops.drift.detect import analyze
    from llmops.evaluation.inference import load_predictor
    from llmops.mlflow_uri import use_tracking_uri
    from llmops.stages import open_config_store

    store = store or open_config_store(cfg)
    d = cfg.drift
    night_s = night.isoformat()
    current_versions = window_versions(cfg, store, night)
    summary: dict[str, Any] = {"night": night_s, "dataset": cfg.dataset, "window": {
        "first": (night - timedelta(days=d.lookback_days - 1)).isoformat(), "last": night_s,
        "curated_versions": current_versions}, "drift": False, "breaches": [], "drifted_slices": [],
        "report_key": report_key(cfg.dataset, night_s), "html_key": report_key(cfg.dataset, night_s, "report.html")}
    summary["watchdog"] = _watchdog(cfg, store)
    champion = champion_reference(cfg)
    if champion is None or not current_versions:
        summary["skipped"] = ("no champion model yet" if champion is None
                              else f"no curated partition in {summary['window']['first']}..{night_s}")
        log.info("drift %s: skipped (%s)", night_s, summary["skipped"])
        return summary
    if not champion["dataset_versions"]:
        raise ValueError(f"champion v{champion['version']} has no llmops.dataset_versions tag: its training data "
                         "cannot be found; retrain it with llm_fine_tuning")
    reference = read_rows(store, cfg.dataset, "labeled", champion["dataset_versions"], limit=d.max_reference,
                          seed=d.seed)
    current = read_rows(store, cfg.dataset, "curated", list(current_versions.values()))
    labeled_versions = window_versions(cfg, store, night, stage="labeled")
    new_labeled = [v for v in labeled_versions.values() if v not in champion["dataset_versions"]]
    labeled = read_rows(store, cfg.dataset, "labeled", new_labeled)

    uri = f"models:/{cfg.training.registered_model}/{champion['version']}"
    with use_tracking_uri(_tracking_uri(cfg)):
        predictor = load_predictor(uri, task=champion["task"])
    if embed is None:
        from llmops.annotation.selection import embed_texts

        def embed(texts: list[str]) -> Any:
            return embed_texts(texts, model=d.embedding_model)

    analysis = analyze(reference, current, d, embed=embed,
                       predict=lambda texts: [str(x) for x in predictor.predict(texts).labels])
    with use_tracking_uri(_tracking_uri(cfg)):
        performance = _performance(cfg, champion, predictor, labeled)
    breaches = analysis["breaches"] + performance["breaches"]
    report = {"night": night_s, "dataset": cfg.dataset, "window": summary["window"],
              "champion": {k: champion[k] for k in ("version", "task", "dataset_versions")},
              "reference_documents": len(reference), "current_documents": len(current),
              "new_labeled_versions": new_labeled, "analysis": analysis, "performance": performance,
              "breaches": breaches, "drift": bool(breaches), "drifted_slices": analysis["drifted_slices"],
              "airflow_run": airflow_run, "watchdog": summary["watchdog"]}
    report["trend"] = [*_trend(store, cfg.dataset, night_s), _headline(report)]
    from llmops.drift.report import render_html

    html = render_html(report)
    store.write_bytes(summary["report_key"], json.dumps(report, indent=2, sort_keys=True, default=str).encode())
    store.write_bytes(summary["html_key"], html.encode())
    summary.update(drift=report["drift"], breaches=breaches, drifted_slices=report["drifted_slices"],
                   champion=champion["version"], new_labeled_versions=new_labeled,
                   documents={"reference": len(reference), "current": len(current)},
                   mlflow_run_id=_log_mlflow(cfg, report, html))
    local = store.local_path(summary["html_key"])
    summary["report_path"] = str(local) if local else store.url(summary["html_key"])
    return summary


def _watchdog(cfg: PipelineConfig, store: Any) -> dict[str, Any]:
    """Overdue work (llmops.drift.watchdog), with the model registry when it answers."""
    from llmops.drift.watchdog import overdue

    client = None
    if cfg.drift.watchdog.enabled:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=_tracking_uri(cfg))
    return overdue(cfg, store, client=client)


def _tracking_uri(cfg: PipelineConfig) -> str:
    from llmops.evaluation.promotion import _uri

    return _uri(cfg)


def _log_mlflow(cfg: PipelineConfig, report: dict[str, Any], html: str) -> str:
    """One MLflow run per (dataset, night), found again by tag: numbers, report.html and report.json."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from llmops.mlflow_uri import ensure_experiment

    client = MlflowClient(tracking_uri=_tracking_uri(cfg))
    location = cfg.training.tracking.artifact_location
    if location:
        location = expand_vars(location)
        location = location if "://" in location else f"{location.rstrip('/')}/drift"
    exp = ensure_experiment(client, cfg.drift.experiment, location)
    key = f"{cfg.dataset}/{report['night']}"
    found = client.search_runs([exp], filter_string=f"tags.`llmops.drift_key` = '{key}'", max_results=1)
    run_id = (found[0].info.run_id if found else
              client.create_run(exp, run_name=f"drift-{report['night']}",
                                tags={"llmops.drift_key": key, "llmops.night": report["night"],
                                      "llmops.champion": report["champion"]["version"]}).info.run_id)
    a, ts = report["analysis"], 0
    values = {"drift": float(report["drift"]), "breaches": float(len(report["breaches"])),
              "documents.current": float(report["current_documents"])}
    for name, f in a["features"].items():
        values[f"feature.{name}.psi"] = float(f["psi"])
    if a.get("embedding"):
        values["embedding.auc"] = float(a["embedding"]["auc"])
        values["embedding.mmd2"] = float(a["embedding"]["mmd2"])
    if a.get("prediction"):
        values["prediction.psi"] = float(a["prediction"]["psi"])
    for suite, s in report["performance"]["suites"].items():
        values[f"golden.{suite}.{s['metric']}"] = float(s["value"])
    if report["performance"].get("labeled"):
        values["labeled_in_window.accuracy"] = float(report["performance"]["labeled"]["accuracy"])
    client.log_batch(run_id, metrics=[Metric(k, v, ts, 0) for k, v in values.items()])
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "report.html").write_text(html)
        (Path(tmp) / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
        client.log_artifacts(run_id, tmp, artifact_path="drift")
    client.set_terminated(run_id)
    return str(run_id)


def find_stage(store: Any, dataset: str, version: str) -> str:
    """The stage (curated, labeled, raw) a dataset version id belongs to."""
    from llmops.config import ConfigError
    from llmops.versions import version_prefix

    for stage in ("curated", "labeled", "raw"):
        if store.exists(f"{version_prefix(dataset, stage, version)}/manifest.json"):
            return stage
    raise ConfigError(f"dataset version {version!r} of {dataset!r} not found in the curated, labeled or raw stage")


def compare_versions(cfg: PipelineConfig, reference: str, current: str, *, store: Any = None, embed: Any = None,
                     model: str | None = None, embeddings: bool = True) -> dict[str, Any]:
    """The same analysis between two dataset versions (``llmops drift``); ``model`` adds prediction drift."""
    from llmops.drift.detect import analyze
    from llmops.stages import open_config_store

    store = store or open_config_store(cfg)
    d = cfg.drift
    ref_rows = read_rows(store, cfg.dataset, find_stage(store, cfg.dataset, reference), [reference],
                         limit=d.max_reference, seed=d.seed)
    cur_rows = read_rows(store, cfg.dataset, find_stage(store, cfg.dataset, current), [current])
    if embeddings and embed is None:
        from llmops.annotation.selection import embed_texts

        def embed(texts: list[str]) -> Any:
            return embed_texts(texts, model=d.embedding_model)

    predict = None
    if model:
        from llmops.evaluation.inference import load_predictor
        from llmops.mlflow_uri import use_tracking_uri

        with use_tracking_uri(_tracking_uri(cfg)):
            predictor = load_predictor(model)

        def predict(texts: list[str]) -> list[str]:
            return [str(x) for x in predictor.predict(texts).labels]

    analysis = analyze(ref_rows, cur_rows, d, embed=embed if embeddings else None, predict=predict)
    return {"night": f"{reference} -> {current}", "dataset": cfg.dataset,
            "window": {"first": reference, "last": current, "curated_versions": {"current": current}},
            "champion": {"version": model or "-"}, "reference_name": f"dataset version {reference}",
            "reference_documents": len(ref_rows),
            "current_documents": len(cur_rows), "analysis": analysis, "performance": {"suites": {}},
            "breaches": analysis["breaches"], "drift": analysis["drift"],
            "drifted_slices": analysis["drifted_slices"], "trend": []}
