"""Privacy impact assessment (``llmops pia``): what the pipeline does with personal data, from
its configuration and the manifests of the dataset versions it wrote.

Every number comes from a manifest (the current version of each partition, per stage), an erasure
record or the audit trail, so the report can be checked against them; nothing is estimated. The
report is one structure rendered as Markdown or HTML (the Jinja2 template
``include/templates/pia.html.j2``, see :mod:`llmops.templates`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from llmops.privacy.audit import EVENTS, read_events
from llmops.privacy.pii_eval import read_latest
from llmops.versions import latest_versions, read_manifest

__all__ = ["build_report", "render_html", "render_markdown"]

TEMPLATE = "pia.html.j2"

Section = dict[str, Any]  # {"title", "text": [paragraphs], "tables": [{"columns", "rows"}]}


def _stage_numbers(store: Any, dataset: str, stage: str) -> dict[str, Any]:
    current = latest_versions(store, dataset, stage)
    manifests = {vid: read_manifest(store, dataset, stage, vid) for vid in sorted(set(current.values()))}
    entities: Counter[str] = Counter()
    numbers: dict[str, Any] = {"partitions": len(current), "versions": len(manifests), "input": 0, "kept": 0, "quarantined": 0,
               "records_with_pii": 0, "subject_index_entries": 0, "erasures": 0}
    for m in manifests.values():
        c = m["counts"]
        numbers["input"] += c["input"]
        numbers["kept"] += c["kept"]
        numbers["quarantined"] += c["duplicates"] + c["filtered"] + c["quarantined"]
        numbers["records_with_pii"] += (m.get("pii") or {}).get("records", 0)
        entities.update((m.get("pii") or {}).get("entities", {}))
        numbers["subject_index_entries"] += ((m.get("privacy") or {}).get("subject_index") or {}).get("entries", 0)
        numbers["erasures"] += int(bool(m.get("erasure"))) + len(m.get("erasures", []))
    numbers["entities"] = dict(sorted(entities.items()))
    return numbers


def _erasures(store: Any) -> dict[str, int]:
    requests = records = 0
    for key in store.list("privacy/erasures/"):
        if key.endswith(".json"):
            record = json.loads(store.read_bytes(key))
            requests += 1
            records += sum(run.get("records", 0) for run in record.get("runs", [])[:1])
    return {"requests": requests, "records": records}


def _location(uri: str) -> str:
    if uri.startswith("s3://"):
        return f"S3 bucket {uri[5:].split('/')[0]}"
    return "local disk of the Airflow workers"


def _measured_status(m: dict[str, Any] | None) -> str:
    if m is None:
        return "not measured"
    return ("passed" if m.get("passed") else "BELOW MINIMUMS") + f" ({m['at'][:10]})"


def _measured_detail(m: dict[str, Any] | None) -> str:
    if m is None:
        return "run llmops pii-eval --labeled FILE on a labelled sample of this data"
    parts = [f"{e} recall {v['recall']:.2f}" + (f" precision {v['precision']:.2f}" if v["precision"] is not None else "")
             for e, v in sorted(m["entities"].items()) if v["recall"] is not None]
    return (f"{m['records']} records, {m['spans']} spans of {m['labeled']['file']} "
            f"(sha256 {m['labeled']['sha256'][:12]}): " + "; ".join(parts))


def build_report(cfg: Any, *, store: Any, now: datetime | None = None) -> dict[str, Any]:
    """The report as data: ``{"title", "generated_at", "numbers", "sections"}``."""
    from llmops.config import config_hash

    pii = cfg.curation.pii
    a = cfg.annotation
    sic = cfg.privacy.subject_index
    ret = cfg.privacy.retention
    stages = {stage: _stage_numbers(store, cfg.dataset, stage) for stage in ("raw", "curated", "labeled")}
    events = Counter(e["event"] for e in read_events(store))
    erasures = _erasures(store)
    audit_counts = {e: events.get(e, 0) for e in EVENTS}
    measured = read_latest(store)
    numbers: dict[str, Any] = {"stages": stages, "audit_events": audit_counts, "erasures": erasures}
    sections: list[Section] = []

    sections.append({"title": "Scope", "text": [
        f"Dataset `{cfg.dataset}`, processed by the LLMOps pipeline's Airflow DAGs.",
        f"Purpose: {cfg.privacy.purpose}",
        f"Controller: {cfg.privacy.controller or '(not set: privacy.controller)'}",
        f"Configuration hash: `{config_hash(cfg)}`.",
    ]})
    sections.append({"title": "Data sources", "tables": [{
        "columns": ["source", "kind", "fields kept in meta"],
        "rows": [[s.name, s.kind, ", ".join(s.meta_fields) or "-"] for s in cfg.sources],
    }], "text": [] if cfg.sources else ["No sources configured."]})

    all_entities = sorted({e for st in stages.values() for e in st["entities"]})
    sections.append({"title": "Personal data per stage", "text": [
        "Counts over the current version of every partition (from the manifests). `raw` holds the text as "
        "collected (unredacted); `curated` and `labeled` hold redacted text. Entity counts are the findings "
        "redacted by Presidio.",
    ], "tables": [{
        "columns": ["stage", "partitions", "versions", "records in", "records kept", "set aside",
                    "records with PII", "subject index entries"],
        "rows": [[stage, n["partitions"], n["versions"], n["input"], n["kept"], n["quarantined"],
                  n["records_with_pii"] if stage != "raw" else "not scanned", n["subject_index_entries"]]
                 for stage, n in stages.items()],
    }, {
        "columns": ["entity type", *stages],
        "rows": [[e, *(stages[s]["entities"].get(e, 0) for s in stages)] for e in all_entities],
    }]})

    processors = [["Object store", _location(cfg.resolved_storage_root()), "all stages, encrypted at rest: "
                   + (cfg.storage.sse or ("bucket default" if cfg.resolved_storage_root().startswith("s3://")
                                          else "disk encryption of the host"))],
                  ["MLflow", cfg.training.tracking.tracking_uri.split("://")[0] + " tracking store",
                   "metrics, params, models, reports (redacted data only)"]]
    if a.backend == "mturk":
        processors.append(["Amazon Mechanical Turk (Amazon.com Services LLC)",
                           "sandbox" if a.mturk.sandbox else "production",
                           "redacted text of the selected items, re-scanned for PII before export"])
    else:
        processors.append(["Local simulated crowd", "in the object store", "no transfer"])
    sections.append({"title": "Processors and transfers", "tables": [{
        "columns": ["processor", "where", "what it receives"], "rows": processors}],
        "text": ["MTurk workers are worldwide and the service runs in AWS us-east-1 (USA): a transfer outside the "
                 "EEA, covered by Amazon's data processing addendum."] if a.backend == "mturk" else []})

    def days(v: int | None) -> str:
        return f"{v} days" if v else "no limit"

    sections.append({"title": "Retention", "tables": [{"columns": ["data", "kept for"], "rows": [
        ["raw partitions (unredacted)", days(ret.raw_days)], ["quarantine files", days(ret.quarantine_days)],
        ["annotation exports", days(ret.annotation_days)],
        ["curated and labeled versions", "until erased or deleted by the owner"]]}],
        "text": ["Enforced daily by the `llm_privacy_retention` DAG."]})

    ops = Counter(pii.operator_for(e) for e in [*pii.entities, *(r.entity for r in pii.custom_recognizers)])
    safeguards = [
        ["PII redaction (Presidio)", "on" if pii.enabled else "OFF",
         f"{len(pii.entities) + len(pii.custom_recognizers)} entity types; operators "
         + ", ".join(f"{k} {v}" for k, v in sorted(ops.items())) + f"; NER model {pii.spacy_model}"
         + "".join(f", {lang}: {model}" for lang, model in sorted(pii.ner_models.items()))
         + ("; name gazetteer" if pii.name_gazetteer and "PERSON" in pii.entities else "")],
        ["Pseudonymisation", "keyed HMAC-SHA256" if pii.pseudonym_key or sic.key else "off",
         "key by reference only (" + ", ".join(sorted({(ref or '').split(':')[0] + ':' for ref in
                                                       (pii.pseudonym_key, sic.key) if ref})) + ")"],
        ["Redaction measured (llmops pii-eval)", _measured_status(measured), _measured_detail(measured)],
        ["Second PII scan before export", a.pii_rescan, "items still showing PII are not sent"],
        ["Subject index", "on" if sic.enabled else "off",
         "subject keys (HMAC) of " + ", ".join(sic.entities + [f"field {f}" for f in sic.fields])],
        ["Erasure", f"{erasures['requests']} requests", f"{erasures['records']} records erased"],
        ["Encryption at rest", cfg.storage.sse or "store default", "S3 SSE per object when storage.sse is set"],
        ["Access control", "Airflow auth manager", "secrets only by connection id / secrets backend"],
        ["Audit trail", "append-only", ", ".join(f"{e} {n}" for e, n in audit_counts.items())],
    ]
    sections.append({"title": "Safeguards", "tables": [{"columns": ["safeguard", "status", "detail"],
                                                        "rows": safeguards}]})

    risks = []
    if not pii.enabled:
        risks.append("PII redaction is off: curated data and exports hold personal data.")
    if pii.enabled and measured is None:
        risks.append("Redaction was never measured on a labelled sample of this data (llmops pii-eval).")
    elif measured is not None and not measured.get("passed"):
        risks.append("Redaction measured below its minimums: " + "; ".join(measured.get("failures", [])) + ".")
    if pii.spacy_model == "blank":
        risks.append("No NER model: names and places are not detected.")
    if stages["raw"]["versions"] and not ret.raw_days:
        risks.append("Raw partitions hold unredacted text with no retention limit (privacy.retention.raw_days).")
    if stages["curated"]["quarantined"] and not ret.quarantine_days:
        risks.append("Quarantine files keep original text with no retention limit (privacy.retention.quarantine_days).")
    if cfg.resolved_storage_root().startswith("s3://") and not cfg.storage.sse:
        risks.append("S3 objects rely on the bucket's default encryption (storage.sse not set).")
    if not sic.enabled:
        risks.append("No subject index: erasure requests can only be matched by raw identifiers.")
    if "PERSON" not in sic.entities:
        risks.append("Subjects are not indexed by name (PERSON): an erasure by name only is matched in raw text.")
    if a.backend == "mturk" and not a.mturk.sandbox:
        risks.append("Redacted text is sent to MTurk workers (production): residual PII the scanners miss is exposed.")
    risks.append("Models may memorise training text: versions trained on erased data are flagged and not promoted "
                 "until retrained.")
    sections.append({"title": "Open risks", "text": [f"- {r}" for r in risks]})
    numbers["open_risks"] = len(risks)
    return {"title": f"Privacy impact assessment: {cfg.dataset}",
            "generated_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
            "numbers": numbers, "sections": sections}


def render_markdown(report: dict[str, Any]) -> str:
    lines = [f"# {report['title']}", "", f"Generated {report['generated_at']}.", ""]
    for sec in report["sections"]:
        lines += [f"## {sec['title']}", ""]
        for para in sec.get("text", []):
            lines += [para, ""]
        for table in sec.get("tables", []):
            lines.append("| " + " | ".join(table["columns"]) + " |")
            lines.append("|" + "---|" * len(table["columns"]))
            lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in table["rows"]]
            lines.append("")
    return "\n".join(lines)


def _parts(paragraph: str) -> list[str]:
    """``paragraph`` split at its `code` spans: plain text at even indices, code at odd ones."""
    return re.split(r"`([^`]+)`", paragraph)


def render_html(report: dict[str, Any]) -> str:
    """The report as one HTML page, from ``include/templates/pia.html.j2``."""
    from llmops.templates import render

    sections = [{"title": sec["title"], "paragraphs": [_parts(p) for p in sec.get("text", [])],
                 "tables": [{"columns": list(t["columns"]), "rows": [list(row) for row in t["rows"]]}
                            for t in sec.get("tables", [])]} for sec in report["sections"]]
    return render(TEMPLATE, {"title": report["title"], "generated_at": report["generated_at"], "sections": sections})
