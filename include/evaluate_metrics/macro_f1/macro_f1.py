"""Macro-averaged F1 with per-class precision, recall and F1."""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import precision_recall_fscore_support

_DESCRIPTION = """\
Macro F1 is the unweighted mean of the per-class F1 scores (F1 = 2 * precision * recall / (precision +
recall)), so every class counts the same however rare it is. The classes are the union of the labels seen in
the references and the predictions (or the `labels` argument). A class that is never predicted, or never
present, gets precision/recall 0 rather than a warning. Per-class precision, recall, F1 and support are
returned under `per_class`, keyed by `str(label)`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int` or `str`): predicted labels.
    references (`list` of `int` or `str`): reference labels.
    labels (`list`, *optional*): the classes to average over, in order; defaults to the sorted union of
        the labels in `references` and `predictions`.
Returns:
    macro_f1 (`float`): mean per-class F1, in [0, 1].
    macro_precision (`float`): mean per-class precision.
    macro_recall (`float`): mean per-class recall.
    per_class (`dict`): `{str(label): {"precision", "recall", "f1", "support"}}`.
Examples:
    >>> f1 = evaluate.load("include/evaluate_metrics/macro_f1")
    >>> f1.compute(predictions=["a", "a", "b"], references=["a", "b", "b"])["macro_f1"]
    0.6666666666666666
"""

_CITATION = """\
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and Varoquaux, G. and Gramfort, A. and Michel, V. and Thirion, B. and Grisel, O.
          and Blondel, M. and Prettenhofer, P. and Weiss, R. and Dubourg, V. and Vanderplas, J. and Passos, A.
          and Cournapeau, D. and Brucher, M. and Perrot, M. and Duchesnay, E.},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MacroF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": datasets.Value("string"),
                                   "references": datasets.Value("string")}),
                datasets.Features({"predictions": datasets.Value("int64"),
                                   "references": datasets.Value("int64")}),
            ],
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/"
                "sklearn.metrics.precision_recall_fscore_support.html"
            ],
        )

    def _compute(self, predictions, references, labels=None):
        if labels is None:
            labels = sorted(set(references) | set(predictions))
        labels = list(labels)
        precision, recall, f1, support = precision_recall_fscore_support(
            references, predictions, labels=labels, average=None, zero_division=0
        )
        per_class = {
            str(label): {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        }
        return {
            "macro_f1": float(np.mean(f1)),
            "macro_precision": float(np.mean(precision)),
            "macro_recall": float(np.mean(recall)),
            "per_class": per_class,
        }
