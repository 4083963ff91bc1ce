"""The multiprocessing API over threads (not in gomp yet)."""
from .._missing import missing_class, missing_function

__all__ = ["Process", "current_process", "active_children", "freeze_support", "Lock",
           "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier",
           "Queue", "Manager", "Pipe", "Pool", "JoinableQueue"]

Process = missing_class("dummy.Process")
current_process = missing_function("dummy.current_process")
active_children = missing_function("dummy.active_children")
freeze_support = missing_function("dummy.freeze_support")
Lock = missing_class("dummy.Lock")
RLock = missing_class("dummy.RLock")
Semaphore = missing_class("dummy.Semaphore")
BoundedSemaphore = missing_class("dummy.BoundedSemaphore")
Condition = missing_class("dummy.Condition")
Event = missing_class("dummy.Event")
Barrier = missing_class("dummy.Barrier")
Queue = missing_class("dummy.Queue")
JoinableQueue = missing_class("dummy.JoinableQueue")
Manager = missing_function("dummy.Manager")
Pipe = missing_function("dummy.Pipe")
Pool = missing_function("dummy.Pool")
