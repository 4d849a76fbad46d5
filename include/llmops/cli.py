"""The ``llmops`` command: every stage from a shell, a pod or CI, with the same code Airflow runs.

    llmops curate INPUT... --out DIR [--config FILE]
    llmops collect --partition 2026-11-25 [--config FILE] [--workers N]   (raw + curated versions in the store)
    llmops annotate --curated VERSION... [--backend local|mturk] [--no-wait] [--json]   (label on the crowd)
    llmops annotate --status JOB                                   (HITs, assignments, cost so far, deadline)
    llmops sample-data --out DIR [--seed 0] [--records-per-day 200] [--days 3]
    llmops erase --request-id DSR-1 --subjects-file FILE [--config FILE]   (GDPR/CCPA erasure)
    llmops subject-keys --subjects-file FILE                                (keys to put in a request instead)
    llmops audit [--event erasure] [--since 2026-11-01] [--json]            (the audit trail)
    llmops pia [--format md|html] [--out FILE]                              (privacy impact assessment)
    llmops retention [--today 2026-11-28]                                   (apply privacy.retention)
    llmops pii-eval --labeled FILE [--json]          (redaction measured on a labelled sample; exit 1 below minimums)

Exit status: 0 on success, 2 for a usage or configuration problem, 1 when the job could not be
done. Errors are one line on stderr (``llmops: error: ...``), never a traceback; ``--debug``
shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["main"]

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")


class CLIError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _quiet_libraries() -> None:
    for name in ("presidio-analyzer", "presidio-anonymizer", "spacy", "datasets", "urllib3", "mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _load(config: str | None) -> Any:
    from llmops.config import ConfigError, load_config

    try:
        return load_config(config)
    except ConfigError as exc:
        raise CLIError(str(exc) if "--config" in str(exc) else f"--config {config}: {exc}", code=2) from None


MODEL_FORMS = ("a model folder (save_pretrained or an MLflow model), models:/NAME/VERSION, models:/NAME@ALIAS, "
               "runs:/RUN_ID/PATH or another MLflow artifact URI")


def _model_arg(value: str, flag: str = "--model") -> str:
    """``value`` when it can name a model: an MLflow URI, or a folder that exists."""
    if "://" in value or value.startswith(("models:/", "runs:/")):
        return value
    path = Path(value).expanduser()
    if not path.exists():
        raise CLIError(f"{flag} {value}: no such folder; {flag} takes {MODEL_FORMS}", code=2)
    if not path.is_dir():
        raise CLIError(f"{flag} {value}: not a folder; {flag} takes {MODEL_FORMS}", code=2)
    return str(path)


def _model_error(exc: Exception, value: str, flag: str = "--model") -> CLIError:
    """A model that could not be loaded: the argument, the cause, where it was looked up."""
    import mlflow

    cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    where = f" (MLflow tracking URI {mlflow.get_tracking_uri()})" if value.startswith(("models:/", "runs:/")) else ""
    return CLIError(f"{flag} {value}: cannot load the model: {cause}{where}; {flag} takes {MODEL_FORMS}")


def _iso_date(value: str | None, flag: str) -> str | None:
    """``value`` when it is an ISO date or date-time (``2026-11-25``, ``2026-11-25T06:00``)."""
    if value is None:
        return None
    from datetime import datetime

    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise CLIError(f"{flag} {value!r}: not an ISO date or time (YYYY-MM-DD or YYYY-MM-DDTHH:MM)", code=2) from None
    return value


def _summary(manifest: dict[str, Any], where: str) -> str:
    c = manifest["counts"]
    lines = [
        f"dataset version {manifest['id']} written to {where}",
        f"  input {c['input']} = kept {c['kept']} + duplicates {c['duplicates']} + filtered "
        f"{c['filtered']} + quarantined {c['quarantined']}",
    ]
    for cat in ("duplicates", "filtered", "quarantined"):
        reasons = c["by_reason"][cat]
        if reasons:
            lines.append(f"  {cat}: " + ", ".join(f"{k} {v}" for k, v in reasons.items()))
    pii = manifest.get("pii", {}).get("entities", {})
    if pii:
        lines.append("  PII redacted: " + ", ".join(f"{k} {v}" for k, v in pii.items()))
    for v in manifest.get("validations", []):
        state = "passed" if v["success"] else f"{v['failed_expectations']} expectation(s) failed"
        moved = f", {v['quarantined_rows']} rows quarantined" if v.get("quarantined_rows") else ""
        docs = f"; Data Docs {where}/{v['data_docs']}" if v.get("data_docs") else ""
        lines.append(f"  quality gate {v['suite']} ({v['policy']}): {state}{moved}{docs}")
    return "\n".join(lines)


def cmd_curate(args: argparse.Namespace) -> int:
    from llmops.stages import curate_paths

    cfg = _load(args.config)
    missing = [p for p in args.inputs if not Path(p).exists()]
    if missing:
        raise CLIError(f"INPUT {', '.join(missing)}: no such file or folder; INPUT takes .jsonl, .csv, .parquet or "
                       ".txt files, or folders of them", code=2)
    try:
        manifest = curate_paths(args.inputs, args.out, cfg)
    except (FileNotFoundError, FileExistsError) as exc:
        raise CLIError(f"--out {args.out}: {exc}" if isinstance(exc, FileExistsError) else str(exc), code=2) from None
    if args.json:
        print(json.dumps(manifest, indent=2))
    else:
        print(_summary(manifest, str(Path(args.out).resolve())))
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from llmops.stages import collect_raw, curate_version, open_config_store

    cfg = _load(args.config)
    if not cfg.sources:
        raise CLIError(f"--config {args.config or '(embedded defaults)'}: no sources configured; add at least one entry "
                       "under `sources` (files, http, object_store or hf_dataset)", code=2)
    store = open_config_store(cfg)
    producer = {"kind": "cli", "partition": args.partition}
    raw = collect_raw(cfg, store=store, partition=args.partition, producer=producer)
    print(_summary(raw, store.url(f"datasets/{cfg.dataset}/raw/versions/{raw['id']}")))
    curated = curate_version(cfg, store=store, raw_version_id=raw["id"], partition=args.partition,
                             producer=producer, workers=args.workers)
    print(_summary(curated, store.url(f"datasets/{cfg.dataset}/curated/versions/{curated['id']}")))
    return 0


def cmd_sample_data(args: argparse.Namespace) -> int:
    from datetime import date

    from llmops.sampledata import generate

    days = tuple(args.day) if args.day else None
    for day in days or ():
        try:
            date.fromisoformat(day)
        except ValueError:
            raise CLIError(f"--day {day!r}: not a date (YYYY-MM-DD)", code=2) from None
    if args.records_per_day < 20:
        raise CLIError(f"--records-per-day {args.records_per_day}: must be at least 20 (room for the planted problems)",
                       code=2)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise CLIError(f"--out {args.out}: a file is there; --out takes a folder", code=2)
    kwargs: dict[str, Any] = {"seed": args.seed, "records_per_day": args.records_per_day}
    if days:
        kwargs["days"] = days
    summary = generate(Path(args.out), **kwargs)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from llmops.config import ConfigError
    from llmops.training.args import load_train_config

    try:
        cfg = load_train_config(args.config)
    except ConfigError as exc:
        raise CLIError(str(exc), 2) from None
    from llmops.config import expand_vars
    from llmops.storage import open_store

    store = open_store(expand_vars(cfg.data.storage_root))
    missing = [v for v in cfg.data.versions if not _has_version(store, cfg.data.dataset, "labeled", v)]
    if missing:
        raise CLIError(f"--config {args.config}: data.versions: no labeled version {', '.join(missing)} of "
                       f"{cfg.data.dataset!r} in {store.url(f'datasets/{cfg.data.dataset}/labeled/versions')}; "
                       "name versions that exist there (labeled-<hash>)", code=2)
    from llmops.training.train import exit_code, run_training

    summary = run_training(cfg)
    print(json.dumps(summary, indent=2, sort_keys=True, default=str))
    return exit_code(summary)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from llmops.config import ConfigError
    from llmops.evaluation.suites import load_suite

    try:
        suite = load_suite(args.suite)
    except ConfigError as exc:
        raise CLIError(f"--suite {args.suite}: {exc}", 2) from None
    if args.tracking_uri:
        import mlflow

        mlflow.set_tracking_uri(args.tracking_uri)
    from llmops.evaluation.inference import load_predictor
    from llmops.evaluation.report import markdown_summary, plots, render_html
    from llmops.evaluation.runner import evaluate_model

    model = _model_arg(args.model)
    try:
        predictor = load_predictor(model, task=suite.task)
    except Exception as exc:  # MlflowException, OSError, ValueError of a folder that holds no model
        raise _model_error(exc, args.model) from None
    report = evaluate_model(model, suite, predictor=predictor)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        slim = {k: v for k, v in report.items() if k not in ("predictions", "ids")}
        (out / "report.json").write_text(json.dumps(slim, indent=2, sort_keys=True, default=str))
        (out / "report.html").write_text(render_html(report, plots=plots(report, out)))
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k not in ("predictions", "ids")}, indent=2,
                         sort_keys=True, default=str))
    else:
        print(markdown_summary(report))
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    from llmops.config import ConfigError
    from llmops.drift.nightly import compare_versions

    cfg = _load(args.config)
    from llmops.stages import open_config_store

    store = open_config_store(cfg)
    for flag, version in (("--reference", args.reference), ("--current", args.current)):
        stage = next((st for st in ("curated", "labeled", "raw") if _has_version(store, cfg.dataset, st, version)), None)
        if stage is None:
            raise CLIError(f"{flag} {version}: no such dataset version of {cfg.dataset!r} in "
                           f"{store.url(f'datasets/{cfg.dataset}')} (curated, labeled or raw); see the ids under "
                           "its <stage>/versions/ folders", code=2)
    model = _model_arg(args.model) if args.model else None
    try:
        report = compare_versions(cfg, args.reference, args.current, model=model, embeddings=not args.no_embeddings)
    except ConfigError as exc:
        raise CLIError(str(exc), 2) from None
    except Exception as exc:
        from mlflow.exceptions import MlflowException

        if model is not None and isinstance(exc, MlflowException | OSError):
            raise _model_error(exc, args.model) from None
        raise
    if args.out:
        from llmops.drift.report import render_html

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
        (out / "report.html").write_text(render_html(report))
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
    else:
        a = report["analysis"]
        print(f"{'DRIFT' if report['drift'] else 'no drift'}: {args.reference} ({report['reference_documents']} "
              f"documents) -> {args.current} ({report['current_documents']}); {a['tests']} tests at level "
              f"{a['level']:.2g}")
        for b in report["breaches"]:
            print(f"  breach {b['check']}: " + ", ".join(f"{k} {v:.4g}" for k, v in b.items() if k != "check"))
        if report["drifted_slices"]:
            print(f"  drifted slices: {', '.join(report['drifted_slices'])}")
    return 1 if report["drift"] else 0


#: the annotation DAG's id: a job started from the shell is the job the DAG would start (same
#: identity, same HITs, same labeled version), so neither ever pays for the other's labels twice
ANNOTATION_DAG_ID = "llm_annotation"


def cmd_annotate(args: argparse.Namespace) -> int:
    """Select, export (or resume), wait, review and publish one annotation job – the DAG's steps."""
    import time

    from llmops.annotation import jobs
    from llmops.versions import read_manifest

    cfg = _load(args.config)
    if args.backend:
        cfg = cfg.model_copy(update={"annotation": cfg.annotation.model_copy(update={"backend": args.backend})})
    store = _store(cfg)
    from llmops_airflow.operators.annotation import open_crowd  # MTurk keys from the Airflow connection

    backend = open_crowd(cfg, store)
    if args.status:
        if not store.exists(f"{jobs.job_prefix(cfg.dataset, args.status)}/plan.json"):
            raise CLIError(f"--status {args.status}: no such annotation job in "
                           f"{store.url(f'annotations/{cfg.dataset}/jobs')}", code=2)
        return _print_job(cfg, store, args.status, backend, args.json)
    if not args.curated:
        raise CLIError("--curated: name the curated version(s) to label (or --status JOB)", code=2)
    for version in args.curated:
        if not _has_version(store, cfg.dataset, "curated", version):
            raise CLIError(f"--curated {version}: no such curated version of {cfg.dataset!r} in "
                           f"{store.url(f'datasets/{cfg.dataset}/curated/versions')}", code=2)
    partition = read_manifest(store, cfg.dataset, "curated", args.curated[-1]).get("partition") or args.curated[-1]
    from llmops.annotation.hits import BudgetExceededError

    try:
        plan = jobs.prepare_job(cfg, store=store, curated_version_id=list(args.curated), partition=partition,
                                dag_id=ANNOTATION_DAG_ID)
        job_id = plan["job_id"]
        jobs.export_job(cfg, store=store, job_id=job_id, backend=backend)
    except (jobs.PIIGuardError, BudgetExceededError) as exc:
        raise CLIError(_one_line(str(exc)), code=2) from None
    if not args.wait:
        return _print_job(cfg, store, job_id, backend, args.json)
    policy = cfg.annotation.wait
    while True:
        progress = jobs.job_progress(store, cfg.dataset, job_id, backend)
        if progress["done"]:
            break
        if time.time() >= float(progress["deadline"] or 0):
            got = f"{progress['submitted']} of {progress['expected']} assignments"
            extensions = len(jobs.read_ledger(store, cfg.dataset, job_id)["extensions"])
            if policy.on_deadline == "fail":
                raise CLIError(f"annotation job {job_id}: deadline passed with {got} submitted "
                               "(annotation.wait.on_deadline: fail)")
            if policy.on_deadline == "extend" and extensions < policy.max_extensions:
                jobs.extend_job(cfg, store=store, job_id=job_id, backend=backend, extension=extensions + 1)
                continue
            print(f"annotation job {job_id}: deadline passed with {got}; proceeding with what is in", file=sys.stderr)
            break
        time.sleep(policy.poll_interval_s)
    jobs.review_job(cfg, store=store, job_id=job_id, backend=backend)
    manifest = jobs.publish_labels(cfg, store=store, job_id=job_id, producer={"kind": "cli", "job_id": job_id})
    if args.json:
        print(json.dumps({"job_id": job_id, "labeled_version": manifest["id"], "counts": manifest["counts"],
                          "annotation": {k: manifest["annotation"][k] for k in ("hits", "assignments", "cost_usd")}},
                         indent=2, sort_keys=True))
    else:
        a = manifest["annotation"]
        print(f"annotation job {job_id}: {len(a['hits'])} HITs, {a['assignments']['submitted']} assignments")
        print(_summary(manifest, store.url(f"datasets/{cfg.dataset}/labeled/versions/{manifest['id']}")))
    return 0


