/* _gomp, process area: fork+exec of a child (gomp/spawn.go), waiting for
 * and signalling it, and the zygote's fork of a sibling. The zygote's
 * protocol itself is spoken in Python, on both ends (zygote.py). */
#include "_gomp.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PROCESS_IMPORTS(X)                                                                         \
    X(GompSpawn) X(GompReap) X(GompSignal) X(GompWaitReadable)
GOMP_IMPORTS(process, PROCESS_IMPORTS);

/* Join a list of str/bytes into one buffer of NUL-terminated strings. */
static int
join_nul(PyObject *seq, PyObject **out)
{
    PyObject *fast = PySequence_Fast(seq, "expected a sequence of strings");
    if (fast == NULL)
        return -1;
    PyObject *buf = PyBytes_FromStringAndSize(NULL, 0);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    for (Py_ssize_t i = 0; buf != NULL && i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i), *b;
        if (PyUnicode_Check(item))
            b = PyUnicode_EncodeFSDefault(item);
        else if (PyBytes_Check(item)) {
            b = item;
            Py_INCREF(b);
        } else {
            PyErr_SetString(PyExc_TypeError, "expected str or bytes");
            Py_CLEAR(buf);
            break;
        }
        if (b == NULL || memchr(PyBytes_AS_STRING(b), 0, PyBytes_GET_SIZE(b))) {
            if (b != NULL)
                PyErr_SetString(PyExc_ValueError, "embedded null byte");
            Py_XDECREF(b);
            Py_CLEAR(buf);
            break;
        }
        PyBytes_ConcatAndDel(&buf, b);
        if (buf != NULL)
            PyBytes_ConcatAndDel(&buf, PyBytes_FromStringAndSize("", 1));
    }
    Py_DECREF(fast);
    *out = buf;
    return buf == NULL ? -1 : 0;
}

static PyObject *
process_spawn(PyObject *self, PyObject *args)
{
    PyObject *pathobj, *argv, *env, *dirobj, *fdseq;
    if (!PyArg_ParseTuple(args, "O&OOOO", PyUnicode_FSConverter, &pathobj,
                          &argv, &env, &dirobj, &fdseq))
        return NULL;
    PyObject *argvbuf = NULL, *envbuf = NULL, *dirbytes = NULL, *result = NULL;
    int *fds = NULL, nfds = 0;
    if (gomp_usable() < 0 || join_nul(argv, &argvbuf) < 0 || join_nul(env, &envbuf) < 0 ||
        gomp_int_array(fdseq, &fds, &nfds) < 0)
        goto done;
    if (dirobj != Py_None && !PyUnicode_FSConverter(dirobj, &dirbytes))
        goto done;
    int pid = 0, pidfd = -1, rc;
    Py_BEGIN_ALLOW_THREADS
    rc = go.GompSpawn(PyBytes_AS_STRING(pathobj), PyBytes_AS_STRING(argvbuf),
                  (int)PyBytes_GET_SIZE(argvbuf), PyBytes_AS_STRING(envbuf),
                  (int)PyBytes_GET_SIZE(envbuf),
                  dirbytes ? PyBytes_AS_STRING(dirbytes) : NULL, fds, nfds, &pid, &pidfd);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        gomp_errno_error(rc);
    else
        result = Py_BuildValue("ii", pid, pidfd);
done:
    Py_XDECREF(pathobj);
    Py_XDECREF(argvbuf);
    Py_XDECREF(envbuf);
    Py_XDECREF(dirbytes);
    PyMem_Free(fds);
    return result;
}

static PyObject *
process_reap(PyObject *self, PyObject *args)
{
    int pidfd, code = 0, rc;
    if (!PyArg_ParseTuple(args, "i", &pidfd) || gomp_usable() < 0)
        return NULL;
    rc = go.GompReap(pidfd, &code);
    if (rc < 0)
        return gomp_errno_error(rc);
    if (rc == 0)
        Py_RETURN_NONE;
    return PyLong_FromLong(code);
}

static PyObject *
process_signal(PyObject *self, PyObject *args)
{
    int pidfd, sig;
    if (!PyArg_ParseTuple(args, "ii", &pidfd, &sig) || gomp_usable() < 0)
        return NULL;
    return gomp_none_or_errno(go.GompSignal(pidfd, sig));
}

static int
readable_step(void *arg, long long slice_ns)
{
    return go.GompWaitReadable(*(int *)arg, slice_ns);
}

static PyObject *
process_wait_readable(PyObject *self, PyObject *args)
{
    return gomp_wait_on_int(args, readable_step);
}

/* fork_as_sibling(): fork, except that the child's parent is our parent
 * (CLONE_PARENT). The zygote forks children this way so that each one is a
 * real child of the program that asked for it: os.getppid() in the child is
 * that program's pid, the program reaps it (no exit status relayed through
 * the zygote) and PR_SET_PDEATHSIG in the child follows the program. It
 * needs no Go. Python's own fork bookkeeping runs around it as for
 * os.fork(); glibc's fork handlers do not, which is harmless in the
 * single-threaded zygote (nothing can hold a lock across the clone). */
static PyObject *
process_fork_as_sibling(PyObject *self, PyObject *noargs)
{
    PyOS_BeforeFork();
    long pid = syscall(SYS_clone, (unsigned long)(CLONE_PARENT | SIGCHLD), 0L, 0L, 0L, 0L);
    int saved = errno;
    if (pid == 0) {
        PyOS_AfterFork_Child();
        return PyLong_FromLong(0);
    }
    PyOS_AfterFork_Parent();
    if (pid < 0) {
        errno = saved;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(pid);
}

PyMethodDef gomp_process_methods[] = {
    {"fork_as_sibling", process_fork_as_sibling, METH_NOARGS,
     "fork_as_sibling() -> pid: fork a child whose parent is our parent (0 in the child)."},
    {"spawn", process_spawn, METH_VARARGS,
     "spawn(path, argv, env, cwd, fds) -> (pid, pidfd): fork+exec a child that dies with us."},
    {"reap", process_reap, METH_VARARGS, "reap(pidfd) -> exit code, or None while running."},
    {"signal", process_signal, METH_VARARGS, "signal(pidfd, sig)"},
    {"wait_readable", process_wait_readable, METH_VARARGS,
     "wait_readable(fd, timeout=None) -> bool; interruptible by signals."},
    {NULL, NULL, 0, NULL},
};
