/* _gomp, pool area: the supervisor that tells a pool at once which of its
 * workers ended (gomp/pool.go). Tasks and results travel on the queues
 * area's rings; nothing here is on the per-task path. */
#include "_gomp.h"

static int (*go_sup_new)(int *);
static int (*go_sup_watch)(int, int, int);
static int (*go_sup_unwatch)(int, int);
static int (*go_sup_wait)(int, long long, int *, int);

gomp_symbol gomp_pool_symbols[] = {
    {"GompSupervisorNew", (void **)&go_sup_new},
    {"GompSupervisorWatch", (void **)&go_sup_watch},
    {"GompSupervisorUnwatch", (void **)&go_sup_unwatch},
    {"GompSupervisorWait", (void **)&go_sup_wait},
    {NULL, NULL},
};

#define MAX_IDS 64

static PyObject *
pool_supervisor_new(PyObject *self, PyObject *noargs)
{
    int fd = -1;
    if (gomp_usable() < 0)
        return NULL;
    int rc = go_sup_new(&fd);
    if (rc < 0)
        return gomp_errno_error(rc);
    return PyLong_FromLong(fd);
}

static PyObject *
pool_supervisor_watch(PyObject *self, PyObject *args)
{
    int sup, fd, id;
    if (!PyArg_ParseTuple(args, "iii", &sup, &fd, &id) || gomp_usable() < 0)
        return NULL;
    int rc = go_sup_watch(sup, fd, id);
    if (rc < 0)
        return gomp_errno_error(rc);
    Py_RETURN_NONE;
}

static PyObject *
pool_supervisor_unwatch(PyObject *self, PyObject *args)
{
    int sup, fd;
    if (!PyArg_ParseTuple(args, "ii", &sup, &fd) || gomp_usable() < 0)
        return NULL;
    int rc = go_sup_unwatch(sup, fd);
    if (rc < 0)
        return gomp_errno_error(rc);
    Py_RETURN_NONE;
}

typedef struct {
    int sup;
    int ids[MAX_IDS];
} supwait;

static int
sup_step(void *arg, long long slice_ns)
{
    supwait *w = arg;
    return go_sup_wait(w->sup, slice_ns, w->ids, MAX_IDS);
}

static PyObject *
pool_supervisor_wait(PyObject *self, PyObject *args)
{
    supwait w;
    PyObject *timeout = Py_None;
    long long ns;
    if (!PyArg_ParseTuple(args, "i|O", &w.sup, &timeout) ||
        gomp_parse_timeout(timeout, &ns) < 0 || gomp_usable() < 0)
        return NULL;
    int n = gomp_wait_sliced(sup_step, &w, ns);
    if (n < 0)
        return NULL;
    PyObject *out = PyList_New(n);
    for (int i = 0; out != NULL && i < n; i++) {
        PyObject *v = PyLong_FromLong(w.ids[i]);
        if (v == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, v);
    }
    return out;
}

PyMethodDef gomp_pool_methods[] = {
    {"supervisor_new", pool_supervisor_new, METH_NOARGS,
     "supervisor_new() -> fd: an empty set of watched worker sentinels."},
    {"supervisor_watch", pool_supervisor_watch, METH_VARARGS,
     "supervisor_watch(sup, fd, id): report id once fd is readable (one-shot)."},
    {"supervisor_unwatch", pool_supervisor_unwatch, METH_VARARGS,
     "supervisor_unwatch(sup, fd): forget fd."},
    {"supervisor_wait", pool_supervisor_wait, METH_VARARGS,
     "supervisor_wait(sup, timeout=None) -> [id, ...]: the workers that ended "
     "([] on timeout); interruptible by signals."},
    {NULL, NULL, 0, NULL},
};
