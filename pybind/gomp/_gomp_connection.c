/* _gomp, connection area: the shared-memory pipe of gomp/pipe.go.
 *
 * Every send and receive runs as steps through gomp_wait_sliced, with the
 * GIL released, so a blocked call lets other threads run and Ctrl-C
 * interrupts it. The end of the stream comes back from Go as -ECONNRESET
 * and is raised as EOFError.
 */
#include "_gomp.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

static int (*go_pipe_new)(int, long long, int *);
static int (*go_pipe_open)(int *);
static int (*go_pipe_files)(int, int *);
static int (*go_pipe_close)(int);
static int (*go_pipe_send_step)(int, char *, size_t, int *, int, long long *, long long);
static int (*go_pipe_recv_header_step)(int, long long, long long *, int *, int *);
static int (*go_pipe_recv_body_step)(int, char *, size_t, long long *, long long);
static int (*go_pipe_poll_step)(int, long long);
static int (*go_pipe_fileno)(int);

gomp_symbol gomp_connection_symbols[] = {
    {"GompPipeNew", (void **)&go_pipe_new},
    {"GompPipeOpen", (void **)&go_pipe_open},
    {"GompPipeFiles", (void **)&go_pipe_files},
    {"GompPipeClose", (void **)&go_pipe_close},
    {"GompPipeSendStep", (void **)&go_pipe_send_step},
    {"GompPipeRecvHeaderStep", (void **)&go_pipe_recv_header_step},
    {"GompPipeRecvBodyStep", (void **)&go_pipe_recv_body_step},
    {"GompPipePollStep", (void **)&go_pipe_poll_step},
    {"GompPipeFileno", (void **)&go_pipe_fileno},
    {NULL, NULL},
};

#define PIPE_EOF (-ECONNRESET)

typedef struct {
    int handle;
    char *buf;
    size_t n;
    int *fds;
    int nfds;
    long long progress;
    long long len;
    int rfds[255];
    int rnfds;
    int eof;
} pipe_op;

/* Turn gomp_wait_sliced's -1 for the end of the stream into EOFError. */
static int
finish(pipe_op *op, int rc)
{
    if (rc < 0 && op->eof) {
        PyErr_Clear();
        PyErr_SetNone(PyExc_EOFError);
    }
    return rc;
}

static int
note_eof(pipe_op *op, int rc)
{
    if (rc == PIPE_EOF)
        op->eof = 1;
    return rc;
}

static int
send_step(void *arg, long long slice)
{
    pipe_op *op = arg;
    return note_eof(op, go_pipe_send_step(op->handle, op->buf, op->n, op->fds, op->nfds,
                                          &op->progress, slice));
}

static int
header_step(void *arg, long long slice)
{
    pipe_op *op = arg;
    return note_eof(op, go_pipe_recv_header_step(op->handle, slice, &op->len, op->rfds,
                                                 &op->rnfds));
}

static int
body_step(void *arg, long long slice)
{
    pipe_op *op = arg;
    return note_eof(op, go_pipe_recv_body_step(op->handle, op->buf, op->n, &op->progress, slice));
}

static int
poll_step(void *arg, long long slice)
{
    pipe_op *op = arg;
    return go_pipe_poll_step(op->handle, slice);
}

static PyObject *
conn_pipe_new(PyObject *self, PyObject *args)
{
    int duplex, out[2];
    long long ring = 0;
    if (!PyArg_ParseTuple(args, "p|L", &duplex, &ring) || gomp_usable() < 0)
        return NULL;
    int rc = go_pipe_new(duplex, ring, out);
    if (rc < 0)
        return gomp_errno_error(rc);
    return Py_BuildValue("ii", out[0], out[1]);
}

static PyObject *
conn_pipe_open(PyObject *self, PyObject *args)
{
    int f[6];
    if (!PyArg_ParseTuple(args, "(iiiiii)", &f[0], &f[1], &f[2], &f[3], &f[4], &f[5]) ||
        gomp_usable() < 0)
        return NULL;
    int rc = go_pipe_open(f);
    if (rc < 0)
        return gomp_errno_error(rc);
    return PyLong_FromLong(rc);
}

