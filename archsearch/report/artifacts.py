"""Files attached to a study as Optuna artifacts, in a folder next to its SQLite file.

optuna-dashboard lists a study's artifacts when it is started with the same artifact store
(``archsearch dashboard`` does that), so plots written by ``archsearch plot`` appear there.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, get_all_artifact_meta, upload_artifact

from archsearch.search.storage import run_folder


def artifact_dir(storage_url: str) -> Path:
    """``<folder of the SQLite file>/artifacts``; ``./runs/artifacts`` for server databases."""
    return run_folder(storage_url) / "artifacts"


def artifact_store(folder: Path) -> FileSystemArtifactStore:
    folder.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(folder))


def attach(
    study: optuna.Study, store: FileSystemArtifactStore, paths: list[Path]
) -> dict[str, str]:
    """Upload each file once: a file name already attached to the study is not uploaded again.

    Returns file name -> artifact id (the existing id for files already attached).
    """
    attached = {meta.filename: meta.artifact_id for meta in get_all_artifact_meta(study)}
    for path in paths:
        if path.name not in attached:
            attached[path.name] = upload_artifact(
                artifact_store=store, file_path=str(path), study_or_trial=study
            )
    return {path.name: attached[path.name] for path in paths}
