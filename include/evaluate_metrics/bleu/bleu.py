"""Corpus BLEU computed by sacrebleu (0-100 scale)."""

import datasets
import evaluate
import sacrebleu

_DESCRIPTION = """\
BLEU (Papineni et al., 2002) is the geometric mean of modified n-gram precisions (n = 1..4) over the whole
corpus, times a brevity penalty for hypotheses shorter than the references. It is computed with sacrebleu's
`corpus_bleu` (default 13a tokenisation, exponential smoothing), so scores are comparable with published
sacrebleu numbers, on a 0-100 scale. Each prediction may have one reference or a list of references; lists
may differ in length (missing references are ignored).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): hypotheses.
    references (`list` of `str` or `list` of `list` of `str`): one reference, or several, per hypothesis.
    tokenize (`str`, *optional*): sacrebleu tokeniser, default "13a".
    lowercase (`bool`, *optional*): lowercase before scoring, default False.
    smooth_method (`str`, *optional*): "exp" (default), "floor", "add-k" or "none".
    smooth_value (`float`, *optional*): smoothing value for "floor" / "add-k".
    use_effective_order (`bool`, *optional*): ignore n-gram orders with no matches (for sentence-level use).
Returns:
    bleu (`float`): corpus BLEU, 0-100.
    precision_1 .. precision_4 (`float`): modified n-gram precisions, 0-100.
    brevity_penalty (`float`), length_ratio (`float`), sys_len (`float`), ref_len (`float`).
Examples:
    >>> bleu = evaluate.load("include/evaluate_metrics/bleu")
    >>> bleu.compute(predictions=["the cat sat on the mat"], references=["the cat sat on the mat"])["bleu"]
    100.00000000000004
"""

_CITATION = """\
@inproceedings{papineni-etal-2002-bleu,
  title={{B}leu: a Method for Automatic Evaluation of Machine Translation},
  author={Papineni, Kishore and Roukos, Salim and Ward, Todd and Zhu, Wei-Jing},
  booktitle={Proceedings of the 40th Annual Meeting of the Association for Computational Linguistics},
  pages={311--318},
  year={2002}
}
@inproceedings{post-2018-call,
  title={A Call for Clarity in Reporting {BLEU} Scores},
  author={Post, Matt},
  booktitle={Proceedings of the Third Conference on Machine Translation: Research Papers},
  pages={186--191},
  year={2018}
}
"""


def reference_streams(references):
    """Per-hypothesis references -> sacrebleu's reference streams (one list per reference position)."""
    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    width = max((len(r) for r in refs), default=0)
    if any(len(r) == 0 for r in refs):
        raise ValueError("every prediction needs at least one reference")
    return [[r[i] if i < len(r) else None for r in refs] for i in range(width)]


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Bleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": datasets.Value("string"),
                                   "references": datasets.Sequence(datasets.Value("string"))}),
                datasets.Features({"predictions": datasets.Value("string"),
                                   "references": datasets.Value("string")}),
            ],
            codebase_urls=["https://github.com/mjpost/sacrebleu"],
            reference_urls=["https://aclanthology.org/P02-1040/", "https://aclanthology.org/W18-6319/"],
        )

    def _compute(self, predictions, references, tokenize="13a", lowercase=False, smooth_method="exp",
                 smooth_value=None, use_effective_order=False):
        score = sacrebleu.corpus_bleu(
            list(predictions), reference_streams(references), smooth_method=smooth_method,
            smooth_value=smooth_value, lowercase=lowercase, tokenize=tokenize,
            use_effective_order=use_effective_order,
        )
        out = {"bleu": float(score.score)}
        out.update({f"precision_{n}": float(p) for n, p in enumerate(score.precisions, start=1)})
        out.update({
            "brevity_penalty": float(score.bp),
            "length_ratio": float(score.ratio),
            "sys_len": float(score.sys_len),
            "ref_len": float(score.ref_len),
        })
        return out
