"""Expected calibration error over equal-width confidence bins."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """\
Expected calibration error (Naeini et al., 2015; Guo et al., 2017) measures how far a classifier's confidence
is from its accuracy. Confidences (the probability of the predicted class, i.e. the max softmax probability)
are put into `n_bins` equal-width bins over [0, 1], bin m holding confidences in ((m-1)/M, m/M] (0 goes in the
first bin); then ECE = sum_m |B_m| / n * |accuracy(B_m) - mean confidence(B_m)|. 0 is perfectly calibrated.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int` or `str`): predicted labels.
    references (`list` of `int` or `str`): reference labels.
    confidences (`list` of `float`): the model's probability for each predicted label, in [0, 1].
    n_bins (`int`, *optional*): number of equal-width bins, default 10.
Returns:
    ece (`float`): expected calibration error, in [0, 1].
    mce (`float`): maximum calibration error over the non-empty bins.
    accuracy (`float`), mean_confidence (`float`): over all examples.
Examples:
    >>> ece = evaluate.load("include/evaluate_metrics/ece")
    >>> ece.compute(predictions=[1, 0], references=[1, 1], confidences=[0.9, 0.6])["ece"]
    0.35
"""

_CITATION = """\
@inproceedings{naeini2015obtaining,
  title={Obtaining Well Calibrated Probabilities Using {B}ayesian Binning},
  author={Naeini, Mahdi Pakdaman and Cooper, Gregory F. and Hauskrecht, Milos},
  booktitle={Proceedings of the Twenty-Ninth AAAI Conference on Artificial Intelligence},
  pages={2901--2907},
  year={2015}
}
@inproceedings{guo2017calibration,
  title={On Calibration of Modern Neural Networks},
  author={Guo, Chuan and Pleiss, Geoff and Sun, Yu and Weinberger, Kilian Q.},
  booktitle={Proceedings of the 34th International Conference on Machine Learning},
  pages={1321--1330},
  year={2017}
}
"""


def calibration_errors(correct, confidences, n_bins=10):
    """(ECE, MCE) for per-example correctness (0/1) and confidences, with equal-width bins."""
    correct = np.asarray(correct, dtype=float)
    confidences = np.asarray(confidences, dtype=float)
    if correct.shape != confidences.shape:
        raise ValueError("correct and confidences must have the same length")
    if correct.size == 0:
        return 0.0, 0.0
    if np.any(confidences < 0) or np.any(confidences > 1) or np.any(np.isnan(confidences)):
        raise ValueError("confidences must lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], confidences, side="left")
    counts = np.bincount(bins, minlength=n_bins)
    acc = np.bincount(bins, weights=correct, minlength=n_bins)
    conf = np.bincount(bins, weights=confidences, minlength=n_bins)
    nonempty = counts > 0
    gaps = np.abs(acc[nonempty] - conf[nonempty]) / counts[nonempty]
    ece = float(np.sum(gaps * counts[nonempty]) / correct.size)
    return ece, float(gaps.max())


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ExpectedCalibrationError(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": datasets.Value("string"),
                                   "references": datasets.Value("string"),
                                   "confidences": datasets.Value("float64")}),
                datasets.Features({"predictions": datasets.Value("int64"),
                                   "references": datasets.Value("int64"),
                                   "confidences": datasets.Value("float64")}),
            ],
            reference_urls=["https://arxiv.org/abs/1706.04599"],
        )

    def _compute(self, predictions, references, confidences, n_bins=10):
        if int(n_bins) < 1:
            raise ValueError("n_bins must be at least 1")
        correct = np.asarray([p == r for p, r in zip(predictions, references, strict=True)], dtype=float)
        ece, mce = calibration_errors(correct, confidences, int(n_bins))
        return {
            "ece": ece,
            "mce": mce,
            "accuracy": float(correct.mean()) if correct.size else 0.0,
            "mean_confidence": float(np.mean(confidences)) if correct.size else 0.0,
        }
