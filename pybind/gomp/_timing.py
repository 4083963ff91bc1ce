"""The signal slice: the longest a wait blocks before Python gets to run a
signal handler (a SIGINT may be delivered to another thread, one of the Go
runtime's say, which does not interrupt this one's poll). Every wait that
polls in Python waits in slices of at most this."""

__all__ = ["SIGNAL_SLICE", "SIGNAL_SLICE_MS"]

# mirrors GOMP_SLICE_NS in _gomp.h, the C waits' slice (keep them equal)
SIGNAL_SLICE_MS = 20
SIGNAL_SLICE = SIGNAL_SLICE_MS / 1000  # in seconds
