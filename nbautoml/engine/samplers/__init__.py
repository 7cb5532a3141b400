"""Search algorithms behind one small protocol; ``bayes.py`` is the only module that imports skopt."""

from nbautoml.engine.samplers.base import SAMPLER_NAMES, Sampler, make_sampler

__all__ = ["SAMPLER_NAMES", "Sampler", "make_sampler"]
