"""Queues between processes (not in gomp yet)."""
from ._missing import missing_class

__all__ = ["Queue", "SimpleQueue", "JoinableQueue"]

Queue = missing_class("queues.Queue")
SimpleQueue = missing_class("queues.SimpleQueue")
JoinableQueue = missing_class("queues.JoinableQueue")
