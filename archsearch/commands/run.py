"""``archsearch run``: search a space under a hardware profile."""

from __future__ import annotations

import argparse

from archsearch.search.defaults import (
    DEFAULT_RUN_EVALUATOR,
    DEFAULT_SAMPLER,
    DEFAULT_SCHEDULER,
    DEFAULT_SPACE,
    DEFAULT_STORAGE,
    DEFAULT_TRIALS,
    SAMPLERS,
    SCHEDULERS,
    SUPERNET_SAMPLER,
)

INTERRUPTED = 130  # the shell's status for a command ended by Ctrl-C
FRONT_ROWS = 8  # of a supernet front, before its finalists are trained


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "run",
        help="search a space under a hardware profile",
        description="Search a space under a hardware profile. Running the same command again "
        "continues the study (interrupted trials are trained again, none twice).",
    )
    run.add_argument("--profile", default="mobile_100M", help="built-in name or YAML path")
    run.add_argument(
        "--space",
        default=DEFAULT_SPACE,
        help=f"built-in name or YAML path (default {DEFAULT_SPACE})",
    )
    run.add_argument(
        "--evaluator",
        default=DEFAULT_RUN_EVALUATOR,
        help=f"built-in name or YAML path (default {DEFAULT_RUN_EVALUATOR}): a supernet recipe "
        "(quality supernet_bpb of inherited weights; then the front's finalists are trained), "
        "a training recipe (quality val_bpb, minimised; blended_bpb with a blend) or a "
        "zero-cost proxy recipe such as proxy_grad_norm (quality proxy_<name>, maximised; "
        "nothing is trained)",
    )
    run.add_argument(
        "--trials",
        type=int,
        default=None,
        help="candidates the study should hold scored (default: a supernet recipe's "
        f"`candidates`, else {DEFAULT_TRIALS} trained)",
    )
    run.add_argument(
        "--finalists",
        type=int,
        default=None,
        help="supernet recipes: front candidates then trained from scratch with the recipe's "
        "finalist_evaluator, in the study <study>.trained (default: the recipe's; 0: none)",
    )
    run.add_argument("--workers", type=int, default=2, help="parallel trials, one thread each")
    run.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help="SQLAlchemy URL of the study, e.g. sqlite:///runs/a.db or "
        "postgresql+psycopg2://user:password@host/db",
    )
    run.add_argument("--study", default=None, help="study name (default: space.profile.evaluator)")
    run.add_argument("--seed", type=int, default=0, help="sampler seed")
    run.add_argument(
        "--sampler",
        default=None,
        choices=SAMPLERS,
        help=f"{DEFAULT_SAMPLER} (default; {SUPERNET_SAMPLER} for a supernet recipe, whose "
        "hundreds of cheap trials make TPE's own cost the bottleneck), nsga2, random, or grid "
        "(every configuration of a finite space once)",
    )
    run.add_argument(
        "--scheduler",
        default=DEFAULT_SCHEDULER,
        choices=SCHEDULERS,
        help="early stopping on intermediate val_bpb: none (default) or asha; "
        "stopped trials are recorded as pruned, never on the front (off for proxy recipes)",
    )
    run.add_argument(
        "--address",
        default=None,
        help="join this Ray cluster (e.g. 10.0.0.5:6379 from `ray start --head`) "
        "instead of starting a local one",
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="stop after this many seconds; running trials are queued for the next run",
    )
    run.add_argument(
        "--confirm",
        action="store_true",
        help="after the search, run `archsearch confirm` on the study with its defaults "
        "(3 front candidates and the baselines, 3 seeds, 4x the budget) on the same workers",
    )
    run.add_argument(
        "--wide",
        action="store_true",
        help="every per-layer setting in the front's architecture column (default: compact)",
    )
    run.add_argument(
        "--verbose",
        action="store_true",
        help="show Ray's own start-up and authentication messages and its workers' output "
        "(also: ARCHSEARCH_VERBOSE=1)",
    )
    run.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from archsearch.errors import InputError
    from archsearch.search.ray_session import set_verbose

    set_verbose(args.verbose)
    from archsearch.search.inputs import (
        SearchOptions,
        default_sampler,
        default_trials,
        load_inputs,
    )

    if args.finalists is not None and args.finalists < 0:
        raise InputError(f"must be >= 0, got {args.finalists}", key="--finalists")
    options = SearchOptions(
        profile=args.profile,
        space=args.space,
        evaluator=args.evaluator,
        trials=args.trials if args.trials is not None else default_trials(args.evaluator),
        sampler=args.sampler or default_sampler(args.evaluator),
        workers=args.workers,
        storage=args.storage,
        study=args.study,
        seed=args.seed,
        scheduler=args.scheduler,
        address=args.address,
        timeout=args.timeout,
    )
    inputs = load_inputs(options)  # a bad flag or file: one line, before the heavy imports

    from rich.console import Console

    from archsearch.report.front import print_front
    from archsearch.search.driver import run_search

    console = Console()
    summary = run_search(options, console=console, inputs=inputs)
    how = {
        "done": "",
        "exhausted": " (the space has no more candidates)",
        "timeout": f" (stopped by --timeout {args.timeout:g} s)" if args.timeout else "",
        "interrupted": " (interrupted)",
    }.get(summary.ended, "")
    done = "trained" if summary.quality.trains else f"scored by {summary.quality.name}"
    console.print(
        f"study '{summary.study_name}': {summary.trained} {done}{how}, "
        f"{summary.rejected_infeasible} rejected over budget, "
        f"{summary.rejected_invalid} rejected as invalid, {summary.wall_s:.0f} s this run"
    )
    if summary.interrupted_trials:
        console.print(
            f"{summary.interrupted_trials} running trial(s) were closed and queued again: "
            "run the same command to continue"
        )
    if summary.interrupted:
        return INTERRUPTED
    settings = inputs.recipe.supernet
    finalists = settings.finalists if settings is not None and args.finalists is None else 0
    if settings is not None and args.finalists is not None:
        finalists = args.finalists
    if finalists > 0:
        from archsearch.search.finalists import run_finalists

        print_front(console, summary.storage, summary.study_name, limit=FRONT_ROWS, wide=args.wide)
        trained = run_finalists(options, inputs, summary.study_name, finalists, console)
        if trained is not None:
            if trained.interrupted:
                return INTERRUPTED
            summary = trained
            console.print(
                f"study '{summary.study_name}': {summary.trained} trained from scratch "
                f"(the finalists, the baselines and any refine mutations), {summary.wall_s:.0f} s"
            )
    print_front(console, summary.storage, summary.study_name, wide=args.wide)
    console.print(
        f"open it: archsearch dashboard --storage {summary.storage}   "
        f"(or: optuna-dashboard {summary.storage})"
    )
    if args.confirm:
        from archsearch.confirm.flow import confirm_study

        confirm_study(
            summary.storage,
            summary.study_name,
            top=3,
            seeds=3,
            factor=4.0,
            workers=args.workers,
            address=args.address,
            console=console,
        )
        return 0
    console.print(
        "prove the winner (seeded retraining against the baselines): "
        f"archsearch confirm --study {summary.study_name} --storage {summary.storage}"
        + (f" --address {args.address}" if args.address else "")
    )
    return 0
