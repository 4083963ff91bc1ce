"""Proxies inside managed objects: the stdlib documentation's nested proxy
example, a list of dicts changed through the list."""
from gomp import Manager

if __name__ == "__main__":
    with Manager() as manager:
        a = manager.list()
        b = manager.list()
        a.append(b)         # referent of a now contains referent of b
        print(a, b)
        b.append("hello")
        print(a[0], b)

        l_outer = manager.list([manager.dict() for i in range(2)])
        d_first_inner = l_outer[0]
        d_first_inner["a"] = 1
        d_first_inner["b"] = 2
        l_outer[1]["c"] = 3
        l_outer[1]["z"] = 26
        print(l_outer[0])
        print(l_outer[1])
