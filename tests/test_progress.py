"""progress= on the Pool's map family: a tqdm bar of completed tasks, drawn
in the parent, closed on every way out; gomp._progress's API for other
callers. gomp's alone: the stdlib's Pool has no such argument."""
from __future__ import annotations

import io
import os
import re
import sys
import threading
import time

import pytest

import gomp
from gomp import _progress
import _pool_targets as T
import scripts

pytest.importorskip("tqdm")

pytestmark = [pytest.mark.timeout(60), pytest.mark.gomp_extension]


@pytest.fixture
def pool(gomp_pool):
    return gomp_pool


class Bar:
    """tqdm options writing to a string, and what was written."""

    def __init__(self, **options):
        self.file = io.StringIO()
        self.options = dict(options, file=self.file)

    @property
    def text(self) -> str:
        return self.file.getvalue()

    @property
    def last(self) -> str:
        """The bar as last drawn."""
        return self.text.rstrip("\n").rsplit("\r", 1)[-1]

    @property
    def closed(self) -> bool:
        # a closed bar that stays on screen ends its line
        return self.text.endswith("\n")

    def counts(self) -> "list[int]":
        """Every count the bar showed, in order."""
        return [int(m) for m in re.findall(r"(\d+)(?:/\d+|it) ", self.text)]


def test_map_and_starmap_reach_the_total(pool):
    bar = Bar()
    assert pool.map(T.square, range(50), progress=bar.options) == [x * x for x in range(50)]
    assert bar.closed and "50/50" in bar.last
    # a generator is listed by map(): its length is known
    bar = Bar()
    assert pool.map(T.square, (x for x in range(20)), 3, progress=bar.options)[-1] == 361
    assert bar.closed and "20/20" in bar.last
    bar = Bar()
    assert pool.starmap(T.add, [(i, 1) for i in range(30)], progress=bar.options)[0] == 1
    assert bar.closed and "30/30" in bar.last


def test_async_forms_are_complete_when_ready(pool):
    bar = Bar()
    r = pool.map_async(T.square, range(40), progress=bar.options)
    assert r.get(10)[-1] == 39 * 39
    assert bar.closed and "40/40" in bar.last
    bar = Bar()
    r = pool.starmap_async(T.add, [(1, 2)] * 7, 2, progress=bar.options)
    assert r.get(10) == [3] * 7
    assert bar.closed and "7/7" in bar.last
    bar = Bar()
    assert pool.map(T.square, [], progress=bar.options) == []
    assert bar.closed and bar.counts() == [0, 0]  # drawn, then closed


def test_map_moves_in_small_steps(pool):
    # without a chunksize, map() with a bar cuts at least 100 chunks (the
    # default would make 8 for 2 workers), and the bar counts each
    bar = Bar(mininterval=0, miniters=1)
    pool.map(T.square, range(1000), progress=bar.options)
    counts = bar.counts()
    assert counts == sorted(counts) and counts[-1] == 1000
    assert len(set(counts)) > 50, counts


def test_imap_total_known_or_not(pool):
    bar = Bar()
    assert list(pool.imap(T.square, range(30), progress=bar.options))[-1] == 29 * 29
    assert bar.closed and "30/30" in bar.last
    bar = Bar()
    assert len(list(pool.imap(T.square, T.gen(30), progress=bar.options))) == 30
    # no total: a count and a rate, no fraction
    assert bar.closed and bar.last.startswith("30it ") and "/30" not in bar.text
    bar = Bar()
    got = sorted(pool.imap_unordered(T.square, range(25), 4, progress=bar.options))
    assert got == [x * x for x in range(25)]
    assert bar.closed and "25/25" in bar.last
    bar = Bar()
    assert len(list(pool.imap_unordered(T.square, T.gen(9), 2, progress=bar.options))) == 9
    assert bar.closed and bar.last.startswith("9it ")


