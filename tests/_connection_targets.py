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
    import _targets
    conn = _targets.mp().reducer.ForkingPickler.loads(control.recv_bytes())
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


def recv_handle_and_write(conn, data, fill_low_fds=False):
    """Receive a descriptor with reduction.recv_handle, write data to it and
    report where it landed. With fill_low_fds the descriptors below 256 are
    taken first, so that the received one is large."""
    from gomp import reduction
    if fill_low_fds:
        for i in range(256):
            try:
                os.fstat(i)
            except OSError:
                os.dup2(conn.fileno(), i)
    fd = reduction.recv_handle(conn)
    os.write(fd, data)
    os.close(fd)
    conn.send(fd)


def send_handle_of(conn, path):
    """Open path for writing and send its descriptor with send_handle."""
    from gomp import reduction
    with open(path, "wb") as f:
        reduction.send_handle(conn, f.fileno(), os.getpid())
    conn.recv()  # the parent wrote through it


def recv_socket_and_send(conn, data):
    """Receive a socket object over conn and send data on it."""
    s = conn.recv()
    s.sendall(data)
    s.close()
    conn.send("sent")


def detach_dupfd_and_write(pickled, data):
    """Unpickle a reduction.DupFd and write data to its descriptor."""
    from gomp import reduction
    fd = reduction.ForkingPickler.loads(pickled).detach()
    os.write(fd, data)
    os.close(fd)


def report_tracker(conn):
    """Send the state of this process's resource tracker to the parent."""
    from gomp.resource_tracker import _resource_tracker
    fd = _resource_tracker._fd
    conn.send((fd is not None, _resource_tracker._pid,
               fd is not None and _resource_tracker._check_alive()))
