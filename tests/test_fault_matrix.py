"""Fault matrix: per primitive (Queue, JoinableQueue, Pipe, Pool, manager),
bounded randomized runs that SIGKILL one participant at a random moment.
Each run asserts that nothing hangs (every wait has a deadline), that what
live producers sent arrives exactly once and whole (messages carry sequence
numbers and a payload derived from them), and that no descriptor, /dev/shm
entry or process is left behind.

CI runs the fixed seeds below. GOMP_FAULT_SEEDS=N runs seeds 0..N-1 per
primitive instead, for a long run; with -s each run prints one line."""
from __future__ import annotations

import gc
import os
import random
import signal
import time

import pytest

import scripts

import gomp
import gomp.queues
from gomp.pool import WorkerLostError

import _fault_targets as T

SEEDS = (range(int(os.environ["GOMP_FAULT_SEEDS"])) if os.environ.get("GOMP_FAULT_SEEDS")
         else range(6))
WAIT = 30  # seconds: a wait longer than this is a hang
KILLED = -signal.SIGKILL
# names gomp or the stdlib would give to /dev/shm entries
SHM_PREFIXES = ("psm_", "wnsm_", "sem.mp", "mp-", "gomp")

pytestmark = pytest.mark.timeout(180)


def _children():
    pids = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open("/proc/self/task/%s/children" % tid) as f:
                pids.update(int(x) for x in f.read().split())
        except OSError:
            pass
    return pids


def _fds():
    return len(os.listdir("/proc/self/fd")) - len(_go_poller())


