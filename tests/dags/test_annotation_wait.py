"""The deferrable wait: the trigger's serialisation and events, and the sensor's wait / defer /
deadline-policy matrix, on the local crowd with the real clock."""

from __future__ import annotations

import asyncio
import importlib
import time

import pytest
import yaml

from llmops.annotation import jobs


@pytest.fixture()
def job(curated_factory, redactor, tmp_path):
    """(config path, cfg, store, job id) for an exported job; ``delay`` sets the crowd's delay range."""

    def make(delay=(0, 0), wait=None):
        overrides = {"annotation": {"selection": {"size": 10}, "local": {"delay_s": list(delay)},
                                    "wait": {"poll_interval_s": 0.2, **(wait or {})}}}
        cfg, store, manifest = curated_factory(10, overrides=overrides)
        path = tmp_path / "cfg.yaml"
        path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
        plan = jobs.prepare_job(cfg, store=store, curated_version_id=manifest["id"], partition="2026-11-25",
                                dag_id="llm_annotation", redactor=redactor)
        jobs.export_job(cfg, store=store, job_id=plan["job_id"], backend=jobs.make_backend(cfg, store))
        return str(path), cfg, store, plan["job_id"]

    return make


def _first_event(trigger):
    async def first():
        async for event in trigger.run():
            return event.payload
        return None

    return asyncio.run(asyncio.wait_for(first(), timeout=60))


def test_trigger_serialize_round_trips():
    from llmops_airflow.triggers.annotation import AnnotationCompleteTrigger

    trig = AnnotationCompleteTrigger(config_path="/x.yaml", job_id="job-1", deadline=123.5, poll_interval=7)
    path, kwargs = trig.serialize()
    module, name = path.rsplit(".", 1)
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (path, kwargs)
    import json

    json.dumps(kwargs)  # JSON-serialisable arguments only


def test_trigger_fires_complete_when_all_assignments_are_in(job):
    from llmops_airflow.triggers.annotation import AnnotationCompleteTrigger

    path, cfg, store, job_id = job(delay=(0, 0))
    event = _first_event(AnnotationCompleteTrigger(config_path=path, job_id=job_id, deadline=time.time() + 60,
                                                   poll_interval=0.2))
    assert event["status"] == "complete" and event["submitted"] == event["expected"] > 0


def test_trigger_fires_deadline_first(job):
    from llmops_airflow.triggers.annotation import AnnotationCompleteTrigger

    path, cfg, store, job_id = job(delay=(1000, 2000))
    event = _first_event(AnnotationCompleteTrigger(config_path=path, job_id=job_id, deadline=time.time() + 0.5,
                                                   poll_interval=0.2))
    assert event["status"] == "deadline" and event["submitted"] == 0


def test_trigger_reports_persistent_errors(job):
    from llmops_airflow.triggers.annotation import AnnotationCompleteTrigger

    path, *_ = job(delay=(0, 0))
    event = _first_event(AnnotationCompleteTrigger(config_path=path, job_id="job-missing", deadline=time.time() + 60,
                                                   poll_interval=0.05, max_errors=2))
    assert event["status"] == "error" and "no ledger" in event["message"]


def _sensor(path, job_id, **kwargs):
    from llmops_airflow.sensors.annotation import AnnotationSensor

    return AnnotationSensor(task_id="wait", config_path=path, job_id=job_id, **kwargs)


def test_sensor_returns_at_once_when_done(job):
    path, cfg, store, job_id = job(delay=(0, 0))
    out = _sensor(path, job_id).execute({})
    assert out["done"] and out["submitted"] == out["expected"]


def test_sensor_defers_to_the_trigger_until_the_deadline(job):
    from airflow.sdk.exceptions import TaskDeferred

    from llmops_airflow.triggers.annotation import AnnotationCompleteTrigger

    path, cfg, store, job_id = job(delay=(1000, 2000))
    with pytest.raises(TaskDeferred) as deferred:
        _sensor(path, job_id).execute({})
    trig = deferred.value.trigger
    assert isinstance(trig, AnnotationCompleteTrigger) and deferred.value.method_name == "execute_complete"
    assert trig.deadline == jobs.read_ledger(store, cfg.dataset, job_id)["deadline"]


@pytest.mark.parametrize("policy", ["proceed", "fail", "extend"])
def test_deadline_policies(job, policy):
    from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

    path, cfg, store, job_id = job(delay=(1000, 2000), wait={"on_deadline": policy, "max_extensions": 1,
                                                              "extend_by_s": 600, "extra_assignments": 1})
    sensor = _sensor(path, job_id)
    event = {"status": "deadline", "submitted": 0, "expected": 6, "done": False}
    if policy == "proceed":
        assert sensor.execute_complete({}, event)["deadline_passed"] is True
    elif policy == "fail":
        with pytest.raises(AirflowFailException, match="deadline passed with 0 of 6"):
            sensor.execute_complete({}, event)
    else:
        with pytest.raises(TaskDeferred) as deferred:
            sensor.execute_complete({}, event)
        ledger = jobs.read_ledger(store, cfg.dataset, job_id)
        assert len(ledger["extensions"]) == 1 and deferred.value.trigger.deadline == ledger["deadline"]
        assert all(h["max_assignments"] == 4 for h in ledger["hits"].values())
        # the second deadline: extensions used up -> proceed with what is in
        assert sensor.execute_complete({}, event)["deadline_passed"] is True
        assert len(jobs.read_ledger(store, cfg.dataset, job_id)["extensions"]) == 1


def test_complete_and_error_events():
    from airflow.sdk.exceptions import AirflowException

    sensor = _sensor("/unused.yaml", "job-x")
    done = {"status": "complete", "expected": 3, "submitted": 3, "done": True}
    assert sensor.execute_complete({}, done) == done
    with pytest.raises(AirflowException, match="waiting failed: boom"):
        sensor.execute_complete({}, {"status": "error", "message": "boom"})


@pytest.mark.parametrize("delay,done", [((0, 0), True), ((1000, 2000), False)])
def test_poke_mode_without_deferral(job, delay, done):
    path, cfg, store, job_id = job(delay=delay)
    assert _sensor(path, job_id, deferrable=False).poke({}) is done
