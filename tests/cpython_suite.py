"""Run the interpreter's own multiprocessing test suite against gomp.

CPython ships its multiprocessing tests as ``test._test_multiprocessing``
(with every interpreter); this runs its spawn flavour with gomp installed as
``multiprocessing`` (see ``gomp.install``). The suite is used as installed,
never copied. Tests that check a documented design difference of gomp's are
skipped by name, with the reason (``DIFFERENCES``, which the README lists).

    python tests/cpython_suite.py [--group processes|threads|manager|misc]
                                  [-k PATTERN] [--stdlib] [-v]

``--stdlib`` runs the same selection against the stdlib instead, for the
baseline. The last line printed is a summary that tests/test_cpython_suite.py
reads.

The tests are installed at module level (children import this file as their
``__main__`` to find the test classes by reference), so that part must stay
unguarded.
"""
import fnmatch
import faulthandler
import os
import signal
import sys
import time
import unittest

if __name__ == "__main__":
    # SIGINT starts ignored in a background job; the suite's tests of Ctrl-C
    # need Python's handler (the processes they start inherit it)
    signal.signal(signal.SIGINT, signal.default_int_handler)

STDLIB = "--stdlib" in sys.argv or os.environ.get("GOMP_SUITE_STDLIB") == "1"
if STDLIB:
    os.environ["GOMP_SUITE_STDLIB"] = "1"  # children too
else:
    import gomp
    gomp.install()

import test._test_multiprocessing as suite  # noqa: E402

suite.install_tests_in_module_dict(globals(), "spawn")

# Tests of behaviour gomp changes on purpose, as "Class.test" patterns
# (without the With<Type> prefix) -> the reason.
NO_FORK = ("no 'fork' start method: the Go runtime does not survive fork(), "
           "so get_context('fork') raises ValueError")
DIFFERENCES = {
    "TestStartMethod.test_get_all": NO_FORK,
    "TestStartMethod.test_mixed_startmethod": NO_FORK,
    "TestInternalDecorators.test_only_run_in_spawn_testsuite": NO_FORK,
    "TestProcess.test_parent_process":
        "children die with their parent (PR_SET_PDEATHSIG): the test's grandchild "
        "outliving its parent is what gomp prevents",
    "TestConnection.test_missing_fd_transfer":
        "a Pipe end's fileno() is for waiting (select, poll, wait), not for raw "
        "writes: its messages travel in shared memory",
    "TestResourceTracker.test_resource_tracker":
        "gomp's locks and semaphores are anonymous shared memory: a Lock has no "
        "name (_semlock.name is None) for the test to hand to the resource tracker",
    "TestResourceTracker.test_resource_tracker_sigkill":
        "gomp's locks and semaphores are anonymous shared memory, with no name for "
        "the resource tracker to clean up, so making one does not contact it",
    "TestQueue.test_queue_feeder_donot_stop_onexc":
        "an object that cannot be pickled raises in put(), in the caller, instead of "
        "being reported and lost by a feeder thread (gomp never drops a message silently)",
}

# how long one test may take before the run is stopped with every thread's
# traceback (a hang is a failure, not a stall)
TEST_TIMEOUT = float(os.environ.get("GOMP_SUITE_TEST_TIMEOUT", "300"))

GROUPS = ("processes", "threads", "manager", "misc")


def group_of(cls_name):
    for g in GROUPS[:3]:
        if cls_name.startswith("With" + g.capitalize()):
            return g
    return "misc"


def difference(cls_name, method):
    short = cls_name
    for g in GROUPS[:3]:
        prefix = "With" + g.capitalize()
        if short.startswith(prefix):
            short = short[len(prefix):]
    for pattern, reason in DIFFERENCES.items():
        if fnmatch.fnmatchcase(short + "." + method, pattern):
            return reason
    return None


def skip_with(reason):
    def skipped(self):
        self.skipTest("gomp: " + reason)
    return skipped


def select(groups, patterns):
    """The ids ("Class.test") of the tests to run, in a stable order."""
    loader = unittest.TestLoader()
    ids = []
    for name, obj in sorted(globals().items()):
        if not (isinstance(obj, type) and issubclass(obj, unittest.TestCase)):
            continue
        if getattr(obj, "__module__", None) != __name__ or group_of(name) not in groups:
            continue
        for method in loader.getTestCaseNames(obj):
            test_id = name + "." + method
            if not patterns or any(p in test_id for p in patterns):
                ids.append(test_id)
    return ids


