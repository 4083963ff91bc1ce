"""What the children of test_memory_follows_data.py run: receive from a peer
that lies about a message's length, and report what that cost."""
from __future__ import annotations

import json
import resource
import sys


def peaks():
    """(peak RSS, peak virtual size) of this process so far, in KiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) for line in f if line.startswith("VmPeak:"))
    return rss, vm


def _outcome(call):
    try:
        got = call()
    except Exception as e:  # noqa: B902 - reported to the test
        return [type(e).__name__, str(e)]
    return ["returned", repr(got)[:200]]


def _measure(call, then):
    """Run call() and then() (what the connection does next); return their
    outcomes and the growth of the peak RSS and peak virtual size."""
    import gc
    gc.collect()
    base = peaks()
    first = _outcome(call)
    rss, vm = peaks()
    return {"outcome": first, "then": _outcome(then), "rss_kib": rss - base[0],
            "vm_kib": vm - base[1]}


def _reading(conn, how):
    if how == "recv_bytes":
        return lambda: len(conn.recv_bytes())
    if how == "recv":
        return conn.recv
    if how == "recv_bytes_into":  # a short buffer: the whole message is read
        return lambda: conn.recv_bytes_into(bytearray(16))
    if how == "maxlength":
        return lambda: conn.recv_bytes(1 << 20)
    raise ValueError(how)


def pipe_reader(conn, report, how):
    """Receive one message from a gomp pipe end (the test wrote its header),
    then try once more; send the measures on report."""
    report.send("ready")
    report.send(_measure(_reading(conn, how), lambda: conn.recv_bytes()))


def queue_reader(q, report):
    """Take one item from a queue whose first message is forged."""
    report.send("ready")
    report.send(_measure(lambda: q.get(timeout=60), lambda: q.get(timeout=0.1)))


def socket_reader_main():
    """python -c entry: a socket Connection on descriptor argv[1], read as
    argv[2] says; the measures go to stdout as JSON."""
    from gomp import connection
    conn = connection.Connection(int(sys.argv[1]))
    print("ready", flush=True)
    res = _measure(_reading(conn, sys.argv[2]), lambda: conn.recv_bytes())
    print(json.dumps(res), flush=True)
