"""``archsearch measure CONFIG --profile P``: the costs of one architecture."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    measure = subparsers.add_parser("measure", help="MACs and parameters of one architecture")
    measure.add_argument("config", help="architecture YAML (ArchConfig flat form or an export)")
    measure.add_argument("--profile", default="mobile_100M", help="built-in name or YAML path")
    measure.add_argument("--json", action="store_true", help="print JSON")
    measure.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from archsearch import ArchConfig, estimate_costs, load_profile

    profile = load_profile(args.profile)
    config = ArchConfig.from_yaml(args.config)
    costs = estimate_costs(config, profile)
    over = profile.over_budget(costs)
    if args.json:
        report = {"config": args.config, "profile": profile.name, **costs.to_dict()}
        report.update(within_budget=not over, over_budget=over)
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.config} under {profile.name}: {costs.convention.describe()}")
    print(f"  MACs          {costs.macs:>14,}")
    print(f"  parameters    {costs.counted_params:>14,} counted, {costs.params:,} in all")
    for name, limit in profile.budgets.items():
        value = profile.metric(name, costs)
        verdict = "ok" if value <= limit else "OVER"
        print(f"  budget {name:<7}{value:>14,.0f} / {limit:,.0f}  {verdict}")
    return 0