static PyObject *
conn_pipe_files(PyObject *self, PyObject *args)
{
    int h, f[6];
    if (!PyArg_ParseTuple(args, "i", &h) || gomp_usable() < 0)
        return NULL;
    int rc = go_pipe_files(h, f);
    if (rc < 0)
        return gomp_errno_error(rc);
    return Py_BuildValue("(iiiiii)", f[0], f[1], f[2], f[3], f[4], f[5]);
}

static PyObject *
conn_pipe_close(PyObject *self, PyObject *args)
{
    int h, rc;
    if (!PyArg_ParseTuple(args, "i", &h) || gomp_usable() < 0)
        return NULL;
    /* waits for operations of other threads on this end to leave Go */
    Py_BEGIN_ALLOW_THREADS
    rc = go_pipe_close(h);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        return gomp_errno_error(rc);
    Py_RETURN_NONE;
}

/* send(handle, buffer, fds): write one message. */
static PyObject *
conn_pipe_send(PyObject *self, PyObject *args)
{
    int h;
    Py_buffer view;
    PyObject *fdseq = Py_None;
    if (!PyArg_ParseTuple(args, "iy*|O", &h, &view, &fdseq))
        return NULL;
    pipe_op op = {0};
    op.handle = h;
    op.buf = view.buf;
    op.n = (size_t)view.len;
    if (gomp_usable() < 0 ||
        (fdseq != Py_None && gomp_int_array(fdseq, &op.fds, &op.nfds) < 0)) {
        PyBuffer_Release(&view);
        return NULL;
    }
    int rc = finish(&op, gomp_wait_sliced(send_step, &op, -1));
    PyBuffer_Release(&view);
    PyMem_Free(op.fds);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
fd_list(pipe_op *op)
{
    PyObject *l = PyList_New(op->rnfds);
    for (int i = 0; l != NULL && i < op->rnfds; i++) {
        PyObject *v = PyLong_FromLong(op->rfds[i]);
        if (v == NULL) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, i, v);
    }
    return l;
}

static void
close_fds(pipe_op *op)
{
    for (int i = 0; i < op->rnfds; i++)
        close(op->rfds[i]);
    op->rnfds = 0;
}

/* A large message lands in freshly mapped memory; faulting it in 2 MiB
 * pages instead of 4 KiB ones is most of the cost of receiving it (where
 * transparent huge pages are on "madvise"). */
static void
prefer_huge_pages(char *buf, size_t n)
{
    if (n < (8u << 20))
        return;
    size_t page = 4096;
    uintptr_t start = ((uintptr_t)buf + page - 1) & ~(uintptr_t)(page - 1);
    uintptr_t end = ((uintptr_t)buf + n) & ~(uintptr_t)(page - 1);
    if (end > start)
        madvise((void *)start, end - start, MADV_HUGEPAGE);
}

/* Read the payload of the message whose header op holds into buf (NULL:
 * discard it). */
static int
read_body(pipe_op *op, char *buf)
{
    op->buf = buf;
    op->n = (size_t)op->len;
    op->progress = 0;
    if (op->len == 0)
        return 1;
    return finish(op, gomp_wait_sliced(body_step, op, -1));
}

/* recv(handle, maxlength): (bytes, fds); (None, size) when the message was
 * longer than maxlength (and was skipped). EOFError at the end. */
static PyObject *
conn_pipe_recv(PyObject *self, PyObject *args)
{
    int h;
    long long maxlength = -1;
    if (!PyArg_ParseTuple(args, "i|L", &h, &maxlength) || gomp_usable() < 0)
        return NULL;
    pipe_op op = {0};
    op.handle = h;
    if (finish(&op, gomp_wait_sliced(header_step, &op, -1)) < 0)
        return NULL;
    if (maxlength >= 0 && op.len > maxlength) {
        close_fds(&op);
        if (read_body(&op, NULL) < 0)
            return NULL;
        return Py_BuildValue("(OL)", Py_None, op.len);
    }
    PyObject *data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)op.len);
    if (data == NULL) {
        close_fds(&op);
        read_body(&op, NULL);
        PyErr_NoMemory();
        return NULL;
    }
    prefer_huge_pages(PyBytes_AS_STRING(data), (size_t)op.len);
    if (read_body(&op, PyBytes_AS_STRING(data)) < 0) {
        close_fds(&op);
        Py_DECREF(data);
        return NULL;
    }
    PyObject *fds = fd_list(&op);
    if (fds == NULL) {
        close_fds(&op);
        Py_DECREF(data);
        return NULL;
    }
    PyObject *res = PyTuple_Pack(2, data, fds);
    Py_DECREF(data);
    Py_DECREF(fds);
    return res;
}

