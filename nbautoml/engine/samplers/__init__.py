"""Search algorithms behind one small protocol; ``bayes.py`` is the only module that imports skopt.

They are picked by name through :mod:`nbautoml.engine.registry`, where the built-ins are registered.
"""

from nbautoml.engine.samplers.base import Sampler

__all__ = ["Sampler"]
