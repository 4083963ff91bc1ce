/* The hot paths of gomp's C extension in miniature, built in several variants
 * from this one file (run.sh), so that what the limited API (an abi3 wheel)
 * would cost them can be timed side by side in one interpreter:
 *
 *   normal            the full C API, as pybind/gomp/_gomp*.c use it: macros,
 *                     PyMarshal_*, a static type, METH_FASTCALL, Py_buffer
 *   -DPy_LIMITED_API  what a port to that floor would have to use instead:
 *                     functions for the macros, the marshal module (there is
 *                     no marshal C API in the limited API), PyType_FromSpec,
 *                     METH_VARARGS below 3.10, a copy into bytes instead of a
 *                     Py_buffer below 3.11, PyObject_Vectorcall from 3.12
 *   -DHAND_CODEC      marshal's format written and read by hand for the small
 *                     objects of the queue fast path (anything else still
 *                     goes to marshal): what could win the marshal cost back
 *
 * The variants differ only in the API shims below. MODNAME is the module
 * name: one per variant, so that all of them load in one process. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#ifndef Py_LIMITED_API
#include <marshal.h>
#endif
#include <stdint.h>
#include <string.h>

#define STR2(x) #x
#define STR(x) STR2(x)
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)

/* the floor of the API in use (the full API has everything) */
#ifdef Py_LIMITED_API
#define API_FLOOR Py_LIMITED_API
#else
#define API_FLOOR 0x7fffffff
#endif
/* each in the limited API from that floor on */
#if API_FLOOR >= 0x030A0000
#define HAVE_FASTCALL 1
#define HAVE_UTF8_AND_SIZE 1
#endif
#if API_FLOOR >= 0x030B0000
#define HAVE_BUFFER 1
#endif
#if API_FLOOR >= 0x030C0000
#define HAVE_VECTORCALL 1
#endif
#ifndef PyBUF_READ
#define PyBUF_READ 0x100
#endif

/* as _gomp_ring.h's MARSHAL_VERSION and pool_pack's 'm' chunks: no
 * reference table */
#define MARSHAL_VERSION 2

/* ---- the API shims ---- */

#ifndef Py_LIMITED_API
#define LIST_GET(l, i) PyList_GET_ITEM(l, i)
#define LIST_SIZE(l) PyList_GET_SIZE(l)
#define LIST_SET_NEW(l, i, v) PyList_SET_ITEM(l, i, v)
#define TUPLE_GET(t, i) PyTuple_GET_ITEM(t, i)
#define TUPLE_SIZE(t) PyTuple_GET_SIZE(t)
#define TUPLE_SET_NEW(t, i, v) PyTuple_SET_ITEM(t, i, v)
#define BYTES_STR(b) PyBytes_AS_STRING(b)
#define BYTES_SIZE(b) PyBytes_GET_SIZE(b)
#define FLOAT_AS_DOUBLE(o) PyFloat_AS_DOUBLE(o)
#define DICT_SIZE(d) PyDict_GET_SIZE(d)
/* l[i] = v (stolen), dropping the item it replaces */
static inline void
list_replace(PyObject *l, Py_ssize_t i, PyObject *v)
{
    PyObject *old = PyList_GET_ITEM(l, i);
    PyList_SET_ITEM(l, i, v);
    Py_XDECREF(old);
}
#else
#define LIST_GET(l, i) PyList_GetItem(l, i)
#define LIST_SIZE(l) PyList_Size(l)
#define LIST_SET_NEW(l, i, v) PyList_SetItem(l, i, v)
#define TUPLE_GET(t, i) PyTuple_GetItem(t, i)
#define TUPLE_SIZE(t) PyTuple_Size(t)
#define TUPLE_SET_NEW(t, i, v) PyTuple_SetItem(t, i, v)
#define BYTES_STR(b) PyBytes_AsString(b)
#define BYTES_SIZE(b) PyBytes_Size(b)
#define FLOAT_AS_DOUBLE(o) PyFloat_AsDouble(o)
#define DICT_SIZE(d) PyDict_Size(d)
static inline void
list_replace(PyObject *l, Py_ssize_t i, PyObject *v)
{
    PyList_SetItem(l, i, v); /* drops the old item itself */
}
#endif

