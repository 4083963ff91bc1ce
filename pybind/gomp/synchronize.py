"""Locks, semaphores, conditions, events and barriers (not in gomp yet)."""
from ._missing import missing_class

__all__ = ["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier"]

Lock = missing_class("synchronize.Lock")
RLock = missing_class("synchronize.RLock")
Semaphore = missing_class("synchronize.Semaphore")
BoundedSemaphore = missing_class("synchronize.BoundedSemaphore")
Condition = missing_class("synchronize.Condition")
Event = missing_class("synchronize.Event")
Barrier = missing_class("synchronize.Barrier")
