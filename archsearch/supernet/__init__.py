"""One-shot search: a weight-sharing supernet over a causal-LM search space.

``model.py`` holds the shared weights and maps any configuration of the space onto leading slices
of them; ``training.py`` trains them with the sandwich rule; ``store.py`` caches the trained
supernet on disk; ``scoring.py`` scores a configuration by its inherited weights.
"""
