"""sft: prompt masking and prompt-side truncation, padding, a tiny instruction tuning run, and
LoRA adapters merged into plain models (causal LM and classifier) that give the same outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.training.sft import (
    DEFAULT_TEMPLATE,
    apply_lora,
    encode_sft,
    generate_label,
    merge_lora,
    sft_collator,
)
from tests._tiny_models import build_tiny_causal_lm, build_tiny_classifier

LABELS = ["billing", "refund", "shipping"]
WORDS = {"billing": ["charged twice", "invoice wrong", "card billed"],
         "refund": ["money back", "return it", "refund please"],
         "shipping": ["parcel late", "courier lost", "where is box"]}
ROWS = [{"id": f"r{i:02d}", "text": f"hi, {WORDS[lab][i % 3]} order {i}", "label": lab, "lang": "en",
         "source": "email"}
        for i, lab in enumerate(LABELS[j % 3] for j in range(21))]


def _corpus() -> list[str]:
    return [DEFAULT_TEMPLATE.format(text=r["text"]) + r["label"] for r in ROWS] * 3


def _args(out: Path, steps: int, lr: float):
    from transformers import TrainingArguments

    return TrainingArguments(output_dir=str(out), max_steps=steps, learning_rate=lr, per_device_train_batch_size=8,
                             per_device_eval_batch_size=32, logging_steps=1, save_strategy="no", use_cpu=True,
                             report_to=[], disable_tqdm=True, seed=0, warmup_steps=0, weight_decay=0.0)


def _dataset(enc: dict):
    from datasets import Dataset

    return Dataset.from_dict(enc)


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-llama"), _corpus())


@pytest.fixture()
def tok(lm_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(lm_dir, local_files_only=True)


def _split(labels: list[int]) -> int:
    """Index of the first learned position; every position before it must be masked."""
    k = next(i for i, lab in enumerate(labels) if lab != -100)
    assert all(lab != -100 for lab in labels[k:])
    return k


def test_tiny_tokenizer_is_small_and_has_its_special_tokens(tok):
    assert 250 <= len(tok) <= 500
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<s>", "</s>", "<pad>")
    assert len({tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}) == 3


def test_labels_mask_exactly_the_prompt(tok):
    rows = ROWS[:5]
    enc = encode_sft(rows, tok, max_length=128)
    assert len(enc["input_ids"]) == len(rows)
    for row, ids, mask, labels in zip(rows, enc["input_ids"], enc["attention_mask"], enc["labels"], strict=True):
        assert len(ids) == len(mask) == len(labels) and set(mask) == {1}
        k = _split(labels)
        assert labels[k:] == ids[k:]
        assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
        assert tok.decode(ids[:k]) == "<s>" + DEFAULT_TEMPLATE.format(text=row["text"])
        assert tok.decode(ids[k:]) == row["label"] + tok.eos_token
        assert ids[-1] == tok.eos_token_id


def test_custom_template_and_bad_template(tok):
    enc = encode_sft(ROWS[:1], tok, max_length=128, template="Q: {text}\nA:")
    k = _split(enc["labels"][0])
    assert tok.decode(enc["input_ids"][0][:k]) == f"<s>Q: {ROWS[0]['text']}\nA:"
    with pytest.raises(ValueError, match="exactly once"):
        encode_sft(ROWS[:1], tok, max_length=128, template="no placeholder")


def test_long_text_is_cut_on_the_prompt_side_and_keeps_the_response(tok):
    long = {"id": "long", "text": " ".join(f"word{i}" for i in range(200)), "label": "shipping"}
    short = ROWS[0]
    enc = encode_sft([long, short], tok, max_length=48)
    ids, labels = enc["input_ids"][0], enc["labels"][0]
    assert len(ids) == 48 and len(tok.encode(long["text"], add_special_tokens=False)) > 48
    k = _split(labels)
    assert tok.decode(ids[k:]) == "shipping" + tok.eos_token
    prompt = tok.decode(ids[:k])
    head, tail = "<s>### Message:\n", "\n### Intent:\n"
    assert prompt.startswith(head) and prompt.endswith(tail)
    kept = prompt[len(head):-len(tail)]
    assert kept and long["text"].startswith(kept) and len(kept) < len(long["text"])
    # a row that fits is encoded as without the limit
    assert enc["input_ids"][1] == encode_sft([short], tok, max_length=1000)["input_ids"][0]


def test_a_response_longer_than_max_length_raises(tok):
    row = {"id": "x", "text": "hi", "label": " ".join(["refund"] * 30)}
    with pytest.raises(ValueError, match=r"'x'.*response"):
        encode_sft([row], tok, max_length=16)
    with pytest.raises(ValueError, match="template"):  # the response fits, the template does not
        encode_sft([{"id": "y", "text": "hi", "label": "refund"}], tok, max_length=8)


def test_collator_right_pads_with_pad_id_and_ignored_labels(lm_dir, tok):
    import torch
    from transformers import AutoModelForCausalLM

    enc = encode_sft([ROWS[0], {"id": "l", "text": ROWS[1]["text"] * 4, "label": "refund"}], tok, max_length=128)
    feats = [{k: enc[k][i] for k in enc} for i in range(2)]
    n0, n1 = len(feats[0]["input_ids"]), len(feats[1]["input_ids"])
    assert n0 < n1
    batch = sft_collator(tok)(feats)
    assert {k: tuple(v.shape) for k, v in batch.items()} == {k: (2, n1) for k in enc}
    assert batch["input_ids"][0, :n0].tolist() == feats[0]["input_ids"]
    assert batch["input_ids"][0, n0:].tolist() == [tok.pad_token_id] * (n1 - n0)
    assert batch["attention_mask"][0].tolist() == [1] * n0 + [0] * (n1 - n0)
    assert batch["labels"][0].tolist() == feats[0]["labels"] + [-100] * (n1 - n0)
    assert batch["input_ids"][1].tolist() == feats[1]["input_ids"] and batch["labels"].dtype == torch.long

    # padding changes nothing: the loss of the short example alone equals its loss padded to n1
    model = AutoModelForCausalLM.from_pretrained(lm_dir, local_files_only=True).eval()
    alone = sft_collator(tok)(feats[:1])
    padded = {k: v[:1] for k, v in batch.items()}
    with torch.no_grad():
        assert torch.allclose(model(**alone).loss, model(**padded).loss, atol=1e-5)


def test_collator_uses_eos_when_the_tokenizer_has_no_pad(lm_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(lm_dir, local_files_only=True)
    tok.pad_token = None
    assert tok.pad_token_id is None
    enc = encode_sft(ROWS[:2], tok, max_length=128)
    batch = sft_collator(tok)([{"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [-100, 6, 7]},
                               {k: enc[k][0] for k in enc}])
    assert tok.pad_token == tok.eos_token
    assert batch["input_ids"][0, 3:].unique().tolist() == [tok.eos_token_id]
    assert batch["labels"][0, 3:].unique().tolist() == [-100]


def test_tiny_sft_run_lowers_the_masked_loss_and_generates_labels(lm_dir, tok, tmp_path):
    from transformers import AutoModelForCausalLM, Trainer, set_seed

    set_seed(0)
    model = AutoModelForCausalLM.from_pretrained(lm_dir, local_files_only=True)
    ds = _dataset(encode_sft(ROWS, tok, max_length=64))
    trainer = Trainer(model=model, args=_args(tmp_path, 30, 1e-2), train_dataset=ds, eval_dataset=ds,
                      data_collator=sft_collator(tok), processing_class=tok)
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 30 and losses[-1] < losses[0]
    assert after < 0.5 * before, (before, after)
    model.train()
    predicted = [generate_label(model, tok, r["text"]) for r in ROWS[:6]]
    assert sum(p == r["label"] for p, r in zip(predicted, ROWS, strict=False)) >= 5, predicted
    assert model.training  # generate_label ran in eval mode and restored the mode it found


def _train_few_steps(model, ds, collator, out: Path, steps: int = 4, tok=None):
    from transformers import Trainer

    trainer = Trainer(model=model, args=_args(out, steps, 5e-2), train_dataset=ds, data_collator=collator,
                      processing_class=tok)
    trainer.train()
    return trainer


def _n_params(model) -> tuple[int, int]:
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def test_lora_causal_lm_merges_into_a_plain_model_with_the_same_outputs(lm_dir, tok, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

    set_seed(0)
    base = AutoModelForCausalLM.from_pretrained(lm_dir, local_files_only=True)
    model = apply_lora(base, r=4, alpha=8, dropout=0.0, task="sft")
    trainable, total = _n_params(model)
    assert 0 < trainable < 0.2 * total
    assert not any(p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)
    lora_targets = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in model.named_parameters() if ".lora_A" in n}
    assert lora_targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

    trainer = _train_few_steps(model, _dataset(encode_sft(ROWS, tok, max_length=64)), sft_collator(tok), tmp_path,
                               tok=tok)  # the adapter folder gets the tokenizer, as in training
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)  # adapters moved
    adapter = tmp_path / "adapter"
    trainer.save_model(str(adapter))
    assert (adapter / "adapter_config.json").exists() and (adapter / "tokenizer.json").exists()

    out = merge_lora(adapter, tmp_path / "merged", task="sft")
    assert (out / "model.safetensors").exists() and not (out / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    assert not any("lora" in n for n, _ in merged.named_parameters())
    plain = AutoModelForCausalLM.from_pretrained(lm_dir, local_files_only=True).eval()
    ids = torch.tensor([encode_sft(ROWS[:1], tok, max_length=64)["input_ids"][0]])
    model.eval()
    with torch.no_grad():
        want, got, orig = model(input_ids=ids).logits, merged(input_ids=ids).logits, plain(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-4)
    assert not torch.allclose(orig, want, atol=1e-3)  # the merge carried the training
    assert AutoTokenizer.from_pretrained(out, local_files_only=True).encode("refund") == tok.encode("refund")


def test_lora_classifier_trains_its_head_and_merges_with_the_same_logits(tmp_path):
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        set_seed,
    )

    base_dir = build_tiny_classifier(tmp_path / "tiny-bert", [r["text"] for r in ROWS], num_labels=2)
    tok = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    id2label, label2id = dict(enumerate(LABELS)), {lab: i for i, lab in enumerate(LABELS)}
    kwargs = {"num_labels": 3, "id2label": id2label, "label2id": label2id}
    set_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(base_dir, local_files_only=True,
                                                              ignore_mismatched_sizes=True, **kwargs)
    model = apply_lora(base, r=4, alpha=8, dropout=0.0, task="classification")
    trainable, total = _n_params(model)
    assert 0 < trainable < 0.5 * total
    head = {n for n, p in model.named_parameters() if p.requires_grad and "classifier" in n}
    assert head and all("modules_to_save" in n for n in head)
    assert not any(p.requires_grad for n, p in model.named_parameters()
                   if "lora_" not in n and "classifier" not in n)

    enc = tok([r["text"] for r in ROWS], truncation=True, max_length=32)
    ds = _dataset({**enc, "labels": [label2id[r["label"]] for r in ROWS]})
    trainer = _train_few_steps(model, ds, DataCollatorWithPadding(tok), tmp_path)
    adapter = tmp_path / "adapter"
    trainer.save_model(str(adapter))

    out = merge_lora(adapter, tmp_path / "merged", task="classification", **kwargs)
    merged = AutoModelForSequenceClassification.from_pretrained(out, local_files_only=True).eval()
    assert merged.config.id2label == id2label and merged.config.num_labels == 3
    batch = tok([r["text"] for r in ROWS[:4]], padding=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        want, got = model(**batch).logits, merged(**batch).logits
    assert want.shape == (4, 3)
    assert torch.allclose(got, want, atol=1e-4)


def test_apply_lora_rejects_an_unknown_task(lm_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(lm_dir, local_files_only=True)
    with pytest.raises(ValueError, match="task must be one of"):
        apply_lora(model, task="seq2seq")
