"""Contract tests of the MTurk backend with botocore's Stubber: every request is validated against
the real MTurk service model shipped with botocore (names, types, required parameters)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import boto3
import pytest
from botocore.stub import ANY, Stubber

from llmops.annotation.backends import MTurkBackend, annotation_tag
from llmops.annotation.hits import hit_type_request
from llmops.annotation.settings import MTurkConfig, TaskConfig

NOW = datetime(2026, 11, 28, tzinfo=UTC)


@pytest.fixture()
def client():
    return boto3.client("mturk", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test",
                        endpoint_url="https://mturk-requester-sandbox.us-east-1.amazonaws.com")


@pytest.fixture()
def stub(client):
    with Stubber(client) as s:
        yield s
        s.assert_no_pending_responses()


def _hit(hit_id: str, token: str = "t") -> dict:
    return {"HITId": hit_id, "HITTypeId": "TYPE1", "HITGroupId": "GROUP1", "CreationTime": NOW,
            "Title": "x", "RequesterAnnotation": annotation_tag(token)}


def test_create_hit_type_request_matches_the_service_model(client, stub):
    req = hit_type_request(TaskConfig(), MTurkConfig())
    stub.add_response("create_hit_type", {"HITTypeId": "TYPE1"}, req)
    assert MTurkBackend(client).create_hit_type(req) == "TYPE1"
    quals = {q["QualificationTypeId"]: q for q in req["QualificationRequirements"]}
    assert quals["000000000000000000L0"]["IntegerValues"] == [95]
    assert quals["00000000000000000071"]["LocaleValues"][0] == {"Country": "US"}
    assert req["Reward"] == "0.10"


def test_create_hit_with_unique_request_token(client, stub):
    expected = {"HITTypeId": "TYPE1", "MaxAssignments": 3, "LifetimeInSeconds": 3600, "Question": "<q/>",
                "RequesterAnnotation": annotation_tag("tok-1"), "UniqueRequestToken": "tok-1"}
    stub.add_response("create_hit_with_hit_type", {"HIT": _hit("HIT1", "tok-1")}, expected)
    out = MTurkBackend(client).create_hit(hit_type_id="TYPE1", question="<q/>", token="tok-1", max_assignments=3,
                                          lifetime_s=3600, items=[])
    assert out == {"hit_id": "HIT1", "group_id": "GROUP1", "hit_type_id": "TYPE1"}


def test_a_reused_token_finds_the_first_hit(client, stub):
    """MTurk refuses a second HIT with the same token; the backend finds the first one instead."""
    stub.add_client_error("create_hit_with_hit_type", service_error_code="RequestError", http_status_code=400,
                          service_message="There is already a HIT which exists with the same UniqueRequestToken.")
    stub.add_response("list_hits", {"HITs": [_hit("OTHER", "zzz")], "NextToken": "p2", "NumResults": 1},
                      {"MaxResults": 100})
    stub.add_response("list_hits", {"HITs": [_hit("HIT1", "tok-1")], "NumResults": 1},
                      {"MaxResults": 100, "NextToken": "p2"})
    out = MTurkBackend(client).create_hit(hit_type_id="TYPE1", question="<q/>", token="tok-1", max_assignments=3,
                                          lifetime_s=3600, items=[])
    assert out["hit_id"] == "HIT1"


def test_list_assignments_pages_and_statuses(client, stub):
    asg = {"AssignmentId": "A1", "WorkerId": "W1", "HITId": "HIT1", "AssignmentStatus": "Submitted",
           "Answer": "<QuestionFormAnswers/>", "SubmitTime": NOW}
    stub.add_response("list_assignments_for_hit", {"Assignments": [asg], "NextToken": "n", "NumResults": 1},
                      {"HITId": "HIT1", "MaxResults": 100, "AssignmentStatuses": ["Submitted", "Approved", "Rejected"]})
    stub.add_response("list_assignments_for_hit",
                      {"Assignments": [{**asg, "AssignmentId": "A2", "AssignmentStatus": "Approved"}], "NumResults": 1},
                      {"HITId": "HIT1", "MaxResults": 100, "NextToken": "n",
                       "AssignmentStatuses": ["Submitted", "Approved", "Rejected"]})
    out = MTurkBackend(client).list_assignments("HIT1")
    assert [(a.assignment_id, a.status) for a in out] == [("A1", "Submitted"), ("A2", "Approved")]
    assert out[0].submit_time.startswith("2026-11-28")


def test_review_block_bonus_extend_requests(client, stub):
    stub.add_response("approve_assignment", {}, {"AssignmentId": "A1"})
    stub.add_response("reject_assignment", {}, {"AssignmentId": "A2", "RequesterFeedback": "wrong gold"})
    stub.add_response("create_worker_block", {}, {"WorkerId": "W2", "Reason": "spam"})
    stub.add_response("send_bonus", {}, {"WorkerId": "W1", "BonusAmount": "0.05", "AssignmentId": "A1",
                                         "Reason": "thanks", "UniqueRequestToken": "b1"})
    stub.add_response("update_expiration_for_hit", {}, {"HITId": "HIT1", "ExpireAt": NOW})
    stub.add_response("create_additional_assignments_for_hit", {},
                      {"HITId": "HIT1", "NumberOfAdditionalAssignments": 2, "UniqueRequestToken": "x1"})
    be = MTurkBackend(client)
    be.approve("A1")
    be.reject("A2", "wrong gold")
    be.block_worker("W2", "spam")
    be.send_bonus(worker_id="W1", assignment_id="A1", amount=Decimal("0.05"), reason="thanks", token="b1")
    be.extend_hit("HIT1", NOW)
    be.add_assignments("HIT1", 2, "x1")


def test_throttling_is_retried_with_backoff(client, stub):
    slept: list[float] = []
    stub.add_client_error("approve_assignment", service_error_code="ThrottlingException", http_status_code=400)
    stub.add_client_error("approve_assignment", service_error_code="ServiceFault", http_status_code=500)
    stub.add_response("approve_assignment", {}, {"AssignmentId": "A1"})
    MTurkBackend(client, sleep=slept.append, backoff_s=0.5).approve("A1")
    assert len(slept) == 2 and slept[1] > slept[0] * 0.9


def test_persistent_errors_name_the_operation(client, stub):
    from llmops.annotation.backends import CrowdError

    stub.add_client_error("reject_assignment", service_error_code="RequestError", http_status_code=400,
                          service_message="This operation can be called with a status of: Submitted")
    with pytest.raises(CrowdError, match="reject_assignment failed: RequestError"):
        MTurkBackend(client, sleep=lambda s: None).reject("A1", "no")


def test_bad_parameters_are_caught_by_the_service_model(client, stub):
    """The Stubber refuses what the real API would: a request the model does not allow."""
    from botocore.exceptions import ParamValidationError

    stub.add_response("create_worker_block", {}, None)  # no expected params: only the model validates
    with pytest.raises(ParamValidationError):
        client.create_worker_block(WorkerId="W")  # Reason is required
    client.create_worker_block(WorkerId="W", Reason="r")


def test_endpoints_sandbox_by_default():
    from llmops.annotation.backends import PRODUCTION_ENDPOINT, SANDBOX_ENDPOINT

    session = boto3.Session(aws_access_key_id="a", aws_secret_access_key="b")
    assert MTurkBackend.from_session(session).client.meta.endpoint_url == SANDBOX_ENDPOINT
    prod = MTurkBackend.from_session(session, sandbox=False)
    assert prod.client.meta.endpoint_url == PRODUCTION_ENDPOINT
    assert prod.worker_url("G").startswith("https://worker.mturk.com/")
    assert MTurkBackend.from_session(session).worker_url("G") == "https://workersandbox.mturk.com/projects/G/tasks"


def test_mturk_hook_defaults_to_the_sandbox(monkeypatch):
    from llmops_airflow.hooks.mturk import PRODUCTION_ENDPOINT, SANDBOX_ENDPOINT, MTurkHook

    monkeypatch.setenv("AIRFLOW_CONN_AWS_MTURK", '{"conn_type": "aws", "login": "AKIDEXAMPLE", "password": "s"}')
    hook = MTurkHook(aws_conn_id="aws_mturk")
    assert hook.conn.meta.endpoint_url == SANDBOX_ENDPOINT and hook.conn.meta.region_name == "us-east-1"
    assert MTurkHook(aws_conn_id="aws_mturk", sandbox=False).conn.meta.endpoint_url == PRODUCTION_ENDPOINT
    assert ANY  # the stubber's wildcard is importable (used by the export tests)