/* marshal.dumps, marshal.loads and MARSHAL_VERSION, for the limited builds */
static PyObject *marshal_dumps_fn, *marshal_loads_fn, *marshal_version;

#ifdef HAND_CODEC
/* Write o in marshal's format (marshal.loads reads it) at p, cap bytes: the
 * scalars of the queue fast path and one level of tuple. Returns the bytes
 * written, or -1 (maybe with an exception) when it cannot. */
static Py_ssize_t
codec_write(PyObject *o, char *p, Py_ssize_t cap, int depth)
{
    PyTypeObject *t = Py_TYPE(o);
    if (cap < 9)
        return -1;
    if (o == Py_None || o == Py_True || o == Py_False) {
        p[0] = o == Py_None ? 'N' : o == Py_True ? 'T' : 'F';
        return 1;
    }
    if (t == &PyLong_Type) {
        int overflow;
        long v = PyLong_AsLongAndOverflow(o, &overflow);
        if (overflow || v < INT32_MIN || v > INT32_MAX)
            return -1; /* marshal's 'l': left to marshal */
        int32_t x = (int32_t)v;
        p[0] = 'i';
        memcpy(p + 1, &x, 4);
        return 5;
    }
    if (t == &PyFloat_Type) {
        double d = PyFloat_AsDouble(o);
        p[0] = 'g';
        memcpy(p + 1, &d, 8);
        return 9;
    }
    if (t == &PyUnicode_Type) {
        Py_ssize_t n;
#ifdef HAVE_UTF8_AND_SIZE
        PyObject *utf8 = NULL;
        const char *u = PyUnicode_AsUTF8AndSize(o, &n);
#else
        /* a copy: PyUnicode_AsUTF8AndSize is not there */
        PyObject *utf8 = PyUnicode_AsUTF8String(o);
        const char *u = utf8 ? PyBytes_AsString(utf8) : NULL;
        n = utf8 ? PyBytes_Size(utf8) : 0;
#endif
        Py_ssize_t written = -1;
        if (u != NULL && n + 5 <= cap) {
            int32_t n32 = (int32_t)n;
            p[0] = 'u';
            memcpy(p + 1, &n32, 4);
            memcpy(p + 5, u, n);
            written = 5 + n;
        }
        Py_XDECREF(utf8);
        return written;
    }
    if (t == &PyTuple_Type && depth == 0) {
        Py_ssize_t n = TUPLE_SIZE(o), w = 2;
        if (n > 255)
            return -1;
        p[0] = ')'; /* a small tuple: one byte of length */
        p[1] = (char)n;
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_ssize_t k = codec_write(TUPLE_GET(o, i), p + w, cap - w, 1);
            if (k < 0)
                return -1;
            w += k;
        }
        return w;
    }
    return -1;
}

/* Read one object at *pp (e: the end), what codec_write writes and marshal's
 * short strings; NULL (maybe with an exception) when it cannot. */
static PyObject *
codec_read(const char **pp, const char *e, int depth)
{
    const char *p = *pp;
    PyObject *o = NULL;
    if (p >= e)
        return NULL;
    /* marshal's reference flag: these types are never referred back to */
    switch (p[0] & 0x7f) {
    case 'N':
        o = Py_None;
        Py_INCREF(o);
        p += 1;
        break;
    case 'T':
        o = Py_True;
        Py_INCREF(o);
        p += 1;
        break;
    case 'F':
        o = Py_False;
        Py_INCREF(o);
        p += 1;
        break;
    case 'i': {
        int32_t x;
        if (e - p < 5)
            return NULL;
        memcpy(&x, p + 1, 4);
        o = PyLong_FromLong(x);
        p += 5;
        break;
    }
    case 'g': {
        double d;
        if (e - p < 9)
            return NULL;
        memcpy(&d, p + 1, 8);
        o = PyFloat_FromDouble(d);
        p += 9;
        break;
    }
    case 'z':
    case 'Z': { /* short ASCII: one byte of length */
        if (e - p < 2 || e - p - 2 < (unsigned char)p[1])
            return NULL;
        o = PyUnicode_DecodeUTF8(p + 2, (unsigned char)p[1], NULL);
        p += 2 + (unsigned char)p[1];
        break;
    }
    case 'u':
    case 'a':
    case 'A': {
        int32_t n;
        if (e - p < 5)
            return NULL;
        memcpy(&n, p + 1, 4);
        if (n < 0 || e - p - 5 < n)
            return NULL;
        o = PyUnicode_DecodeUTF8(p + 5, n, NULL);
        p += 5 + n;
        break;
    }
    case ')': {
        if (depth > 0 || e - p < 2)
            return NULL;
        Py_ssize_t n = (unsigned char)p[1];
        p += 2;
        o = PyTuple_New(n);
        for (Py_ssize_t i = 0; o != NULL && i < n; i++) {
            PyObject *x = codec_read(&p, e, 1);
            if (x == NULL) {
                Py_CLEAR(o);
                return NULL;
            }
            TUPLE_SET_NEW(o, i, x);
        }
        break;
    }
    default:
        return NULL;
    }
    *pp = p;
    return o;
}
#endif

