"""ROUGE-1, ROUGE-2 and ROUGE-L F-measures (rouge-score), averaged over examples."""

import datasets
import evaluate
import numpy as np
from rouge_score import rouge_scorer

_DESCRIPTION = """\
ROUGE (Lin, 2004) measures n-gram overlap between a prediction and its reference: ROUGE-1 (unigrams),
ROUGE-2 (bigrams) and ROUGE-L (longest common subsequence). Each score here is the F-measure from Google's
`rouge-score` package, computed per example and averaged over the examples (scale 0-1). rouge-score's default
tokeniser lowercases and keeps only [a-z0-9] tokens, so accented letters split words. With several references
per example the best-scoring reference is used (per ROUGE type).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): predicted texts.
    references (`list` of `str` or `list` of `list` of `str`): one reference, or several, per prediction.
    use_stemmer (`bool`, *optional*): Porter-stem tokens before matching, default False.
Returns:
    rouge1, rouge2, rougeL (`float`): mean F-measure over the examples, in [0, 1].
Examples:
    >>> rouge = evaluate.load("include/evaluate_metrics/rouge")
    >>> rouge.compute(predictions=["the cat sat"], references=["the cat sat"])["rouge1"]
    1.0
"""

_CITATION = """\
@inproceedings{lin-2004-rouge,
  title={{ROUGE}: A Package for Automatic Evaluation of Summaries},
  author={Lin, Chin-Yew},
  booktitle={Text Summarization Branches Out},
  pages={74--81},
  year={2004}
}
"""

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Rouge(evaluate.Metric):
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
            codebase_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
            reference_urls=["https://aclanthology.org/W04-1013/"],
        )

    def _compute(self, predictions, references, use_stemmer=False):
        scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
        totals = {t: [] for t in ROUGE_TYPES}
        for pred, ref in zip(predictions, references, strict=True):
            if isinstance(ref, str):
                scores = scorer.score(ref, pred)
            else:
                if not ref:
                    raise ValueError("every prediction needs at least one reference")
                scores = scorer.score_multi(list(ref), pred)
            for t in ROUGE_TYPES:
                totals[t].append(scores[t].fmeasure)
        return {t: float(np.mean(v)) if v else 0.0 for t, v in totals.items()}
