"""Worker processes take tasks from a JoinableQueue and call task_done()
for each; the parent's join() returns once every task is done. A None per
worker tells the workers to stop."""
import gomp as multiprocessing


def worker(tasks, results):
    while True:
        n = tasks.get()
        try:
            if n is None:
                return
            results.put((n, sum(i * i for i in range(n))))
        finally:
            tasks.task_done()


if __name__ == '__main__':
    tasks = multiprocessing.JoinableQueue()
    results = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=worker, args=(tasks, results))
               for _ in range(4)]
    for w in workers:
        w.start()

    for n in range(20):
        tasks.put(n * 1000)
    tasks.join()                      # every task was taken and finished
    print('done:', sorted(results.get() for _ in range(20))[:3], '...')

    for _ in workers:
        tasks.put(None)
    tasks.join()
    for w in workers:
        w.join()
    print('workers exited with', [w.exitcode for w in workers])