/* marshal.dumps(o, MARSHAL_VERSION) -> bytes */
static PyObject *
marshal_dumps(PyObject *o)
{
#ifdef HAND_CODEC
    char tmp[512];
    Py_ssize_t k = codec_write(o, tmp, sizeof tmp, 0);
    if (k >= 0)
        return PyBytes_FromStringAndSize(tmp, k);
    PyErr_Clear();
#endif
#ifndef Py_LIMITED_API
    return PyMarshal_WriteObjectToString(o, MARSHAL_VERSION);
#elif defined(HAVE_VECTORCALL)
    PyObject *args[2] = {o, marshal_version};
    return PyObject_Vectorcall(marshal_dumps_fn, args, 2, NULL);
#else
    return PyObject_CallFunctionObjArgs(marshal_dumps_fn, o, marshal_version, NULL);
#endif
}

/* marshal.loads of n bytes at p (the ring's memory, in gomp) */
static PyObject *
marshal_loads(const char *p, Py_ssize_t n)
{
#ifdef HAND_CODEC
    const char *q = p;
    PyObject *o = codec_read(&q, p + n, 0);
    if (o != NULL && q == p + n)
        return o;
    Py_XDECREF(o);
    PyErr_Clear();
#endif
#ifndef Py_LIMITED_API
    return PyMarshal_ReadObjectFromString(p, n);
#else
    /* a memoryview on the memory, not a copy */
    PyObject *view = PyMemoryView_FromMemory((char *)p, n, PyBUF_READ);
    if (view == NULL)
        return NULL;
#ifdef HAVE_VECTORCALL
    PyObject *res = PyObject_Vectorcall(marshal_loads_fn, &view, 1, NULL);
#else
    PyObject *res = PyObject_CallFunctionObjArgs(marshal_loads_fn, view, NULL);
#endif
    Py_DECREF(view);
    return res;
#endif
}

/* A bytes-like's (pointer, length): a Py_buffer where the API has one, else a
 * copy into bytes. */
typedef struct {
#ifdef HAVE_BUFFER
    Py_buffer view;
#else
    PyObject *copy;
#endif
    const char *buf;
    Py_ssize_t len;
} bytes_view;

static int
bytes_view_get(PyObject *o, bytes_view *v)
{
#ifdef HAVE_BUFFER
    if (PyObject_GetBuffer(o, &v->view, PyBUF_SIMPLE) < 0)
        return -1;
    v->buf = v->view.buf;
    v->len = v->view.len;
#else
    char *p;
    if ((v->copy = PyBytes_FromObject(o)) == NULL)
        return -1;
    if (PyBytes_AsStringAndSize(v->copy, &p, &v->len) < 0) {
        Py_DECREF(v->copy);
        return -1;
    }
    v->buf = p;
#endif
    return 0;
}

static void
bytes_view_release(bytes_view *v)
{
#ifdef HAVE_BUFFER
    PyBuffer_Release(&v->view);
#else
    Py_DECREF(v->copy);
#endif
}

/* ---- calling conventions: get(block=True, timeout=None) ---- */

static PyObject *
noop_o(PyObject *self, PyObject *arg)
{
    Py_RETURN_NONE;
}

/* the argument parsing of get(block=True, timeout=None) as METH_VARARGS |
 * METH_KEYWORDS, what a limited API below 3.10 leaves; 0 or -1 */
