"""Attention families' PyTorch modules; their specs (``archsearch.families``) name them."""
