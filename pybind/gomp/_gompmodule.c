/* _gomp: the CPython side of the bridge to gomp's Go core.
 *
 * The Go library (_gocore.so, built with -buildmode=c-shared) is not linked
 * in: loading it starts the Go runtime, which must not happen on `import
 * gomp` (a zygote that forks children must never have started Go). load()
 * dlopens it on first use and resolves the exports below.
 *
 * After fork() a Go runtime is dead in the child (only the forking thread
 * survives), so a pthread_atfork handler marks the child and every call
 * into Go raises RuntimeError there instead of hanging.
 *
 * Blocking waits release the GIL and wait in short slices, checking for
 * signals in between, so Ctrl-C interrupts them at once.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

typedef int (*spawn_fn)(char *, char *, int, char *, int, char *, int *, int, int *, int *);
typedef int (*reap_fn)(int, int *);
typedef int (*signal_fn)(int, int);
typedef int (*wait_fn)(int, long long);
typedef int (*zygote_fn)(int, char *, size_t, int *, int, int *, char *, int);
typedef int (*status_fn)(int, int *);

static struct {
    void *handle;
    spawn_fn spawn;
    reap_fn reap;
    signal_fn signal;
    wait_fn wait_readable;
    zygote_fn zygote_start;
    status_fn read_status;
} go;

static volatile int forked_after_load = 0;

/* How long one slice of a blocking wait lasts before signals are checked. */
#define SLICE_NS (20 * 1000 * 1000LL)

static void mark_forked(void) { forked_after_load = 1; }

/* Returns 0 when Go may be called, -1 with an exception set otherwise. */
static int
usable(void)
{
    if (forked_after_load) {
        PyErr_SetString(PyExc_RuntimeError,
            "gomp cannot be used in a process made by fork() after gomp's Go "
            "runtime was loaded in its parent (the Go runtime does not survive "
            "fork); start processes with gomp instead of os.fork()");
        return -1;
    }
    if (go.handle == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "gomp's Go core is not loaded");
        return -1;
    }
    return 0;
}

static PyObject *
errno_error(int negerr)
{
    errno = -negerr;
    return PyErr_SetFromErrno(PyExc_OSError);
}

#define RESOLVE(field, name)                                                  \
    do {                                                                      \
        *(void **)(&go.field) = dlsym(h, name);                               \
        if (go.field == NULL) {                                               \
            PyErr_Format(PyExc_ImportError, "%s: missing symbol %s", path, name); \
            dlclose(h);                                                       \
            return NULL;                                                      \
        }                                                                     \
    } while (0)

static PyObject *
gomp_load(PyObject *self, PyObject *args)
{
    const char *path;
    if (!PyArg_ParseTuple(args, "s", &path))
        return NULL;
    if (forked_after_load) {
        usable();
        return NULL;
    }
    if (go.handle != NULL)
        Py_RETURN_NONE;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        PyErr_Format(PyExc_ImportError, "cannot load gomp's Go core: %s", dlerror());
        return NULL;
    }
    RESOLVE(spawn, "GompSpawn");
    RESOLVE(reap, "GompReap");
    RESOLVE(signal, "GompSignal");
    RESOLVE(wait_readable, "GompWaitReadable");
    RESOLVE(zygote_start, "GompZygoteStart");
    RESOLVE(read_status, "GompReadStatus");
    pthread_atfork(NULL, NULL, mark_forked);
    go.handle = h;
    Py_RETURN_NONE;
}

static PyObject *
gomp_loaded(PyObject *self, PyObject *noargs)
{
    return PyBool_FromLong(go.handle != NULL);
}

static PyObject *
gomp_forked(PyObject *self, PyObject *noargs)
{
    return PyBool_FromLong(forked_after_load);
}

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

/* Read a sequence of ints into a malloc'ed array. */
static int
int_array(PyObject *seq, int **out, int *n)
{
    PyObject *fast = PySequence_Fast(seq, "expected a sequence of file descriptors");
    if (fast == NULL)
        return -1;
    Py_ssize_t len = PySequence_Fast_GET_SIZE(fast);
    int *arr = PyMem_Malloc(sizeof(int) * (len ? len : 1));
    if (arr == NULL) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
        if (v == -1 && PyErr_Occurred()) {
            PyMem_Free(arr);
            Py_DECREF(fast);
            return -1;
        }
        arr[i] = (int)v;
    }
    Py_DECREF(fast);
    *out = arr;
    *n = (int)len;
    return 0;
}

