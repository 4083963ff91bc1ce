/* _gomp, the queue ring's codec: how an object becomes a message and back.
 * The policy is reduction.py's: marshal for core types, the C pickler alone
 * when that is allowed and enough, else the Python encoder (queues.py);
 * large bytes-likes travel raw. */
#include "_gomp_ring.h"

#include <marshal.h>

#include <string.h>

static PyObject *loads_fn = NULL; /* pickle.loads */
static PyObject *buffers_kw = NULL;
static PyObject *dumps_fn = NULL; /* pickle.dumps */
static PyObject *dumps_kwnames = NULL;
static PyObject *five = NULL;

int
encode_setup(PyObject *loads, PyObject *dumps)
{
    if (five == NULL && (five = PyLong_FromLong(5)) == NULL)
        return -1;
    if (dumps_kwnames == NULL && (dumps_kwnames = Py_BuildValue("(s)", "buffer_callback")) == NULL)
        return -1;
    if (buffers_kw == NULL && (buffers_kw = PyUnicode_InternFromString("buffers")) == NULL)
        return -1;
    Py_INCREF(dumps);
    Py_XSETREF(dumps_fn, dumps);
    Py_INCREF(loads);
    Py_XSETREF(loads_fn, loads);
    return 0;
}

int
encode_ready(void)
{
    return loads_fn != NULL;
}

/* ---- decoding ---- */

/* incoming -> the object */
PyObject *
incoming_object(incoming *in)
{
    PyObject *res;
    if (in->obj != NULL) {
        res = in->obj;
        in->obj = NULL;
    } else if (in->kind == KIND_READY) {
        res = in->parts[0];
        Py_INCREF(res);
    } else if (in->kind == GOMP_MSG_MARSHAL) {
        res = PyMarshal_ReadObjectFromString(PyBytes_AS_STRING(in->parts[0]),
                                             PyBytes_GET_SIZE(in->parts[0]));
    } else if (in->kind != GOMP_MSG_PICKLE) {
        /* a raw bytes / bytearray / memoryview put without pickling */
        res = in->nparts > 1 ? in->parts[1] : NULL;
        if (res == NULL) {
            incoming_clear(in);
            PyErr_SetString(PyExc_ValueError, "malformed raw message");
            return NULL;
        }
        Py_INCREF(res);
        if (in->kind == GOMP_MSG_RAW_MEMORYVIEW) {
            PyObject *mv = PyMemoryView_FromObject(res);
            Py_DECREF(res);
            res = mv;
        }
    } else if (in->nparts == 1) {
        res = PyObject_CallOneArg(loads_fn, in->parts[0]);
    } else {
        PyObject *bufs = PyList_New(in->nparts - 1);
        if (bufs == NULL) {
            incoming_clear(in);
            return NULL;
        }
        for (int i = 1; i < in->nparts; i++) {
            Py_INCREF(in->parts[i]);
            PyList_SET_ITEM(bufs, i - 1, in->parts[i]);
        }
        PyObject *a = PyTuple_Pack(1, in->parts[0]);
        PyObject *kw = a ? PyDict_New() : NULL;
        res = NULL;
        if (kw && PyDict_SetItem(kw, buffers_kw, bufs) == 0)
            res = PyObject_Call(loads_fn, a, kw);
        Py_XDECREF(a);
        Py_XDECREF(kw);
        Py_DECREF(bufs);
    }
    incoming_clear(in);
    return res;
}

/* ---- encoding ---- */

static inline int
is_scalar(PyObject *o)
{
    PyTypeObject *t = Py_TYPE(o);
    return o == Py_None || t == &PyLong_Type || t == &PyFloat_Type || t == &PyUnicode_Type ||
           t == &PyBool_Type || (t == &PyBytes_Type && PyBytes_GET_SIZE(o) < 4096);
}

/* Whether marshal gives back exactly obj: core types only, one level of
 * tuple/list/dict at most (marshal would turn a nested buffer object, a
 * numpy array say, into bytes, so nothing unknown may hide inside). */
