/* _gomp, queues area: the Ring type, the data path of Queue/SimpleQueue/
 * JoinableQueue over a shared ring made and mapped by Go (gomp/ring.go).
 * The ring's frames, locks and waits are in _gomp_ring.c, the codec in
 * _gomp_encode.c; Go is called here to make, map and watch a ring. */
#include "_gomp_ring.h"

#include <marshal.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>

#define QUEUES_IMPORTS(X)                                                                          \
    X(GompRingCreate) X(GompRingMap) X(GompRingClose) X(GompRingWatch) X(GompRingUnwatch)
GOMP_IMPORTS(queues, QUEUES_IMPORTS);

/* how long put() waits for room in a full ring before it leaves the item to
 * the backlog (put never blocks; this is a bounded busy wait) */
#define ROOM_SPIN_NS 50000

static PyObject *empty_exc = NULL; /* queue.Empty */
static PyObject *full_exc = NULL;  /* queue.Full */

static PyTypeObject Ring_Type;

/* a JoinableQueue's unfinished tasks: one more */
static inline void
task_add(RingObject *r)
{
    __atomic_fetch_add(U32(r, GOMP_RING_OFF_TASKS), 1, __ATOMIC_SEQ_CST);
}

/* ---- producer side ---- */

/* The end of a batch of puts written from start to pos (producer lock
 * held): publish them, let the lock go; how many, or NULL on err. */
static PyObject *
batch_done(RingObject *r, uint64_t pos, uint64_t start, int err, Py_ssize_t done)
{
    if (pos != start)
        publish(r, pos);
    lock_release(U32(r, GOMP_RING_OFF_PLOCK));
    if (err)
        return NULL;
    return PyLong_FromSsize_t(done);
}

/* try_put_many([(kind, parts)...], count) -> how many were written now */
static PyObject *
ring_try_put_many(RingObject *r, PyObject *args)
{
    PyObject *items;
    int count;
    if (!PyArg_ParseTuple(args, "O!p", &PyList_Type, &items, &count))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(items), done = 0;
    uint32_t *pl = U32(r, GOMP_RING_OFF_PLOCK);
    if (n == 0 || !lock_spin(pl, r->pid))
        return PyLong_FromLong(0);
    uint64_t pos = LOAD(U64(r, GOMP_RING_OFF_TAIL)), start = pos;
    message *m = PyMem_Malloc(sizeof(message));
    if (m == NULL) {
        lock_release(pl);
        return PyErr_NoMemory();
    }
    int err = 0;
    for (; done < n; done++) {
        PyObject *item = PyList_GET_ITEM(items, done);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "a message is (kind, (parts...))");
            err = 1;
            break;
        }
        if (message_init(m, PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1)) < 0) {
            err = 1;
            break;
        }
        int ok = fits_single(r, pos, m);
        if (ok)
            write_single(r, &pos, m);
        message_release(m);
        if (!ok)
            break;
        if (count)
            count_puts(r, 1);
    }
    PyMem_Free(m);
    return batch_done(r, pos, start, err, done);
}

/* one frame at pos, then published; count: add to qsize */
static inline void
put_single(RingObject *r, uint64_t pos, message *m, int count)
{
    write_single(r, &pos, m);
    if (count)
        count_puts(r, 1);
    publish(r, pos);
}

/* try_put(kind, parts, count) -> bool: one frame if the lock and the room
 * are there now; count: add to qsize. */
static PyObject *
ring_try_put(RingObject *r, PyObject *args)
{
    unsigned int kind;
    PyObject *parts;
    int count;
    message m;
    if (!PyArg_ParseTuple(args, "IO!p", &kind, &PyTuple_Type, &parts, &count))
        return NULL;
    uint32_t *pl = U32(r, GOMP_RING_OFF_PLOCK);
    if (!lock_spin(pl, r->pid))
        Py_RETURN_FALSE;
    if (message_init(&m, PyTuple_GET_ITEM(args, 0), parts) < 0) {
        lock_release(pl);
        return NULL;
    }
    uint64_t pos = LOAD(U64(r, GOMP_RING_OFF_TAIL));
    int ok = fits_single(r, pos, &m);
    if (ok)
        put_single(r, pos, &m, count);
    message_release(&m);
    lock_release(pl);
    return PyBool_FromLong(ok);
}

/* put(kind, parts, count, timeout) -> bool: blocking write, streaming
 * messages of any size (the feeder's path). */
