"""freeze_support() first thing under the main guard: a no-op unless the
program is a frozen executable started as a child."""
from gomp import Process, freeze_support


def f():
    print("hello world!")


if __name__ == "__main__":
    freeze_support()
    Process(target=f).start()
