"""The stream consumer (``eventtracking consume``) and the sinks it writes to.

``consume`` reads a Redis stream as one member of a consumer group; ``sinks``
writes what it reads into a store or a backend. Application code on top of the
core: nothing in the core imports this package. This module imports neither
submodule, so ``consumer.sinks`` loads without the ``redis`` extra.
"""
