"""Functions that benchmark children run (importable by reference)."""


def echo(conn):
    """Send back every object until None arrives."""
    while True:
        obj = conn.recv()
        if obj is None:
            break
        conn.send(obj)
    conn.close()


def echo_bytes(conn):
    """Send back every message until an empty one arrives."""
    while True:
        data = conn.recv_bytes()
        if not data:
            break
        conn.send_bytes(data)
    conn.close()


def sink_bytes(conn, reply):
    """Receive messages until an empty one; after each, answer its length."""
    while True:
        data = conn.recv_bytes()
        reply.send(len(data))
        if not data:
            break
    conn.close()


def socket_echo_bytes(address, stdlib):
    """Connect to a Listener at address (the stdlib's or gomp's Client) and
    echo messages as echo_bytes does."""
    if stdlib:
        from multiprocessing.connection import Client
    else:
        from gomp.connection import Client
    echo_bytes(Client(address))
