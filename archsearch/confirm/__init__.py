"""Proof of the winner: retrain the front and the baselines with seeds, and judge them.

``selection`` picks the models, ``runs`` plans, runs and records the seeded runs in a companion
study (``<study>.confirm``), ``verdict`` turns the runs into intervals and sentences, ``summary``
stores the verdict on the original study for ``show`` and optuna-dashboard.
"""
