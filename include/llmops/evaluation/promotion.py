"""Champion/challenger flow over the model registry, Airflow-free (the DAG's tasks call these).

1. :func:`evaluate_version` – a registered version on every configured suite, logged to MLflow;
2. :func:`evaluate_champion` – the current champion on the same suites (none: ``None``);
3. :func:`gate` – rank the candidates by the first suite's primary metric, apply the gate to the
   best one on every suite against the champion, log the decision on its evaluation runs;
4. :func:`apply` – move the aliases (idempotent).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from llmops.config import PipelineConfig, expand_vars

__all__ = ["apply", "evaluate_champion", "evaluate_version", "gate"]

log = logging.getLogger(__name__)


def _uri(cfg: PipelineConfig) -> str:
    import os

    return expand_vars(cfg.training.tracking.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", ""))


def _client(cfg: PipelineConfig) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=_uri(cfg))


def _artifact_location(cfg: PipelineConfig) -> str | None:
    loc = cfg.training.tracking.artifact_location
    if not loc:
        return None
    loc = expand_vars(loc)
    return loc if "://" in loc else f"{loc.rstrip('/')}/evaluation"


def evaluate_version(cfg: PipelineConfig, version: str, *, predictor: Any = None,
                     log_to_mlflow: bool = True) -> dict[str, Any]:
    """``{"version", "reports": {suite: report}, "runs": {suite: run id}}`` for one registry version."""
    from llmops.evaluation.runner import evaluate_model
    from llmops.evaluation.tracking import log_evaluation
    from llmops.mlflow_uri import use_tracking_uri

    name = cfg.training.registered_model
    uri = f"models:/{name}/{version}"
    reports, runs = {}, {}
    suites = suites_for(cfg, version_task(cfg, version))
    trained_on = training_params(cfg, version)
    for suite in suites:
        suite_name = suite.name
        with use_tracking_uri(_uri(cfg)):  # models:/ URIs resolve against the pipeline's store
            report = evaluate_model(uri, suite, predictor=predictor)
        report["contamination"] = contamination(trained_on, suite_name)
        reports[suite_name] = report
        if log_to_mlflow:
            runs[suite_name] = log_evaluation(_uri(cfg), report, model_name=name, version=str(version),
                                              experiment=cfg.evaluation.experiment,
                                              artifact_location=_artifact_location(cfg))
        m = report["metrics"][suite.primary]
        log.info("%s v%s on %s@%s: %s %.4f (95%% CI %s)", name, version, suite.name, suite.version, suite.primary,
                 m["value"], m["ci"])
    return {"version": str(version), "reports": reports, "runs": runs}


def suites_dir(cfg: PipelineConfig) -> str | None:
    folder = cfg.evaluation.suites_dir
    if not folder:
        return None
    from pathlib import Path

    path = Path(expand_vars(folder))  # relative: under the project folder, like the config's other paths
    return str(path if path.is_absolute() else Path(__file__).resolve().parents[3] / path)


def version_task(cfg: PipelineConfig, version: str) -> str | None:
    """The task a registered version was trained for (its training run's ``llmops.task`` tag)."""
    client = _client(cfg)
    mv = client.get_model_version(cfg.training.registered_model, str(version))
    if not mv.run_id:
        return None
    return client.get_run(mv.run_id).data.tags.get("llmops.task")


def training_params(cfg: PipelineConfig, version: str) -> dict[str, str] | None:
    """The params of the training run of a registered version (None: not from a run)."""
    client = _client(cfg)
    mv = client.get_model_version(cfg.training.registered_model, str(version))
    return dict(client.get_run(mv.run_id).data.params) if mv.run_id else None


def contamination(params: dict[str, str] | None, suite: str) -> dict[str, Any]:
    """What the candidate's training run recorded about ``suite``'s golden items in its data
    (:mod:`llmops.training.decontam`): found before the split and removed, or not checked."""
    prefix = f"decontamination.{suite}."
    if not params or prefix + "golden_items_found" not in params:
        return {"checked": False}
    return {"checked": True, "golden_items": int(params[prefix + "golden_items"]),
            "golden_items_found": int(params[prefix + "golden_items_found"]),
            "contamination_rate": float(params[prefix + "contamination_rate"]),
            "rows_removed": int(params.get("decontamination.rows_removed", "0")),
            "rows_checked": int(params.get("decontamination.rows_checked", "0")),
            "by_reason": params.get("decontamination.by_reason", "{}"), "removed_before_training": True}


def suites_for(cfg: PipelineConfig, task: str | None) -> list[Any]:
    """The configured suites that apply to a model of ``task`` (all of them when the task is unknown)."""
    from llmops.config import ConfigError
    from llmops.evaluation.suites import load_suite

    suites = [load_suite(n, suites_dir(cfg)) for n in cfg.evaluation.suites]
    matching = [s for s in suites if task is None or s.task == task]
    if not matching:
        raise ConfigError(f"evaluation.suites: none of {[s.name for s in suites]} evaluates a {task!r} model "
                          f"(their tasks: {sorted({s.task for s in suites})}); add a suite with task: {task}")
    return matching


def champion_version(cfg: PipelineConfig) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        mv = _client(cfg).get_model_version_by_alias(cfg.training.registered_model, cfg.evaluation.champion_alias)
    except MlflowException:
        return None
    return str(mv.version)


def evaluate_champion(cfg: PipelineConfig, candidates: list[str]) -> dict[str, Any] | None:
    """The champion's evaluation (re-run on the current suite versions), or None without a champion."""
    version = champion_version(cfg)
    if version is None:
        return None
    return evaluate_version(cfg, version)


def gate(cfg: PipelineConfig, results: list[dict[str, Any]], champion: dict[str, Any] | None) -> dict[str, Any]:
    """Rank candidates, gate the best one against the champion on every suite, record the decision."""
    from llmops.evaluation.gate import Check, Decision, decide, render_table
    from llmops.evaluation.runner import paired_comparison
    from llmops.evaluation.suites import load_suite
    from llmops.evaluation.tracking import log_evaluation

    if not results:
        raise ValueError("no candidate to gate")
    first = load_suite(next(n for n in cfg.evaluation.suites if n in results[0]["reports"]), suites_dir(cfg))
    ranked = sorted(results, key=lambda r: (-r["reports"][first.name]["metrics"][first.primary]["value"],
                                            int(r["version"])))
    best = ranked[0]
    if champion is not None and champion["version"] == best["version"]:
        return {"promote": False, "version": best["version"], "already_champion": True, "ranking": _ranking(ranked,
                first), "table": f"version {best['version']} is already the champion", "reasons": []}
    checks, tables = [], []
    for suite_name in best["reports"]:
        suite = load_suite(suite_name, suites_dir(cfg))
        cand = dict(best["reports"][suite_name])
        champ = champion["reports"].get(suite_name) if champion else None
        if champion is not None and champ is None:
            checks.append((suite_name, Check("comparable", False, "no champion report", "same suites",
                                             f"champion v{champion['version']} has no {suite_name} report (a "
                                             "different task); register each task under its own model name")))
            continue
        if champ is not None:
            cand["paired"] = paired_comparison(suite, cand, champ)
        decision = decide(suite, cand, champ)
        checks += [(suite_name, c) for c in decision.checks]
        tables.append(render_table(decision, title=f"{suite_name}@{suite.version}: v{best['version']} vs "
                                                  f"{'v' + champion['version'] if champion else 'no champion'}"))
        log_evaluation(_uri(cfg), cand, model_name=cfg.training.registered_model, version=best["version"],
                       experiment=cfg.evaluation.experiment, artifact_location=_artifact_location(cfg),
                       decision=decision, champion=champ)
    overall = Decision(all(c.passed for _, c in checks), [c for _, c in checks])
    return {"promote": overall.promote, "version": best["version"], "already_champion": False,
            "champion": champion["version"] if champion else None, "ranking": _ranking(ranked, first),
            "reasons": [f"{s}: {c.name}: {c.detail}" for s, c in checks if not c.passed],
            "table": "\n\n".join(tables)}


def _ranking(ranked: list[dict[str, Any]], suite: Any) -> list[dict[str, Any]]:
    return [{"version": r["version"], suite.primary: r["reports"][suite.name]["metrics"][suite.primary]["value"]}
            for r in ranked]


def unevaluated_versions(cfg: PipelineConfig, client: Any = None) -> list[Any]:
    """Registered versions of ``training.registered_model`` with no evaluation on the current version
    of any configured suite (no ``eval.<suite>.run_id`` tag whose ``eval.<suite>.suite_version`` is the
    suite's version; a tag written before versions were recorded counts as version 1) and not flagged
    by an erasure, oldest first: what ``llm_evaluation`` evaluates besides its triggering candidates,
    so a lost candidate event loses nothing, a doubled one evaluates nothing twice, and a new suite
    version is evaluated once per model version. MLflow ``ModelVersion`` objects."""
    from llmops.config import ConfigError
    from llmops.evaluation.suites import load_suite

    client = client or _client(cfg)
    current: dict[str, str] = {}
    for suite_name in cfg.evaluation.suites:
        try:
            current[suite_name] = str(load_suite(suite_name, suites_dir(cfg)).version)
        except (ConfigError, OSError, ValueError) as exc:  # the evaluation itself reports a bad suite
            log.warning("suite %s not loaded (%s): any evaluation on it counts", suite_name, exc)
            current[suite_name] = ""
    out = []
    for name in [cfg.training.registered_model]:
        try:
            versions = client.search_model_versions(f"name='{name}'")
        except Exception as exc:  # no such model yet, or the registry is unreachable: nothing to add
            log.info("model versions of %s not listed (%s)", name, type(exc).__name__)
            continue
        for mv in versions:
            tags = dict(mv.tags or {})
            if tags.get("llmops.privacy.erasure"):
                continue
            evaluated = [k[len("eval."):-len(".run_id")] for k in tags if k.startswith("eval.") and k.endswith(".run_id")]
            if any(s in current and (not current[s] or tags.get(f"eval.{s}.suite_version", "1") == current[s])
                   for s in evaluated):
                continue
            out.append(mv)
    return sorted(out, key=lambda mv: (mv.name, int(mv.version)))


def _current(client: Any, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def apply(cfg: PipelineConfig, version: str, *, store: Any = None, owner: str | None = None) -> dict[str, Any]:
    """Move the aliases to ``version`` – unless an erasure flagged it (trained on erased data) – and
    record the promotion in the audit trail of ``store`` (default: the config's store, opened with
    the environment's credentials). The record is keyed by model, version and alias, so a retry
    whose aliases already moved (an earlier try failed after moving them) still records it, once.

    Before moving, the move (model, alias, from, to) is claimed in ``store`` by an atomic create
    carrying ``owner`` (the DAG run): of two runs promoting the same version from the same champion
    at once, one moves the aliases; a retry of the owner's own run may go on."""
    from llmops.evaluation.gate import promote
    from llmops.privacy.audit import record_event
    from llmops.stages import open_config_store

    client = _client(cfg)
    name = cfg.training.registered_model
    flagged = client.get_model_version(name, str(version)).tags.get("llmops.privacy.erasure")
    if flagged:
        log.warning("%s version %s is not promoted: trained on data erased by request %s; retrain first",
                    name, version, flagged)
        return {"changed": False, "blocked": f"erasure {flagged}", "champion": None}
    store = store if store is not None else open_config_store(cfg)
    alias = cfg.evaluation.champion_alias
    current = _current(client, name, alias)
    if current != str(version):
        # two evaluations racing to promote the same version from the same champion (two schedulers
        # starting the DAG twice): one claims the move in the store (an atomic create), the other leaves it
        claim = f"registry/{name}/promotions/{alias}-{current or 'none'}-to-{version}.json"
        mine = store.create_bytes(claim, json.dumps({"model": name, "from": current, "to": str(version),
                                                     "owner": owner}).encode())
        if not mine and owner is not None:
            mine = json.loads(store.read_bytes(claim)).get("owner") == owner
        if not mine:
            log.info("%s: the move of %s from version %s to %s is claimed by another run; not moved again",
                     name, alias, current, version)
            return {"changed": False, "champion": _current(client, name, alias), "previous": current,
                    "claimed_elsewhere": True}
    out = promote(client, name, version, champion_alias=alias, previous_alias=cfg.evaluation.previous_alias)
    if out["champion"] == str(version):
        record_event(store, "model_promotion",
                     event_key=f"{name}/{version}/{cfg.evaluation.champion_alias}",
                     details={"model": name, "version": str(version), "alias": cfg.evaluation.champion_alias,
                              "previous": out.get("previous")})
    return out