static PyObject *
gomp_spawn(PyObject *self, PyObject *args)
{
    PyObject *pathobj, *argv, *env, *dirobj, *fdseq;
    if (!PyArg_ParseTuple(args, "O&OOOO", PyUnicode_FSConverter, &pathobj,
                          &argv, &env, &dirobj, &fdseq))
        return NULL;
    PyObject *argvbuf = NULL, *envbuf = NULL, *dirbytes = NULL, *result = NULL;
    int *fds = NULL, nfds = 0;
    if (usable() < 0 || join_nul(argv, &argvbuf) < 0 || join_nul(env, &envbuf) < 0 ||
        int_array(fdseq, &fds, &nfds) < 0)
        goto done;
    if (dirobj != Py_None && !PyUnicode_FSConverter(dirobj, &dirbytes))
        goto done;
    int pid = 0, pidfd = -1, rc;
    Py_BEGIN_ALLOW_THREADS
    rc = go.spawn(PyBytes_AS_STRING(pathobj), PyBytes_AS_STRING(argvbuf),
                  (int)PyBytes_GET_SIZE(argvbuf), PyBytes_AS_STRING(envbuf),
                  (int)PyBytes_GET_SIZE(envbuf),
                  dirbytes ? PyBytes_AS_STRING(dirbytes) : NULL, fds, nfds, &pid, &pidfd);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        errno_error(rc);
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
gomp_reap(PyObject *self, PyObject *args)
{
    int pidfd, code = 0, rc;
    if (!PyArg_ParseTuple(args, "i", &pidfd) || usable() < 0)
        return NULL;
    rc = go.reap(pidfd, &code);
    if (rc < 0)
        return errno_error(rc);
    if (rc == 0)
        Py_RETURN_NONE;
    return PyLong_FromLong(code);
}

static PyObject *
gomp_signal(PyObject *self, PyObject *args)
{
    int pidfd, sig, rc;
    if (!PyArg_ParseTuple(args, "ii", &pidfd, &sig) || usable() < 0)
        return NULL;
    rc = go.signal(pidfd, sig);
    if (rc < 0)
        return errno_error(rc);
    Py_RETURN_NONE;
}

static long long
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Parse a Python timeout (None, or seconds >= 0) into nanoseconds; -1 is
 * forever. Negative timeouts count as zero, as in the stdlib. */
static int
parse_timeout(PyObject *obj, long long *ns)
{
    if (obj == Py_None) {
        *ns = -1;
        return 0;
    }
    double t = PyFloat_AsDouble(obj);
    if (t == -1.0 && PyErr_Occurred())
        return -1;
    if (t != t) {
        PyErr_SetString(PyExc_ValueError, "timeout must be a number, not NaN");
        return -1;
    }
    if (t < 0)
        t = 0;
    if (t > 1e9)
        *ns = -1;
    else
        *ns = (long long)(t * 1e9);
    return 0;
}

static PyObject *
gomp_wait_readable(PyObject *self, PyObject *args)
{
    int fd, rc;
    PyObject *timeout = Py_None;
    long long total;
    if (!PyArg_ParseTuple(args, "i|O", &fd, &timeout) || parse_timeout(timeout, &total) < 0 ||
        usable() < 0)
        return NULL;
    long long deadline = total < 0 ? 0 : now_ns() + total;
    for (;;) {
        long long slice = SLICE_NS;
        if (total >= 0) {
            long long left = deadline - now_ns();
            if (left < 0)
                left = 0;
            if (left < slice)
                slice = left;
        }
        Py_BEGIN_ALLOW_THREADS
        rc = go.wait_readable(fd, slice);
        Py_END_ALLOW_THREADS
        if (rc < 0)
            return errno_error(rc);
        if (rc > 0)
            Py_RETURN_TRUE;
        if (total >= 0 && now_ns() >= deadline)
            Py_RETURN_FALSE;
        if (PyErr_CheckSignals() < 0)
            return NULL;
    }
}

static PyObject *
gomp_zygote_start(PyObject *self, PyObject *args)
{
    int sock, *fds = NULL, nfds = 0, out[3], rc;
    Py_buffer payload;
    PyObject *fdseq;
    char errbuf[512];
    if (!PyArg_ParseTuple(args, "iy*O", &sock, &payload, &fdseq))
        return NULL;
    if (usable() < 0 || int_array(fdseq, &fds, &nfds) < 0) {
        PyBuffer_Release(&payload);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = go.zygote_start(sock, payload.buf, (size_t)payload.len, fds, nfds, out, errbuf,
                         sizeof errbuf);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&payload);
    PyMem_Free(fds);
    if (rc < 0) {
        PyErr_SetString(PyExc_OSError, errbuf);
        return NULL;
    }
    return Py_BuildValue("iii", out[0], out[1], out[2]);
}

static PyObject *
gomp_read_status(PyObject *self, PyObject *args)
{
    int fd, code = 0, rc;
    if (!PyArg_ParseTuple(args, "i", &fd) || usable() < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = go.read_status(fd, &code);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        return errno_error(rc);
    if (rc == 0)
        Py_RETURN_NONE;
    return PyLong_FromLong(code);
}

/* prctl(PR_SET_PDEATHSIG): needs no Go, so the zygote's children use it. */
static PyObject *
gomp_set_pdeathsig(PyObject *self, PyObject *args)
{
    int sig;
    if (!PyArg_ParseTuple(args, "i", &sig))
        return NULL;
    if (prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"load", gomp_load, METH_VARARGS, "load(path): load the Go core (starts the Go runtime)."},
    {"loaded", gomp_loaded, METH_NOARGS, "Whether the Go core is loaded."},
    {"forked", gomp_forked, METH_NOARGS, "Whether this process was forked after Go was loaded."},
    {"spawn", gomp_spawn, METH_VARARGS,
     "spawn(path, argv, env, cwd, fds) -> (pid, pidfd): fork+exec a child that dies with us."},
    {"reap", gomp_reap, METH_VARARGS, "reap(pidfd) -> exit code, or None while running."},
    {"signal", gomp_signal, METH_VARARGS, "signal(pidfd, sig)"},
    {"wait_readable", gomp_wait_readable, METH_VARARGS,
     "wait_readable(fd, timeout=None) -> bool; interruptible by signals."},
    {"zygote_start", gomp_zygote_start, METH_VARARGS,
     "zygote_start(sock, payload, fds) -> (pid, status_fd, pidfd)"},
    {"read_status", gomp_read_status, METH_VARARGS,
     "read_status(fd) -> exit code, or None if the zygote died first."},
    {"set_pdeathsig", gomp_set_pdeathsig, METH_VARARGS, "set_pdeathsig(sig): prctl(PR_SET_PDEATHSIG)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "gomp._gomp", "Bridge to gomp's Go core.", -1, methods,
};

PyMODINIT_FUNC
PyInit__gomp(void)
{
    return PyModule_Create(&module);
}
