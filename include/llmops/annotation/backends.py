"""The crowd behind one interface: Amazon Mechanical Turk (boto3 ``mturk`` client) or the local
simulated crowd (:mod:`llmops.annotation.localcrowd`). Everything above this module – export,
waiting, review, aggregation – is the same for both.

Every call that has a side effect is idempotent here or in the caller: ``create_hit`` is keyed
by MTurk's ``UniqueRequestToken`` (a second request with the same token finds the first HIT),
bonuses carry a token too, and approve/reject are only called for assignments MTurk still lists
as ``Submitted``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

__all__ = ["Assignment", "CrowdBackend", "CrowdError", "MTurkBackend", "THROTTLING_CODES", "annotation_tag"]

log = logging.getLogger(__name__)

SANDBOX_ENDPOINT = "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
PRODUCTION_ENDPOINT = "https://mturk-requester.us-east-1.amazonaws.com"
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "RequestLimitExceeded", "ServiceUnavailable", "ServiceFault",
})


class CrowdError(RuntimeError):
    """The crowd backend refused a request (the message carries the service's code and message)."""


@dataclass(frozen=True)
class Assignment:
    assignment_id: str
    worker_id: str
    hit_id: str
    status: str  # Submitted | Approved | Rejected
    answer_xml: str
    submit_time: str | None = None


def annotation_tag(token: str) -> str:
    """``RequesterAnnotation`` of a HIT: lets a lost create response be found again by its token."""
    return f"llmops:{token}"


class CrowdBackend(Protocol):
    name: str
    sandbox: bool

    def create_hit_type(self, request: dict[str, Any]) -> str: ...
    def create_hit(self, *, hit_type_id: str, question: str, token: str, max_assignments: int,
                   lifetime_s: int, items: list[dict[str, Any]]) -> dict[str, str]: ...
    def list_assignments(self, hit_id: str) -> list[Assignment]: ...
    def approve(self, assignment_id: str, feedback: str | None = None) -> None: ...
    def reject(self, assignment_id: str, feedback: str) -> None: ...
    def block_worker(self, worker_id: str, reason: str) -> None: ...
    def send_bonus(self, *, worker_id: str, assignment_id: str, amount: Decimal, reason: str, token: str) -> None: ...
    def extend_hit(self, hit_id: str, expire_at: datetime) -> None: ...
    def add_assignments(self, hit_id: str, count: int, token: str) -> None: ...
    def worker_url(self, group_id: str) -> str: ...


class MTurkBackend:
    """Mechanical Turk through a boto3 ``mturk`` client (from :class:`MTurkHook` in Airflow).

    Throttling and transient service faults are retried with exponential backoff and jitter;
    every other error is raised as :class:`CrowdError` naming the operation.
    """

    name = "mturk"

    def __init__(self, client: Any, *, sandbox: bool = True, max_attempts: int = 6, backoff_s: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.sandbox = sandbox
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self._sleep = sleep

    @classmethod
    def from_session(cls, session: Any, *, sandbox: bool = True, **kwargs: Any) -> MTurkBackend:
        from botocore.config import Config

        client = session.client("mturk", region_name="us-east-1",
                                endpoint_url=SANDBOX_ENDPOINT if sandbox else PRODUCTION_ENDPOINT,
                                config=Config(retries={"mode": "standard", "max_attempts": 3}))
        return cls(client, sandbox=sandbox, **kwargs)

    # -- plumbing ------------------------------------------------------------------------------
    def _call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        for attempt in range(1, self.max_attempts + 1):
            try:
                return dict(getattr(self.client, op)(**kwargs))
            except ClientError as exc:
                err = exc.response.get("Error", {})
                code, message = str(err.get("Code", "")), str(err.get("Message", ""))
                transient = code in THROTTLING_CODES or "rate" in message.lower() and "exceed" in message.lower()
                if transient and attempt < self.max_attempts:
                    delay = self.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random() / 2)
                    log.warning("mturk %s: %s (%s); retry %s/%s in %.1fs", op, code, message, attempt,
                                self.max_attempts - 1, delay)
                    self._sleep(delay)
                    continue
                raise CrowdError(f"mturk {op} failed: {code}: {message}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # -- HITs ----------------------------------------------------------------------------------
    def create_hit_type(self, request: dict[str, Any]) -> str:
        return str(self._call("create_hit_type", **request)["HITTypeId"])

    def create_hit(self, *, hit_type_id: str, question: str, token: str, max_assignments: int,
                   lifetime_s: int, items: list[dict[str, Any]]) -> dict[str, str]:
        try:
            hit = self._call("create_hit_with_hit_type", HITTypeId=hit_type_id, MaxAssignments=max_assignments,
                             LifetimeInSeconds=lifetime_s, Question=question,
                             RequesterAnnotation=annotation_tag(token), UniqueRequestToken=token)["HIT"]
        except CrowdError as exc:
            if "UniqueRequestToken" not in str(exc) and "already exists" not in str(exc):
                raise
            found = self.find_hit(token)
            if found is None:
                raise
            log.info("HIT for token %s… already existed: %s", token[:12], found["hit_id"])
            return found
        return {"hit_id": hit["HITId"], "group_id": hit["HITGroupId"], "hit_type_id": hit["HITTypeId"]}

    def find_hit(self, token: str) -> dict[str, str] | None:
        """The HIT created with ``token`` (its ``RequesterAnnotation``), if any."""
        kwargs: dict[str, Any] = {"MaxResults": 100}
        while True:
            page = self._call("list_hits", **kwargs)
            for hit in page.get("HITs", []):
                if hit.get("RequesterAnnotation") == annotation_tag(token):
                    return {"hit_id": hit["HITId"], "group_id": hit["HITGroupId"], "hit_type_id": hit["HITTypeId"]}
            if not page.get("NextToken") or not page.get("HITs"):
                return None
            kwargs["NextToken"] = page["NextToken"]

    def list_assignments(self, hit_id: str) -> list[Assignment]:
        out: list[Assignment] = []
        kwargs: dict[str, Any] = {"HITId": hit_id, "MaxResults": 100,
                                  "AssignmentStatuses": ["Submitted", "Approved", "Rejected"]}
        while True:
            page = self._call("list_assignments_for_hit", **kwargs)
            for a in page.get("Assignments", []):
                submitted = a.get("SubmitTime")
                out.append(Assignment(a["AssignmentId"], a["WorkerId"], a["HITId"], a["AssignmentStatus"],
                                      a.get("Answer", ""), submitted.isoformat() if submitted else None))
            if not page.get("NextToken") or not page.get("Assignments"):
                return out
            kwargs["NextToken"] = page["NextToken"]

    # -- review ----------------------------------------------------------------------------------
    def approve(self, assignment_id: str, feedback: str | None = None) -> None:
        kwargs: dict[str, Any] = {"AssignmentId": assignment_id}
        if feedback:
            kwargs["RequesterFeedback"] = feedback[:1024]
        self._call("approve_assignment", **kwargs)

    def reject(self, assignment_id: str, feedback: str) -> None:
        self._call("reject_assignment", AssignmentId=assignment_id, RequesterFeedback=feedback[:1024])

    def block_worker(self, worker_id: str, reason: str) -> None:
        self._call("create_worker_block", WorkerId=worker_id, Reason=reason)

    def send_bonus(self, *, worker_id: str, assignment_id: str, amount: Decimal, reason: str, token: str) -> None:
        self._call("send_bonus", WorkerId=worker_id, BonusAmount=str(amount), AssignmentId=assignment_id,
                   Reason=reason, UniqueRequestToken=token)

    def extend_hit(self, hit_id: str, expire_at: datetime) -> None:
        """New expiry time; a time in the past expires the HIT at once."""
        self._call("update_expiration_for_hit", HITId=hit_id, ExpireAt=expire_at)

    def add_assignments(self, hit_id: str, count: int, token: str) -> None:
        self._call("create_additional_assignments_for_hit", HITId=hit_id, NumberOfAdditionalAssignments=count,
                   UniqueRequestToken=token)

    def worker_url(self, group_id: str) -> str:
        host = "workersandbox.mturk.com" if self.sandbox else "worker.mturk.com"
        return f"https://{host}/projects/{group_id}/tasks"