def test_tqdm_options_are_honoured(pool, capsys):
    bar = Bar(desc="squares", unit="sq")
    pool.map(T.square, range(5), progress=bar.options)
    assert bar.last.startswith("squares: 100%") and "5/5" in bar.last and "sq/s" in bar.last
    bar = Bar(disable=True)
    assert list(pool.imap(T.square, range(5), progress=bar.options)) == [0, 1, 4, 9, 16]
    assert pool.map(T.square, range(5), progress=bar.options) == [0, 1, 4, 9, 16]
    assert bar.text == ""
    bar = Bar(total=3)  # the caller's own total wins
    pool.map(T.square, range(3), progress=bar.options)
    assert "3/3" in bar.last
    # True and {}: tqdm's defaults, on stderr
    capsys.readouterr()
    pool.map(T.square, range(6), progress=True)
    list(pool.imap(T.square, range(4), progress={}))
    err = capsys.readouterr().err
    assert "6/6" in err and "4/4" in err
    # and no bar at all without it
    pool.map(T.square, range(6), progress=False)
    pool.map(T.square, range(6))
    assert capsys.readouterr().err == ""
    with pytest.raises(TypeError, match="progress must be"):
        pool.map(T.square, range(3), progress="yes")


def test_the_bar_closes_when_a_task_fails(pool):
    bar = Bar()
    with pytest.raises(KeyError):
        pool.starmap(T.fail_on, [(i, 5) for i in range(20)], 1, progress=bar.options)
    assert bar.closed and "20/20" in bar.last  # failed tasks are done too
    # imap: the failure is raised while later tasks still run
    bar = Bar()
    it = pool.imap(T.nap_or_fail, [0, -1, 20, 20], progress=bar.options)
    assert next(it) == 0
    with pytest.raises(ValueError, match="bad -1"):
        next(it)
    assert bar.closed and "/4" in bar.last and "4/4" not in bar.last


def test_a_timeout_leaves_the_bar_to_the_job(pool):
    bar = Bar()
    r = pool.map_async(T.sleep_then, [0.5, 0.5], 1, progress=bar.options)
    with pytest.raises(gomp.TimeoutError):
        r.get(0.05)
    assert not bar.closed  # the job goes on, and so does its bar
    r.get(10)
    assert bar.closed and "2/2" in bar.last
    bar = Bar()
    it = pool.imap(T.sleep_then, [0.5], progress=bar.options)
    with pytest.raises(gomp.TimeoutError):
        it.next(timeout=0.05)
    assert not bar.closed
    assert list(it) == [None]
    assert bar.closed and "1/1" in bar.last


def test_ctrl_c_closes_the_bar(pool, ctrl_c):
    bar = Bar()
    it = pool.imap(T.sleep_then, [0, 30, 30], progress=bar.options)
    assert next(it) is None
    ctrl_c(0.3)
    t = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        next(it)
    assert time.monotonic() - t < 10
    assert bar.closed and "1/3" in bar.last
    bar = Bar()
    ctrl_c(0.3)
    with pytest.raises(KeyboardInterrupt):
        pool.map(T.sleep_then, [30, 30], 1, progress=bar.options)
    assert bar.closed and "0/2" in bar.last


def test_terminate_closes_the_bar():
    bar = Bar()
    with gomp.Pool(2) as p:
        it = p.imap_unordered(T.sleep_then, [30] * 3, progress=bar.options)
        time.sleep(0.1)
        assert not bar.closed
    assert bar.closed
    with pytest.raises(gomp.ProcessError):
        next(it)


def test_thread_pool_has_bars_too():
    from gomp.pool import ThreadPool
    bar = Bar()
    with ThreadPool(2) as p:
        assert p.map(T.square, range(12), progress=bar.options)[-1] == 121
    assert bar.closed and "12/12" in bar.last


