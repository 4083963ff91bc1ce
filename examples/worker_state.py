"""Per-worker state: with ``worker_state=True`` the pool passes what the
initializer returned in that worker (a model, a database connection) to
every task the worker runs, as the keyword argument ``worker_state``. It is
made once per worker, not once per task, and never pickled.

    python examples/worker_state.py
"""
import os
import sqlite3
import tempfile

import gomp


def connect(path):
    """Runs once in each worker: its return value is the worker's state."""
    return sqlite3.connect(path)


def meaning(word, worker_state):
    row = worker_state.execute("SELECT meaning FROM words WHERE word = ?",
                               (word,)).fetchone()
    return word, row[0] if row else None


def tally(word, worker_state):
    """Without an initializer, the state is a dict per worker to fill."""
    worker_state[word] = worker_state.get(word, 0) + 1
    return os.getpid(), sum(worker_state.values())


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "words.db")
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE words (word TEXT PRIMARY KEY, meaning TEXT)")
            db.executemany("INSERT INTO words VALUES (?, ?)",
                           [("gomp", "multiprocessing in Go"), ("pool", "workers"),
                            ("state", "what a worker keeps")])
        db.close()

        # one connection per worker, used by every task it runs
        with gomp.Pool(2, initializer=connect, initargs=(path,), worker_state=True) as pool:
            for word, text in pool.imap(meaning, ["gomp", "state", "tqdm"]):
                print(f"{word}: {text}")

    with gomp.Pool(2, worker_state=True) as pool:
        done = pool.map(tally, ["a", "b", "a", "c"] * 25, chunksize=5)
        per_worker = {}
        for pid, n in done:
            per_worker[pid] = max(per_worker.get(pid, 0), n)
        print("tasks counted by the workers' own dicts:", sum(per_worker.values()))