static int
parse_block_timeout_varargs(PyObject *args, PyObject *kw, int *block, PyObject **timeout)
{
    static char *kwlist[] = {"block", "timeout", NULL};
    PyObject *b = Py_True;
    *timeout = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:get", kwlist, &b, timeout))
        return -1;
    return (*block = PyObject_IsTrue(b)) < 0 ? -1 : 0;
}

static PyObject *
get_varargs(PyObject *self, PyObject *args, PyObject *kw)
{
    int block;
    PyObject *timeout;
    if (parse_block_timeout_varargs(args, kw, &block, &timeout) < 0)
        return NULL;
    Py_RETURN_NONE;
}

#ifdef HAVE_FASTCALL
/* the same as METH_FASTCALL | METH_KEYWORDS: _gomp.h's
 * gomp_parse_block_timeout, without its alias */
static int
parse_block_timeout(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, int *block,
                    PyObject **timeout)
{
    PyObject *b = nargs > 0 ? args[0] : NULL;
    *timeout = nargs > 1 ? args[1] : NULL;
    *block = 1;
    if (nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get() takes at most 2 arguments");
        return -1;
    }
    Py_ssize_t nkw = kwnames ? TUPLE_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *k = TUPLE_GET(kwnames, i), *v = args[nargs + i], **slot;
        if (PyUnicode_CompareWithASCIIString(k, "block") == 0)
            slot = &b;
        else if (PyUnicode_CompareWithASCIIString(k, "timeout") == 0)
            slot = timeout;
        else {
            PyErr_Format(PyExc_TypeError, "get() got an unexpected keyword argument '%U'", k);
            return -1;
        }
        if (*slot != NULL) {
            PyErr_Format(PyExc_TypeError, "get() got multiple values for argument '%U'", k);
            return -1;
        }
        *slot = v;
    }
    if (b != NULL && (*block = PyObject_IsTrue(b)) < 0)
        return -1;
    return 0;
}

static PyObject *
get_fastcall(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int block;
    PyObject *timeout;
    if (parse_block_timeout(args, nargs, kwnames, &block, &timeout) < 0)
        return NULL;
    Py_RETURN_NONE;
}
#define CALLCONV (METH_FASTCALL | METH_KEYWORDS)
#else
#define CALLCONV (METH_VARARGS | METH_KEYWORDS)
#endif

/* ---- a queue ring: small objects put and got through marshal ----
 * The frames of _gomp_ring.c in one process's memory, without the locks,
 * waits and message header: the part of a put and a get that the API in
 * use changes (the call, the marshal_ok walk, marshal, the bytes access). */

#define RING_CAP (1 << 20)
#define FRAME_HEADER 16 /* u32 length, u32 flags (0: a wrap marker), 8 unused */
#define ALIGN8(n) (((n) + 7) & ~(uint64_t)7)

typedef struct {
    PyObject_HEAD
    char *data;
    uint64_t head, tail;
} RingObject;

/* _gomp_encode.c's is_scalar and marshal_ok */
static inline int
is_scalar(PyObject *o)
{
    PyTypeObject *t = Py_TYPE(o);
    return o == Py_None || t == &PyLong_Type || t == &PyFloat_Type || t == &PyUnicode_Type ||
           t == &PyBool_Type || (t == &PyBytes_Type && BYTES_SIZE(o) < 4096);
}

static int
marshal_ok(PyObject *o)
{
    if (is_scalar(o))
        return 1;
    PyTypeObject *t = Py_TYPE(o);
    if (t == &PyTuple_Type || t == &PyList_Type) {
        int tuple = t == &PyTuple_Type;
        Py_ssize_t n = tuple ? TUPLE_SIZE(o) : LIST_SIZE(o);
        if (n > 64)
            return 0;
        for (Py_ssize_t i = 0; i < n; i++)
            if (!is_scalar(tuple ? TUPLE_GET(o, i) : LIST_GET(o, i)))
                return 0;
        return 1;
    }
    if (t == &PyDict_Type && DICT_SIZE(o) <= 32) {
        Py_ssize_t pos = 0;
        PyObject *k, *v;
        while (PyDict_Next(o, &pos, &k, &v))
            if (!is_scalar(k) || !is_scalar(v))
                return 0;
        return 1;
    }
    return 0;
}

