"""Compression of a fit's result: int8 quantization, structured pruning, distillation of the ensemble.

``result.compress(...)`` (:func:`.report.compress`) returns a :class:`.report.CompressionReport`; each
compressed model is a :class:`nbautoml.torch.export.Predictor` (predict, predict_proba, score, export) whose
saved form ``load_model`` rebuilds without pickle (:mod:`._structure`). The names below load lazily:
``export`` imports ``_structure`` from here, and ``report`` imports ``export``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CompressionReport", "compress"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from nbautoml.torch.compress import report

        return getattr(report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
