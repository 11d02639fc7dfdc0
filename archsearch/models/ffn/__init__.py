"""Feed-forward families' PyTorch modules; their specs (``archsearch.families``) name them.

Every FFN module returns ``(output, aux_loss)``; aux_loss is a scalar (zero for dense).
"""