static PyObject *
ring_put_one(RingObject *r, PyObject *obj)
{
    if (!marshal_ok(obj)) {
        PyErr_SetString(PyExc_TypeError, "not a core type (gomp pickles it)");
        return NULL;
    }
    PyObject *data = marshal_dumps(obj);
    if (data == NULL)
        return NULL;
    const char *p = BYTES_STR(data);
    Py_ssize_t n = BYTES_SIZE(data);
    uint64_t need = FRAME_HEADER + ALIGN8((uint64_t)n);
    if (r->head + need - r->tail > RING_CAP || need > RING_CAP / 4) {
        Py_DECREF(data);
        PyErr_SetString(PyExc_OverflowError, "ring full");
        return NULL;
    }
    uint64_t off = r->head % RING_CAP;
    if (RING_CAP - off < need) {
        memset(r->data + off, 0, 8); /* a wrap marker */
        r->head += RING_CAP - off;
        off = 0;
    }
    uint32_t h[4] = {(uint32_t)n, 1, 0, 0};
    memcpy(r->data + off, h, FRAME_HEADER);
    memcpy(r->data + off + FRAME_HEADER, p, n);
    __atomic_store_n(&r->head, r->head + need, __ATOMIC_SEQ_CST);
    Py_DECREF(data);
    Py_RETURN_NONE;
}

/* put(obj): _gomp_queues.c's ring_put_obj takes block and timeout too, but
 * reads them only on its slow path */
#ifdef HAVE_FASTCALL
static PyObject *
ring_put(RingObject *r, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "put() missing its object");
        return NULL;
    }
    return ring_put_one(r, args[0]);
}
#else
static PyObject *
ring_put(RingObject *r, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"obj", "block", "timeout", NULL};
    PyObject *obj, *block = Py_True, *timeout = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OO:put", kwlist, &obj, &block, &timeout))
        return NULL;
    return ring_put_one(r, obj);
}
#endif

/* the ring's next object, decoded from the ring's memory as read_message's
 * fast path does */
static PyObject *
ring_get_one(RingObject *r)
{
    if (r->tail == __atomic_load_n(&r->head, __ATOMIC_ACQUIRE)) {
        PyErr_SetString(PyExc_IndexError, "empty");
        return NULL;
    }
    uint64_t off = r->tail % RING_CAP;
    uint32_t h[2];
    memcpy(h, r->data + off, 8);
    if (h[1] == 0) { /* a wrap marker */
        r->tail += RING_CAP - off;
        off = 0;
        memcpy(h, r->data, 8);
    }
    PyObject *res = marshal_loads(r->data + off + FRAME_HEADER, h[0]);
    r->tail += FRAME_HEADER + ALIGN8((uint64_t)h[0]);
    return res;
}

/* get(block=True, timeout=None) */
#ifdef HAVE_FASTCALL
static PyObject *
ring_get(RingObject *r, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int block;
    PyObject *timeout;
    if (parse_block_timeout(args, nargs, kwnames, &block, &timeout) < 0)
        return NULL;
    return ring_get_one(r);
}
#else
static PyObject *
ring_get(RingObject *r, PyObject *args, PyObject *kw)
{
    int block;
    PyObject *timeout;
    if (parse_block_timeout_varargs(args, kw, &block, &timeout) < 0)
        return NULL;
    return ring_get_one(r);
}
#endif

/* put_many(list) -> count: ring_put_many_fast's loop, each item marshalled */
static PyObject *
ring_put_many(RingObject *r, PyObject *list)
{
    Py_ssize_t n = LIST_SIZE(list);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *res = ring_put_one(r, LIST_GET(list, i));
        if (res == NULL)
            return NULL;
        Py_DECREF(res);
    }
    return PyLong_FromSsize_t(n);
}

/* drain() -> count: get everything (what put_many put) */
static PyObject *
ring_drain(RingObject *r, PyObject *noargs)
{
    Py_ssize_t n = 0;
    while (r->tail != r->head) {
        PyObject *o = ring_get_one(r);
        if (o == NULL)
            return NULL;
        Py_DECREF(o);
        n++;
    }
    return PyLong_FromSsize_t(n);
}