static PyObject *
ring_put(RingObject *r, PyObject *args)
{
    unsigned int kind;
    PyObject *parts, *timeout = Py_None;
    int count;
    long long ns;
    message m;
    if (!PyArg_ParseTuple(args, "IO!p|O", &kind, &PyTuple_Type, &parts, &count, &timeout) ||
        gomp_parse_timeout(timeout, &ns) < 0 || gomp_usable() < 0 ||
        message_init(&m, PyTuple_GET_ITEM(args, 0), parts) < 0)
        return NULL;
    long long deadline = deadline_of(ns);
    int rc = lock_acquire(r, GOMP_RING_OFF_PLOCK, deadline);
    if (rc <= 0) {
        message_release(&m);
        if (rc < 0)
            return NULL;
        Py_RETURN_FALSE;
    }
    uint64_t pos = LOAD(U64(r, GOMP_RING_OFF_TAIL));
    uint64_t need = single_need(r, pos, m.total);
    if (need != 0) {
        rc = wait_space(r, pos, need, deadline);
        if (rc > 0)
            put_single(r, pos, &m, count);
    } else {
        rc = write_stream(r, &m, deadline, count);
    }
    lock_release(U32(r, GOMP_RING_OFF_PLOCK));
    message_release(&m);
    if (rc < 0)
        return NULL;
    return PyBool_FromLong(rc > 0);
}

/* ---- slots of a bounded queue, and qsize ---- */

