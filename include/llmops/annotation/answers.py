"""Parse MTurk's ``QuestionFormAnswers`` XML into ``{field: label}``.

Plain form inputs arrive as one ``<Answer>`` per field; crowd-html-elements forms send one
``taskAnswers`` field holding JSON, either nested (``{"item_0": {"billing": true}}``) or flattened
(``{"item_0.billing": true}``). All three shapes give the same result. Worker input is untrusted:
the XML is parsed with defusedxml, and a label outside the task's label set is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

__all__ = ["build_answers_xml", "parse_answers"]

_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _chosen(value: Any) -> bool:
    return value is True or (isinstance(value, dict) and value.get("on") is True) or value in ("true", "on")


def _from_task_answers(raw: str) -> dict[str, str]:
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    rows = data if isinstance(data, list) else [data]
    out: dict[str, str] = {}
    for row in rows:
        if not isinstance(row, dict):
            continue
        for key, value in row.items():
            if isinstance(value, str):
                out[key] = value
            elif isinstance(value, dict):
                picked = [label for label, v in value.items() if _chosen(v)]
                if len(picked) == 1:
                    out[key] = picked[0]
            elif "." in key and _chosen(value):
                field, label = key.split(".", 1)
                out[field] = label if field not in out else ""  # two choices for one item: invalid
    return {k: v for k, v in out.items() if v}


def parse_answers(xml: str, labels: Iterable[str] | None = None) -> dict[str, str]:
    from defusedxml import ElementTree

    root = ElementTree.fromstring(xml)
    out: dict[str, str] = {}
    for answer in root:
        if _local(answer.tag) != "Answer":
            continue
        qid = value = None
        for child in answer:
            name = _local(child.tag)
            if name == "QuestionIdentifier":
                qid = (child.text or "").strip()
            elif name in ("FreeText", "SelectionIdentifier"):
                value = (child.text or "").strip()
        if not qid or value is None:
            continue
        if qid == "taskAnswers":
            out.update(_from_task_answers(value))
        else:
            out[qid] = value
    if labels is not None:
        allowed = set(labels)
        out = {k: v for k, v in out.items() if v in allowed}
    return out


def build_answers_xml(answers: dict[str, str], *, task_answers: bool = True) -> str:
    """The XML MTurk returns for ``answers`` (what the local crowd produces)."""
    from xml.sax.saxutils import escape

    if task_answers:
        pairs = [("taskAnswers", json.dumps([answers], sort_keys=True))]
    else:
        pairs = sorted(answers.items())
    body = "".join(f"<Answer><QuestionIdentifier>{escape(k)}</QuestionIdentifier><FreeText>{escape(v)}</FreeText>"
                   "</Answer>" for k, v in pairs)
    return f'<?xml version="1.0" encoding="ASCII"?><QuestionFormAnswers xmlns="{_NS}">{body}</QuestionFormAnswers>'
