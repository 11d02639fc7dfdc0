"""Feed-forward families; importing this package registers every module in it.

Every FFN module returns ``(output, aux_loss)``; aux_loss is a scalar (zero for dense).
"""

from archsearch.models.discover import import_all

import_all(__name__, __path__)
