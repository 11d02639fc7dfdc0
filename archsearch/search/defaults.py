"""Defaults the CLI needs without importing Optuna or Ray."""

DEFAULT_STORAGE = "sqlite:///runs/archsearch.db"
