"""The search driver: Optuna samplers run through Ray Tune, results in an RDB study."""

from archsearch.search.driver import SearchOptions, run_search

__all__ = ["SearchOptions", "run_search"]
