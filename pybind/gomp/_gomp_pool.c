/* _gomp, pool area: the supervisor that tells a pool at once which of its
 * workers ended (gomp/pool.go), and the codec of Pool.map's chunks. Tasks
 * and results travel on the queues area's rings. */
#include "_gomp.h"

#include <marshal.h>
#include <stdint.h>

#define POOL_IMPORTS(X)                                                                            \
    X(GompSupervisorNew) X(GompSupervisorWatch) X(GompSupervisorUnwatch) X(GompSupervisorWait)
GOMP_IMPORTS(pool, POOL_IMPORTS);

#define MAX_IDS 64

static PyObject *
pool_supervisor_new(PyObject *self, PyObject *noargs)
{
    int fd = -1;
    if (gomp_usable() < 0)
        return NULL;
    int rc = go.GompSupervisorNew(&fd);
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
    int rc = go.GompSupervisorWatch(sup, fd, id);
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
    int rc = go.GompSupervisorUnwatch(sup, fd);
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
    return go.GompSupervisorWait(w->sup, slice_ns, w->ids, MAX_IDS);
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

/* ---- chunks of Pool.map: arguments there, results back ----
 *
 * A chunk of core-type items is sent as one blob instead of a pickle: a
 * pickle costs a dispatch and a write per item on both sides, and ints
 * beyond 31 bits go through a byte array each. Blob: an 8-byte header
 * (its first byte the format) and then
 *   'q': the items as little-endian int64 (every item an exact int that fits);
 *   'd': the items as doubles (every item an exact float);
 *   'm': the sequence, marshalled (version 2: no reference table).
 * Only items that come back equal and of the same type go as 'm': exact
 * None, bool, int, float, complex, str, bytes, and tuples of those. Lists,
 * dicts and sets stay with pickle: marshal drops sharing (two references
 * to one list would come back as two lists), and it writes any object with
 * a buffer (a bytearray, an array) as bytes. */

#define CHUNK_HDR 8
#define CHUNK_DEPTH 8

static int
chunk_item_ok(PyObject *o, int depth)
{
    PyTypeObject *t = Py_TYPE(o);
    if (o == Py_None || t == &PyLong_Type || t == &PyFloat_Type || t == &PyUnicode_Type ||
        t == &PyBool_Type || t == &PyBytes_Type || t == &PyComplex_Type)
        return 1;
    if (t == &PyTuple_Type && depth < CHUNK_DEPTH) {
        Py_ssize_t n = PyTuple_GET_SIZE(o);
        for (Py_ssize_t i = 0; i < n; i++)
            if (!chunk_item_ok(PyTuple_GET_ITEM(o, i), depth + 1))
                return 0;
        return 1;
    }
    return 0;
}

static PyObject *
chunk_new(char tag, Py_ssize_t n)
{
    PyObject *b = PyBytes_FromStringAndSize(NULL, CHUNK_HDR + 8 * n);
    if (b != NULL) {
        memset(PyBytes_AS_STRING(b), 0, CHUNK_HDR);
        PyBytes_AS_STRING(b)[0] = tag;
    }
    return b;
}

/* pool_pack(seq, start=0, stop=len(seq)): the blob of a list's or tuple's
 * items [start:stop] (no slice made), or None when they hold what only
 * pickle carries. */
static PyObject *
pool_pack(PyObject *self, PyObject *args)
{
    PyObject *seq;
    Py_ssize_t start = 0, stop = PY_SSIZE_T_MAX;
    if (!PyArg_ParseTuple(args, "O|nn", &seq, &start, &stop))
        return NULL;
    if (!PyList_CheckExact(seq) && !PyTuple_CheckExact(seq))
        Py_RETURN_NONE;
    Py_ssize_t len = PySequence_Fast_GET_SIZE(seq);
    if (start < 0)
        start = 0;
    if (stop > len)
        stop = len;
    if (start >= stop)
        Py_RETURN_NONE;
    Py_ssize_t n = stop - start;
    PyObject **items = PySequence_Fast_ITEMS(seq) + start;
    PyTypeObject *t0 = Py_TYPE(items[0]);
    if (t0 == &PyLong_Type || t0 == &PyFloat_Type) {
        /* exact ints and floats run no code while read: the list stays as it is */
        PyObject *b = chunk_new(t0 == &PyLong_Type ? 'q' : 'd', n);
        if (b == NULL)
            return NULL;
        char *out = PyBytes_AS_STRING(b) + CHUNK_HDR;
        Py_ssize_t i = 0;
        if (t0 == &PyLong_Type) {
            for (; i < n; i++) {
                PyObject *o = items[i];
                int overflow;
                if (Py_TYPE(o) != &PyLong_Type)
                    break;
                long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
                if (overflow)
                    break;
                int64_t le = (int64_t)v; /* little-endian on every platform gomp runs on */
                memcpy(out + 8 * i, &le, 8);
            }
        } else {
            for (; i < n; i++) {
                PyObject *o = items[i];
                if (Py_TYPE(o) != &PyFloat_Type)
                    break;
                double v = PyFloat_AS_DOUBLE(o);
                memcpy(out + 8 * i, &v, 8);
            }
        }
        if (i == n)
            return b;
        Py_DECREF(b);
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (!chunk_item_ok(items[i], 0))
            Py_RETURN_NONE;
    PyObject *part = seq;
    if (start == 0 && stop == len)
        Py_INCREF(part);
    else
        part = PySequence_GetSlice(seq, start, stop);
    if (part == NULL)
        return NULL;
    PyObject *m = PyMarshal_WriteObjectToString(part, 2);
    Py_DECREF(part);
    if (m == NULL)
        return NULL;
    Py_ssize_t mn = PyBytes_GET_SIZE(m);
    PyObject *b = PyBytes_FromStringAndSize(NULL, CHUNK_HDR + mn);
    if (b != NULL) {
        memset(PyBytes_AS_STRING(b), 0, CHUNK_HDR);
        PyBytes_AS_STRING(b)[0] = 'm';
        memcpy(PyBytes_AS_STRING(b) + CHUNK_HDR, PyBytes_AS_STRING(m), mn);
    }
    Py_DECREF(m);
    return b;
}

static Py_ssize_t
chunk_count(const char *p, Py_ssize_t len)
{
    if (len < CHUNK_HDR || (p[0] != 'q' && p[0] != 'd') || (len - CHUNK_HDR) % 8 != 0)
        return -1;
    return (len - CHUNK_HDR) / 8;
}

static PyObject *
chunk_marshalled(const char *p, Py_ssize_t len)
{
    PyObject *seq = PyMarshal_ReadObjectFromString(p + CHUNK_HDR, len - CHUNK_HDR);
    if (seq != NULL && !PyList_CheckExact(seq) && !PyTuple_CheckExact(seq)) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "not a chunk");
        return NULL;
    }
    return seq;
}

