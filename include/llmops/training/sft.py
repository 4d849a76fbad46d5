"""Instruction tuning (``model.task: sft``) of a causal LM, and LoRA adapters for both tasks.

An example is ``prompt + response``: the prompt is the template filled with the message text and
the response is the label followed by the end-of-sequence token. Only the response is learned:
the prompt's labels are -100. A text too long for ``max_length`` loses the end of its message,
never the template's tail nor the response. LoRA (peft) wraps either model type; after training
``merge_lora`` folds the adapters back into an ordinary ``save_pretrained`` folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_TEMPLATE", "IGNORE_INDEX", "SFTCollator", "apply_lora", "encode_sft", "generate_label",
           "merge_lora", "sft_collator"]

DEFAULT_TEMPLATE = "### Message:\n{text}\n### Intent:\n"
IGNORE_INDEX = -100  # labels with this value are left out of the loss
_MARK = "\x00"  # stands in for the text while the template is split into head and tail


def _template_parts(template: str) -> tuple[str, str]:
    filled = template.format(text=_MARK)
    if filled.count(_MARK) != 1:
        raise ValueError(f"prompt template must contain {{text}} exactly once: {template!r}")
    head, _, tail = filled.partition(_MARK)
    return head, tail


def _ids(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []


def _bos(tokenizer: Any) -> list[int]:
    return [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []


def _prompt_ids(tokenizer: Any, text: str, template: str, budget: int | None,
                full: list[int] | None = None) -> list[int]:
    """BOS (when the tokenizer has one) + the filled template, at most ``budget`` tokens: a longer
    prompt keeps the template's head and tail whole and the start of the message text."""
    head, tail = _template_parts(template)
    ids = _bos(tokenizer) + (full if full is not None else _ids(tokenizer, [template.format(text=text)])[0])
    if budget is None or len(ids) <= budget:
        return ids
    head_ids, text_ids, tail_ids = _ids(tokenizer, [head, text, tail])
    room = budget - len(_bos(tokenizer)) - len(head_ids) - len(tail_ids)
    if room < 0:
        raise ValueError(f"max_length leaves {budget} prompt tokens, fewer than the template alone needs "
                         f"({budget - room}); raise model.max_length or shorten the template")
    return _bos(tokenizer) + head_ids + text_ids[:room] + tail_ids


def encode_sft(rows: Iterable[Mapping[str, Any]], tokenizer: Any, *, max_length: int,
               template: str = DEFAULT_TEMPLATE) -> dict[str, list[list[int]]]:
    """Token ids, attention masks and labels of ``prompt + label + eos`` for each row.

    Prompt and response are tokenized separately (no special tokens; BOS is prepended once when
    the tokenizer has one), so the labels are -100 on exactly the prompt positions. Examples
    longer than ``max_length`` are shortened in the message text; a response that does not fit
    on its own raises ``ValueError``.
    """
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos token; sft needs one to end each response")
    rows = list(rows)
    texts = [str(r["text"]) for r in rows]
    responses = [ids + [tokenizer.eos_token_id] for ids in _ids(tokenizer, [str(r["label"]) for r in rows])]
    prompts = _ids(tokenizer, [template.format(text=t) for t in texts])
    out: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "labels": []}
    for row, text, full, response in zip(rows, texts, prompts, responses, strict=True):
        if len(response) + len(_bos(tokenizer)) >= max_length:
            raise ValueError(f"row {row.get('id', '?')!r}: the response {row['label']!r} is {len(response)} tokens "
                             f"(with eos), which leaves no room for a prompt in max_length={max_length}")
        prompt = _prompt_ids(tokenizer, text, template, max_length - len(response), full=full)
        ids = prompt + response
        out["input_ids"].append(ids)
        out["attention_mask"].append([1] * len(ids))
        out["labels"].append([IGNORE_INDEX] * len(prompt) + response)
    return out


