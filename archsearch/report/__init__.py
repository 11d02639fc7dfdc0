"""Reading a finished (or running) study back: the Pareto front and how the search went."""
