"""Scaling tables: one parameter swept, gomp against the stdlib's start
methods and peers at each value.

- Queue, small messages, with 1, 2, 4, 8 producer/consumer pairs (all in
  children, released together once every one is up; timed to the last get);
- Pool of 1, 2, 4, 8 workers: imap_unordered(chunksize=1) of a small task;
- message size 64 B to 64 MiB: Pipe send_bytes/recv_bytes round trips with
  an echo child, and Queue put (in a child) / get (here).
"""
from __future__ import annotations

import atexit
import time
from typing import Any, Callable, Dict, List

import multiprocessing

import gomp
from run import Case

import _connection_targets
import _scaling_targets as T

try:
    import faster_fifo
except ImportError:  # a benchmark extra
    faster_fifo = None

METHODS = ("fork", "forkserver", "spawn")
STDLIB = [f"stdlib {m}" for m in METHODS]
PAIRS = (1, 2, 4, 8)
PAIR_MSGS = 40_000            # split among the producers
WORKERS = (1, 2, 4, 8)
POOL_TASKS = 5000
SIZES = {"64 B": 64, "4 KiB": 4 << 10, "64 KiB": 64 << 10, "1 MiB": 1 << 20,
         "16 MiB": 16 << 20, "64 MiB": 64 << 20}
SWEEP_BYTES = 64 << 20        # per measurement, one way (at least 2 messages)
FF = "faster-fifo (fork)"
REPEAT = 3                    # each table has many cases: fewer repeats each
TIMEOUT = 120


def _ctx(kind: str) -> Any:
    if kind == "gomp":
        return gomp.get_context()
    return multiprocessing.get_context("fork" if kind == FF else kind.split()[1])


def _queue(kind: str, item_size: int = 0) -> Any:
    if kind == FF:
        # its ring must hold a few of the largest items
        return faster_fifo.Queue(max_size_bytes=max(16 << 20, 3 * item_size + (1 << 20)))
    return _ctx(kind).Queue()


def _queue_kinds() -> "tuple[list[str], dict[str, str]]":
    if faster_fifo is None:
        return ["gomp"] + STDLIB, {FF: "not installed (pip install faster-fifo)"}
    return ["gomp"] + STDLIB + [FF], {}


def _stop(procs: List[Any]) -> None:
    for p in procs:
        p.join(10)
        if p.exitcode is None:
            p.kill()
            p.join()


# -- Queue with N producer/consumer pairs

def _pairs(kind: str, pairs: int) -> float:
    ctx, q = _ctx(kind), _queue(kind)
    ready, go, done = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    n = PAIR_MSGS // pairs
    procs = [ctx.Process(target=T.pair_producer, args=(q, n, ready, go)) for _ in range(pairs)]
    procs += [ctx.Process(target=T.pair_consumer, args=(q, n, ready, go, done))
              for _ in range(pairs)]
    try:
        for p in procs:
            p.start()
        for _ in procs:
            if not ready.acquire(timeout=TIMEOUT):
                raise TimeoutError("children did not start")
        t0 = time.monotonic()
        go.set()
        end = max(done.get(timeout=TIMEOUT) for _ in range(pairs))
    finally:
        _stop(procs)
    return pairs * n / (end - t0)


# -- Pool of N workers

class _Pools:
    """The pools of one case (one worker count): made on first use, closed
    when the case ends."""

    def __init__(self, workers: int) -> None:
        self.workers, self.pools = workers, {}
        atexit.register(self.close)

    def get(self, kind: str) -> Any:
        if kind not in self.pools:
            if kind == "loky":
                import loky
                p = loky.ProcessPoolExecutor(self.workers)
                list(p.map(time.sleep, [0.05] * (2 * self.workers)))  # all workers up
            elif kind == "mpire (fork)":
                from mpire import WorkerPool
                p = WorkerPool(n_jobs=self.workers, keep_alive=True)
            else:
                p = _ctx(kind).Pool(self.workers)
                p.map(time.sleep, [0.05] * (2 * self.workers), chunksize=1)
            self.pools[kind] = p
        return self.pools[kind]

    def close(self) -> None:
        while self.pools:
            kind, p = self.pools.popitem()
            try:
                if kind == "loky":
                    p.shutdown(wait=True, kill_workers=True)
                else:
                    p.terminate()
                    if hasattr(p, "join"):
                        p.join()
            except Exception:
                pass


def _pool_rate(pools: _Pools, kind: str) -> float:
    p = pools.get(kind)
    if kind == "loky":
        it = lambda: p.map(T.work, range(POOL_TASKS), chunksize=1)  # noqa: E731
    elif kind.startswith("mpire"):
        it = lambda: p.imap_unordered(T.work, range(POOL_TASKS), chunk_size=1)  # noqa: E731
    else:
        it = lambda: p.imap_unordered(T.work, range(POOL_TASKS), chunksize=1)  # noqa: E731
    t = time.perf_counter()
    got = sorted(it())
    elapsed = time.perf_counter() - t
    assert got == [T.work(x) for x in range(POOL_TASKS)]
    return POOL_TASKS / elapsed