int
marshal_ok(PyObject *o)
{
    if (is_scalar(o))
        return 1;
    PyTypeObject *t = Py_TYPE(o);
    if (t == &PyTuple_Type || t == &PyList_Type) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
        PyObject **items = PySequence_Fast_ITEMS(o);
        if (n > 64)
            return 0;
        for (Py_ssize_t i = 0; i < n; i++)
            if (!is_scalar(items[i]))
                return 0;
        return 1;
    }
    if (t == &PyDict_Type && PyDict_GET_SIZE(o) <= 32) {
        Py_ssize_t pos = 0;
        PyObject *k, *v;
        while (PyDict_Next(o, &pos, &k, &v))
            if (!is_scalar(k) || !is_scalar(v))
                return 0;
        return 1;
    }
    return 0;
}

/* Whether the C pickler alone may pickle what marshal cannot (the policy
 * of reduction.py, which turns this off once the program registers a
 * reducer of its own). */
static int plain_pickle = 1;

static PyObject *
queues_set_plain_pickle(PyObject *self, PyObject *flag)
{
    int on = PyObject_IsTrue(flag);
    if (on < 0)
        return NULL;
    plain_pickle = on;
    Py_RETURN_NONE;
}

/* Encode obj as reduction.py's policy says, where C can: marshal for core
 * types, else the C pickler alone, when allowed and when it needs no
 * out-of-band buffers and names no __main__ (which the receiver may not
 * import: the Python encoder decides). Returns 1 with *data and *kind
 * set, 0 when the Python encoder must do it, -1 on error. */
int
encode_plain(PyObject *obj, PyObject **data, uint32_t *kind)
{
    if (marshal_ok(obj)) {
        *data = PyMarshal_WriteObjectToString(obj, MARSHAL_VERSION);
        *kind = GOMP_MSG_MARSHAL;
        return *data == NULL ? -1 : 1;
    }
    if (!plain_pickle || dumps_fn == NULL || travels_raw(obj))
        return 0;
    PyObject *bufs = PyList_New(0);
    PyObject *append = bufs ? PyObject_GetAttrString(bufs, "append") : NULL;
    PyObject *out = NULL;
    if (append != NULL) {
        PyObject *a[3] = {obj, five, append};
        out = PyObject_Vectorcall(dumps_fn, a, 2, dumps_kwnames);
    }
    Py_XDECREF(append);
    int plain = out != NULL && PyBytes_Check(out) && PyList_GET_SIZE(bufs) == 0 &&
                memmem(PyBytes_AS_STRING(out), PyBytes_GET_SIZE(out), "__main__", 8) == NULL;
    Py_XDECREF(bufs);
    if (!plain) {
        /* out-of-band buffers, __main__, or an error the Python encoder
         * reports */
        PyErr_Clear();
        Py_XDECREF(out);
        return 0;
    }
    *data = out;
    *kind = GOMP_MSG_PICKLE;
    return 1;
}

/* encode(obj) -> (kind, (data,)) for what encode_plain can do; None: use
 * the Python encoder. */
static PyObject *
queues_encode(PyObject *self, PyObject *obj)
{
    PyObject *data;
    uint32_t kind;
    int rc = encode_plain(obj, &data, &kind);
    if (rc < 0)
        return NULL;
    if (rc == 0)
        Py_RETURN_NONE;
    return Py_BuildValue("(I(N))", (unsigned)kind, data);
}

PyMethodDef gomp_encode_methods[] = {
    {"set_plain_pickle", queues_set_plain_pickle, METH_O,
     "set_plain_pickle(flag): whether the C pickler alone may be tried (reduction.py's policy)."},
    {"queues_encode", queues_encode, METH_O,
     "queues_encode(obj) -> (kind, (data,)), or None when the Python encoder must do it."},
    {NULL, NULL, 0, NULL},
};