static void
ring_dealloc(RingObject *r)
{
    PyMem_Free(r->data);
#ifdef Py_LIMITED_API
    /* a heap type: its instances hold a reference to it */
    PyTypeObject *tp = Py_TYPE((PyObject *)r);
    ((freefunc)PyType_GetSlot(tp, Py_tp_free))(r);
    Py_DECREF(tp);
#else
    Py_TYPE(r)->tp_free((PyObject *)r);
#endif
}

static PyObject *
ring_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
#ifdef Py_LIMITED_API
    RingObject *r = (RingObject *)((allocfunc)PyType_GetSlot(type, Py_tp_alloc))(type, 0);
#else
    RingObject *r = (RingObject *)type->tp_alloc(type, 0);
#endif
    if (r == NULL)
        return NULL;
    r->data = PyMem_Malloc(RING_CAP);
    r->head = r->tail = 0;
    if (r->data == NULL) {
        Py_DECREF(r);
        return PyErr_NoMemory();
    }
    return (PyObject *)r;
}

static PyMethodDef ring_methods[] = {
    {"put", (PyCFunction)(void (*)(void))ring_put, CALLCONV, NULL},
    {"get", (PyCFunction)(void (*)(void))ring_get, CALLCONV, NULL},
    {"put_many", (PyCFunction)ring_put_many, METH_O, NULL},
    {"drain", (PyCFunction)ring_drain, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

#ifndef Py_LIMITED_API
static PyTypeObject Ring_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = STR(MODNAME) ".Ring",
    .tp_basicsize = sizeof(RingObject),
    .tp_dealloc = (destructor)ring_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_methods = ring_methods,
    .tp_new = ring_new,
};
#else
static PyType_Slot ring_slots[] = {
    {Py_tp_dealloc, ring_dealloc},
    {Py_tp_methods, ring_methods},
    {Py_tp_new, ring_new},
    {0, NULL},
};
static PyType_Spec ring_spec = {STR(MODNAME) ".Ring", sizeof(RingObject), 0, Py_TPFLAGS_DEFAULT,
                                ring_slots};
#endif

/* ---- Pool.map's chunks: _gomp_pool.c's pool_pack, pool_unpack and
 * pool_unpack_into, for a list and for 'q' (int64) and 'd' (double) chunks,
 * the 'm' (marshal) chunk in pack_marshal and unpack_marshal ---- */

#define CHUNK_HDR 8
#define CHUNK_DEPTH 8

/* pack(list) -> the 'q' or 'd' chunk of a list of exact ints or floats, or
 * None */
static PyObject *
pack(PyObject *self, PyObject *seq)
{
    if (!PyList_CheckExact(seq)) {
        PyErr_SetString(PyExc_TypeError, "pack() takes a list");
        return NULL;
    }
    Py_ssize_t n = LIST_SIZE(seq);
    if (n == 0)
        Py_RETURN_NONE;
    PyTypeObject *t0 = Py_TYPE(LIST_GET(seq, 0));
    if (t0 != &PyLong_Type && t0 != &PyFloat_Type)
        Py_RETURN_NONE;
    PyObject *b = PyBytes_FromStringAndSize(NULL, CHUNK_HDR + 8 * n);
    if (b == NULL)
        return NULL;
    char *out = BYTES_STR(b);
    memset(out, 0, CHUNK_HDR);
    out[0] = t0 == &PyLong_Type ? 'q' : 'd';
    out += CHUNK_HDR;
    Py_ssize_t i = 0;
    if (t0 == &PyLong_Type) {
        for (; i < n; i++) {
            PyObject *o = LIST_GET(seq, i);
            int overflow;
            if (Py_TYPE(o) != &PyLong_Type)
                break;
            long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
            if (overflow)
                break;
            int64_t le = (int64_t)v;
            memcpy(out + 8 * i, &le, 8);
        }
    } else {
        for (; i < n; i++) {
            PyObject *o = LIST_GET(seq, i);
            if (Py_TYPE(o) != &PyFloat_Type)
                break;
            double v = FLOAT_AS_DOUBLE(o);
            memcpy(out + 8 * i, &v, 8);
        }
    }
    if (i == n)
        return b;
    Py_DECREF(b);
    Py_RETURN_NONE;
}

static int
chunk_item_ok(PyObject *o, int depth)
{
    PyTypeObject *t = Py_TYPE(o);
    if (o == Py_None || t == &PyLong_Type || t == &PyFloat_Type || t == &PyUnicode_Type ||
        t == &PyBool_Type || t == &PyBytes_Type || t == &PyComplex_Type)
        return 1;
    if (t == &PyTuple_Type && depth < CHUNK_DEPTH) {
        Py_ssize_t n = TUPLE_SIZE(o);
        for (Py_ssize_t i = 0; i < n; i++)
            if (!chunk_item_ok(TUPLE_GET(o, i), depth + 1))
                return 0;
        return 1;
    }
    return 0;
}

/* check_items(list) -> whether every item may go in an 'm' chunk: the walk
 * pool_pack makes before it marshals */
static PyObject *
check_items(PyObject *self, PyObject *seq)
{
    Py_ssize_t n = LIST_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++)
        if (!chunk_item_ok(LIST_GET(seq, i), 0))
            Py_RETURN_FALSE;
    Py_RETURN_TRUE;
}

