"""Corpus chrF / chrF++ computed by sacrebleu (0-100 scale)."""

import datasets
import evaluate
import sacrebleu

_DESCRIPTION = """\
chrF (Popovic, 2015) is the character n-gram F-score (n = 1..6, recall weighted by beta = 2) over the whole
corpus; with `word_order=2` it is chrF++ (Popovic, 2017), which adds word uni- and bigrams. It is computed
with sacrebleu's `corpus_chrf` on a 0-100 scale. Being character-based it is robust to inflection, which
makes it a better fit than BLEU for short or morphologically rich (e.g. Spanish) outputs. Each prediction may
have one reference or a list of references.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): hypotheses.
    references (`list` of `str` or `list` of `list` of `str`): one reference, or several, per hypothesis.
    char_order (`int`, *optional*): character n-gram order, default 6.
    word_order (`int`, *optional*): word n-gram order, default 0 (2 gives chrF++).
    beta (`int`, *optional*): recall weight, default 2.
    remove_whitespace (`bool`, *optional*): ignore whitespace in character n-grams, default True.
    eps_smoothing (`bool`, *optional*): use epsilon smoothing as in the reference implementation.
Returns:
    chrf (`float`): corpus chrF, 0-100.
Examples:
    >>> chrf = evaluate.load("include/evaluate_metrics/chrf")
    >>> chrf.compute(predictions=["the cat sat"], references=[["the cat sat"]])
    {'chrf': 100.0}
"""

_CITATION = """\
@inproceedings{popovic-2015-chrf,
  title={chr{F}: character n-gram {F}-score for automatic {MT} evaluation},
  author={Popovi{\\'c}, Maja},
  booktitle={Proceedings of the Tenth Workshop on Statistical Machine Translation},
  pages={392--395},
  year={2015}
}
@inproceedings{popovic-2017-chrf,
  title={chr{F}++: words helping character n-grams},
  author={Popovi{\\'c}, Maja},
  booktitle={Proceedings of the Second Conference on Machine Translation},
  pages={612--618},
  year={2017}
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
class ChrF(evaluate.Metric):
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
            reference_urls=["https://aclanthology.org/W15-3049/", "https://aclanthology.org/W17-4770/"],
        )

    def _compute(self, predictions, references, char_order=6, word_order=0, beta=2, remove_whitespace=True,
                 eps_smoothing=False):
        score = sacrebleu.corpus_chrf(
            list(predictions), reference_streams(references), char_order=char_order, word_order=word_order,
            beta=beta, remove_whitespace=remove_whitespace, eps_smoothing=eps_smoothing,
        )
        return {"chrf": float(score.score)}