/* recv_into(handle, buffer, offset): (size, fds, None) after reading into
 * buffer[offset:], or (size, fds, bytes) when the buffer was too short. */
static PyObject *
conn_pipe_recv_into(PyObject *self, PyObject *args)
{
    int h;
    Py_buffer view;
    Py_ssize_t offset = 0;
    if (!PyArg_ParseTuple(args, "iw*|n", &h, &view, &offset))
        return NULL;
    PyObject *res = NULL;
    pipe_op op = {0};
    op.handle = h;
    if (gomp_usable() < 0)
        goto done;
    if (offset < 0 || offset > view.len) {
        PyErr_SetString(PyExc_ValueError, "offset out of bounds");
        goto done;
    }
    if (finish(&op, gomp_wait_sliced(header_step, &op, -1)) < 0)
        goto done;
    PyObject *whole = Py_None;
    char *dst;
    if (op.len > view.len - offset) {
        whole = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)op.len);
        if (whole == NULL) {
            close_fds(&op);
            read_body(&op, NULL);
            goto done;
        }
        dst = PyBytes_AS_STRING(whole);
        prefer_huge_pages(dst, (size_t)op.len);
    } else {
        Py_INCREF(whole);
        dst = (char *)view.buf + offset;
    }
    if (read_body(&op, dst) < 0) {
        close_fds(&op);
        Py_DECREF(whole);
        goto done;
    }
    PyObject *fds = fd_list(&op);
    if (fds == NULL) {
        close_fds(&op);
        Py_DECREF(whole);
        goto done;
    }
    res = Py_BuildValue("(LNN)", op.len, fds, whole);
done:
    PyBuffer_Release(&view);
    return res;
}

static PyObject *
conn_pipe_poll(PyObject *self, PyObject *args)
{
    int h;
    PyObject *timeout = Py_None;
    long long ns;
    if (!PyArg_ParseTuple(args, "i|O", &h, &timeout) || gomp_parse_timeout(timeout, &ns) < 0 ||
        gomp_usable() < 0)
        return NULL;
    pipe_op op = {0};
    op.handle = h;
    int rc = gomp_wait_sliced(poll_step, &op, ns);
    if (rc < 0)
        return NULL;
    return PyBool_FromLong(rc > 0);
}

static PyObject *
conn_pipe_fileno(PyObject *self, PyObject *args)
{
    int h;
    if (!PyArg_ParseTuple(args, "i", &h) || gomp_usable() < 0)
        return NULL;
    int rc = go_pipe_fileno(h);
    if (rc < 0)
        return gomp_errno_error(rc);
    return PyLong_FromLong(rc);
}

PyMethodDef gomp_connection_methods[] = {
    {"pipe_new", conn_pipe_new, METH_VARARGS,
     "pipe_new(duplex[, ring_size]) -> (handle, handle): a shared-memory pipe."},
    {"pipe_open", conn_pipe_open, METH_VARARGS,
     "pipe_open(files) -> handle: open an end from its six descriptors/values."},
    {"pipe_files", conn_pipe_files, METH_VARARGS,
     "pipe_files(handle) -> (mem, sock, ev0, ev1, in, out)."},
    {"pipe_close", conn_pipe_close, METH_VARARGS, "pipe_close(handle)."},
    {"pipe_send", conn_pipe_send, METH_VARARGS, "pipe_send(handle, data[, fds])."},
    {"pipe_recv", conn_pipe_recv, METH_VARARGS,
     "pipe_recv(handle[, maxlength]) -> (bytes, fds) or (None, size)."},
    {"pipe_recv_into", conn_pipe_recv_into, METH_VARARGS,
     "pipe_recv_into(handle, buffer[, offset]) -> (size, fds, None or bytes)."},
    {"pipe_poll", conn_pipe_poll, METH_VARARGS, "pipe_poll(handle[, timeout]) -> bool."},
    {"pipe_fileno", conn_pipe_fileno, METH_VARARGS,
     "pipe_fileno(handle) -> fd readable when a message waits or the peer closed."},
    {NULL, NULL, 0, NULL},
};