@dataclass
class SFTCollator:
    """Right-pads a batch: input_ids with ``pad_token_id``, attention_mask with 0, labels with -100."""

    pad_token_id: int

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)

        def pad(key: str, value: int) -> torch.Tensor:
            return torch.tensor([list(f[key]) + [value] * (width - len(f[key])) for f in features], dtype=torch.long)

        return {"input_ids": pad("input_ids", self.pad_token_id), "attention_mask": pad("attention_mask", 0),
                "labels": pad("labels", IGNORE_INDEX)}


def sft_collator(tokenizer: Any) -> SFTCollator:
    """The batch collator for ``encode_sft`` examples. A tokenizer without a pad token gets
    ``pad_token = eos_token`` (set on the tokenizer, so it is saved with it); padded positions are
    masked and labelled -100, so a real eos inside a response is still learned."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return SFTCollator(pad_token_id=int(tokenizer.pad_token_id))


def _task_type(task: str) -> Any:
    from peft import TaskType

    types = {"classification": TaskType.SEQ_CLS, "sft": TaskType.CAUSAL_LM}
    if task not in types:
        raise ValueError(f"task must be one of {sorted(types)}, not {task!r}")
    return types[task]


def apply_lora(model: Any, *, r: int = 8, alpha: int = 16, dropout: float = 0.05,
               target_modules: list[str] | str = "all-linear", task: str) -> Any:
    """Wrap ``model`` in LoRA adapters (a peft model; only the adapters are trainable).

    For classification peft also trains and saves the head (a module named ``classifier`` or
    ``score``); a model whose head has another name is refused rather than trained with a
    random, frozen head.
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(task_type=_task_type(task), r=r, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=target_modules if isinstance(target_modules, str) else list(target_modules))
    peft_model = get_peft_model(model, config)
    if task == "classification":
        head = [n for n, p in peft_model.named_parameters() if p.requires_grad and "modules_to_save" in n]
        if not head:
            raise ValueError(f"{type(model).__name__}: no classification head named `classifier` or `score` to "
                             "train alongside the LoRA adapters")
    return peft_model


def merge_lora(adapter_dir: str | Path, out_dir: str | Path, *, task: str, base_model: str | Path | None = None,
               **base_kwargs: Any) -> Path:
    """Merge a saved LoRA adapter into its base model; save the result (safetensors) and the
    tokenizer to ``out_dir`` so that it loads with plain ``AutoModelFor*.from_pretrained``.

    The base model is ``base_model`` or the one named in ``adapter_config.json``, loaded from local
    files. ``base_kwargs`` go to its ``from_pretrained``: for a classifier pass the ``num_labels``,
    ``id2label`` and ``label2id`` used in training (the head's weights come from the adapter).
    """
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    _task_type(task)
    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    peft_config = PeftConfig.from_pretrained(str(adapter_dir))
    base = str(base_model or peft_config.base_model_name_or_path)
    if task == "classification":
        base_kwargs.setdefault("ignore_mismatched_sizes", True)  # a resized head: replaced by the adapter's
        model = AutoModelForSequenceClassification.from_pretrained(base, local_files_only=True, **base_kwargs)
    else:
        model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, **base_kwargs)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out_dir)
    tok_source = adapter_dir if (adapter_dir / "tokenizer_config.json").exists() else base
    AutoTokenizer.from_pretrained(str(tok_source), local_files_only=True).save_pretrained(out_dir)
    return out_dir


def generate_label(model: Any, tokenizer: Any, text: str, *, template: str = DEFAULT_TEMPLATE,
                   max_new_tokens: int = 8, max_length: int | None = None) -> str:
    """Greedy-decode the response to one message (the prompt encoded as in ``encode_sft``; with
    ``max_length``, shortened to leave room for ``max_new_tokens``). Runs in eval mode and puts the
    model back in the mode it was in."""
    import torch

    budget = None if max_length is None else max_length - max_new_tokens
    ids = torch.tensor([_prompt_ids(tokenizer, text, template, budget)], device=model.device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, eos_token_id=tokenizer.eos_token_id, pad_token_id=pad)
    finally:
        model.train(was_training)
    return str(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)).strip()
