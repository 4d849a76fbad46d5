"""Running a DAG's tasks the way a worker does, inside a test."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def worker_like_executor() -> Any:
    """An executor that runs each task like a worker does (``supervise_task``: a supervisor and a
    forked task process writing the task's log file), the Execution API in-process."""
    from airflow.executors.base_executor import BaseExecutor
    from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor, supervise_task

    class WorkerLikeExecutor(BaseExecutor):
        def _process_workloads(self, workload_items: Sequence) -> None:
            for workload in workload_items:
                key = workload.ti.key
                self.queued_tasks.pop(key, None)
                self.running.add(key)
                code = supervise_task(ti=workload.ti, bundle_info=workload.bundle_info,
                                      dag_rel_path=workload.dag_rel_path, token=workload.token,
                                      client=InProcessTestSupervisor._api_client(), log_path=workload.log_path)
                (self.success if code == 0 else self.fail)(key)

        def end(self) -> None:  # every workload ran to completion in _process_workloads
            pass

    return WorkerLikeExecutor()