static int
slot_free(RingObject *r, void *arg)
{
    uint64_t *q = U64(r, GOMP_RING_OFF_PUTS);
    uint64_t v = LOAD(q);
    while (v - LOAD(U64(r, GOMP_RING_OFF_GETS)) < r->maxsize) {
        if (__atomic_compare_exchange_n(q, &v, v + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return 1;
    }
    return 0;
}

/* reserve(block, timeout): take a slot of a bounded queue (or count an item
 * of an unbounded one); raises queue.Full. */
static PyObject *
ring_reserve(RingObject *r, PyObject *args)
{
    int block = 1;
    PyObject *timeout = Py_None;
    long long ns;
    if (!PyArg_ParseTuple(args, "|pO", &block, &timeout) || gomp_parse_timeout(timeout, &ns) < 0)
        return NULL;
    if (r->maxsize == 0) {
        count_puts(r, 1);
        Py_RETURN_NONE;
    }
    if (slot_free(r, NULL))
        Py_RETURN_NONE;
    if (!block) {
        PyErr_SetNone(full_exc);
        return NULL;
    }
    if (gomp_usable() < 0)
        return NULL;
    int rc = cond_wait(r, slot_free, NULL, GOMP_RING_OFF_HEAD, GOMP_RING_OFF_SPACE_WAIT, 0,
                       deadline_of(ns));
    if (rc < 0)
        return NULL;
    if (rc == 0) {
        PyErr_SetNone(full_exc);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* unreserve(n): give back n slots (an item that was not sent). */
static PyObject *
ring_unreserve(RingObject *r, PyObject *args)
{
    unsigned long long n = 1;
    if (!PyArg_ParseTuple(args, "|K", &n))
        return NULL;
    count_puts(r, -(int64_t)n);
    wake_waiters(r, GOMP_RING_OFF_SPACE_WAIT, GOMP_RING_OFF_HEAD);
    Py_RETURN_NONE;
}

/* A get's deadline: none when it blocks without a timeout (NULL or None),
 * now when it does not block. */
static inline int
get_deadline(int block, PyObject *timeout, long long *deadline)
{
    long long ns = -1;
    if (timeout != NULL && gomp_parse_timeout(timeout, &ns) < 0)
        return -1;
    *deadline = deadline_of(block ? ns : 0);
    return 0;
}

/* Take the consumer lock by deadline: 0, or -1 with an exception set
 * (queue.Empty when the time ran out). */
static inline int
consumer_lock(RingObject *r, long long deadline)
{
    if (lock_try(U32(r, GOMP_RING_OFF_CLOCK), r->pid))
        return 0;
    int rc = lock_acquire(r, GOMP_RING_OFF_CLOCK, deadline);
    if (rc == 0)
        PyErr_SetNone(empty_exc);
    return rc > 0 ? 0 : -1;
}

static inline int
check_open(RingObject *r)
{
    if (r->closed_msg != NULL) {
        PyErr_SetObject(PyExc_ValueError, r->closed_msg);
        return -1;
    }
    return 0;
}

/* get(block=True, timeout=None) -> object; raises queue.Empty */
static PyObject *
ring_get(RingObject *r, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int block;
    PyObject *timeout;
    long long deadline;
    if (gomp_parse_block_timeout("get", args, nargs, kwnames, NULL, &block, &timeout) < 0 ||
        check_open(r) < 0 || get_deadline(block, timeout, &deadline) < 0 || gomp_usable() < 0 ||
        consumer_lock(r, deadline) < 0)
        return NULL;
    incoming in;
    int rc = read_message(r, &in, deadline, 1);
    lock_release(U32(r, GOMP_RING_OFF_CLOCK));
    if (rc < 0)
        return NULL;
    if (rc == 0) {
        PyErr_SetNone(empty_exc);
        return NULL;
    }
    return incoming_object(&in);
}

/* put(obj, block=True, timeout=None): the common case (an unbounded queue,
 * nothing waiting in this process's backlog, a small picklable object) is
 * done here; the rest goes to Queue._slow_put, or Queue._backlog_pickled
 * when the ring is full. These are called from here rather than chosen by
 * a value returned to Python: Queue.put is this function itself (bound in
 * Queue._reset), and a Python put that looked at a returned value would
 * add a Python frame to every put (a small int's put: 116 ns called
 * directly, 182 ns through a Python method), for calls only the rare slow
 * path makes. */
static PyObject *
ring_put_obj(RingObject *r, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "put() missing its object");
        return NULL;
    }
    PyObject *obj = args[0];
    PyObject *owner = NULL;
    if (r->owner != NULL) {
#if PY_VERSION_HEX >= 0x030D0000
        if (PyWeakref_GetRef(r->owner, &owner) < 0)
            return NULL;
#else
        owner = PyWeakref_GetObject(r->owner);
        owner = owner == Py_None ? NULL : owner;
        Py_XINCREF(owner);
#endif
    }
    if (owner == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the queue of this ring is gone");
        return NULL;
    }
    int slow = r->closed_msg != NULL || r->pending || travels_raw(obj);
    PyObject *data = NULL;
    uint32_t kind = GOMP_MSG_PICKLE;
    if (!slow) {
        int rc = encode_plain(obj, &data, &kind);
        if (rc < 0) {
            Py_DECREF(owner);
            return NULL;
        }
        slow = rc == 0;
    }
    /* a bounded queue: take a slot now or let the slow path wait for one */
    if (!slow && r->maxsize && !slot_free(r, NULL)) {
        Py_CLEAR(data);
        slow = 1;
    }
    if (slow) {
        PyObject *a[4] = {owner, obj, nargs > 1 ? args[1] : Py_True, nargs > 2 ? args[2] : Py_None};
        PyObject *res;
        if (kwnames != NULL || nargs > 3) {
            PyObject *bound = PyMethod_New(r->slow_put, owner);
            res = bound ? PyObject_Vectorcall(bound, args, nargs, kwnames) : NULL;
            Py_XDECREF(bound);
        } else
            res = PyObject_Vectorcall(r->slow_put, a, 4, NULL);
        Py_DECREF(owner);
        return res;
    }
    PyObject *res = NULL;
    if (gomp_usable() < 0)
        goto done;
    if (r->tasks)
        task_add(r);
    int ok = 0;
    uint32_t *pl = U32(r, GOMP_RING_OFF_PLOCK);
    if (lock_spin(pl, r->pid)) {
        message m;
        message_one(&m, kind, data);
        uint64_t pos = LOAD(U64(r, GOMP_RING_OFF_TAIL));
        uint64_t need = single_need(r, pos, m.total);
        ok = need != 0 && room_from(r, pos, need) >= need;
        if (!ok && need != 0) {
            /* full: consumers are usually just behind, and waiting a few
             * microseconds for them beats the backlog's thread hop */
            long long until = gomp_now_ns() + ROOM_SPIN_NS;
            for (int i = 0; !ok; i++) {
                gomp_spin_step(i);
                ok = room_from(r, pos, need) >= need;
                if ((i & 15) == 15 && gomp_now_ns() > until)
                    break;
            }
        }
        if (ok) /* a bounded queue's slot is counted already */
            put_single(r, pos, &m, !r->maxsize);
        lock_release(pl);
    }
    if (ok) {
        res = Py_None;
        Py_INCREF(res);
    } else {
        /* no room now: into the backlog (counted when the feeder writes it;
         * a bounded queue's slot is taken already) */
        PyObject *k = PyLong_FromUnsignedLong(kind);
        PyObject *a[3] = {owner, data, k};
        res = k ? PyObject_Vectorcall(r->backlog, a, 3, NULL) : NULL;
        Py_XDECREF(k);
    }
done:
    Py_DECREF(data);
    Py_DECREF(owner);
    return res;
}

/* put_many_fast(list) -> how many of the first items were written now, or
 * -1 when the list is not all small core-type objects (or the queue needs
 * the slow path): then nothing was written. */
static PyObject *
ring_put_many_fast(RingObject *r, PyObject *list)
{
    if (!PyList_Check(list)) {
        PyErr_SetString(PyExc_TypeError, "expected a list");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(list), done = 0;
    if (r->closed_msg != NULL || r->pending || r->maxsize)
        return PyLong_FromLong(-1);
    for (Py_ssize_t i = 0; i < n; i++)
        if (!marshal_ok(PyList_GET_ITEM(list, i)))
            return PyLong_FromLong(-1);
    if (n == 0 || gomp_usable() < 0)
        return n == 0 ? PyLong_FromLong(0) : NULL;
    uint32_t *pl = U32(r, GOMP_RING_OFF_PLOCK);
    if (!lock_spin(pl, r->pid))
        return PyLong_FromLong(0);
    uint64_t pos = LOAD(U64(r, GOMP_RING_OFF_TAIL)), start = pos;
    int err = 0;
    message m;
    for (; done < n; done++) {
        PyObject *obj = PyList_GET_ITEM(list, done);
        PyObject *data = PyMarshal_WriteObjectToString(obj, MARSHAL_VERSION);
        if (data == NULL) {
            err = 1;
            break;
        }
        message_one(&m, GOMP_MSG_MARSHAL, data);
        int ok = fits_single(r, pos, &m);
        if (ok) {
            write_single(r, &pos, &m);
            if (r->tasks)
                task_add(r);
            count_puts(r, 1);
        }
        Py_DECREF(data);
        if (!ok)
            break;
        if (((done + 1) & 63) == 0) /* let consumers start on long batches */
            publish(r, pos);
    }
    return batch_done(r, pos, start, err, done);
}

/* bind(queue, slow_put, backlog, tasks): attach the per-process queue */
/* exit_settle(timeout): in a process about to exit that wrote here, wait
 * (at most timeout seconds) until its last message was taken or an open
 * ring watch signalled it (gomp/ring_watch.go): the watch's reader then
 * sees the message no later than the exit. concurrent.futures takes a
 * worker's exit seen before its last result for a crash. */
static PyObject *
ring_exit_settle(RingObject *r, PyObject *arg)
{
    double seconds = PyFloat_AsDouble(arg);
    if (seconds == -1.0 && PyErr_Occurred())
        return NULL;
    if (r->base == NULL || !r->wrote || LOAD(U32(r, GOMP_RING_OFF_WATCHES)) == 0)
        Py_RETURN_NONE;
    uint64_t last = r->last_pub;
    long long deadline = gomp_now_ns() + (long long)(seconds * 1e9);
    Py_BEGIN_ALLOW_THREADS
    while (LOAD(U64(r, GOMP_RING_OFF_HEAD)) < last &&
           LOAD(U64(r, GOMP_RING_OFF_WATCH_SEEN)) < last &&
           LOAD(U32(r, GOMP_RING_OFF_WATCHES)) != 0 && gomp_now_ns() < deadline) {
        struct timespec pause = {0, 50000};
        nanosleep(&pause, NULL);
    }
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *
ring_bind(RingObject *r, PyObject *args)
{
    PyObject *queue, *slow_put, *backlog;
    int tasks;
    if (!PyArg_ParseTuple(args, "OOOp", &queue, &slow_put, &backlog, &tasks))
        return NULL;
    PyObject *wr = PyWeakref_NewRef(queue, NULL);
    if (wr == NULL)
        return NULL;
    Py_XSETREF(r->owner, wr);
    Py_INCREF(slow_put);
    Py_XSETREF(r->slow_put, slow_put);
    Py_INCREF(backlog);
    Py_XSETREF(r->backlog, backlog);
    r->tasks = tasks;
    Py_RETURN_NONE;
}

/* set_closed(message): get/put raise ValueError(message) from now on */
static PyObject *
ring_set_closed(RingObject *r, PyObject *msg)
{
    Py_INCREF(msg);
    Py_XSETREF(r->closed_msg, msg);
    Py_RETURN_NONE;
}

/* add_pending(n): items entering (n > 0) or leaving this process's backlog */
static PyObject *
ring_add_pending(RingObject *r, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    r->pending += n;
    return PyLong_FromSsize_t(r->pending);
}

/* get_many(max_items=None, block=True, timeout=None) -> list */
static PyObject *
ring_get_many(RingObject *r, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"max_items", "block", "timeout", NULL};
    int block = 1;
    PyObject *timeout = Py_None;
    long long deadline;
    Py_ssize_t max = PY_SSIZE_T_MAX;
    if (check_open(r) < 0 ||
        !PyArg_ParseTupleAndKeywords(args, kwds, "|npO:get_many", names, &max, &block, &timeout) ||
        get_deadline(block, timeout, &deadline) < 0 || gomp_usable() < 0 ||
        consumer_lock(r, deadline) < 0)
        return NULL;
    if (max <= 0)
        max = PY_SSIZE_T_MAX;
    uint32_t *cl = U32(r, GOMP_RING_OFF_CLOCK);
    /* Messages are taken under the lock; decoded ones (marshal) go to out
     * at once, pickled ones are unpickled after the lock is released (an
     * unpickler runs arbitrary code, which must not run under the lock). */
    PyObject *out = PyList_New(0);
    incoming *in = PyMem_Malloc(sizeof(incoming));
    Py_ssize_t *later = NULL, nlater = 0, cap_later = 0;
    if (out == NULL || in == NULL) {
        lock_release(cl);
        Py_XDECREF(out);
        PyMem_Free(in);
        return PyErr_NoMemory();
    }
    int rc = 1;
    while (PyList_GET_SIZE(out) < max) {
        rc = read_message(r, in, deadline, PyList_GET_SIZE(out) == 0);
        if (rc <= 0)
            break;
        gomp_interrupts_hold(); /* taken: a deferred Ctrl-C waits until handed out */
        PyObject *item;
        if (in->obj != NULL) {
            item = in->obj;
            in->obj = NULL;
        } else {
            if (nlater == cap_later) {
                cap_later = cap_later ? 2 * cap_later : 64;
                Py_ssize_t *nl = PyMem_Realloc(later, sizeof(Py_ssize_t) * cap_later);
                if (nl == NULL) {
                    incoming_clear(in);
                    PyErr_NoMemory();
                    rc = -1;
                    break;
                }
                later = nl;
            }
            item = PyTuple_New(in->nparts + 1);
            if (item == NULL) {
                incoming_clear(in);
                rc = -1;
                break;
            }
            PyTuple_SET_ITEM(item, 0, PyLong_FromUnsignedLong(in->kind));
            for (int k = 0; k < in->nparts; k++) {
                PyTuple_SET_ITEM(item, k + 1, in->parts[k]);
                in->parts[k] = NULL;
            }
            in->nparts = 0;
            later[nlater++] = PyList_GET_SIZE(out);
        }
        int e = PyList_Append(out, item);
        Py_DECREF(item);
        if (e < 0) {
            rc = -1;
            break;
        }
    }
    lock_release(cl);
    Py_ssize_t got = PyList_GET_SIZE(out);
    if (rc < 0 && got == 0) {
        PyMem_Free(in);
        PyMem_Free(later);
        Py_DECREF(out);
        return NULL;
    }
    if (rc < 0)
        PyErr_Clear(); /* deliver what was taken; a signal will recur */
    if (got == 0) {
        PyMem_Free(in);
        PyMem_Free(later);
        Py_DECREF(out);
        PyErr_SetNone(empty_exc);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nlater; i++) {
        PyObject *t = PyList_GET_ITEM(out, later[i]);
        in->obj = NULL;
        in->kind = (uint32_t)PyLong_AsUnsignedLong(PyTuple_GET_ITEM(t, 0));
        in->nparts = (int)PyTuple_GET_SIZE(t) - 1;
        for (int k = 0; k < in->nparts; k++) {
            in->parts[k] = PyTuple_GET_ITEM(t, k + 1);
            Py_INCREF(in->parts[k]);
        }
        PyObject *o = incoming_object(in);
        if (o == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SetItem(out, later[i], o);
    }
    PyMem_Free(in);
    PyMem_Free(later);
    return out;
}

/* ---- state ---- */

static PyObject *
ring_qsize(RingObject *r, PyObject *noargs)
{
    uint64_t g = LOAD(U64(r, GOMP_RING_OFF_GETS)), p = LOAD(U64(r, GOMP_RING_OFF_PUTS));
    return PyLong_FromUnsignedLongLong(p > g ? p - g : 0);
}

static PyObject *
ring_empty(RingObject *r, PyObject *noargs)
{
    return PyBool_FromLong(LOAD(U64(r, GOMP_RING_OFF_TAIL)) == LOAD(U64(r, GOMP_RING_OFF_HEAD)));
}

static PyObject *
ring_full(RingObject *r, PyObject *noargs)
{
    uint64_t g = LOAD(U64(r, GOMP_RING_OFF_GETS)), p = LOAD(U64(r, GOMP_RING_OFF_PUTS));
    return PyBool_FromLong(r->maxsize && p > g && p - g >= r->maxsize);
}

/* ---- JoinableQueue's unfinished tasks ---- */

static PyObject *
ring_task_add(RingObject *r, PyObject *noargs)
{
    task_add(r);
    Py_RETURN_NONE;
}

static PyObject *
ring_task_done(RingObject *r, PyObject *noargs)
{
    uint32_t *t = U32(r, GOMP_RING_OFF_TASKS);
    uint32_t v = LOAD(t);
    do {
        if (v == 0) {
            PyErr_SetString(PyExc_ValueError, "task_done() called too many times");
            return NULL;
        }
    } while (!__atomic_compare_exchange_n(t, &v, v - 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
    if (v == 1 && __atomic_load_n(U32(r, GOMP_RING_OFF_TASK_WAIT), __ATOMIC_SEQ_CST)) {
        if (gomp_usable() < 0)
            return NULL;
        gomp_futex_wake(t, 0x7fffffff);
    }
    Py_RETURN_NONE;
}

typedef struct {
    uint32_t *tasks, *waiters;
} joinwait;

static int
join_step(void *arg, long long slice)
{
    joinwait *j = arg;
    __atomic_fetch_add(j->waiters, 1, __ATOMIC_SEQ_CST);
    uint32_t v = __atomic_load_n(j->tasks, __ATOMIC_SEQ_CST);
    int rc = v == 0 ? 1 : gomp_futex_wait(j->tasks, v, slice);
    __atomic_fetch_sub(j->waiters, 1, __ATOMIC_SEQ_CST);
    if (rc < 0)
        return rc;
    return __atomic_load_n(j->tasks, __ATOMIC_SEQ_CST) == 0;
}

static PyObject *
ring_join_tasks(RingObject *r, PyObject *args)
{
    PyObject *timeout = Py_None;
    long long ns;
    if (!PyArg_ParseTuple(args, "|O", &timeout) || gomp_parse_timeout(timeout, &ns) < 0 ||
        gomp_usable() < 0)
        return NULL;
    joinwait j = {U32(r, GOMP_RING_OFF_TASKS), U32(r, GOMP_RING_OFF_TASK_WAIT)};
    if (LOAD(j.tasks) == 0)
        Py_RETURN_TRUE;
    return gomp_wait_bool(join_step, &j, ns);
}

static PyObject *
ring_unfinished(RingObject *r, PyObject *noargs)
{
    return PyLong_FromUnsignedLong(LOAD(U32(r, GOMP_RING_OFF_TASKS)));
}

static PyObject *
ring_fileno(RingObject *r, PyObject *noargs)
{
    return PyLong_FromLong(r->fd);
}

/* test hook: debug_set_lock(which, word, pid=0, start=0) holds a lock as
 * if process pid (started at start) had taken it; pid 0: not recorded */
static PyObject *
ring_debug_set_lock(RingObject *r, PyObject *args)
{
    const char *which;
    unsigned int v, pid = 0;
    unsigned long long start = 0;
    if (!PyArg_ParseTuple(args, "sI|IK", &which, &v, &pid, &start))
        return NULL;
    uint32_t *w = U32(r, which[0] == 'p' ? GOMP_RING_OFF_PLOCK : GOMP_RING_OFF_CLOCK);
    __atomic_store_n(GOMP_HOLDER_START(w), (uint64_t)start, __ATOMIC_SEQ_CST);
    __atomic_store_n(GOMP_HOLDER_PID(w), pid, __ATOMIC_SEQ_CST);
    __atomic_store_n(w, v, __ATOMIC_SEQ_CST);
    Py_RETURN_NONE;
}

/* test hook: (head, tail, puts, gets, producer lock, consumer lock) */
static PyObject *
ring_debug_state(RingObject *r, PyObject *noargs)
{
    return Py_BuildValue("KKKKII", (unsigned long long)LOAD(U64(r, GOMP_RING_OFF_HEAD)),
                         (unsigned long long)LOAD(U64(r, GOMP_RING_OFF_TAIL)),
                         (unsigned long long)LOAD(U64(r, GOMP_RING_OFF_PUTS)),
                         (unsigned long long)LOAD(U64(r, GOMP_RING_OFF_GETS)),
                         (unsigned)LOAD(U32(r, GOMP_RING_OFF_PLOCK)),
                         (unsigned)LOAD(U32(r, GOMP_RING_OFF_CLOCK)));
}

static PyObject *
ring_wrote(RingObject *r, void *closure)
{
    return PyBool_FromLong(r->wrote || r->pending);
}

static void
ring_dealloc(RingObject *r)
{
    /* the ring may outlive a forked child's use of Go: only unmap if usable */
    if (r->base != NULL) {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        if (gomp_usable() == 0)
            go.GompRingClose(r->base);
        else
            PyErr_Clear();
        PyErr_Restore(t, v, tb);
    }
    r->base = NULL;
    Py_CLEAR(r->owner);
    Py_CLEAR(r->slow_put);
    Py_CLEAR(r->backlog);
    Py_CLEAR(r->closed_msg);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static PyMethodDef ring_methods[] = {
    {"try_put", (PyCFunction)ring_try_put, METH_VARARGS,
     "try_put(kind, parts, count) -> bool: write one message now if it fits."},
    {"try_put_many", (PyCFunction)ring_try_put_many, METH_VARARGS,
     "try_put_many([(kind, parts)...], count) -> how many were written now."},
    {"put", (PyCFunction)ring_put, METH_VARARGS,
     "put(kind, parts, count, timeout=None) -> bool: write, waiting for room."},
    {"reserve", (PyCFunction)ring_reserve, METH_VARARGS,
     "reserve(block=True, timeout=None): take a slot; raises queue.Full."},
    {"unreserve", (PyCFunction)ring_unreserve, METH_VARARGS, "unreserve(n=1)"},
    {"exit_settle", (PyCFunction)ring_exit_settle, METH_O,
     "exit_settle(timeout): wait until a ring watch has seen this process's last message."},
    {"put_obj", (PyCFunction)(void (*)(void))ring_put_obj, METH_FASTCALL | METH_KEYWORDS,
     "put_obj(obj, block=True, timeout=None): Queue.put."},
    {"bind", (PyCFunction)ring_bind, METH_VARARGS, NULL},
    {"put_many_fast", (PyCFunction)ring_put_many_fast, METH_O,
     "put_many_fast(list) -> written now, or -1: use the general path."},
    {"set_closed", (PyCFunction)ring_set_closed, METH_O, NULL},
    {"add_pending", (PyCFunction)ring_add_pending, METH_O, NULL},
    {"get", (PyCFunction)(void (*)(void))ring_get, METH_FASTCALL | METH_KEYWORDS,
     "get(block=True, timeout=None) -> object; raises queue.Empty."},
    {"get_many", (PyCFunction)(void (*)(void))ring_get_many, METH_VARARGS | METH_KEYWORDS,
     "get_many(max_items=None, block=True, timeout=None) -> list."},
    {"qsize", (PyCFunction)ring_qsize, METH_NOARGS, NULL},
    {"empty", (PyCFunction)ring_empty, METH_NOARGS, NULL},
    {"full", (PyCFunction)ring_full, METH_NOARGS, NULL},
    {"task_add", (PyCFunction)ring_task_add, METH_NOARGS, NULL},
    {"task_done", (PyCFunction)ring_task_done, METH_NOARGS, NULL},
    {"join_tasks", (PyCFunction)ring_join_tasks, METH_VARARGS, NULL},
    {"unfinished", (PyCFunction)ring_unfinished, METH_NOARGS, NULL},
    {"fileno", (PyCFunction)ring_fileno, METH_NOARGS, NULL},
    {"debug_set_lock", (PyCFunction)ring_debug_set_lock, METH_VARARGS, NULL},
    {"debug_state", (PyCFunction)ring_debug_state, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

_Static_assert(sizeof(uint64_t) == sizeof(unsigned long long), "T_ULONGLONG reads a uint64_t");
static PyMemberDef ring_members[] = {
    {"capacity", T_ULONGLONG, offsetof(RingObject, cap), READONLY, NULL},
    {"maxsize", T_ULONGLONG, offsetof(RingObject, maxsize), READONLY, NULL},
    {NULL},
};

static PyGetSetDef ring_getset[] = {
    {"wrote", (getter)ring_wrote, NULL, "whether this process has put a message", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject Ring_Type = {
    GOMP_TYPE_HEAD("Ring", RingObject, ring_dealloc),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A queue's shared ring (see gomp/ring.go).",
    .tp_methods = ring_methods,
    .tp_members = ring_members,
    .tp_getset = ring_getset,
};

/* The Ring of a mapping Go made or mapped (rc: its result). */
static PyObject *
ring_wrap(int rc, void *base, long long size, int fd)
{
    if (rc < 0)
        return gomp_errno_error(rc);
    if (!PyType_HasFeature(&Ring_Type, Py_TPFLAGS_READY) && PyType_Ready(&Ring_Type) < 0) {
        go.GompRingClose(base);
        return NULL;
    }
    RingObject *r = PyObject_New(RingObject, &Ring_Type);
    if (r == NULL) {
        go.GompRingClose(base);
        return NULL;
    }
    r->base = base;
    r->size = size;
    r->fd = fd;
    r->cap = *(uint64_t *)((char *)base + GOMP_RING_OFF_CAPACITY);
    r->maxsize = *(uint64_t *)((char *)base + GOMP_RING_OFF_MAXSIZE);
    r->data = (char *)base + *(uint64_t *)((char *)base + GOMP_RING_OFF_DATA);
    r->pid = gomp_self_pid;
    r->seen_head = r->seen_tail = 0;
    r->owner = r->slow_put = r->backlog = r->closed_msg = NULL;
    r->pending = 0;
    r->wrote = 0;
    r->tasks = 0;
    return (PyObject *)r;
}

static PyObject *
queues_setup(PyObject *self, PyObject *args)
{
    PyObject *loads, *empty, *full, *dumps;
    if (!PyArg_ParseTuple(args, "OOOO", &loads, &empty, &full, &dumps))
        return NULL;
    if (encode_setup(loads, dumps) < 0)
        return NULL;
    Py_INCREF(empty);
    Py_INCREF(full);
    Py_XSETREF(empty_exc, empty);
    Py_XSETREF(full_exc, full);
    Py_RETURN_NONE;
}

static int
check_setup(void)
{
    if (encode_ready())
        return 0;
    PyErr_SetString(PyExc_RuntimeError, "queues_setup() was not called");
    return -1;
}

static PyObject *
queues_ring_new(PyObject *self, PyObject *args)
{
    long long capacity, maxsize;
    int fd = -1;
    void *base = NULL;
    long long size = 0;
    if (!PyArg_ParseTuple(args, "LL", &capacity, &maxsize) || gomp_usable() < 0 ||
        check_setup() < 0)
        return NULL;
    int rc = go.GompRingCreate(capacity, maxsize, &fd, &base, &size);
    return ring_wrap(rc, base, size, fd);
}

static PyObject *
queues_ring_map(PyObject *self, PyObject *args)
{
    int fd;
    void *base = NULL;
    long long size = 0;
    if (!PyArg_ParseTuple(args, "i", &fd) || gomp_usable() < 0 || check_setup() < 0)
        return NULL;
    int rc = go.GompRingMap(fd, &base, &size);
    return ring_wrap(rc, base, size, fd);
}

/* ring_watch(ring) -> (eventfd, handle): an eventfd that Go keeps readable
 * while the ring holds a message (gomp/ring_watch.go); the caller closes it
 * after ring_unwatch(handle). */
static PyObject *
queues_ring_watch(PyObject *self, PyObject *arg)
{
    if (!PyObject_TypeCheck(arg, &Ring_Type)) {
        PyErr_SetString(PyExc_TypeError, "ring_watch() takes a Ring");
        return NULL;
    }
    RingObject *r = (RingObject *)arg;
    if (r->base == NULL) {
        PyErr_SetString(PyExc_ValueError, "the ring is closed");
        return NULL;
    }
    if (gomp_usable() < 0)
        return NULL;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    long long handle = 0;
    int rc = go.GompRingWatch(r->base, efd, &handle);
    if (rc < 0) {
        close(efd);
        return gomp_errno_error(rc);
    }
    return Py_BuildValue("iL", efd, handle);
}

static PyObject *
queues_ring_unwatch(PyObject *self, PyObject *args)
{
    long long handle;
    if (!PyArg_ParseTuple(args, "L", &handle) || gomp_usable() < 0)
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = go.GompRingUnwatch(handle);
    Py_END_ALLOW_THREADS
    /* EINVAL: stopped already, with its ring */
    return gomp_none_or_errno(rc == -EINVAL ? 0 : rc);
}

PyMethodDef gomp_queues_methods[] = {
    {"ring_watch", queues_ring_watch, METH_O,
     "ring_watch(ring) -> (eventfd, handle): an eventfd readable while the ring holds a message."},
    {"ring_unwatch", queues_ring_unwatch, METH_VARARGS,
     "ring_unwatch(handle): stop a watch (then close its eventfd)."},
    {"queues_setup", queues_setup, METH_VARARGS,
     "queues_setup(loads, Empty, Full, dumps): what the rings pickle with and raise."},
    {"ring_new", queues_ring_new, METH_VARARGS,
     "ring_new(capacity, maxsize) -> Ring: a new queue ring."},
    {"ring_map", queues_ring_map, METH_VARARGS,
     "ring_map(fd) -> Ring: map a ring received from another process (takes fd)."},
    {NULL, NULL, 0, NULL},
};
