"""Rich progress for a running search, fed by Ray Tune callbacks in the driver process."""

from __future__ import annotations

from typing import Any

from ray.tune import Callback
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class SearchProgress(Callback):
    """A bar of trained candidates, with the running count of rejected ones and a line per trial."""

    def __init__(self, searcher: Any, total: int, done: int = 0, ledger: Any = None):
        self.searcher = searcher
        self.ledger = ledger  # accounting.RunLedger: the run's cost, rewritten per trial
        self.console = Console(stderr=True)
        self.total = total
        self.done = done
        self._progress: Progress | None = None
        self._task: Any = None

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its callbacks with the experiment; the live display stays behind."""
        state = self.__dict__.copy()
        state.update(console=None, _progress=None, _task=None, ledger=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.console = Console(stderr=True)

    def __enter__(self) -> SearchProgress:
        self._progress = Progress(
            TextColumn("[bold]searching"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            "search", total=self.total, completed=self.done, note=""
        )
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._refresh()
            self._progress.stop()

    def _refresh(self) -> None:
        if self._progress is None:
            return
        rejected = self.searcher.rejected
        note = (
            f"rejected: {rejected['infeasible']} over budget, {rejected['invalid']} invalid, "
            f"{rejected['duplicate']} already trained"
        )
        self._progress.update(self._task, completed=self.done, note=note)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self._refresh()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.done += 1
        result = trial.last_result or {}
        arch = trial.config.get("arch", {})
        shape = f"L={arch.get('n_layers')} d={arch.get('d_model')}"
        quality = self.searcher.quality
        value = f"{quality.name}={result.get(quality.name, float('nan')):.4g}"
        if "failed" in result:
            line = f"[red]failed[/] {shape}: {result['failed']}"
        elif trial.config.get("baseline"):
            line = f"[cyan]baseline {trial.config['baseline']}[/] {shape} {value}"
        elif not result.get("final", False):
            line = f"[yellow]stopped early[/] {shape}"
        else:
            done = "trained" if quality.trains else "scored"
            # MACs are in the result only when the profile trades them (an objective)
            macs = f"MACs={result['macs'] / 1e6:.1f}M " if "macs" in result else ""
            line = f"[green]{done}[/] {shape} {value} {macs}in {result.get('wall_s', 0):.1f}s"
        self.console.print(line)
        self._refresh()
        if self.ledger is not None:
            self.ledger.update(totals=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.done += 1
        self.console.print(f"[red]worker error[/] in trial {trial.trial_id}")
        self._refresh()
