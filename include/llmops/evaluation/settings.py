"""Typed settings of the evaluation stage (the ``evaluation:`` section of the pipeline config).

The registered model and the MLflow store are the training stage's (``training.registered_model``,
``training.tracking``); evaluation runs go to their own experiment.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EvaluationConfig"]


class EvaluationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suites: list[str] = Field(default_factory=lambda: ["support_intents"], min_length=1,
                              description="Suites under include/evaluation/suites/; the first one's primary "
                                          "metric ranks the candidates.")
    suites_dir: str | None = Field(default=None, description="A folder of the project's own suite YAML files, "
                                                             "looked up before the built-in ones.")
    experiment: str = "llm_evaluation"
    champion_alias: str = "champion"
    previous_alias: str = "previous"
    require_approval: bool = Field(default=False, description="Ask a human (Airflow HITL ApprovalOperator) "
                                                              "before the champion alias moves.")
    approval_timeout_h: float = Field(default=72, gt=0)