def _print_job(cfg: Any, store: Any, job_id: str, backend: Any, as_json: bool) -> int:
    """A job's HITs, assignments, cost so far and deadline (what ``--status`` and ``--no-wait`` print)."""
    from datetime import UTC, datetime

    from llmops.annotation import jobs

    ledger = jobs.read_ledger(store, cfg.dataset, job_id)
    progress = jobs.job_progress(store, cfg.dataset, job_id, backend)
    approved = sum(1 for e in ledger["assignments"].values() if e.get("action") == "approve")
    from decimal import Decimal

    reward = cfg.annotation.mturk.reward_usd  # + MTurk's 20% fee, at least $0.01 (as publish_labels counts)
    per_assignment = reward + max(Decimal("0.01"), (reward * Decimal("0.2")).quantize(Decimal("0.01")))
    status = {"job_id": job_id, "backend": ledger["backend"], "status": ledger.get("status"),
              "curated_versions": ledger["curated_versions"], "hits": progress["hits"],
              "hits_done": progress["hits_done"], "assignments_expected": progress["expected"],
              "assignments_submitted": progress["submitted"], "assignments_approved": approved,
              "cost_estimate_usd": (ledger.get("cost_estimate") or {}).get("total_usd"),
              "cost_so_far_usd": str(per_assignment * approved),
              "deadline": datetime.fromtimestamp(float(progress["deadline"]), UTC).isoformat()
              if progress.get("deadline") else None,
              "labeled_version": ledger.get("labeled_version")}
    if as_json:
        print(json.dumps(status, indent=2, sort_keys=True, default=str))
    else:
        print(f"annotation job {job_id} ({status['backend']}, {status['status']}): {status['hits']} HITs "
              f"({status['hits_done']} complete), assignments {status['assignments_submitted']} of "
              f"{status['assignments_expected']} submitted, {approved} approved; cost so far "
              f"${status['cost_so_far_usd']} of ${status['cost_estimate_usd']} estimated; deadline {status['deadline']}"
              + (f"; labeled version {status['labeled_version']}" if status["labeled_version"] else
                 f"; llmops annotate --status {job_id} to follow it"))
    return 0


