"""Load a file of ``scripts/`` or ``benchmarks/`` (not packages) as a module, as ``python FILE`` would."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_file(path: str | Path, name: str) -> ModuleType:
    """``path`` executed as module ``name`` (registered in ``sys.modules`` while it runs, which
    dataclasses and pickling need); a second call gives the module already loaded."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
