"""Synchronization between processes (the Lock example of the
multiprocessing documentation): without the lock, output from the
different processes is liable to get all mixed up."""
from gomp import Process, Lock


def f(l, i):
    l.acquire()
    try:
        print('hello world', i)
    finally:
        l.release()


if __name__ == '__main__':
    lock = Lock()

    for num in range(10):
        Process(target=f, args=(lock, num)).start()
