"""Perplexity from per-example summed negative log-likelihoods and token counts."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """\
Perplexity is exp of the mean per-token negative log-likelihood (natural log) over the whole corpus:
perplexity = exp(sum_i nll_i / sum_i n_tokens_i), where nll_i is the summed NLL of example i's scored tokens
and n_tokens_i how many tokens were scored. Token-weighted pooling (rather than averaging per-example
perplexities) is what language-model evaluations report. Computing the NLL is up to the caller (e.g. the
summed cross-entropy of a causal LM over the target tokens); this module only aggregates.
"""

_KWARGS_DESCRIPTION = """
Args:
    nll (`list` of `float`): summed negative log-likelihood (nats) of each example's scored tokens.
    n_tokens (`list` of `int`): number of scored tokens in each example.
Returns:
    perplexity (`float`): exp(total NLL / total tokens).
    nll_per_token (`float`): total NLL / total tokens (nats).
    n_tokens (`float`): total tokens scored.
Examples:
    >>> ppl = evaluate.load("include/evaluate_metrics/perplexity")
    >>> round(ppl.compute(nll=[2 * math.log(50), 3 * math.log(50)], n_tokens=[2, 3])["perplexity"], 6)
    50.0
"""

_CITATION = """\
@article{jelinek1977perplexity,
  title={Perplexity---a measure of the difficulty of speech recognition tasks},
  author={Jelinek, Fred and Mercer, Robert L. and Bahl, Lalit R. and Baker, James K.},
  journal={The Journal of the Acoustical Society of America},
  volume={62},
  number={S1},
  pages={S63},
  year={1977}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Perplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"nll": datasets.Value("float64"),
                                        "n_tokens": datasets.Value("int64")}),
            reference_urls=["https://huggingface.co/docs/transformers/perplexity"],
        )

    def _compute(self, nll, n_tokens):
        nll = np.asarray(nll, dtype=float)
        n_tokens = np.asarray(n_tokens, dtype=float)
        if np.any(n_tokens < 0) or np.any(nll < 0):
            raise ValueError("nll and n_tokens must be non-negative")
        total = float(n_tokens.sum())
        if total <= 0:
            raise ValueError("no tokens were scored (sum of n_tokens is 0)")
        per_token = float(nll.sum()) / total
        return {"perplexity": float(np.exp(per_token)), "nll_per_token": per_token, "n_tokens": total}
