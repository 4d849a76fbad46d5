"""Tiny Hugging Face models built from a config, with tokenizers trained on the given texts.

Everything is made locally (nothing is downloaded) and saved with ``save_pretrained``, so the
folders load with the ordinary ``Auto*`` classes:

    from tests._tiny_models import build_tiny_causal_lm, build_tiny_classifier
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["build_tiny_causal_lm", "build_tiny_classifier"]


def build_tiny_causal_lm(dest: Path, texts: Sequence[str], *, vocab_size: int = 400, seed: int = 0) -> Path:
    """A tiny Llama (hidden 32, 2 layers, 2 heads) with a byte-level BPE tokenizer trained on ``texts``.

    Special tokens: ``<s>`` (bos), ``</s>`` (eos), ``<pad>`` (pad). Returns ``dest``.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<s>", "</s>", "<pad>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(list(texts), trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>")

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=256,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


def build_tiny_classifier(dest: Path, texts: Sequence[str], *, num_labels: int = 2, seed: int = 0) -> Path:
    """A tiny BERT sequence classifier (hidden 32, 2 layers, 2 heads) with a word-level tokenizer
    trained on ``texts`` (``[CLS] ... [SEP]`` added). Returns ``dest``."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    wl = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    wl.normalizer = normalizers.Lowercase()
    wl.pre_tokenizer = pre_tokenizers.Whitespace()
    wl.train_from_iterator(list(texts), trainers.WordLevelTrainer(special_tokens=specials, show_progress=False))
    wl.post_processor = processors.BertProcessing(("[SEP]", wl.token_to_id("[SEP]")),
                                                  ("[CLS]", wl.token_to_id("[CLS]")))
    tok = PreTrainedTokenizerFast(tokenizer_object=wl, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]")

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=num_labels,
                        pad_token_id=tok.pad_token_id)
    BertForSequenceClassification(config).save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest
