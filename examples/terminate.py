"""Terminating a process (the stdlib's Process.terminate example)."""
import signal
import time

import gomp as multiprocessing

if __name__ == "__main__":
    p = multiprocessing.Process(target=time.sleep, args=(1000,))
    print(p, p.is_alive())
    p.start()
    print(p, p.is_alive())
    p.terminate()
    time.sleep(0.1)
    print(p, p.is_alive())
    p.join()
    print(p.exitcode == -signal.SIGTERM)
