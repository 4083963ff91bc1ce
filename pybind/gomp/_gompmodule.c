/* _gomp: the CPython side of the bridge to gomp's Go core.
 *
 * The Go library (_gocore.so, built with -buildmode=c-shared) is not linked
 * in: loading it starts the Go runtime, which must not happen on `import
 * gomp` (a zygote that forks children must never have started Go). load()
 * dlopens it on first use and resolves the symbols each area asks for.
 *
 * After fork() the Go runtime is dead in the child (only the forking thread
 * survives), so a pthread_atfork handler marks the child and every call
 * into Go raises RuntimeError there instead of hanging.
 */
#include "_gomp.h"

#include <dlfcn.h>
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CORE_IMPORTS(X) X(GompSelf)
GOMP_IMPORTS(core, CORE_IMPORTS);

static gomp_symbol *symbol_tables[] = {
    gomp_core_symbols,
    gomp_process_symbols,
    gomp_connection_symbols,
    gomp_sync_symbols,
    gomp_queues_symbols,
    gomp_ring_symbols,
    gomp_pool_symbols,
    NULL,
};


static void *go_handle = NULL;
uint32_t gomp_self_pid;
uint64_t gomp_self_start;
static volatile int forked_after_load = 0;

static void mark_forked(void) { forked_after_load = 1; }

int
gomp_usable(void)
{
    if (forked_after_load) {
        PyErr_SetString(PyExc_RuntimeError,
            "gomp cannot be used in a process made by fork() after gomp's Go "
            "runtime was loaded in its parent (the Go runtime does not survive "
            "fork); start processes with gomp instead of os.fork()");
        return -1;
    }
    if (go_handle == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "gomp's Go core is not loaded");
        return -1;
    }
    return 0;
}

PyObject *
gomp_errno_error(int negerr)
{
    errno = -negerr;
    return PyErr_SetFromErrno(PyExc_OSError);
}

/* Shared (not FUTEX_PRIVATE_FLAG) operations: the words are in segments
 * mapped by several processes (gomp/futex.go does the same from Go). */
int
gomp_futex_wait(uint32_t *addr, uint32_t val, long long ns)
{
    struct timespec ts, *tsp = NULL;
    if (ns >= 0) {
        ts.tv_sec = ns / 1000000000LL;
        ts.tv_nsec = ns % 1000000000LL;
        tsp = &ts;
    }
    if (syscall(SYS_futex, addr, FUTEX_WAIT, val, tsp, NULL, 0) == 0 || errno == EAGAIN)
        return 1;
    return 0;
}

int
gomp_futex_wake(uint32_t *addr, int n)
{
    long woken = syscall(SYS_futex, addr, FUTEX_WAKE, n, NULL, NULL, 0);
    return woken < 0 ? -errno : (int)woken;
}

long long
gomp_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int
gomp_parse_timeout(PyObject *obj, long long *ns)
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
    *ns = t > 1e9 ? -1 : (long long)(t * 1e9);
    return 0;
}

