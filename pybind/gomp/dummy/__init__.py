"""The multiprocessing API over threads (not in gomp yet)."""
from .._missing import missing_class, missing_function

__all__ = ["Process", "current_process", "active_children", "freeze_support", "Lock",
           "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier",
           "Queue", "Manager", "Pipe", "Pool", "JoinableQueue"]

Process = missing_class("dummy.Process")
Pool = missing_function("dummy.Pool")
Manager = missing_function("dummy.Manager")
Pipe = missing_function("dummy.Pipe")
