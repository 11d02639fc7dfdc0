"""Attention families; importing this package registers every module in it."""

from archsearch.models.discover import import_all

import_all(__name__, __path__)
