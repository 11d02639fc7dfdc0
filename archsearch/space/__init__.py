"""The search-space language: a YAML file -> parameters, conditions, constraints -> ArchConfig.

``model`` is the runtime ``SearchSpace`` (sampling, conditions, constraints) and
``load_space``, ``parser`` reads and checks a YAML document, ``params`` holds the parts both
share, ``satisfiable`` rejects constraints no configuration meets, and ``draws`` holds the
sources of values: random draws and the one enumerator of a space.
"""

from archsearch.space.draws import BranchWalker, RandomDraws, Sampler, branches
from archsearch.space.model import SearchSpace, load_space
from archsearch.space.params import COUNT_KEYS, ENCODER_PREFIX, Param
from archsearch.space.parser import ARCH_KEYS, KINDS

__all__ = [
    "ARCH_KEYS",
    "COUNT_KEYS",
    "ENCODER_PREFIX",
    "KINDS",
    "BranchWalker",
    "Param",
    "RandomDraws",
    "Sampler",
    "SearchSpace",
    "branches",
    "load_space",
]