static PyObject *
chunk_scalar(char tag, const char *at)
{
    if (tag == 'q') {
        int64_t v;
        memcpy(&v, at, 8);
        return PyLong_FromLongLong((long long)v);
    }
    double d;
    memcpy(&d, at, 8);
    return PyFloat_FromDouble(d);
}

static int
get_blob(PyObject *obj, Py_buffer *view)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0)
        return -1;
    if (view->len < CHUNK_HDR ||
        (((const char *)view->buf)[0] != 'm' && chunk_count(view->buf, view->len) < 0)) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "not a chunk");
        return -1;
    }
    return 0;
}

/* pool_unpack(blob) -> list */
static PyObject *
pool_unpack(PyObject *self, PyObject *blob)
{
    Py_buffer view;
    if (get_blob(blob, &view) < 0)
        return NULL;
    const char *p = view.buf;
    PyObject *out;
    if (p[0] == 'm') {
        PyObject *seq = chunk_marshalled(p, view.len);
        out = seq == NULL || PyList_CheckExact(seq) ? seq : PySequence_List(seq);
        if (out != seq)
            Py_DECREF(seq);
    } else {
        Py_ssize_t n = chunk_count(p, view.len);
        out = PyList_New(n);
        for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
            PyObject *v = chunk_scalar(p[0], p + CHUNK_HDR + 8 * i);
            if (v == NULL)
                Py_CLEAR(out);
            else
                PyList_SET_ITEM(out, i, v);
        }
    }
    PyBuffer_Release(&view);
    return out;
}

/* Replace target[start + i] by item (stolen); the list is checked each
 * time, since the item replaced may run code when it goes. */
static int
put_item(PyObject *target, Py_ssize_t at, PyObject *item)
{
    if (item == NULL)
        return -1;
    if (at >= PyList_GET_SIZE(target)) {
        Py_DECREF(item);
        PyErr_SetString(PyExc_IndexError, "chunk does not fit its place");
        return -1;
    }
    PyObject *old = PyList_GET_ITEM(target, at);
    PyList_SET_ITEM(target, at, item);
    Py_XDECREF(old);
    return 0;
}

/* pool_unpack_into(blob, target, start) -> count: the items of blob in
 * place of target[start:start + count], without a list in between. */
static PyObject *
pool_unpack_into(PyObject *self, PyObject *args)
{
    PyObject *blob, *target;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "OO!n", &blob, &PyList_Type, &target, &start))
        return NULL;
    Py_buffer view;
    if (get_blob(blob, &view) < 0)
        return NULL;
    const char *p = view.buf;
    Py_ssize_t n = -1;
    if (p[0] == 'm') {
        PyObject *seq = chunk_marshalled(p, view.len);
        if (seq != NULL) {
            n = PySequence_Fast_GET_SIZE(seq);
            if (start < 0 || start + n > PyList_GET_SIZE(target)) {
                PyErr_SetString(PyExc_IndexError, "chunk does not fit its place");
                n = -1;
            }
            for (Py_ssize_t i = 0; n >= 0 && i < n; i++) {
                PyObject *v = PySequence_Fast_GET_ITEM(seq, i);
                Py_INCREF(v);
                if (put_item(target, start + i, v) < 0)
                    n = -1;
            }
            Py_DECREF(seq);
        }
    } else {
        n = chunk_count(p, view.len);
        if (start < 0 || start + n > PyList_GET_SIZE(target)) {
            PyErr_SetString(PyExc_IndexError, "chunk does not fit its place");
            n = -1;
        }
        for (Py_ssize_t i = 0; n >= 0 && i < n; i++)
            if (put_item(target, start + i, chunk_scalar(p[0], p + CHUNK_HDR + 8 * i)) < 0)
                n = -1;
    }
    PyBuffer_Release(&view);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

PyMethodDef gomp_pool_methods[] = {
    {"pool_pack", pool_pack, METH_VARARGS,
     "pool_pack(seq, start=0, stop=len(seq)) -> bytes or None: seq[start:stop], "
     "core-type items, as one blob."},
    {"pool_unpack", pool_unpack, METH_O, "pool_unpack(blob) -> list."},
    {"pool_unpack_into", pool_unpack_into, METH_VARARGS,
     "pool_unpack_into(blob, target, start) -> count: the items in place of "
     "target[start:start + count]."},
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