def _go_poller():
    """The descriptors of the Go runtime's poller: an epoll watching just
    its eventfd, made once per process when the runtime first needs a timer
    (its memory scavenger does, after enough allocation)."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink("/proc/self/fd/" + fd) != "anon_inode:[eventpoll]":
                continue
            with open("/proc/self/fdinfo/" + fd) as f:
                watched = [line.split()[1] for line in f if line.startswith("tfd:")]
            if len(watched) == 1 and \
                    os.readlink("/proc/self/fd/" + watched[0]) == "anon_inode:[eventfd]":
                return {fd, watched[0]}
        except OSError:
            pass
    return set()


def _fd_names():
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[fd] = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            pass
    return out


def _shm():
    return {n for n in os.listdir("/dev/shm") if n.startswith(SHM_PREFIXES)}


class Run:
    """One run: its participants, and what it reports."""

    def __init__(self):
        self.procs = {}  # pid -> start time: a pid reused meanwhile is not a leak
        self.report = {}

    def track(self, pids):
        for pid in pids:
            self.procs.setdefault(pid, scripts.start_time(pid))

    def start(self, target, *args):
        p = gomp.Process(target=target, args=args)
        p.start()
        self.track([p.pid])
        return p


@pytest.fixture
def run(request):
    # what lasts for the life of the process is made before the baseline:
    # the zygote, and the shared heap and lock segments of sharedctypes
    p = gomp.Process(target=os.getpid)
    p.start()
    p.join(WAIT)
    gomp.Array("i", 1)
    gc.collect()
    fds, children, shm = _fds(), _children(), _shm()
    names = _fd_names()
    r = Run()
    yield r
    deadline = time.monotonic() + 10
    while True:
        gc.collect()
        left = sorted(pid for pid, st in r.procs.items()
                      if st is not None and scripts.start_time(pid) == st)  # zombies too
        new = sorted(_children() - children)
        leaked = _fds() - fds
        # others may use /dev/shm meanwhile: an entry must outlast the wait
        named = sorted(_shm() - shm)
        if not (left or new or leaked > 0 or named) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, "processes left behind: %s" % left
    assert not new, "children left behind: %s" % new
    assert leaked <= 0, "%d descriptors leaked: %s" % (
        leaked, sorted(set(_fd_names().items()) - set(names.items())))
    assert not named, "left in /dev/shm: %s" % named
    print("fault-matrix %s %s" % (request.node.name,
                                  " ".join("%s=%s" % kv for kv in r.report.items())))


def _sizes(rnd, n, big):
    """Mostly small messages, a few large enough to stream."""
    return [rnd.randrange(big // 3, big) if rnd.random() < 0.06 else rnd.randrange(0, 300)
            for _ in range(n)]


def _check_stream(seqs, n, killed):
    """seqs arrived from a producer that sent n (or died): each once, and
    if it died, exactly what it sent before."""
    assert len(seqs) == len(set(seqs)), "a message arrived twice"
    if killed:
        assert sorted(seqs) == list(range(len(seqs))), "a gap in what a killed producer sent"
    return n - len(seqs) if not killed else 0


# -- Queue and JoinableQueue: two producers, two consumers forwarding what
# they get to the test; a producer or a consumer is killed


@pytest.mark.parametrize("kind", ["Queue", "JoinableQueue"])
@pytest.mark.parametrize("seed", SEEDS)
def test_queue(seed, kind, run):
    rnd = random.Random(seed)
    role = ("producer", "consumer")[seed % 2]
    joinable = kind == "JoinableQueue"
    q = getattr(gomp.queues, kind)(capacity=1 << 16)  # large messages stream
    out = gomp.queues.Queue(capacity=16 << 20)  # never full: results are small
    sizes = [_sizes(rnd, rnd.randrange(100, 400), 200_000) for _ in range(2)]
    total = sum(map(len, sizes))
    producers = [run.start(T.produce, q, tag, s) for tag, s in enumerate(sizes)]
    consumers = [run.start(T.consume, q, out, joinable) for _ in range(2)]
    victim = (producers if role == "producer" else consumers)[0]
    got = []
    n0 = len(sizes[0])  # the victim's, when it is a producer (both write about as fast)
    at = rnd.randrange(total if role == "consumer" else min(2 * n0, total) * 9 // 10)
    # the moment: when the producers have written (or the consumers
    # forwarded) at messages, and a few milliseconds more
    deadline = time.monotonic() + WAIT
    while (q._ring.debug_state()[2] if role == "producer" else len(got)) < at:
        assert time.monotonic() < deadline, "no progress"
        if not out.empty():
            got.append(out.get(timeout=WAIT))
    time.sleep(rnd.random() * 0.005)
    victim.kill()
    victim.join(WAIT)
    killed = victim.exitcode == KILLED
    for p in producers:
        p.join(WAIT)
        assert p.exitcode == 0 or p is victim and killed, p.exitcode
    live = [c for c in consumers if not (c is victim and killed)]
    for _ in live:
        q.put(None)
    for c in consumers:
        c.join(WAIT)
        assert c.exitcode == 0 or c is victim and killed, c.exitcode
    while not out.empty():
        got.append(out.get(timeout=WAIT))
    assert all(ok for _, _, ok in got), "a message arrived damaged"
    lost = 0
    for tag, p in enumerate(producers):
        seqs = [seq for t, seq, _ in got if t == tag]
        lost += _check_stream(seqs, len(sizes[tag]), p is victim and killed)
    # a consumer dies with at most the one message it had taken
    assert lost <= (1 if role == "consumer" and killed else 0), lost
    # the queue goes on: its locks are taken over from the dead
    q.put("after")
    assert q.get(timeout=WAIT) == "after"
    run.report.update(victim=role, killed=killed, at=at, sent=total, got=len(got), lost=lost)
    if joinable:
        q.task_done()  # "after"
        # join() returns once every task is done; a process that died with
        # tasks (a put not yet in the ring, a message it was reading or
        # had not marked done) leaves them unfinished, as the stdlib does
        done = q._ring.join_tasks(1 if killed else WAIT)
        assert done or killed
        run.report["unfinished"] = q._ring.unfinished()
    q.close()
    out.close()


# -- Pipe: the other end is a child that sends, receives or echoes, and is
# killed


@pytest.mark.parametrize("seed", SEEDS)
def test_pipe(seed, run):
    rnd = random.Random(seed)
    role = ("sender", "receiver", "echo")[seed % 3]
    sizes = _sizes(rnd, rnd.randrange(100, 400), 3 << 20)  # some larger than the ring
    at = rnd.randrange(len(sizes))
    end = None
    if role == "sender":
        r, w = gomp.Pipe(duplex=False)
        p = run.start(T.pipe_send, w, sizes)
        w.close()
        got = []
        while True:
            if len(got) == at:
                p.kill()  # it may have sent everything already
            assert r.poll(WAIT), "no message and no end of file"
            try:
                tag, seq, data = r.recv()
            except (EOFError, OSError) as e:  # OSError: the end cut a message
                end = type(e).__name__
                break
            assert T.intact(tag, seq, data), "a message arrived damaged"
            got.append(seq)
        r.close()
    elif role == "receiver":
        r, w = gomp.Pipe(duplex=False)
        out = gomp.queues.Queue(capacity=16 << 20)
        p = run.start(T.pipe_recv, r, out)
        r.close()
        sent = 0
        for seq, size in enumerate(sizes):
            if seq == at:
                time.sleep(rnd.random() * 0.005)
                p.kill()
            try:
                # a send to a dead reader fails once it would wait for room
                w.send((0, seq, T.payload(0, seq, size)))
            except (BrokenPipeError, EOFError, OSError) as e:
                end = type(e).__name__
                break
            sent += 1
        w.close()
        p.join(WAIT)
        got = []
        while not out.empty():
            tag, seq, ok = out.get(timeout=WAIT)
            assert ok, "a message arrived damaged"
            got.append(seq)
        assert set(got) <= set(range(sent))
        out.close()
    else:
        a, b = gomp.Pipe()
        p = run.start(T.pipe_echo, b)
        b.close()
        got = []
        for seq, size in enumerate(sizes):
            if seq == at:
                p.kill()
            try:
                a.send((0, seq, T.payload(0, seq, size)))
                assert a.poll(WAIT), "no echo and no end of file"
                tag, echoed, data = a.recv()
            except (EOFError, OSError) as e:
                end = type(e).__name__
                break
            assert echoed == seq and T.intact(tag, echoed, data)
            got.append(seq)
        a.close()
    p.join(WAIT)
    killed = p.exitcode == KILLED
    assert killed or role == "sender" and p.exitcode == 0, p.exitcode
    assert _check_stream(got, len(sizes), killed) == 0, "messages are missing"
    # what arrived before the kill (a killed receiver may leave some unread)
    assert len(got) >= at or role == "receiver", "messages that arrived are missing"
    run.report.update(victim=role, killed=killed, at=at, sent=len(sizes), got=len(got), end=end)


# -- Pool: a worker is killed while tasks run; each task that returns ran
# exactly once, the others fail with WorkerLostError naming the victim


@pytest.mark.parametrize("seed", SEEDS)
def test_pool(seed, run):
    rnd = random.Random(seed)
    how = ("apply_async", "imap_unordered")[seed % 2]
    n = rnd.randrange(50, 200)
    counts = gomp.Array("i", n)
    pauses = [rnd.random() * 0.01 for _ in range(n)]
    at = rnd.randrange(n)
    results, lost = {}, []
    with gomp.Pool(rnd.randrange(2, 4), initializer=T.pool_init, initargs=(counts,)) as pool:
        run.track(w.pid for w in pool._pool)

        def kill_one():
            time.sleep(rnd.random() * 0.005)
            busy = sorted(w.pid for w in pool._workers.values() if w.inflight) or \
                sorted(w.pid for w in pool._pool)
            pid = rnd.choice(busy)
            os.kill(pid, signal.SIGKILL)
            return pid

        victim = None
        if how == "apply_async":
            rs = [pool.apply_async(T.pool_task, (i, pauses[i])) for i in range(n)]
            for i, r in enumerate(rs):
                if i == at:
                    victim = kill_one()
                try:
                    seq, pid = r.get(WAIT)
                    assert seq == i
                    results[i] = pid
                except WorkerLostError as e:
                    lost.append((i, e.pid))
        else:
            it = pool.imap_unordered(T.pool_task_args, [(i, pauses[i]) for i in range(n)])
            for k in range(n):
                if k == at:
                    victim = kill_one()
                try:
                    seq, pid = it.next(WAIT)
                    assert seq not in results, "a result came twice"
                    results[seq] = pid
                except WorkerLostError as e:
                    lost.append((None, e.pid))
            with pytest.raises(StopIteration):
                it.next(WAIT)
        assert len(results) + len(lost) == n
        assert all(pid == victim for _, pid in lost), "a task failed for a live worker"
        assert all(counts[i] == 1 for i in results), "a task that returned ran twice"
        assert all(c <= 1 for c in counts), "a task ran twice"
        # the pool goes on (the lock of a worker killed holding it is taken over)
        assert pool.map(T.pool_task_args, [(i, 0) for i in range(n)])[0][0] == 0
        run.track(w.pid for w in pool._pool)
    pool.join()
    run.report.update(how=how, at=at, tasks=n, done=len(results), lost=len(lost))


# -- manager: clients append to a managed list; one is killed


@pytest.mark.parametrize("seed", SEEDS)
def test_manager(seed, run):
    rnd = random.Random(seed)
    with gomp.Manager() as m:
        run.track([m._process.pid])
        lst = m.list()
        sizes = [_sizes(rnd, rnd.randrange(50, 150), 2 << 20) for _ in range(3)]
        clients = [run.start(T.manager_client, lst, tag, s) for tag, s in enumerate(sizes)]
        victim = clients[0]
        at = rnd.randrange(len(sizes[0]))
        deadline = time.monotonic() + WAIT
        while len(lst) < at:
            assert time.monotonic() < deadline, "the clients made no progress"
            time.sleep(0.001)
        victim.kill()
        for c in clients:
            c.join(WAIT)
            assert c.exitcode == 0 or c is victim and c.exitcode == KILLED, c.exitcode
        killed = victim.exitcode == KILLED
        items = list(lst)
        assert all(T.intact(tag, seq, data) for tag, seq, data in items), "damaged"
        lost = 0
        for tag, c in enumerate(clients):
            seqs = [seq for t, seq, _ in items if t == tag]
            lost += _check_stream(seqs, len(sizes[tag]), c is victim and killed)
        assert lost == 0, lost
        # the manager still serves
        lst.append("after")
        assert lst[-1] == "after"
        del lst
    run.report.update(at=at, killed=killed, sent=sum(map(len, sizes)), got=len(items))
