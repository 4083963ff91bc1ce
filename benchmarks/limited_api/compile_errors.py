"""What stands between gomp's C extension and the limited API: the errors of
its sources compiled with -DPy_LIMITED_API=<floor> (run.sh keeps gcc's
output, one directory of .log files per floor), grouped by category.

    python compile_errors.py SOURCE_DIR LABEL=LOG_DIR [LABEL=LOG_DIR ...]

One count per distinct source site (file, line, identifier): an error in a
shared header counts once, not once per .c file that includes it, and the
errors that only follow from an earlier one (the int conversion of an
implicitly declared function, the members of an unknown Py_buffer) are
folded into it. The last rows: all sites, and the functions (or static
definitions) that hold one, which is roughly what a port would rewrite.
"""
import collections
import glob
import os
import re
import sys

# (label, pattern of the identifier gcc names), first match wins
CATEGORIES = [
    ("static PyTypeObject -> PyType_FromSpec",
     r"^(PyTypeObject|tp_\w+|PyVarObject_HEAD_INIT|Py_TPFLAGS_\w+|\w+_Type)$"),
    ("buffer protocol (limited from 3.11)",
     r"^(Py_buffer|PyBuffer_Release|PyObject_GetBuffer|PyBUF_\w+|PyBufferProcs|getbufferproc"
     r"|segment_getbuffer|get_blob|buf|len|readonly)$"),
    ("list/tuple macros -> functions",
     r"^(PyList_(GET|SET)_\w+|PyTuple_(GET|SET)_\w+|PySequence_Fast_\w+"
     r"|PyListObject|PyTupleObject)$"),
    ("bytes macros -> functions",
     r"^(PyBytes_AS_STRING|PyBytes_GET_SIZE|PyByteArray_AS_STRING|PyByteArray_GET_SIZE)$"),
    ("marshal C API (never limited)", r"^PyMarshal_"),
    ("vectorcall (from 3.12), CallOneArg, Method_New",
     r"^(PyObject_Vectorcall|PyObject_CallOneArg|PyMethod_New)$"),
    ("_PyBytes_Resize (private)", r"^_PyBytes_Resize$"),
    ("Py_XSETREF (not limited)", r"^(Py_XSETREF|Py_SETREF)$"),
    ("PyFloat_AS_DOUBLE, PyDict_GET_SIZE", r"^(PyFloat_AS_DOUBLE|PyDict_GET_SIZE)$"),
    ("METH_FASTCALL (limited from 3.10)", r"^METH_FASTCALL$"),
    ("PyMem_RawCalloc (limited from 3.13)", r"^PyMem_Raw"),
    ("PyWeakref_GetRef (limited from 3.13)", r"^PyWeakref_GetRef$"),
]

# the identifier a diagnostic is about
IDENT_PATTERNS = [re.compile(p) for p in [
    r"implicit declaration of function ‘(\w+)’",
    r"unknown type name ‘(\w+)’",
    r"‘(\w+)’ undeclared",
    r"has no member named ‘(\w+)’",
    r"request for member ‘(\w+)’",
    r"storage size of ‘(\w+)’",
    r"variable ‘(\w+)’ has initializer",
    r"invalid use of incomplete typedef ‘(\w+)’",
    r"expected ‘}’ before ‘(\w+)’",
]]
# declared implicitly only because an earlier error hid their header's use
NOT_ROOT_CAUSES = {"PyLong_AsLong", "PyLong_AsUnsignedLong", "memcpy", "memset"}

DIAGNOSTIC = re.compile(r"^(.*?):(\d+):(\d+): (error|warning|note): (.*)$")


def ident_of(msg):
    for pattern in IDENT_PATTERNS:
        m = pattern.search(msg)
        if m:
            return m.group(1)
    return None


def sites(log_dir):
    """{(file, line, identifier)} of the errors in log_dir's gcc logs."""
    found = set()
    for log in sorted(glob.glob(os.path.join(log_dir, "*.log"))):
        with open(log, encoding="utf-8") as f:
            lines = f.read().splitlines()
        for i, line in enumerate(lines):
            m = DIAGNOSTIC.match(line)
            if not m or m.group(4) == "note":
                continue
            path, lineno, msg = m.group(1), int(m.group(2)), m.group(5)
            ident = ident_of(msg)
            if "/include/python" in path:
                # inside a macro of Python's headers: the notes that follow
                # name the use in gomp's sources
                for note in lines[i + 1:i + 12]:
                    n = DIAGNOSTIC.match(note)
                    if n and n.group(4) != "note":
                        break
                    if n and "pybind/gomp" in n.group(1):
                        path, lineno = n.group(1), int(n.group(2))
                        macro = re.search(r"in expansion of macro ‘(\w+)’", n.group(5))
                        ident = macro.group(1) if macro else ident
                        break
                if "extra brace group" in msg or ident == "PyVarObject_HEAD_INIT":
                    ident = "PyVarObject_HEAD_INIT"
            if ident is None and "excess elements in struct initializer" in msg:
                ident = "PyTypeObject"  # a static type's slots, the type unknown
            if ident is None or ident in NOT_ROOT_CAUSES:
                continue  # follows from another error
            found.add((os.path.basename(path), lineno, ident))
    return found


def category(ident):
    for label, pattern in CATEGORIES:
        if re.search(pattern, ident):
            return label
    return "other: " + ident


def enclosing(lines, lineno):
    """The function or static definition that holds line lineno (1-based) of
    a source in gomp's style (the name starts its line)."""
    for i in range(lineno - 1, -1, -1):
        text = lines[i]
        if text.startswith("}") and i < lineno - 1:
            break  # the end of an earlier definition: the site is at file scope
        m = (re.match(r"^([a-z_]\w*)\s*\(", text)
             or re.match(r"^static PyTypeObject (\w+)", text)
             or re.match(r"^(?:static )?(?:PyMethodDef|PyBufferProcs) (\w+)", text))
        if m:
            return m.group(1)
    return "<file scope>"


def main():
    source_dir, runs = sys.argv[1], [a.split("=", 1) for a in sys.argv[2:]]
    sources = {}

    def source(name):
        if name not in sources:
            with open(os.path.join(source_dir, name), encoding="utf-8") as f:
                sources[name] = f.read().splitlines()
        return sources[name]

    counts = {}
    for label, log_dir in runs:
        found = sites(log_dir)
        counts[label] = collections.Counter(category(ident) for _, _, ident in found)
        counts[label]["all sites"] = len(found)
        counts[label]["functions touched"] = len(
            {(f, enclosing(source(f), line)) for f, line, _ in found})
    cats = [c for c, _ in CATEGORIES]
    cats += sorted({c for n in counts.values() for c in n if c.startswith("other: ")})
    width = max(len(c) for c in cats)
    print("%-*s" % (width, "limited API floor:") + "".join("%7s" % label for label, _ in runs))
    for cat in cats + ["all sites", "functions touched"]:
        print("%-*s" % (width, cat) + "".join("%7d" % counts[label][cat] for label, _ in runs))


if __name__ == "__main__":
    main()
