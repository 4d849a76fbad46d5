"""Why the model decided: per-token attributions by integrated gradients (captum).

For a sample of the suite's errors and a few examples of every slice, :func:`explain` attributes
the model's *predicted* label to the input tokens with captum's ``LayerIntegratedGradients`` over
the token-embedding layer:

* classifiers: the logit of the predicted class; the baseline keeps the special tokens
  (``[CLS]``/``[SEP]``) and replaces every other token by padding;
* generative models: the logit of the first generated token at the end of the prompt; only the
  message's tokens are attributed (the prompt template stays in the baseline).

Scores are summed over the embedding dimension and scaled by the largest magnitude of the example,
so ``+1`` is the token that pushed hardest towards the prediction and ``-1`` the one that pushed
hardest against it. The completeness gap of the path integral (captum's convergence delta) is kept
per example: a large one means more ``steps`` are needed.

Examples come from the golden set, which holds redacted text only. Even so each selected text is
scanned with the pipeline's PII analyzer first; one with a finding is left out and only counted,
so the report never shows personal data a golden set let through.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

__all__ = ["attribute_classifier", "attribute_generative", "explain", "select_examples"]


def _order_key(item_id: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{item_id}".encode()).hexdigest()


def _slice_value(row: dict[str, Any], field: str) -> Any:
    if field.startswith("meta."):
        return (row.get("meta") or {}).get(field[5:])
    return row.get(field)


def select_examples(rows: Sequence[dict[str, Any]], preds: Sequence[str], refs: Sequence[str], *, by: Sequence[str],
                    errors: int, per_slice: int, seed: int = 0) -> list[dict[str, Any]]:
    """Which golden items to explain: up to ``errors`` misclassified items, then up to ``per_slice``
    items of every slice value not yet chosen. The order inside each group is a seeded hash of the
    item id, so the choice is spread over the set and the same on every run.

    Returns ``[{"index": i, "reasons": ["error", "slice lang=es", ...]}, ...]``."""
    chosen: dict[int, list[str]] = {}
    ranked = sorted(range(len(rows)), key=lambda i: _order_key(str(rows[i].get("id", i)), seed))
    for i in [i for i in ranked if preds[i] != refs[i]][: max(0, errors)]:
        chosen.setdefault(i, []).append("error")
    for field in by:
        values = sorted({str(v) for v in (_slice_value(r, field) for r in rows) if v is not None})
        for value in values:
            members = [i for i in ranked if str(_slice_value(rows[i], field)) == value]
            taken = [i for i in members if i in chosen]
            for i in taken[: max(0, per_slice)]:
                chosen[i].append(f"slice {field}={value}")
            for i in [i for i in members if i not in chosen][: max(0, per_slice - len(taken))]:
                chosen[i] = [f"slice {field}={value}"]
    return [{"index": i, "reasons": reasons} for i, reasons in chosen.items()]


def _scaled(values: Any) -> list[float]:
    peak = float(values.abs().max()) if values.numel() else 0.0
    return [round(float(v) / peak, 4) if peak > 0 else 0.0 for v in values]


def _pieces(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """Each token as the text it stands for (``##ing`` / ``Ġword`` shown as ``ing`` / `` word``)."""
    return [tokenizer.decode([int(i)], clean_up_tokenization_spaces=False) for i in ids]


def attribute_classifier(model: Any, tokenizer: Any, texts: Sequence[str], *, steps: int = 32,
                         max_length: int = 256) -> list[dict[str, Any]]:
    """Integrated-gradients attributions of each text's predicted class, per token."""
    import torch
    from captum.attr import LayerIntegratedGradients

    model.eval()

    def forward(input_ids: Any, attention_mask: Any) -> Any:
        return model(input_ids=input_ids, attention_mask=attention_mask).logits

    lig = LayerIntegratedGradients(forward, model.get_input_embeddings())
    special = set(tokenizer.all_special_ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    classes = [str((model.config.id2label or {}).get(i, i)) for i in range(model.config.num_labels)]
    out = []
    with torch.enable_grad():
        for text in texts:
            enc = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
            ids, mask = enc["input_ids"], enc["attention_mask"]
            with torch.no_grad():
                target = int(forward(ids, mask).argmax(-1))
            base = torch.tensor([[t if t in special else pad for t in ids[0].tolist()]], dtype=torch.long)
            attrs, delta = lig.attribute(ids, baselines=base, additional_forward_args=(mask,), target=target,
                                         n_steps=steps, internal_batch_size=steps, return_convergence_delta=True)
            scores = attrs.sum(-1)[0].detach()
            keep = [k for k, t in enumerate(ids[0].tolist()) if t not in special]
            out.append({"target": classes[target], "tokens": _pieces(tokenizer, [ids[0, k] for k in keep]),
                        "scores": _scaled(scores[keep]), "delta": round(abs(float(delta)), 4)})
    return out


def _text_span(prompt: Sequence[int], empty: Sequence[int]) -> tuple[int, int]:
    """Where the message sits in ``prompt``: what is left after the longest common prefix and suffix
    with the prompt of an empty message."""
    start = 0
    while start < min(len(prompt), len(empty)) and prompt[start] == empty[start]:
        start += 1
    tail = 0
    while (tail < min(len(prompt), len(empty)) - start and prompt[len(prompt) - 1 - tail] == empty[len(empty) - 1 - tail]):
        tail += 1
    return start, len(prompt) - tail


def attribute_generative(predictor: Any, texts: Sequence[str], *, steps: int = 32) -> list[dict[str, Any]]:
    """Integrated-gradients attributions of the first generated token to the message's tokens."""
    import torch
    from captum.attr import LayerIntegratedGradients

    model, tok = predictor.model.eval(), predictor.tok

    def forward(input_ids: Any) -> Any:
        return model(input_ids=input_ids).logits[:, -1, :]

    lig = LayerIntegratedGradients(forward, model.get_input_embeddings())
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    empty = predictor._prompt_ids([""])[0]
    out = []
    with torch.enable_grad():
        for prompt in predictor._prompt_ids(list(texts)):
            ids = torch.tensor([prompt], dtype=torch.long)
            start, end = _text_span(prompt, empty)
            with torch.no_grad():
                target = int(forward(ids).argmax(-1))
            base = ids.clone()
            base[0, start:end] = pad
            attrs, delta = lig.attribute(ids, baselines=base, target=target, n_steps=steps,
                                         internal_batch_size=steps, return_convergence_delta=True)
            scores = attrs.sum(-1)[0].detach()[start:end]
            out.append({"target": tok.decode([target]).strip(), "tokens": _pieces(tok, prompt[start:end]),
                        "scores": _scaled(scores), "delta": round(abs(float(delta)), 4)})
    return out


def explain(predictor: Any, rows: Sequence[dict[str, Any]], preds: Sequence[str], refs: Sequence[str], *,
            by: Sequence[str], errors: int = 8, per_slice: int = 2, steps: int = 32, redactor: Any = None,
            seed: int = 0) -> dict[str, Any]:
    """Attributions for the selected golden items, as the report shows them.

    Returns ``{"method", "steps", "examples": [{"id", "reasons", "label", "prediction", "tokens",
    "scores", "delta"}], "withheld": n}``; ``withheld`` counts selected items left out because the
    PII analyzer found something in their text."""
    picked = select_examples(rows, preds, refs, by=by, errors=errors, per_slice=per_slice, seed=seed)
    withheld = 0
    if picked and redactor is not None:
        from llmops.evaluation.pii_probe import pii_leak_probe

        scan = pii_leak_probe([rows[p["index"]]["text"] for p in picked], redactor,
                              langs=[rows[p["index"]].get("lang") for p in picked], max_examples=len(picked))
        flagged = set(scan["examples"])
        withheld = len(flagged)
        picked = [p for k, p in enumerate(picked) if k not in flagged]
    texts = [str(rows[p["index"]]["text"]) for p in picked]
    if getattr(predictor, "task", "classification") == "sft":
        attributions = attribute_generative(predictor, texts, steps=steps)
    else:
        attributions = attribute_classifier(predictor.model, predictor.tok, texts, steps=steps,
                                            max_length=getattr(predictor, "max_length", 256))
    examples = []
    for p, a in zip(picked, attributions, strict=True):
        i = p["index"]
        examples.append({"id": str(rows[i].get("id", i)), "reasons": p["reasons"], "label": refs[i],
                         "prediction": preds[i], **a})
    return {"method": "integrated_gradients (captum LayerIntegratedGradients on token embeddings)",
            "steps": steps, "examples": examples, "withheld": withheld}
