"""A queue served over TCP and used by clients that know only its address
and authkey: the stdlib documentation's "Using a remote manager" example.

    python managers_remote.py serve            # the server, port 50000
    python managers_remote.py put 'hello'      # a client puts
    python managers_remote.py get              # another takes it

With no argument, the script starts the server in a child process and runs
both clients against it.
"""
import queue
import sys

from gomp import Process
from gomp.managers import BaseManager

ADDRESS = ("127.0.0.1", 50000)
AUTHKEY = b"abracadabra"

_queue = queue.Queue()


def get_queue():
    return _queue


class QueueManager(BaseManager):
    pass


def serve(address=ADDRESS):
    QueueManager.register("get_queue", callable=get_queue)
    m = QueueManager(address=address, authkey=AUTHKEY)
    s = m.get_server()
    s.serve_forever()


def client(address=ADDRESS):
    # a client registers the name only: the callable lives in the server
    QueueManager.register("get_queue")
    m = QueueManager(address=address, authkey=AUTHKEY)
    m.connect()
    return m.get_queue()


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else None
    if command == "serve":
        serve()
    elif command == "put":
        client().put(sys.argv[2])
    elif command == "get":
        print(client().get())
    else:
        address = ("127.0.0.1", 50123)
        server = Process(target=serve, args=(address,), daemon=True)
        server.start()
        import time
        for _ in range(100):  # until the server listens
            try:
                q = client(address)
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
        q.put("hello")
        print(client(address).get())  # prints hello
        server.terminate()
        server.join()
