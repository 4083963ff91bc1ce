"""The documentation's Listener and Client example, on gomp: the server
runs in a child process, the client in this one. Either side may as well
be the standard library's multiprocessing.connection."""
from array import array

from gomp import Process, Pipe
from gomp.connection import Client, Listener


def server(address_out):
    with Listener(('localhost', 0), authkey=b'secret password') as listener:
        address_out.send(listener.address)
        with listener.accept() as conn:
            print('connection accepted from', listener.last_accepted)

            conn.send([2.25, None, 'junk', float])

            conn.send_bytes(b'hello')

            conn.send_bytes(array('i', [42, 1729]))


if __name__ == '__main__':
    r, w = Pipe(duplex=False)
    p = Process(target=server, args=(w,))
    p.start()
    address = r.recv()

    with Client(address, authkey=b'secret password') as conn:
        print(conn.recv())                  # => [2.25, None, 'junk', float]

        print(conn.recv_bytes())            # => 'hello'

        arr = array('i', [0, 0, 0, 0, 0])
        print(conn.recv_bytes_into(arr))    # => 8
        print(arr)                          # => array('i', [42, 1729, 0, 0, 0])
    p.join()