/* pack_marshal(list) -> the 'm' chunk: the list marshalled, one call */
static PyObject *
pack_marshal(PyObject *self, PyObject *seq)
{
    PyObject *m = marshal_dumps(seq);
    if (m == NULL)
        return NULL;
    Py_ssize_t mn = BYTES_SIZE(m);
    PyObject *b = PyBytes_FromStringAndSize(NULL, CHUNK_HDR + mn);
    if (b != NULL) {
        char *out = BYTES_STR(b);
        memset(out, 0, CHUNK_HDR);
        out[0] = 'm';
        memcpy(out + CHUNK_HDR, BYTES_STR(m), mn);
    }
    Py_DECREF(m);
    return b;
}

/* unpack(chunk) -> a new list of the 'q' chunk's ints */
static PyObject *
unpack(PyObject *self, PyObject *blob)
{
    bytes_view v;
    if (bytes_view_get(blob, &v) < 0)
        return NULL;
    Py_ssize_t n = (v.len - CHUNK_HDR) / 8;
    PyObject *out = PyList_New(n);
    for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
        int64_t x;
        memcpy(&x, v.buf + CHUNK_HDR + 8 * i, 8);
        PyObject *o = PyLong_FromLongLong(x);
        if (o == NULL)
            Py_CLEAR(out);
        else
            LIST_SET_NEW(out, i, o);
    }
    bytes_view_release(&v);
    return out;
}

/* unpack_into(chunk, target) -> count: the 'q' chunk's ints in place of
 * target's first items; the list is checked at each item (put_item) */
static PyObject *
unpack_into(PyObject *self, PyObject *args)
{
    PyObject *blob, *target;
    if (!PyArg_ParseTuple(args, "OO!", &blob, &PyList_Type, &target))
        return NULL;
    bytes_view v;
    if (bytes_view_get(blob, &v) < 0)
        return NULL;
    Py_ssize_t n = (v.len - CHUNK_HDR) / 8;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i >= LIST_SIZE(target)) {
            bytes_view_release(&v);
            PyErr_SetString(PyExc_IndexError, "chunk does not fit its place");
            return NULL;
        }
        int64_t x;
        memcpy(&x, v.buf + CHUNK_HDR + 8 * i, 8);
        PyObject *o = PyLong_FromLongLong(x);
        if (o == NULL) {
            bytes_view_release(&v);
            return NULL;
        }
        list_replace(target, i, o);
    }
    bytes_view_release(&v);
    return PyLong_FromSsize_t(n);
}

/* unpack_marshal(chunk) -> the 'm' chunk's list: one marshal load */
static PyObject *
unpack_marshal(PyObject *self, PyObject *blob)
{
    bytes_view v;
    if (bytes_view_get(blob, &v) < 0)
        return NULL;
    PyObject *seq = marshal_loads(v.buf + CHUNK_HDR, v.len - CHUNK_HDR);
    bytes_view_release(&v);
    return seq;
}

/* ---- per message: bytes and buffers ---- */

