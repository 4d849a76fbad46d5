"""A simulated crowd with the MTurk backend's interface, for the embedded setup and tests.

Workers have an accuracy drawn from a configured range; some are spammers who mostly click their
favourite answer. Each HIT gets its workers when it is posted (a blocked worker takes no new HIT),
each worker submits after a random delay, and answers come back in MTurk's
``QuestionFormAnswers`` XML. Everything is a pure function of the seed, the HIT and the clock, and
the state (HITs, reviews, blocks, bonuses) lives in the object store, so the Airflow worker and the
triggerer see the same crowd.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from llmops.annotation.answers import build_answers_xml
from llmops.annotation.backends import Assignment, CrowdError
from llmops.annotation.settings import LocalCrowdConfig

__all__ = ["LocalCrowd", "load_truth"]


def load_truth(path: str | None) -> dict[str, str]:
    """``id -> label`` from a JSONL file (missing file: empty)."""
    if not path:
        return {}
    from llmops.annotation.items import resolve_path

    p = resolve_path(path)
    if not p.is_file():
        return {}
    out = {}
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("id") and row.get("label"):
                out[str(row["id"])] = str(row["label"])
    return out


class LocalCrowd:
    name = "local"
    sandbox = True

    def __init__(self, store: Any, cfg: LocalCrowdConfig, *, labels: list[str], prefix: str = "crowd/local",
                 truth: dict[str, str] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.cfg = cfg
        self.labels = list(labels)
        self.prefix = prefix.rstrip("/")
        self.truth = truth if truth is not None else load_truth(cfg.truth_path)
        self.clock = clock
        self.calls: list[str] = []  # operations with side effects, in order (for audits and tests)

    # -- state -----------------------------------------------------------------------------------
    def _read(self, key: str, default: Any) -> Any:
        full = f"{self.prefix}/{key}"
        return json.loads(self.store.read_bytes(full)) if self.store.exists(full) else default

    def _write(self, key: str, value: Any) -> None:
        self.store.write_bytes(f"{self.prefix}/{key}", json.dumps(value, indent=1, sort_keys=True).encode())

    def workers(self) -> list[dict[str, Any]]:
        rng = random.Random(f"crowd:{self.cfg.seed}")
        out = []
        honest = self.cfg.workers - self.cfg.spammers
        for i in range(self.cfg.workers):
            spammer = i >= honest
            out.append({"id": f"SIMW{i:04d}{'S' if spammer else 'H'}", "spammer": spammer,
                        "accuracy": round(rng.uniform(*self.cfg.accuracy), 3),
                        "favourite": rng.choice(self.labels)})
        return out

    def _roster(self, hit_id: str, count: int, exclude: set[str], salt: str) -> list[dict[str, Any]]:
        blocked = set(self._read("blocks.json", {}))
        pool = [w["id"] for w in self.workers() if w["id"] not in blocked and w["id"] not in exclude]
        rng = random.Random(f"roster:{self.cfg.seed}:{hit_id}:{salt}")
        picked = rng.sample(pool, min(count, len(pool)))
        return [{"worker": w, "delay_s": round(rng.uniform(*self.cfg.delay_s), 3)} for w in picked]

    # -- HITs ----------------------------------------------------------------------------------
    def create_hit_type(self, request: dict[str, Any]) -> str:
        digest = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
        type_id = f"LOCALTYPE{digest[:20].upper()}"
        self._write(f"hit-types/{type_id}.json", request)
        return type_id

    def create_hit(self, *, hit_type_id: str, question: str, token: str, max_assignments: int,
                   lifetime_s: int, items: list[dict[str, Any]]) -> dict[str, str]:
        hit_id = f"LOCALHIT{hashlib.sha256(token.encode()).hexdigest()[:22].upper()}"
        existing = self._read(f"hits/{hit_id}.json", None)
        if existing is not None:  # same token: MTurk returns the first HIT, never a second one
            return {"hit_id": hit_id, "group_id": existing["group_id"], "hit_type_id": existing["hit_type_id"]}
        now = self.clock()
        hit: dict[str, Any] = {
            "hit_id": hit_id, "hit_type_id": hit_type_id, "group_id": f"LOCALGROUP{hit_type_id[9:]}",
            "token": token, "created_at": now, "expires_at": now + lifetime_s, "max_assignments": max_assignments,
            "question_sha256": hashlib.sha256(question.encode()).hexdigest(),
            "items": [{"field": it["field"], "id": it["id"], "gold": it.get("gold"),
                       "prelabel": it.get("prelabel")} for it in items],
            "roster": self._roster(hit_id, max_assignments, set(), "0"),
        }
        self._write(f"hits/{hit_id}.json", hit)
        self.calls.append(f"create_hit:{hit_id}")
        return {"hit_id": hit_id, "group_id": hit["group_id"], "hit_type_id": hit_type_id}

    def _truth_for(self, item: dict[str, Any]) -> str:
        if item.get("gold"):
            return str(item["gold"])
        if item["id"] in self.truth:
            return self.truth[item["id"]]
        if item.get("prelabel"):
            return str(item["prelabel"])
        return self.labels[int(hashlib.sha256(item["id"].encode()).hexdigest(), 16) % len(self.labels)]

    def _answers(self, hit: dict[str, Any], worker: dict[str, Any]) -> dict[str, str]:
        rng = random.Random(f"answers:{self.cfg.seed}:{hit['hit_id']}:{worker['id']}")
        out = {}
        for item in hit["items"]:
            truth = self._truth_for(item)
            if worker["spammer"]:
                label = worker["favourite"] if rng.random() < 0.7 else rng.choice(self.labels)
            elif rng.random() < worker["accuracy"]:
                label = truth
            else:
                label = rng.choice([lab for lab in self.labels if lab != truth] or self.labels)
            out[item["field"]] = label
        return out

    def list_assignments(self, hit_id: str) -> list[Assignment]:
        hit = self._read(f"hits/{hit_id}.json", None)
        if hit is None:
            raise CrowdError(f"local crowd list_assignments failed: no HIT {hit_id}")
        reviews = self._read(f"reviews/{hit_id}.json", {})
        by_id = {w["id"]: w for w in self.workers()}
        now = self.clock()
        out = []
        for slot in hit["roster"]:
            start = slot.get("posted_at", hit["created_at"])
            done_at = start + slot["delay_s"]
            if done_at > now or done_at > hit["expires_at"]:
                continue
            worker = by_id[slot["worker"]]
            aid = f"LOCALASG_{hit_id}_{worker['id']}"
            status = reviews.get(aid, {}).get("status", "Submitted")
            out.append(Assignment(aid, worker["id"], hit_id, status, build_answers_xml(self._answers(hit, worker)),
                                  datetime.fromtimestamp(done_at).isoformat(timespec="seconds")))
        return out

    # -- review ----------------------------------------------------------------------------------
    def _review(self, assignment_id: str, status: str, feedback: str | None) -> None:
        hit_id = self._hit_of(assignment_id)
        reviews = self._read(f"reviews/{hit_id}.json", {})
        current = reviews.get(assignment_id, {}).get("status", "Submitted")
        if current != "Submitted":  # MTurk refuses to review an assignment twice
            raise CrowdError(f"local crowd {status.lower()} failed: RequestError: assignment {assignment_id} "
                             f"is already {current}")
        reviews[assignment_id] = {"status": status, "feedback": feedback or ""}
        self._write(f"reviews/{hit_id}.json", reviews)
        self.calls.append(f"{status.lower()}:{assignment_id}")

    def _hit_of(self, assignment_id: str) -> str:
        parts = assignment_id.split("_")
        if len(parts) != 3 or not self.store.exists(f"{self.prefix}/hits/{parts[1]}.json"):
            raise CrowdError(f"local crowd: no assignment {assignment_id}")
        return parts[1]

    def approve(self, assignment_id: str, feedback: str | None = None) -> None:
        self._review(assignment_id, "Approved", feedback)

    def reject(self, assignment_id: str, feedback: str) -> None:
        self._review(assignment_id, "Rejected", feedback)

    def block_worker(self, worker_id: str, reason: str) -> None:
        blocks = self._read("blocks.json", {})
        blocks[worker_id] = reason
        self._write("blocks.json", blocks)
        self.calls.append(f"block:{worker_id}")

    def send_bonus(self, *, worker_id: str, assignment_id: str, amount: Decimal, reason: str, token: str) -> None:
        bonuses = self._read("bonuses.json", {})
        if token in bonuses:  # the token makes a bonus at most once, as on MTurk
            return
        bonuses[token] = {"worker": worker_id, "assignment": assignment_id, "amount": str(amount), "reason": reason}
        self._write("bonuses.json", bonuses)
        self.calls.append(f"bonus:{assignment_id}")

    def extend_hit(self, hit_id: str, expire_at: datetime) -> None:
        hit = self._read(f"hits/{hit_id}.json", None)
        if hit is None:
            raise CrowdError(f"local crowd update_expiration_for_hit failed: no HIT {hit_id}")
        hit["expires_at"] = max(expire_at.timestamp(), self.clock())  # a past time expires it now
        self._write(f"hits/{hit_id}.json", hit)
        self.calls.append(f"extend:{hit_id}")

    def add_assignments(self, hit_id: str, count: int, token: str) -> None:
        hit = self._read(f"hits/{hit_id}.json", None)
        if hit is None:
            raise CrowdError(f"local crowd create_additional_assignments_for_hit failed: no HIT {hit_id}")
        if token in hit.get("extra_tokens", []):
            return
        taken = {slot["worker"] for slot in hit["roster"]}
        extra = self._roster(hit_id, count, taken, token)
        now = self.clock()
        hit["roster"] += [{**slot, "posted_at": now} for slot in extra]
        hit["max_assignments"] += count
        hit["extra_tokens"] = [*hit.get("extra_tokens", []), token]
        self._write(f"hits/{hit_id}.json", hit)
        self.calls.append(f"add_assignments:{hit_id}")

    def worker_url(self, group_id: str) -> str:
        return f"local-crowd://{group_id}"
