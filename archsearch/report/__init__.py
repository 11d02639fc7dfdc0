"""Reading a finished (or running) study back, without ever writing to it.

``reading`` opens existing databases (read-only for SQLite); ``trials`` defines usable, best and
baseline trials once; ``front`` and ``summary`` hold what ``archsearch show`` reports and
``render`` prints it; ``comparison`` and ``footprint`` make the Evolved-Transformer-style table;
``plots`` and ``artifacts`` draw the Pareto front and attach it to the study for the dashboard.
"""
