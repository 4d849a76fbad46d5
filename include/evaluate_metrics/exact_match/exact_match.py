"""Exact match after light normalisation (strip, casefold, collapse whitespace)."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """\
Exact match is the fraction of predictions that equal their reference after both are normalised:
leading/trailing whitespace is stripped, every run of whitespace becomes a single space, and the text is
casefolded (a stronger, Unicode-aware lower-casing). Punctuation and accents are kept.
The score lies in [0, 1].
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): predicted texts.
    references (`list` of `str`): reference texts.
Returns:
    exact_match (`float`): fraction of normalised predictions equal to their normalised reference.
Examples:
    >>> em = evaluate.load("include/evaluate_metrics/exact_match")
    >>> em.compute(predictions=["  Refund  please"], references=["refund please"])
    {'exact_match': 1.0}
"""

_CITATION = """\
@inproceedings{rajpurkar-etal-2016-squad,
  title={{SQ}u{AD}: 100,000+ Questions for Machine Comprehension of Text},
  author={Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy},
  booktitle={Proceedings of the 2016 Conference on Empirical Methods in Natural Language Processing},
  pages={2383--2392},
  year={2016}
}
"""


def normalise(text):
    """Strip, collapse internal whitespace to one space and casefold."""
    return " ".join(text.split()).casefold()


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ExactMatch(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
            reference_urls=["https://rajpurkar.github.io/SQuAD-explorer/"],
        )

    def _compute(self, predictions, references):
        matches = [normalise(p) == normalise(r) for p, r in zip(predictions, references, strict=True)]
        return {"exact_match": float(np.mean(matches)) if matches else 0.0}
