"""Functions run in children by the connection tests (found by reference)."""
import os
import time


def echo(conn):
    """Send back every object until None arrives."""
    while True:
        obj = conn.recv()
        if obj is None:
            break
        conn.send(obj)
    conn.close()


def echo_bytes(conn):
    while True:
        data = conn.recv_bytes()
        if not data:
            break
        conn.send_bytes(data)
    conn.close()


def send_then_exit(conn, obj):
    conn.send(obj)
    conn.close()


def exit_at_once(conn):
    pass


def recv_connection_then_echo(control):
    """Receive a connection over control and echo one object on it."""
    conn = control.recv()
    obj = conn.recv()
    conn.send(("echo", obj))
    control.send("done")
    conn.close()


def recv_pickled_connection(control):
    """Receive a connection pickled outside any send (as a queue would)."""
    from gomp import reduction
    conn = reduction.ForkingPickler.loads(control.recv_bytes())
    conn.send(("via sharer", os.getpid()))
    control.send("done")


def send_huge_then_hang(conn, size):
    """Start a message the parent will not read in full, then wait to be
    killed mid-message."""
    conn.send_bytes(b"z" * size)
    time.sleep(60)


def write_raw_to(fd_conn, data):
    fd_conn.send_bytes(data)
    fd_conn.close()


def serve_one_echo(conn):
    """Echo objects on a socket connection handed over at start."""
    echo(conn)


def send_tagged(conn, tag, count):
    """Send count messages made only of the byte tag, of varied sizes (some
    larger than the ring), then one object."""
    for i in range(count):
        conn.send_bytes(bytes([tag]) * (1 + (i * 7919) % 300_000 if i % 10 == 0 else 1 + i % 50))
    conn.send(("done", tag))