/* touch_bytes(list of bytes) -> a checksum: each one's (pointer, length), as
 * message_one and incoming_object take a marshalled message's */
static PyObject *
touch_bytes(PyObject *self, PyObject *list)
{
    Py_ssize_t n = LIST_SIZE(list);
    uint64_t acc = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *b = LIST_GET(list, i);
        const char *p = BYTES_STR(b);
        Py_ssize_t len = BYTES_SIZE(b);
        acc += (unsigned char)p[0] + (uint64_t)len;
    }
    return PyLong_FromUnsignedLongLong(acc);
}

/* dumps_each(list): marshal each item alone, as each put does */
static PyObject *
dumps_each(PyObject *self, PyObject *list)
{
    Py_ssize_t n = LIST_SIZE(list);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = marshal_dumps(LIST_GET(list, i));
        if (d == NULL)
            return NULL;
        Py_DECREF(d);
    }
    Py_RETURN_NONE;
}

/* marshal_each(list): marshal each item alone and read it back, as a put
 * and its get do */
static PyObject *
marshal_each(PyObject *self, PyObject *list)
{
    Py_ssize_t n = LIST_SIZE(list);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = marshal_dumps(LIST_GET(list, i));
        if (d == NULL)
            return NULL;
        PyObject *o = marshal_loads(BYTES_STR(d), BYTES_SIZE(d));
        Py_DECREF(d);
        if (o == NULL)
            return NULL;
        Py_DECREF(o);
    }
    Py_RETURN_NONE;
}

/* send_buf(bytes-like) -> its length: the buffer of a Connection's send
 * (conn_pipe_send's "y*"), taken and let go */
static PyObject *
send_buf(PyObject *self, PyObject *obj)
{
    bytes_view v;
    if (bytes_view_get(obj, &v) < 0)
        return NULL;
    Py_ssize_t len = v.len;
    volatile char last = len ? v.buf[len - 1] : 0; /* the memory is read */
    (void)last;
    bytes_view_release(&v);
    return PyLong_FromSsize_t(len);
}

static PyMethodDef methods[] = {
    {"noop_o", noop_o, METH_O, NULL},
    {"get_varargs", (PyCFunction)(void (*)(void))get_varargs, METH_VARARGS | METH_KEYWORDS,
     NULL},
#ifdef HAVE_FASTCALL
    {"get_fastcall", (PyCFunction)(void (*)(void))get_fastcall, METH_FASTCALL | METH_KEYWORDS,
     NULL},
#endif
    {"pack", pack, METH_O, NULL},
    {"check_items", check_items, METH_O, NULL},
    {"pack_marshal", pack_marshal, METH_O, NULL},
    {"unpack", unpack, METH_O, NULL},
    {"unpack_into", unpack_into, METH_VARARGS, NULL},
    {"unpack_marshal", unpack_marshal, METH_O, NULL},
    {"touch_bytes", touch_bytes, METH_O, NULL},
    {"dumps_each", dumps_each, METH_O, NULL},
    {"marshal_each", marshal_each, METH_O, NULL},
    {"send_buf", send_buf, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, STR(MODNAME), NULL, -1, methods};

PyMODINIT_FUNC
CAT(PyInit_, MODNAME)(void)
{
    PyObject *marshal = PyImport_ImportModule("marshal");
    if (marshal == NULL)
        return NULL;
    marshal_dumps_fn = PyObject_GetAttrString(marshal, "dumps");
    marshal_loads_fn = PyObject_GetAttrString(marshal, "loads");
    Py_DECREF(marshal);
    marshal_version = PyLong_FromLong(MARSHAL_VERSION);
    if (marshal_dumps_fn == NULL || marshal_loads_fn == NULL || marshal_version == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&moddef);
    if (m == NULL)
        return NULL;
#ifndef Py_LIMITED_API
    if (PyType_Ready(&Ring_Type) < 0)
        return NULL;
    PyObject *ring_type = (PyObject *)&Ring_Type;
    Py_INCREF(ring_type);
#else
    PyObject *ring_type = PyType_FromSpec(&ring_spec);
    if (ring_type == NULL)
        return NULL;
#endif
    if (PyModule_AddObject(m, "Ring", ring_type) < 0)
        return NULL;
    return m;
}