def _has_version(store: Any, dataset: str, stage: str, version: str) -> bool:
    from llmops.versions import version_prefix

    return bool(store.exists(f"{version_prefix(dataset, stage, version)}/manifest.json"))


def _store(cfg: Any) -> Any:
    from llmops.stages import open_config_store

    return open_config_store(cfg)


def cmd_erase(args: argparse.Namespace) -> int:
    from llmops.privacy.erasure import ErasureError, erase

    subjects = list(args.subject or [])
    if not subjects and not args.subjects_file:
        raise CLIError("--subject / --subjects-file: name at least one subject (a raw identifier, a pseudonym such "
                       "as <EMAIL_ADDRESS_1a2b3c4d5e6f> or a subject key ENTITY:<64 hex>)", code=2)
    if args.subjects_file:
        path = Path(args.subjects_file)
        if not path.is_file():
            raise CLIError(f"--subjects-file {path}: no such file", code=2)
        subjects += [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    cfg = _load(args.config)
    try:
        out = erase(cfg, store=_store(cfg), request_id=args.request_id, subjects=subjects)
    except ErasureError as exc:
        raise CLIError(str(exc), code=2) from None
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        print(f"erasure {out['request_id']}: {out['records']} records of {out['subjects']} subjects"
              + ("" if out["changed"] else " (nothing left to erase)"))
        print("  removed: " + ", ".join(f"{k} {v}" for k, v in out["removed"].items()))
        for v in out["versions"]:
            print(f"  {v['version']}: -{v['records']}" + (f" -> {v['successor']}" if v["successor"] else " (purged)"))
        print(f"  files scrubbed {out['files_scrubbed']}, MLflow artifacts {out['mlflow_artifacts_scrubbed']}, "
              f"HITs cancelled {out['hits_cancelled']}, model versions flagged {len(out['model_versions_flagged'])}")
    return 0


def cmd_subject_keys(args: argparse.Namespace) -> int:
    """Subject keys of raw identifiers, to name a subject in an erasure request without the identifier."""
    from llmops.privacy.subjects import subject_keys

    path = Path(args.subjects_file)
    if not path.is_file():
        raise CLIError(f"--subjects-file {path}: no such file", code=2)
    keys = subject_keys(_load(args.config))
    if keys is None:
        raise CLIError("the subject index is off (privacy.subject_index.enabled) or has no key", code=2)
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            print("\n".join(sorted(keys.query([line.strip()]).keys)))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from llmops.privacy.audit import read_events

    events = read_events(_store(_load(args.config)), event=args.event, since=_iso_date(args.since, "--since"))
    if args.json:
        print(json.dumps(events, indent=2, sort_keys=True))
        return 0
    for e in events:
        who = e["actor"]
        actor = f"{who['dag_id']}/{who.get('run_id', '')}" if "dag_id" in who else who.get("user", "?")
        detail = ", ".join(f"{k}={v}" for k, v in sorted(e["details"].items())
                           if isinstance(v, str | int | float) and not isinstance(v, bool))
        print(f"{e['at']}  {e['event']:<17} {e['key']:<40} {actor}  {detail}")
    if not events:
        print("no audit events")
    return 0


def cmd_pia(args: argparse.Namespace) -> int:
    from llmops.privacy.pia import build_report, render_html, render_markdown

    cfg = _load(args.config)
    report = build_report(cfg, store=_store(cfg))
    fmt = args.format or ("html" if args.out and args.out.endswith((".html", ".htm")) else "md")
    text = render_html(report) if fmt == "html" else render_markdown(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"privacy impact assessment written to {args.out}")
    else:
        print(text)
    return 0


def cmd_pii_eval(args: argparse.Namespace) -> int:
    from llmops.config import config_hash
    from llmops.privacy.pii_eval import check_minimums, evaluate, load_labeled, record
    from llmops.stages import make_redactor

    cfg = _load(args.config)
    try:
        samples, digest = load_labeled(args.labeled)
    except ValueError as exc:
        raise CLIError(f"--labeled {exc}", code=2) from None
    redactor = make_redactor(cfg)
    if redactor is None:
        raise CLIError("curation.pii.enabled is false: there is no redactor to evaluate", code=2)
    try:
        result = evaluate(redactor, samples)
    finally:
        redactor.close()
    pii = cfg.curation.pii
    failures = check_minimums(result, pii)
    entry = result
    if not args.no_record:
        entry = record(_store(cfg), result, labeled_file=args.labeled, sha256=digest, cfg_hash=config_hash(cfg),
                       failures=failures)
    if args.json:
        print(json.dumps({**entry, "passed": not failures, "failures": failures}, indent=2, sort_keys=True))
    else:
        print(f"PII redaction on {result['records']} records, {result['spans']} labelled spans ({args.labeled})")
        print(f"  {'entity':<16} {'labelled':>8} {'recall':>7} {'found':>6} {'precision':>9} {'F2':>6}  minimums")
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        for entity, m in result["entities"].items():
            floors = [f"{k} {t.get(entity, t.get('*'))}" for k, t in (("recall", pii.min_recall),
                                                                       ("precision", pii.min_precision))
                      if t.get(entity, t.get("*")) is not None]
            note = "" if m["configured"] else "  (not configured: curation.pii.entities)"
            print(f"  {entity:<16} {m['labelled']:>8} {fmt(m['recall']):>7} {m['found']:>6} "
                  f"{fmt(m['precision']):>9} {fmt(m['f2']):>6}  {', '.join(floors) or '-'}{note}")
        for line in failures:
            print(f"  BELOW MINIMUM: {line}")
        print("passed" if not failures else f"failed: {len(failures)} figure(s) below the configured minimums")
    return 0 if not failures else 1


def cmd_retention(args: argparse.Namespace) -> int:
    from llmops.privacy.retention import enforce_retention

    cfg = _load(args.config)
    out = enforce_retention(cfg, store=_store(cfg), today=_iso_date(args.today, "--today"))
    print(f"retention as of {out['today']}: raw versions {len(out['raw_versions'])}, quarantines "
          f"{len(out['quarantine_versions'])}, annotation jobs {len(out['annotation_jobs'])}; records removed "
          + ", ".join(f"{k} {v}" for k, v in out["records"].items()))
    return 0


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: a whole number of at least 1")
    return n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmops", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("curate", help="normalise, filter, dedup and redact local files into one version")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=".jsonl/.csv/.parquet/.txt files or folders")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the dataset version into")
    p.add_argument("--config", metavar="FILE", help="YAML config (embedded defaults when omitted)")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(func=cmd_curate)

    p = sub.add_parser("collect", help="collect configured sources for a partition, then curate")
    p.add_argument("--partition", required=True, help="partition key, e.g. the run's date 2026-11-25")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                   help="curate the raw version's shards (curation.shard_rows) in N local processes (default 1)")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("train", help="fine-tune a model on a labeled version (DeepSpeed; CPU or GPUs)")
    p.add_argument("--config", required=True, metavar="FILE", help="training YAML: model, data, train sections")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="benchmark a model on an evaluation suite (metrics, slices, robustness)")
    p.add_argument("--model", required=True, help="a model folder or an MLflow model URI (models:/name/3)")
    p.add_argument("--suite", required=True, help="suite name (include/evaluation/suites/) or a YAML path")
    p.add_argument("--tracking-uri", help="MLflow tracking URI for models:/ URIs (default MLFLOW_TRACKING_URI)")
    p.add_argument("--out", metavar="DIR", help="write report.json, report.html and plots here")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("annotate", help="label curated versions on the crowd (local simulation or MTurk): the "
                       "llm_annotation DAG's job, from a shell")
    p.add_argument("--curated", nargs="+", metavar="VERSION", help="curated version id(s) to label (one job)")
    p.add_argument("--backend", choices=["local", "mturk"], help="default: annotation.backend of the config")
    p.add_argument("--config", metavar="FILE", help="pipeline YAML (its annotation: section and object store)")
    p.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                   help="wait for the assignments, review and publish the labeled version (default); "
                        "--no-wait exports and returns")
    p.add_argument("--status", metavar="JOB", help="show a job's HITs, assignments, cost so far and deadline")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_annotate)

    p = sub.add_parser("drift", help="data and prediction drift between two dataset versions (exit 1 on drift)")
    p.add_argument("--reference", required=True, metavar="VERSION", help="reference dataset version id")
    p.add_argument("--current", required=True, metavar="VERSION", help="current dataset version id")
    p.add_argument("--config", metavar="FILE", help="pipeline YAML (its drift: section and object store)")
    p.add_argument("--model", help="also compare a model's predictions (folder or models:/ URI)")
    p.add_argument("--no-embeddings", action="store_true", help="text statistics only (no MiniLM)")
    p.add_argument("--out", metavar="DIR", help="write report.json and report.html here")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_drift)

    p = sub.add_parser("sample-data", help="generate the seeded sample corpus (no downloads)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--records-per-day", type=int, default=200)
    p.add_argument("--day", action="append", help="partition date (repeatable); default three days")
    p.set_defaults(func=cmd_sample_data)

    p = sub.add_parser("erase", help="erase a data subject's records everywhere (dataset versions, exports, MLflow)")
    p.add_argument("--request-id", required=True, help="the request's id, e.g. DSR-2026-0042 (kept in the audit trail)")
    p.add_argument("--subject", action="append", help="identifier, pseudonym (<EMAIL_ADDRESS_1a2b...>) or subject "
                   "key (repeatable); prefer --subjects-file, which keeps identifiers out of shell history")
    p.add_argument("--subjects-file", metavar="FILE", help="one identifier, pseudonym or subject key per line")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.set_defaults(func=cmd_erase)

    p = sub.add_parser("subject-keys", help="subject keys of identifiers (one per line in a file): name a subject "
                       "in an erasure request without the identifier")
    p.add_argument("--subjects-file", required=True, metavar="FILE")
    p.add_argument("--config", metavar="FILE")
    p.set_defaults(func=cmd_subject_keys)

    p = sub.add_parser("audit", help="the audit trail: erasures, exports to the crowd, promotions, retention")
    p.add_argument("--event", choices=["erasure", "annotation_export", "model_promotion", "retention"])
    p.add_argument("--since", metavar="DATE", help="ISO date or time (inclusive)")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("pia", help="privacy impact assessment from the config and the manifests")
    p.add_argument("--format", choices=["md", "html"], help="default: from --out's suffix, else md")
    p.add_argument("--out", metavar="FILE", help="write the report here (default: stdout)")
    p.add_argument("--config", metavar="FILE")
    p.set_defaults(func=cmd_pia)

    p = sub.add_parser("pii-eval", help="precision, recall and F2 of the configured redactor on a labelled sample "
                       "(exit 1 below pii.min_recall / pii.min_precision)")
    p.add_argument("--labeled", required=True, metavar="FILE",
                   help="JSONL: {text, spans: [{start, end, entity}], lang?} per line")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--no-record", action="store_true",
                   help="do not keep the figures in the store (llmops pia shows the latest kept)")
    p.set_defaults(func=cmd_pii_eval)

    p = sub.add_parser("retention", help="apply privacy.retention (what llm_privacy_retention runs daily)")
    p.add_argument("--today", metavar="DATE", help="the date ages count to (default: today, UTC)")
    p.add_argument("--config", metavar="FILE")
    p.set_defaults(func=cmd_retention)
    return parser


def _one_line(message: str) -> str:
    """A message of several lines (a config error's problems) as one: ``;``-separated."""
    out = ""
    for line in (part.strip() for part in message.splitlines()):
        if line:
            out += line if not out else (f" {line}" if out.endswith(":") else f"; {line}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.debug:
        _quiet_libraries()
    try:
        return int(args.func(args))
    except CLIError as exc:
        print(f"llmops: error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("llmops: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        from llmops.quality.gate import GateFailedError

        if isinstance(exc, GateFailedError):  # one line: every failed expectation, `;`-separated
            head, *rest = str(exc).splitlines()
            print(f"llmops: error: {head} {'; '.join(line.strip() for line in rest)}", file=sys.stderr)
            return 1
        msg = str(exc).splitlines()[0] if str(exc) else ""
        print(f"llmops: error: {type(exc).__name__}: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
