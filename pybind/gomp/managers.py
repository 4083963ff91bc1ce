"""Managers and proxies (not in gomp yet)."""
from ._missing import missing_class

__all__ = ["BaseManager", "SyncManager", "BaseProxy", "Token", "SharedMemoryManager"]

BaseManager = missing_class("managers.BaseManager")
SyncManager = missing_class("managers.SyncManager")
BaseProxy = missing_class("managers.BaseProxy")
Token = missing_class("managers.Token")
SharedMemoryManager = missing_class("managers.SharedMemoryManager")