def test_without_tqdm_the_error_names_the_extra():
    r = scripts.run_code("""
        import sys
        sys.modules["tqdm"] = None  # as if it were not installed
        import gomp, _pool_targets as T
        with gomp.Pool(1) as p:
            for call in (lambda: p.map(T.square, [1], progress=True),
                         lambda: p.imap(T.square, [1], progress={"desc": "x"}),
                         lambda: p.starmap_async(T.add, [(1, 2)], progress=True)):
                try:
                    call()
                except ImportError as e:
                    print("ImportError", e.name, e)
            print(p.map(T.square, [1, 2]), p.map(T.square, [3], progress=False))
        """, env=scripts.env(scripts.TESTS))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 4, r.stdout
    for line in lines[:3]:
        assert line.startswith("ImportError tqdm ")
        assert 'pip install "gomp-multiprocessing[progress]"' in line
    assert lines[3] == "[1, 4] [9]"


# -- gomp._progress, for other callers (an executor's map)

def test_iterate_counts_what_is_taken_and_closes_on_every_exit():
    bar = Bar()
    assert list(_progress.iterate(iter(range(5)), bar.options, 5)) == list(range(5))
    assert bar.closed and "5/5" in bar.last
    # the consumer stops early: closing the generator closes the bar
    bar = Bar()
    gen = _progress.iterate(iter(range(5)), bar.options, 5)
    assert next(gen) == 0 and not bar.closed
    gen.close()
    assert bar.closed and "1/5" in bar.last
    # a result raises (a failed or timed-out task)
    bar = Bar()
    with pytest.raises(OSError, match="fails at 2"):
        list(_progress.iterate(T.gen(5, fail_at=2), bar.options))
    assert bar.closed and bar.last.startswith("2it ")
    # no bar asked: the results as they are
    results = iter(range(3))
    assert _progress.iterate(results, False, 3) is results
    assert _progress.iterate(results, None) is results


def test_progress_counts_in_batches_and_stops_at_the_total():
    bar = Bar(mininterval=3600)
    p = _progress.make(bar.options, 10)
    p.update(4)  # the first update is handed to the bar at once
    assert p.bar.n == 4
    for _ in range(5):
        p.update(2)  # within mininterval: counted, not handed over
    assert p.bar.n == 4
    p.close()
    # 14 counted, 10 the total; drawn when closed
    assert p.bar.n == 10 and bar.closed and "10/10" in bar.last
    p.update(1)
    p.close()
    assert p.bar.n == 10
    assert _progress.make(None, 3) is None and _progress.make(False, 3) is None
    assert _progress.total_of(range(7)) == 7 and _progress.total_of(iter([])) is None


def test_the_bar_is_drawn_by_the_parents_result_thread():
    # made by the caller, then moved by the thread that receives results
    # (once per message), in this process: workers never touch it
    class Where(io.StringIO):
        seen = set()

        def write(self, s):
            Where.seen.add((os.getpid(), threading.current_thread().name))
            return super().write(s)
    with gomp.Pool(2) as p:
        p.map(T.square, range(200), progress={"file": Where(), "mininterval": 0})
    assert Where.seen == {(os.getpid(), "MainThread"), (os.getpid(), "PoolResultHandler")}


def test_progress_example():
    r = scripts.run([sys.executable, scripts.example("progress.py")], timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["sum of squares: %d" % sum(x * x for x in range(400)),
                                     "sum over the generator: %d" % sum(x * x for x in range(200)),
                                     "2**63 = %d" % 2 ** 63]
    assert "400/400" in r.stderr and "powers of two: 100%" in r.stderr
    assert "generator: 0n " in r.stderr  # no total; it goes away when done (leave=False)


def test_executor_map_counts_its_results_on_a_bar():
    from gomp.futures import ProcessPoolExecutor
    bar = Bar()
    with ProcessPoolExecutor(2) as ex:
        results = ex.map(T.square, range(30), chunksize=4, progress=bar.options)
        assert list(results) == [x * x for x in range(30)]
        assert bar.closed and bar.counts()[-1] == 30
        # a failing call closes the bar where it stopped
        failing = Bar()
        it = ex.map(T.nap_or_fail, [0, -1, 0], progress=failing.options)
        assert next(it) == 0
        with pytest.raises(ValueError):
            next(it)
        assert failing.closed and failing.counts()[-1] == 1
