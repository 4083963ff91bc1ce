"""Named shared memory (not in gomp yet)."""
from ._missing import missing_class

__all__ = ["SharedMemory", "ShareableList"]

SharedMemory = missing_class("shared_memory.SharedMemory")
ShareableList = missing_class("shared_memory.ShareableList")