# -- message size sweep

def _count(size: int, cap: int) -> int:
    return max(2, min(cap, SWEEP_BYTES // size))


class _Child:
    """One long-lived child per row for a whole table: an echo child at the
    far end of a Pipe, or a producer putting on a Queue."""

    def __init__(self, kind: str, role: str) -> None:
        self.kind, self.role, self.proc = kind, role, None
        atexit.register(self.stop)

    def get(self) -> "_Child":
        if self.proc is None:
            ctx = _ctx(self.kind)
            a, b = ctx.Pipe()
            if self.role == "echo":
                self.proc = ctx.Process(target=_connection_targets.echo_bytes, args=(b,))
            else:
                self.q = _queue(self.kind, max(SIZES.values()))
                self.proc = ctx.Process(target=T.sweep_producer, args=(b, self.q))
            self.proc.start()
            b.close()
            self.conn = a
        return self

    def stop(self) -> None:
        if self.proc is not None:
            try:
                if self.role == "echo":
                    self.conn.send_bytes(b"")
                else:
                    self.conn.send(None)
            except OSError:
                pass
            _stop([self.proc])
            self.conn.close()
            self.proc = None


def _pipe_sweep(child: _Child, size: int) -> float:
    conn = child.get().conn
    data = T.payload(size)
    conn.send_bytes(data)  # the first of a size grows buffers: not timed
    conn.recv_bytes()
    n = _count(size, cap=5000)
    t = time.perf_counter()
    for _ in range(n):
        conn.send_bytes(data)
        back = conn.recv_bytes()
    elapsed = time.perf_counter() - t
    assert back == data
    return 2 * size * n / elapsed / 1e6


def _queue_sweep(child: _Child, size: int) -> float:
    child.get()
    n = _count(size, cap=20_000)
    child.conn.send((size, n))
    assert child.conn.recv() == "ready"
    get = child.q.get
    t = time.perf_counter()
    for _ in range(n):
        item = get(timeout=TIMEOUT)
    elapsed = time.perf_counter() - t
    assert item == T.payload(size)
    return size * n / elapsed / 1e6


def _stop_all(children: Dict[str, _Child]) -> Callable[[], None]:
    return lambda: [c.stop() for c in children.values()]


def cases():
    out = []
    qkinds, qskipped = _queue_kinds()
    for pairs in PAIRS:
        out.append(Case(f"queue, {pairs} producer/consumer pairs, small messages", "msg/s",
                        {k: (lambda k=k, pairs=pairs: _pairs(k, pairs)) for k in qkinds},
                        baseline="stdlib spawn", higher_is_better=True, skipped=qskipped,
                        table=f"queue throughput vs producer/consumer pairs "
                              f"({PAIR_MSGS} small messages)",
                        param=f"{pairs} pair" + "s" * (pairs > 1), repeat=REPEAT))

    pkinds, pskipped = ["gomp"] + STDLIB, {}
    for peer, mod in (("loky", "loky"), ("mpire (fork)", "mpire")):
        try:
            __import__(mod)
            pkinds.append(peer)
        except ImportError:
            pskipped[peer] = f"not installed (pip install {mod})"
    for workers in WORKERS:
        pools = _Pools(workers)
        out.append(Case(f"pool of {workers} workers, imap_unordered chunksize=1", "task/s",
                        {k: (lambda k=k, pools=pools: _pool_rate(pools, k)) for k in pkinds},
                        baseline="stdlib spawn", higher_is_better=True, skipped=pskipped,
                        table=f"pool throughput vs workers ({POOL_TASKS} tasks of ~20 µs, "
                              "imap_unordered chunksize=1)",
                        param=f"{workers} worker" + "s" * (workers > 1), repeat=REPEAT,
                        teardown=pools.close))

    echoes = {k: _Child(k, "echo") for k in ["gomp"] + STDLIB}
    producers = {k: _Child(k, "producer") for k in qkinds}
    last = list(SIZES)[-1]
    for label, size in SIZES.items():
        out.append(Case(f"pipe round trip of {label} (send_bytes/recv_bytes)", "MB/s",
                        {k: (lambda c=c, size=size: _pipe_sweep(c, size))
                         for k, c in echoes.items()},
                        baseline="stdlib spawn", higher_is_better=True,
                        table="pipe send_bytes/recv_bytes round trips vs message size "
                              "(MB/s both ways)", param=label, repeat=REPEAT,
                        teardown=_stop_all(echoes) if label == last else None))
    for label, size in SIZES.items():
        out.append(Case(f"queue put/get of {label}", "MB/s",
                        {k: (lambda c=c, size=size: _queue_sweep(c, size))
                         for k, c in producers.items()},
                        baseline="stdlib spawn", higher_is_better=True, skipped=qskipped,
                        table="queue put (child) / get vs message size (MB/s)", param=label,
                        repeat=REPEAT,
                        teardown=_stop_all(producers) if label == last else None))
    return out
