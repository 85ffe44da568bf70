"""The micro-batcher judges use is the shared one in `tis.core.batching`."""

from tis.core.batching import MicroBatcher

__all__ = ["MicroBatcher"]
