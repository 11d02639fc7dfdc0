"""Open an existing study for reading (reports, export); errors name the flag."""

from __future__ import annotations

import optuna

from archsearch.errors import InputError
from archsearch.search.storage import open_storage


def load_study(storage_url: str, study_name: str) -> optuna.Study:
    storage = open_storage(storage_url)
    names = [s.study_name for s in storage.get_all_studies()]
    if study_name not in names:
        known = ", ".join(names) or "none"
        raise InputError(
            f"no study '{study_name}' in {storage_url} (studies: {known})", key="--study"
        )
    return optuna.load_study(study_name=study_name, storage=storage)