int
gomp_int_array(PyObject *seq, int **out, int *n)
{
    PyObject *fast = PySequence_Fast(seq, "expected a sequence of integers");
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

int
gomp_wait_sliced(gomp_wait_step step, void *arg, long long timeout_ns)
{
    long long deadline = timeout_ns < 0 ? 0 : gomp_now_ns() + timeout_ns;
    for (;;) {
        long long slice = GOMP_SLICE_NS;
        if (timeout_ns >= 0) {
            long long left = deadline - gomp_now_ns();
            if (left < 0)
                left = 0;
            if (left < slice)
                slice = left;
        }
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = step(arg, slice);
        Py_END_ALLOW_THREADS
        if (rc < 0) {
            gomp_errno_error(rc);
            return -1;
        }
        if (rc > 0)
            return rc;
        if (timeout_ns >= 0 && gomp_now_ns() >= deadline)
            return 0;
        gomp_interrupts_pass_on();
        if (PyErr_CheckSignals() < 0)
            return -1;
    }
}

int
gomp_parse_wait_args(PyObject *args, int *i, long long *ns)
{
    PyObject *timeout = Py_None;
    if (!PyArg_ParseTuple(args, "i|O", i, &timeout) || gomp_parse_timeout(timeout, ns) < 0 ||
        gomp_usable() < 0)
        return -1;
    return 0;
}

PyObject *
gomp_wait_bool(gomp_wait_step step, void *arg, long long timeout_ns)
{
    int rc = gomp_wait_sliced(step, arg, timeout_ns);
    if (rc < 0)
        return NULL;
    return PyBool_FromLong(rc > 0);
}

PyObject *
gomp_wait_on_int(PyObject *args, gomp_wait_step step)
{
    int i;
    long long ns;
    if (gomp_parse_wait_args(args, &i, &ns) < 0)
        return NULL;
    return gomp_wait_bool(step, &i, ns);
}

static PyObject *
core_load(PyObject *self, PyObject *args)
{
    const char *path;
    if (!PyArg_ParseTuple(args, "s", &path))
        return NULL;
    if (forked_after_load) {
        gomp_usable();
        return NULL;
    }
    if (go_handle != NULL)
        Py_RETURN_NONE;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        PyErr_Format(PyExc_ImportError, "cannot load gomp's Go core: %s", dlerror());
        return NULL;
    }
    for (gomp_symbol **table = symbol_tables; *table; table++) {
        for (gomp_symbol *sym = *table; sym->name; sym++) {
            *sym->slot = dlsym(h, sym->name);
            if (*sym->slot == NULL) {
                PyErr_Format(PyExc_ImportError, "%s: missing symbol %s", path, sym->name);
                dlclose(h);
                return NULL;
            }
        }
    }
    pthread_atfork(NULL, NULL, mark_forked);
    unsigned pid;
    unsigned long long start;
    go.GompSelf(&pid, &start);
    gomp_self_pid = pid;
    gomp_self_start = start;
    go_handle = h;
    Py_RETURN_NONE;
}

static PyObject *
core_loaded(PyObject *self, PyObject *noargs)
{
    return PyBool_FromLong(go_handle != NULL);
}

static PyObject *
core_forked(PyObject *self, PyObject *noargs)
{
    return PyBool_FromLong(forked_after_load);
}

/* prctl(PR_SET_PDEATHSIG): needs no Go, so the zygote's children use it. */
static PyObject *
core_set_pdeathsig(PyObject *self, PyObject *args)
{
    int sig;
    if (!PyArg_ParseTuple(args, "i", &sig))
        return NULL;
    if (prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyMethodDef core_methods[] = {
    {"load", core_load, METH_VARARGS, "load(path): load the Go core (starts the Go runtime)."},
    {"loaded", core_loaded, METH_NOARGS, "Whether the Go core is loaded."},
    {"forked", core_forked, METH_NOARGS, "Whether this process was forked after Go was loaded."},
    {"set_pdeathsig", core_set_pdeathsig, METH_VARARGS,
     "set_pdeathsig(sig): prctl(PR_SET_PDEATHSIG); needs no Go."},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef *method_tables[] = {
    core_methods,
    gomp_process_methods,
    gomp_connection_methods,
    gomp_sync_methods,
    gomp_queues_methods,
    gomp_encode_methods,
    gomp_pool_methods,
    gomp_interrupts_methods,
    NULL,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "gomp._gomp", "Bridge to gomp's Go core.", -1, NULL,
};

PyMODINIT_FUNC
PyInit__gomp(void)
{
    /* one method table made of the areas' tables; it lives as long as
     * the process, as CPython requires */
    size_t n = 1;
    for (PyMethodDef **t = method_tables; *t; t++)
        for (PyMethodDef *m = *t; m->ml_name; m++)
            n++;
    PyMethodDef *all = PyMem_RawCalloc(n, sizeof(PyMethodDef));
    if (all == NULL)
        return PyErr_NoMemory();
    size_t i = 0;
    for (PyMethodDef **t = method_tables; *t; t++)
        for (PyMethodDef *m = *t; m->ml_name; m++)
            all[i++] = *m;
    module.m_methods = all;
    return PyModule_Create(&module);
}
