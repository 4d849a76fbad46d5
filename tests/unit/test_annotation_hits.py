"""HIT contents: cost estimate with MTurk fees, the HTML question, request tokens, answer parsing."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from llmops.annotation.answers import build_answers_xml, parse_answers
from llmops.annotation.hits import (
    BudgetExceededError,
    batch_key,
    check_budget,
    estimate_cost,
    render_question,
    request_token,
)
from llmops.annotation.items import Item
from llmops.annotation.settings import TaskConfig


def test_cost_includes_mturk_fees():
    c = estimate_cost(15, 3, Decimal("0.10"))
    assert (c.rewards_usd, c.fees_usd, c.total_usd) == (Decimal("4.50"), Decimal("0.90"), Decimal("5.40"))
    big = estimate_cost(2, 10, Decimal("0.10"))  # 10+ assignments: 20% + 20%
    assert big.fee_rate == Decimal("0.40") and big.total_usd == Decimal("2.80")
    tiny = estimate_cost(1, 2, Decimal("0.02"))  # the fee is at least $0.01 per assignment
    assert tiny.fees_usd == Decimal("0.02") and tiny.total_usd == Decimal("0.06")
    bonus = estimate_cost(1, 1, Decimal("0.10"), bonus_per_assignment=Decimal("0.05"))
    assert bonus.total_usd == Decimal("0.18")  # 0.10 + 0.02 fee + 0.05 bonus + 0.01 bonus fee


def test_budget_error_names_the_numbers():
    with pytest.raises(BudgetExceededError) as err:
        check_budget(estimate_cost(15, 3, Decimal("0.10")), Decimal("5"))
    msg = str(err.value)
    assert "$5.40" in msg and "15 HITs x 3 assignments" in msg and "$0.90 MTurk fees" in msg and "budget_usd=$5" in msg
    check_budget(estimate_cost(15, 3, Decimal("0.10")), Decimal("5.40"))  # at the cap is allowed


def test_request_token_is_stable_per_dag_partition_batch():
    items = [Item("b", "x"), Item("a", "y")]
    key = batch_key(items)
    assert key == batch_key(list(reversed(items)))
    t = request_token("llm_annotation", "2026-11-25", key)
    assert len(t) <= 64 and t == request_token("llm_annotation", "2026-11-25", key)
    assert t != request_token("llm_annotation", "2026-11-26", key)
    assert t != request_token("llm_annotation", "2026-11-25", batch_key([Item("c", "z")]))


def test_html_question_escapes_text_and_survives_cdata_breakers():
    from defusedxml import ElementTree

    task = TaskConfig()
    evil = 'Hi <script>alert(1)</script> "quoted" ]]> end'
    xml = render_question([Item("a", evil, lang="en"), Item("b", "Second message")], task)
    root = ElementTree.fromstring(xml)
    html = root.find("{*}HTMLContent").text
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "]]&gt; end" in html
    assert 'src="https://assets.crowd.aws/crowd-html-elements.js"' in html and "<crowd-form" in html
    for label in task.labels:
        assert f'name="item_0" value="{label}"' in html and f'name="item_1" value="{label}"' in html
    assert "gold" not in html.lower()


@pytest.mark.parametrize("shape", ["fields", "task_answers", "nested", "flattened"])
def test_parse_question_form_answers_in_every_shape(shape):
    labels = ["billing", "refund"]
    want = {"item_0": "refund", "item_1": "billing"}
    if shape == "fields":
        xml = build_answers_xml(want, task_answers=False)
    elif shape == "task_answers":
        xml = build_answers_xml(want)
    elif shape == "nested":
        xml = build_answers_xml({})
        payload = json.dumps([{"item_0": {"refund": True, "billing": False}, "item_1": {"billing": {"on": True}}}])
        xml = xml.replace("</QuestionFormAnswers>", "<Answer><QuestionIdentifier>taskAnswers</QuestionIdentifier>"
                          f"<FreeText>{payload}</FreeText></Answer></QuestionFormAnswers>")
    else:
        payload = json.dumps([{"item_0.refund": True, "item_0.billing": False, "item_1.billing": True}])
        xml = build_answers_xml({}).replace(
            "</QuestionFormAnswers>", "<Answer><QuestionIdentifier>taskAnswers</QuestionIdentifier>"
            f"<FreeText>{payload}</FreeText></Answer></QuestionFormAnswers>")
    assert parse_answers(xml, labels) == want


def test_unknown_labels_and_double_choices_are_dropped():
    xml = build_answers_xml({"item_0": "hacked", "item_1": "refund"})
    assert parse_answers(xml, ["refund", "billing"]) == {"item_1": "refund"}
    payload = json.dumps([{"item_0.refund": True, "item_0.billing": True}])
    xml = build_answers_xml({}).replace("</QuestionFormAnswers>", "<Answer><QuestionIdentifier>taskAnswers"
                                        f"</QuestionIdentifier><FreeText>{payload}</FreeText></Answer></QuestionFormAnswers>")
    assert parse_answers(xml, ["refund", "billing"]) == {}


def test_entity_expansion_is_refused():
    from defusedxml import EntitiesForbidden

    bomb = ('<?xml version="1.0"?><!DOCTYPE q [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            "<QuestionFormAnswers><Answer><QuestionIdentifier>item_0</QuestionIdentifier>"
            "<FreeText>&b;</FreeText></Answer></QuestionFormAnswers>")
    with pytest.raises(EntitiesForbidden):
        parse_answers(bomb)
