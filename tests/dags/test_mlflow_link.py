"""The "MLflow run" extra link's URL (the end-to-end test follows it in a browser)."""

from __future__ import annotations

from llmops_airflow.links import mlflow_run_url


def test_run_url_points_at_the_server_ui_without_credentials():
    assert mlflow_run_url("http://mlflow:5000", "3", "abc") == "http://mlflow:5000/#/experiments/3/runs/abc"
    assert (mlflow_run_url("https://user:s3cret@mlflow.example.com/prefix/", "1", "r")
            == "https://mlflow.example.com/prefix/#/experiments/1/runs/r")
    # a local store has no UI to link to
    assert mlflow_run_url("sqlite:///tmp/mlflow.db", "1", "r") == ""
    assert mlflow_run_url("http://mlflow:5000", None, "r") == ""