class _Result(unittest.TextTestResult):
    """Arms a watchdog per test and records each outcome in a file, so that
    the runner knows where a worker that hung or crashed stopped."""

    record = None

    def startTest(self, test):
        faulthandler.dump_traceback_later(TEST_TIMEOUT, exit=True)
        self._outcome_written = False
        self._write("START", test)
        super().startTest(test)

    def stopTest(self, test):
        faulthandler.cancel_dump_traceback_later()
        if not self._outcome_written:  # only subtests failed: no add* call
            self._write("failure", test)
        super().stopTest(test)

    def _write(self, what, test):
        self.record.write("%s %s\n" % (what, _id(test)))
        self.record.flush()
        if what != "START":
            self._outcome_written = True

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None and not self._outcome_written:
            self._write("failure", test)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._write("ok", test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._write("failure", test)

    def addError(self, test, err):
        super().addError(test, err)
        self._write("error", test)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._write("skipped" if not reason.startswith("gomp: ") else "difference", test)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._write("ok", test)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._write("failure", test)


def _id(test):
    parts = test.id().split(".")
    return ".".join(parts[-2:]) if len(parts) >= 2 else test.id()


def worker(ids_file, record_file, verbose):
    """Run the tests listed in ids_file, recording outcomes in record_file."""
    with open(ids_file) as f:
        ids = f.read().split()
    tests = unittest.TestSuite()
    for test_id in ids:
        cls_name, method = test_id.split(".")
        cls = globals()[cls_name]
        reason = None if STDLIB else difference(cls_name, method)
        if reason is not None:
            setattr(cls, method, skip_with(reason))
        tests.addTest(cls(method))
    with open(record_file, "a") as record:
        _Result.record = record
        runner = unittest.TextTestRunner(verbosity=2 if verbose else 1,
                                         resultclass=_Result, stream=sys.stdout)
        result = runner.run(tests)
    return 0 if result.wasSuccessful() else 1


def main(argv):
    import argparse
    import subprocess
    import tempfile
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", action="append", choices=GROUPS + ("all",))
    parser.add_argument("-k", action="append", default=[], dest="patterns")
    parser.add_argument("--stdlib", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("IDS", "RECORD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(*args.worker, args.verbose)
    groups = set(GROUPS) if not args.group or "all" in args.group else set(args.group)
    todo = select(groups, args.patterns)
    outcome = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gomp-suite-") as tmp:
        ids_file, record_file = os.path.join(tmp, "ids"), os.path.join(tmp, "record")
        # a worker that hangs (the watchdog ends it) or crashes is replaced,
        # going on after the test it stopped in
        while todo:
            with open(ids_file, "w") as f:
                f.write("\n".join(todo))
            open(record_file, "w").close()
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", ids_file, record_file]
            if args.verbose:
                cmd.append("-v")
            if STDLIB:
                cmd.append("--stdlib")
            code = subprocess.call(cmd)
            current = None
            with open(record_file) as f:
                for line in f:
                    fields = line.split()
                    if len(fields) != 2:
                        continue  # cut short by the worker's end
                    what, test_id = fields
                    if what == "START":
                        current = test_id
                    else:
                        outcome[test_id] = what
                        current = None
            done = [t for t in todo if t in outcome]
            if current is None and len(done) == len(todo):
                break
            if current is None:  # died between tests: blame the next one
                current = next(t for t in todo if t not in outcome)
            outcome[current] = "hang-or-crash (exit code %d)" % code
            print("\n*** %s: the worker stopped (exit code %d); going on after it\n"
                  % (current, code), flush=True)
            todo = todo[todo.index(current) + 1:]
    counts = {}
    for what in outcome.values():
        key = what.split()[0]
        counts[key] = counts.get(key, 0) + 1
    bad = sorted(t for t, w in outcome.items() if w not in ("ok", "skipped", "difference"))
    for test_id in bad:
        print("NOT PASSED %s: %s" % (test_id, outcome[test_id]))
    print("SUITE %s python %s groups=%s ran=%d passed=%d failures=%d errors=%d "
          "hangs=%d skipped=%d gomp_differences=%d seconds=%.0f" % (
              "stdlib" if STDLIB else "gomp", ".".join(map(str, sys.version_info[:3])),
              ",".join(sorted(groups)), len(outcome), counts.get("ok", 0),
              counts.get("failure", 0), counts.get("error", 0),
              counts.get("hang-or-crash", 0), counts.get("skipped", 0),
              counts.get("difference", 0), time.monotonic() - started))
    sys.stdout.flush()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
