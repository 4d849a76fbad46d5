"""MLflow side of evaluation: one run per (model version, suite version), attached to the version.

The headline metrics are also logged onto the version's MLflow logged model (``model_id``), tied to
the golden set as their dataset, so the model page lists them. The run lives in the ``llm_evaluation`` experiment and is found again by its ``llmops.eval_key``
tag, so a retried task logs into the same run. It holds the headline metrics and their CIs, the
per-slice and robustness numbers, the confusion-matrix / slice / robustness plots, the HTML
report, the golden set as an MLflow dataset input, and the gate decision. The model version gets
tags pointing at it (``eval.<suite>.run_id``, ``eval.<suite>.<metric>``, ``eval.<suite>.decision``).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["eval_key", "log_evaluation"]


def eval_key(model_name: str, version: str, suite: str, suite_version: int) -> str:
    return f"{model_name}/{version}/{suite}@{suite_version}"


def _run_for(client: Any, experiment: str, artifact_location: str | None, key: str, tags: dict[str, str]) -> str:
    from llmops.mlflow_uri import ensure_experiment

    exp = ensure_experiment(client, experiment, artifact_location)
    found = client.search_runs([exp], filter_string=f"tags.`llmops.eval_key` = '{key}'", max_results=1)
    if found:
        return str(found[0].info.run_id)
    return str(client.create_run(exp, run_name=key.replace("/", "-"), tags={"llmops.eval_key": key, **tags}).info.run_id)


def log_evaluation(tracking_uri: str, report: dict[str, Any], *, model_name: str, version: str, experiment: str,
                   artifact_location: str | None = None, decision: Any = None,
                   champion: dict[str, Any] | None = None) -> str:
    """Log ``report`` (and the gate ``decision``) for ``model_name`` version ``version``; returns the run id."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(tracking_uri=tracking_uri)
    from llmops.evaluation.report import plots, render_html

    suite = report["suite"]
    key = eval_key(model_name, version, suite["name"], suite["version"])
    run_id = _run_for(client, experiment, artifact_location, key,
                      {"llmops.model_name": model_name, "llmops.model_version": str(version),
                       "llmops.suite": suite["name"], "llmops.suite_version": str(suite["version"])})
    ts, metrics = int(time.time() * 1000), []
    # the headline metrics also go onto the version's logged model, tied to the golden set
    mv = client.get_model_version(model_name, str(version))
    source = str(mv.source or "")  # the registry may leave model_id empty; the source is the logged model's URI
    model_id = getattr(mv, "model_id", None) or (source.removeprefix("models:/") if source.startswith("models:/m-")
                                                 else None)
    on_model = {"model_id": model_id, "dataset_name": f"{suite['golden']['name']}-{suite['golden']['version']}",
                "dataset_digest": suite["golden"]["sha256"][:16], "run_id": run_id} if model_id else {}
    for name, m in report["metrics"].items():
        metrics.append(Metric(name, float(m["value"]), ts, 0, **on_model))
        if m.get("ci"):
            metrics += [Metric(f"{name}_ci_low", float(m["ci"][0]), ts, 0, **on_model),
                        Metric(f"{name}_ci_high", float(m["ci"][1]), ts, 0, **on_model)]
    for field, values in report["slices"]["by"].items():
        for value, s in values.items():
            if s.get("metric") is not None:
                safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(value))
                metrics.append(Metric(f"slice.{field}.{safe}.{suite['primary']}", float(s["metric"]), ts, 0))
    for kind, r in (report.get("robustness") or {}).items():
        metrics.append(Metric(f"robustness.{kind}.drop", float(r["drop"]), ts, 0))
    if report.get("pii"):
        metrics.append(Metric("pii.leaked_entities", float(sum(report["pii"]["entities"].values())), ts, 0))
    metrics.append(Metric("examples_per_s", float(report["timing"]["examples_per_s"]), ts, 0))
    client.log_batch(run_id, metrics=metrics)
    params = {"model_uri": report["model"], "suite": suite["name"], "suite_version": str(suite["version"]),
              "golden": f"{suite['golden']['name']}-{suite['golden']['version']}",
              "golden_sha256": suite["golden"]["sha256"]}
    have = client.get_run(run_id).data.params
    from mlflow.entities import Param

    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items() if k not in have])
    _log_dataset(tracking_uri, run_id, suite)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pngs = plots(report, folder)
        (folder / "report.html").write_text(render_html(report, decision=decision, champion=champion, plots=pngs))
        slim = {k: v for k, v in report.items() if k not in ("predictions", "ids")}
        (folder / "report.json").write_text(json.dumps(slim, indent=2, sort_keys=True, default=str))
        if decision is not None:
            (folder / "decision.json").write_text(json.dumps(decision.to_dict(), indent=2))
        for path in folder.iterdir():
            client.log_artifact(run_id, str(path), artifact_path="evaluation")
    prefix = f"eval.{suite['name']}"
    client.set_model_version_tag(model_name, str(version), f"{prefix}.suite_version", str(suite["version"]))
    client.set_model_version_tag(model_name, str(version), f"{prefix}.run_id", run_id)
    for name, m in report["metrics"].items():
        client.set_model_version_tag(model_name, str(version), f"{prefix}.{name}", f"{m['value']:.4f}")
    if decision is not None:
        client.set_model_version_tag(model_name, str(version), f"{prefix}.decision",
                                     "promote" if decision.promote else "reject")
    client.set_terminated(run_id)
    return run_id


def _log_dataset(tracking_uri: str, run_id: str, suite: dict[str, Any]) -> None:
    """The golden set as the run's evaluation dataset (name, version digest; MLflow keeps a profile)."""
    import mlflow
    import pandas as pd

    from llmops.evaluation.golden import load_golden

    rows, manifest = load_golden(suite["golden"]["name"], suite["golden"]["version"])
    frame = pd.DataFrame([{k: r.get(k) for k in ("id", "text", "label", "lang", "source")} for r in rows])
    ds = mlflow.data.from_pandas(  # type: ignore[attr-defined]  # lazily exported by mlflow.data
        frame, name=f"{manifest['name']}-{manifest['version']}", targets="label",
        digest=manifest["sha256"][:16])
    from llmops.mlflow_uri import use_tracking_uri

    with use_tracking_uri(tracking_uri), mlflow.start_run(run_id=run_id):
        mlflow.log_input(ds, context="evaluation")
