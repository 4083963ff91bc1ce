"""The stdlib's ``multiprocessing.popen_spawn_win32`` is for Windows;
gomp runs on Linux."""
__all__ = ["Popen"]

raise ImportError("multiprocessing.popen_spawn_win32 is for Windows; gomp runs on Linux")
