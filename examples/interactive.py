"""Functions defined at the interactive prompt (or piped on stdin) run in
children: gomp sends them by value, where the stdlib fails to find them.

    python examples/interactive.py     runs the same code through `python -`
"""
import subprocess
import sys

SESSION = """
import gomp
def shout(word):
    print(word.upper() + "!")
p = gomp.Process(target=shout, args=("hello from stdin",))
p.start(); p.join()
q = gomp.Process(target=lambda: print("and from a lambda"))
q.start(); q.join()
"""

if __name__ == "__main__":
    subprocess.run([sys.executable, "-"], input=SESSION, text=True, check=True)
