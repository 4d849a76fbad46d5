"""Fast batched inference for evaluation: classifiers and generative (causal) models.

Examples are sorted by length so each batch pads little, padded per batch (right for encoders,
left for generation so every prompt ends where generation starts), run under
``torch.inference_mode`` and, for generation, with the KV cache. Results come back in input order.
:func:`predict_one_by_one` is the per-example baseline ``make bench`` compares against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ClassifierPredictor", "GenerativePredictor", "Predictions", "load_predictor", "predict_one_by_one"]


@dataclass
class Predictions:
    labels: list[str]
    confidences: list[float] = field(default_factory=list)  # max class probability (classifiers)
    probabilities: list[list[float]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)


def _order(lengths: Sequence[int]) -> list[int]:
    return sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))


class ClassifierPredictor:
    task = "classification"

    def __init__(self, model: Any, tokenizer: Any, *, max_length: int = 256, batch_size: int = 32) -> None:
        self.model, self.tok = model.eval(), tokenizer
        self.max_length, self.batch_size = max_length, batch_size
        id2label = getattr(model.config, "id2label", None) or {}
        self.classes = [str(id2label.get(i, i)) for i in range(model.config.num_labels)]

    @classmethod
    def from_dir(cls, path: str | Path, **kw: Any) -> ClassifierPredictor:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        return cls(AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True),
                   AutoTokenizer.from_pretrained(path, local_files_only=True), **kw)

    def predict(self, texts: Sequence[str]) -> Predictions:
        import torch

        enc = self.tok(list(texts), truncation=True, max_length=self.max_length)
        order = _order([len(ids) for ids in enc["input_ids"]])
        probs: list[list[float]] = [[] for _ in texts]
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                batch = self.tok.pad({k: [enc[k][i] for i in idx] for k in enc}, return_tensors="pt")
                logits = self.model(**batch).logits.float()
                for i, row in zip(idx, torch.softmax(logits, -1).tolist(), strict=True):
                    probs[i] = row
        best = [max(range(len(p)), key=p.__getitem__) for p in probs]
        return Predictions(labels=[self.classes[b] for b in best], confidences=[p[b] for p, b in zip(probs, best,
                                                                                                     strict=True)],
                           probabilities=probs, classes=self.classes)


class GenerativePredictor:
    task = "sft"

    def __init__(self, model: Any, tokenizer: Any, *, template: str = "### Message:\n{text}\n### Intent:\n",
                 max_new_tokens: int = 8, max_length: int = 256, batch_size: int = 32) -> None:
        self.model, self.tok = model.eval(), tokenizer
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        self.template, self.max_new_tokens = template, max_new_tokens
        self.max_length, self.batch_size = max_length, batch_size

    @classmethod
    def from_dir(cls, path: str | Path, **kw: Any) -> GenerativePredictor:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        return cls(AutoModelForCausalLM.from_pretrained(path, local_files_only=True),
                   AutoTokenizer.from_pretrained(path, local_files_only=True), **kw)

    def _prompt_ids(self, texts: Sequence[str]) -> list[list[int]]:
        from llmops.training.sft import encode_sft

        rows = [{"id": str(i), "text": t, "label": ""} for i, t in enumerate(texts)]
        enc = encode_sft(rows, self.tok, max_length=self.max_length, template=self.template)
        # the encoded response is just EOS for an empty label: drop it, keep the prompt
        return [ids[:-1] for ids in enc["input_ids"]]

    def predict(self, texts: Sequence[str]) -> Predictions:
        import torch

        prompts = self._prompt_ids(texts)
        order = _order([len(p) for p in prompts])
        out: list[str] = [""] * len(texts)
        pad = self.tok.pad_token_id
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                width = max(len(prompts[i]) for i in idx)
                ids = torch.full((len(idx), width), pad, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for row, i in enumerate(idx):  # left padding: every prompt ends at the last column
                    p = prompts[i]
                    ids[row, width - len(p):] = torch.tensor(p)
                    mask[row, width - len(p):] = 1
                gen = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=self.max_new_tokens,
                                          do_sample=False, use_cache=True, pad_token_id=pad,
                                          eos_token_id=self.tok.eos_token_id)
                for row, i in enumerate(idx):
                    out[i] = self.tok.decode(gen[row, width:], skip_special_tokens=True).strip()
        return Predictions(labels=out)


    def nll(self, texts: Sequence[str], references: Sequence[str]) -> tuple[list[float], list[int]]:
        """Summed negative log-likelihood (nats) of each reference answer (with its end token) after its
        prompt, and how many tokens were scored: the inputs of the ``perplexity`` metric."""
        import torch

        from llmops.training.sft import encode_sft

        rows = [{"id": str(i), "text": t, "label": r} for i, (t, r) in enumerate(zip(texts, references, strict=True))]
        enc = encode_sft(rows, self.tok, max_length=self.max_length, template=self.template)
        order = _order([len(ids) for ids in enc["input_ids"]])
        nll, counts = [0.0] * len(rows), [0] * len(rows)
        pad = self.tok.pad_token_id
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                width = max(len(enc["input_ids"][i]) for i in idx)
                ids = torch.full((len(idx), width), pad, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                labels = torch.full((len(idx), width), -100, dtype=torch.long)
                for row, i in enumerate(idx):  # right padding: positions match training
                    n = len(enc["input_ids"][i])
                    ids[row, :n] = torch.tensor(enc["input_ids"][i])
                    mask[row, :n] = 1
                    labels[row, :n] = torch.tensor(enc["labels"][i])
                logits = self.model(input_ids=ids, attention_mask=mask).logits.float()[:, :-1]
                target = labels[:, 1:]
                losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100,
                                                           reduction="none")
                for row, i in enumerate(idx):
                    nll[i] = float(losses[row].sum())
                    counts[i] = int((target[row] != -100).sum())
        return nll, counts


def load_predictor(model: str | Path, *, task: str | None = None, **kw: Any) -> Any:
    """A predictor for a local model folder or an MLflow model URI (``models:/name/1``, ``runs:/...``)."""
    path = Path(str(model))
    if not path.is_dir():
        import mlflow

        path = Path(mlflow.artifacts.download_artifacts(str(model)))
        if (path / "model").is_dir():  # the transformers flavor: model/ and components/tokenizer/
            tok_dir = path / "components" / "tokenizer"
            path = _merge_flavor_dirs(path / "model", tok_dir)
    if task is None:
        import json

        archs = json.loads((path / "config.json").read_text()).get("architectures") or [""]
        task = "sft" if archs[0].endswith("ForCausalLM") else "classification"
    cls = GenerativePredictor if task == "sft" else ClassifierPredictor
    return cls.from_dir(path, **kw)


def _merge_flavor_dirs(model_dir: Path, tokenizer_dir: Path) -> Path:
    """The flavor keeps weights and tokenizer in two folders: the tokenizer files join the model's."""
    import shutil

    if tokenizer_dir.is_dir():
        for f in tokenizer_dir.iterdir():
            if f.is_file() and not (model_dir / f.name).exists():
                shutil.copy2(f, model_dir / f.name)
    return model_dir


def predict_one_by_one(predictor: Any, texts: Sequence[str]) -> list[str]:
    """The per-example baseline: one forward pass (or generate call) per text, no batching."""
    return [predictor.predict([t]).labels[0] for t in texts]
