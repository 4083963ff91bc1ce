/* _gomp, sync area: shared segments and the lock family (gomp/sync.go).
 *
 * Segment is a memfd mapping made by Go; C gets its address once and
 * exposes it as a buffer (for ctypes objects) and as 32-bit words with
 * atomic operations and futex waits (for Event, Condition, Barrier).
 *
 * SemLock is a Lock, RLock or Semaphore record in a segment, with the
 * protocol of gomp/sync.go (LockRecord, SemRecord). Taking or releasing
 * one nobody contends for is one atomic operation, with the GIL held.
 * A waiter polls briefly, then sleeps on the futex in slices (through
 * gomp_wait_sliced, so Ctrl-C interrupts) and asks Go at the end of each
 * slice whether the holder died (Go recovers the lock or the units).
 *
 * The futex sleeps and wakes are system calls made here, not calls into
 * Go (see gomp_futex_wait in _gomp.h for the measurement).
 */
#include "_gomp.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Record layouts: LockRecord and SemRecord of gomp/sync.go, each field at
 * the offset Go gives it (_gomp_layout.h). A lock starts with a gomp.Holder
 * (gomp/liveness.go): the word, and the owner's record, written after the
 * word is taken and cleared before it is let go. */
typedef struct {
    uint32_t word;        /* 0, or the owner's pid */
    uint32_t owner_pid;   /* the owner's pid once recorded, 0 before and after */
    uint64_t owner_start; /* owner's start time (against pid reuse) */
    uint64_t thread;      /* RLock: owning thread of the owning process */
    uint32_t count;       /* RLock: recursion depth */
    uint32_t kind;
    uint32_t waiters; /* sleepers on word: release wakes one if any */
    char pad[24];
    uint32_t refs; /* references held by processes (see gomp/heap.py) */
} lock_record;

typedef struct {
    uint32_t pid, units;
    uint64_t start;
} sem_holder;

typedef struct {
    uint32_t count, waiters, initial, max, kind;
    char pad[40];
    uint32_t refs;
    sem_holder holders[GOMP_SEM_SLOTS];
} sem_record;

/* Every field is at the offset Go gives it: the lists name them as
 * X(field, offset), and *_AT turns each into a term of a static assert. */
#define LOCK_FIELDS(X)                                                                             \
    X(word, 0) X(owner_pid, GOMP_HOLDER_OFF_PID) X(owner_start, GOMP_HOLDER_OFF_START)             \
    X(thread, GOMP_LOCK_OFF_THREAD) X(count, GOMP_LOCK_OFF_COUNT) X(kind, GOMP_LOCK_OFF_KIND)      \
    X(waiters, GOMP_LOCK_OFF_WAITERS) X(refs, GOMP_LOCK_OFF_REFS)
#define SEM_FIELDS(X)                                                                              \
    X(count, GOMP_SEM_OFF_COUNT) X(waiters, GOMP_SEM_OFF_WAITERS) X(initial, GOMP_SEM_OFF_INITIAL) \
    X(max, GOMP_SEM_OFF_MAX) X(kind, GOMP_SEM_OFF_KIND) X(refs, GOMP_SEM_OFF_REFS)                 \
    X(holders, GOMP_SEM_OFF_HOLDERS)
#define HOLDER_FIELDS(X)                                                                           \
    X(pid, 0) X(units, GOMP_SEM_HOLDER_OFF_UNITS) X(start, GOMP_SEM_HOLDER_OFF_START)
#define LOCK_AT(f, off) && offsetof(lock_record, f) == (off)
#define SEM_AT(f, off) && offsetof(sem_record, f) == (off)
#define HOLDER_AT(f, off) && offsetof(sem_holder, f) == (off)
_Static_assert(sizeof(lock_record) == GOMP_LOCK_RECORD_SIZE LOCK_FIELDS(LOCK_AT),
               "lock_record is gomp.LockRecord");
_Static_assert(sizeof(sem_record) == GOMP_SEM_RECORD_SIZE SEM_FIELDS(SEM_AT),
               "sem_record is gomp.SemRecord");
_Static_assert(sizeof(sem_holder) == GOMP_SEM_HOLDER_SIZE HOLDER_FIELDS(HOLDER_AT),
               "sem_holder is gomp.SemHolder");

/* How long to poll a busy word before sleeping, adapted per process:
 * doubled (up to SPIN_MAX_NS) when polling got the lock, halved when it
 * did not. Polling pays off when the holder runs on another CPU and lets
 * go within microseconds (a handoff between two processes: 0.5 us a round
 * trip instead of 3-4); when it does not (both on one CPU, a busy
 * machine), every failed poll adds its length to the handoff, so polling
 * stops below SPIN_MIN_NS and is tried again (from the start value) only
 * after SPIN_RETRY sleeps. */
#define SPIN_START_NS 8000
#define SPIN_MIN_NS 1000
#define SPIN_MAX_NS 32000
#define SPIN_RETRY 256
static long long spin_ns = SPIN_START_NS;
static int sleeps_without_spin;
static long ncpus; /* no polling on one CPU: the holder cannot run meanwhile */
/* a failed non-blocking acquire looks for a dead holder at most this often */
#define RECOVER_EVERY_NS (20 * 1000 * 1000LL)

#define SYNC_IMPORTS(X)                                                                            \
    X(GompSegNew) X(GompSegMap) X(GompSegClose) X(GompSemRecover) X(GompLockRecover)
GOMP_IMPORTS(sync, SYNC_IMPORTS);

/* ------------------------------------------------------------ Segment */

typedef struct {
    PyObject_HEAD
    char *addr;
    Py_ssize_t size;
    int fd;
    Py_ssize_t exports;
    PyObject *weakreflist;
} SegmentObject;

static PyTypeObject Segment_Type;

static PyObject *
segment_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"size", "name", NULL};
    Py_ssize_t size;
    const char *name = "segment";
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "n|s", kwlist, &size, &name))
        return NULL;
    if (size <= 0) {
        PyErr_SetString(PyExc_ValueError, "segment size must be positive");
        return NULL;
    }
    if (gomp_usable() < 0)
        return NULL;
    SegmentObject *self = (SegmentObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->fd = -1;
    void *addr = NULL;
    int fd = -1;
    int rc = go.GompSegNew((char *)name, size, &fd, &addr);
    if (rc < 0) {
        Py_DECREF(self);
        return gomp_errno_error(rc);
    }
    self->addr = addr;
    self->size = size;
    self->fd = fd;
    return (PyObject *)self;
}

static PyObject *
segment_from_fd(PyObject *cls, PyObject *args)
{
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd) || gomp_usable() < 0)
        return NULL;
    SegmentObject *self = (SegmentObject *)((PyTypeObject *)cls)->tp_alloc((PyTypeObject *)cls, 0);
    if (self == NULL)
        return NULL;
    self->fd = -1;
    void *addr = NULL;
    long long size = 0;
    int rc = go.GompSegMap(fd, &addr, &size);
    if (rc < 0) {
        Py_DECREF(self);
        return gomp_errno_error(rc);
    }
    self->addr = addr;
    self->size = (Py_ssize_t)size;
    self->fd = fd;
    return (PyObject *)self;
}

static void
segment_release_mapping(SegmentObject *self)
{
    if (self->addr != NULL) {
        if (!gomp_usable())
            go.GompSegClose(self->addr);
        else
            PyErr_Clear();
        self->addr = NULL;
        self->fd = -1;
    }
}

static void
segment_dealloc(SegmentObject *self)
{
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    segment_release_mapping(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
segment_close(SegmentObject *self, PyObject *noargs)
{
    if (self->exports > 0) {
        PyErr_SetString(PyExc_BufferError, "cannot close a segment while objects use its memory");
        return NULL;
    }
    segment_release_mapping(self);
    Py_RETURN_NONE;
}

static int
segment_getbuffer(SegmentObject *self, Py_buffer *view, int flags)
{
    if (self->addr == NULL) {
        PyErr_SetString(PyExc_ValueError, "segment is closed");
        return -1;
    }
    if (PyBuffer_FillInfo(view, (PyObject *)self, self->addr, self->size, 0, flags) < 0)
        return -1;
    self->exports++;
    return 0;
}

static void
segment_releasebuffer(SegmentObject *self, Py_buffer *view)
{
    self->exports--;
}

static PyBufferProcs segment_as_buffer = {
    (getbufferproc)segment_getbuffer,
    (releasebufferproc)segment_releasebuffer,
};

/* A word argument of the methods below: a byte offset in seg, read as the
 * 32-bit word there by the PyArg "O&" converter segment_word. */
typedef struct {
    SegmentObject *seg; /* set by the caller */
    uint32_t *word;
} segment_word_arg;

static int
segment_word(PyObject *obj, void *p)
{
    segment_word_arg *a = p;
    Py_ssize_t off = PyNumber_AsSsize_t(obj, PyExc_OverflowError);
    if (off == -1 && PyErr_Occurred())
        return 0;
    if (a->seg->addr == NULL) {
        PyErr_SetString(PyExc_ValueError, "segment is closed");
        return 0;
    }
    if (off < 0 || off % 4 != 0 || off + 4 > a->seg->size) {
        PyErr_Format(PyExc_ValueError, "bad word offset %zd", off);
        return 0;
    }
    a->word = (uint32_t *)(a->seg->addr + off);
    return 1;
}

static PyObject *
segment_load(SegmentObject *self, PyObject *arg)
{
    segment_word_arg w = {self};
    if (!segment_word(arg, &w))
        return NULL;
    return PyLong_FromUnsignedLong(__atomic_load_n(w.word, __ATOMIC_SEQ_CST));
}

static PyObject *
segment_store(SegmentObject *self, PyObject *args)
{
    segment_word_arg w = {self};
    unsigned long v;
    if (!PyArg_ParseTuple(args, "O&k", segment_word, &w, &v))
        return NULL;
    __atomic_store_n(w.word, (uint32_t)v, __ATOMIC_SEQ_CST);
    Py_RETURN_NONE;
}

static PyObject *
segment_add(SegmentObject *self, PyObject *args)
{
    segment_word_arg w = {self};
    long delta;
    if (!PyArg_ParseTuple(args, "O&l", segment_word, &w, &delta))
        return NULL;
    return PyLong_FromUnsignedLong(__atomic_fetch_add(w.word, (uint32_t)delta, __ATOMIC_SEQ_CST));
}

static PyObject *
segment_cas(SegmentObject *self, PyObject *args)
{
    segment_word_arg w = {self};
    unsigned long expected, desired;
    if (!PyArg_ParseTuple(args, "O&kk", segment_word, &w, &expected, &desired))
        return NULL;
    uint32_t e = (uint32_t)expected;
    return PyBool_FromLong(__atomic_compare_exchange_n(w.word, &e, (uint32_t)desired, 0,
                                                       __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
}

typedef struct {
    uint32_t *word;
    uint32_t val;
} word_wait_arg;

static int
word_wait_step(void *p, long long slice_ns)
{
    word_wait_arg *a = p;
    if (__atomic_load_n(a->word, __ATOMIC_SEQ_CST) != a->val)
        return 1;
    return gomp_futex_wait(a->word, a->val, slice_ns);
}

static PyObject *
segment_wait(SegmentObject *self, PyObject *args)
{
    segment_word_arg w = {self};
    unsigned long val;
    PyObject *timeout = Py_None;
    long long ns;
    if (!PyArg_ParseTuple(args, "O&k|O", segment_word, &w, &val, &timeout) ||
        gomp_parse_timeout(timeout, &ns) < 0 || gomp_usable() < 0)
        return NULL;
    word_wait_arg a = {w.word, (uint32_t)val};
    return gomp_wait_bool(word_wait_step, &a, ns);
}

static PyObject *
segment_wake(SegmentObject *self, PyObject *args)
{
    segment_word_arg w = {self};
    int n = INT32_MAX;
    if (!PyArg_ParseTuple(args, "O&|i", segment_word, &w, &n) || gomp_usable() < 0)
        return NULL;
    return gomp_long_or_errno(gomp_futex_wake(w.word, n));
}

static PyObject *
segment_get_address(SegmentObject *self, void *closure)
{
    return PyLong_FromVoidPtr(self->addr);
}

static PyObject *
segment_get_closed(SegmentObject *self, void *closure)
{
    return PyBool_FromLong(self->addr == NULL);
}

static PyMethodDef segment_methods[] = {
    {"from_fd", segment_from_fd, METH_VARARGS | METH_CLASS,
     "from_fd(fd): map a segment from a descriptor (which it takes over)."},
    {"close", (PyCFunction)segment_close, METH_NOARGS, "Unmap and close the descriptor."},
    {"load", (PyCFunction)segment_load, METH_O, "load(off) -> the 32-bit word at off."},
    {"store", (PyCFunction)segment_store, METH_VARARGS, "store(off, value)"},
    {"add", (PyCFunction)segment_add, METH_VARARGS, "add(off, delta) -> old value"},
    {"cas", (PyCFunction)segment_cas, METH_VARARGS, "cas(off, expected, new) -> bool"},
    {"wait", (PyCFunction)segment_wait, METH_VARARGS,
     "wait(off, value, timeout=None) -> False on timeout: sleep while the word holds value."},
    {"wake", (PyCFunction)segment_wake, METH_VARARGS, "wake(off, n=all) -> number woken"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef segment_members[] = {
    {"fd", T_INT, offsetof(SegmentObject, fd), READONLY, "the memfd descriptor"},
    {"size", T_PYSSIZET, offsetof(SegmentObject, size), READONLY, "size in bytes"},
    {NULL},
};

static PyGetSetDef segment_getset[] = {
    {"address", (getter)segment_get_address, NULL, "address of the mapping", NULL},
    {"closed", (getter)segment_get_closed, NULL, "whether it was closed", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject Segment_Type = {
    GOMP_TYPE_HEAD("Segment", SegmentObject, segment_dealloc),
    .tp_as_buffer = &segment_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Segment(size, name='segment'): shared memory in an anonymous memfd.",
    .tp_weaklistoffset = offsetof(SegmentObject, weakreflist),
    .tp_methods = segment_methods,
    .tp_members = segment_members,
    .tp_getset = segment_getset,
    .tp_new = segment_new,
};

/* ------------------------------------------------------------ SemLock */

typedef struct {
    PyObject_HEAD
    SegmentObject *segment;
    char *rec;
    Py_ssize_t offset; /* rec's in segment */
    int kind;
    unsigned int maxvalue; /* fixed when the record is made */
    int slot; /* semaphore: this process's holder slot, or -1 */
    long long next_recover;
} SemLockObject;

static PyTypeObject SemLock_Type;

#define LOCK(s) ((lock_record *)(s)->rec)
#define SEM(s) ((sem_record *)(s)->rec)

static PyObject *
semlock_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"segment", "offset", "kind", "value", "maxvalue", "init", NULL};
    PyObject *seg;
    Py_ssize_t off;
    int kind, init = 0;
    unsigned long value = 0, maxvalue = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!ni|kkp", kwlist, &Segment_Type, &seg, &off,
                                     &kind, &value, &maxvalue, &init))
        return NULL;
    if (gomp_usable() < 0)
        return NULL;
    SegmentObject *s = (SegmentObject *)seg;
    Py_ssize_t need = kind == GOMP_RECORD_SEMAPHORE ? (Py_ssize_t)sizeof(sem_record)
                                             : (Py_ssize_t)sizeof(lock_record);
    if (kind < GOMP_RECORD_LOCK || kind > GOMP_RECORD_SEMAPHORE) {
        PyErr_Format(PyExc_ValueError, "unknown kind %d", kind);
        return NULL;
    }
    if (s->addr == NULL || off < 0 || off % 64 != 0 || off + need > s->size) {
        PyErr_SetString(PyExc_ValueError, "record does not fit the segment");
        return NULL;
    }
    if (value > 0x7fffffffUL || maxvalue > 0x7fffffffUL) {
        PyErr_SetString(PyExc_OverflowError, "semaphore value too large");
        return NULL;
    }
    SemLockObject *self = (SemLockObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    Py_INCREF(seg);
    self->segment = s;
    self->rec = s->addr + off;
    self->offset = off;
    self->kind = kind;
    self->slot = -1;
    if (init) {
        if (kind == GOMP_RECORD_SEMAPHORE) {
            sem_record *r = SEM(self);
            r->initial = (uint32_t)value;
            r->max = (uint32_t)maxvalue;
            r->kind = (uint32_t)kind;
            __atomic_store_n(&r->count, (uint32_t)value, __ATOMIC_SEQ_CST);
        } else {
            LOCK(self)->kind = (uint32_t)kind;
        }
    } else if ((kind == GOMP_RECORD_SEMAPHORE ? SEM(self)->kind : LOCK(self)->kind) !=
               (uint32_t)kind) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_ValueError, "the record is not of this kind");
        return NULL;
    }
    if (kind != GOMP_RECORD_SEMAPHORE)
        self->maxvalue = 1;
    else
        self->maxvalue = SEM(self)->max ? SEM(self)->max : 0x7fffffffu;
    return (PyObject *)self;
}

static void
semlock_dealloc(SemLockObject *self)
{
    Py_XDECREF(self->segment);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* --- the lock word */

/* the word and owner record are a gomp.Holder (asserted above) */
static inline int
lock_try(lock_record *r)
{
    return gomp_holder_take(&r->word, gomp_self_pid);
}

static inline int
lock_owned_here(lock_record *r)
{
    return __atomic_load_n(&r->word, __ATOMIC_RELAXED) == gomp_self_pid;
}

/* --- semaphore holders: who took how many units (see SemRecord.Recover) */

static sem_holder *
sem_my_slot(SemLockObject *self, int claim)
{
    sem_record *r = SEM(self);
    if (self->slot >= 0) {
        sem_holder *h = &r->holders[self->slot];
        if (__atomic_load_n(&h->pid, __ATOMIC_RELAXED) == gomp_self_pid &&
            __atomic_load_n(&h->start, __ATOMIC_RELAXED) == gomp_self_start)
            return h;
        self->slot = -1;
    }
    for (int i = 0; i < GOMP_SEM_SLOTS; i++) {
        sem_holder *h = &r->holders[i];
        if (__atomic_load_n(&h->pid, __ATOMIC_ACQUIRE) == gomp_self_pid &&
            __atomic_load_n(&h->start, __ATOMIC_RELAXED) == gomp_self_start) {
            self->slot = i;
            return h;
        }
    }
    if (!claim)
        return NULL;
    for (int i = 0; i < GOMP_SEM_SLOTS; i++) {
        sem_holder *h = &r->holders[i];
        uint32_t expected = 0;
        if (__atomic_compare_exchange_n(&h->pid, &expected, GOMP_SEM_SLOT_RECLAIMING, 0,
                                        __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
            __atomic_store_n(&h->start, gomp_self_start, __ATOMIC_SEQ_CST);
            __atomic_store_n(&h->units, 0, __ATOMIC_SEQ_CST);
            __atomic_store_n(&h->pid, gomp_self_pid, __ATOMIC_SEQ_CST);
            self->slot = i;
            return h;
        }
    }
    return NULL; /* table full: not tracked */
}

static inline void
sem_took(SemLockObject *self)
{
    sem_holder *h = sem_my_slot(self, 1);
    if (h != NULL)
        __atomic_fetch_add(&h->units, 1, __ATOMIC_SEQ_CST);
}

/* one off a shared count that never goes below 0: 1 taken, 0 it was 0;
 * order is a successful take's memory order (a constant once inlined) */
static inline __attribute__((always_inline)) int
take_one(uint32_t *n, int order)
{
    uint32_t v = __atomic_load_n(n, __ATOMIC_RELAXED);
    while (v > 0) {
        if (__atomic_compare_exchange_n(n, &v, v - 1, 0, order, __ATOMIC_RELAXED))
            return 1;
    }
    return 0;
}

/* a unit came back: from our own tally if we hold any, else from some
 * holder's (a release by a process that did not take the unit, as when a
 * semaphore signals between processes) */
static void
sem_gave(SemLockObject *self)
{
    sem_holder *mine = sem_my_slot(self, 0);
    if (mine != NULL && take_one(&mine->units, __ATOMIC_SEQ_CST))
        return;
    sem_record *r = SEM(self);
    for (int i = 0; i < GOMP_SEM_SLOTS; i++) {
        uint32_t pid = __atomic_load_n(&r->holders[i].pid, __ATOMIC_RELAXED);
        if (pid != 0 && pid != GOMP_SEM_SLOT_RECLAIMING &&
            take_one(&r->holders[i].units, __ATOMIC_SEQ_CST))
            return;
    }
}

/* one unit off the count, without the holder bookkeeping (done by the
 * caller, with the GIL) */
static inline int
sem_take(sem_record *r)
{
    return take_one(&r->count, __ATOMIC_ACQUIRE);
}

static inline int
sem_try(SemLockObject *self)
{
    if (!sem_take(SEM(self)))
        return 0;
    sem_took(self);
    return 1;
}

/* --- acquire / release */

typedef struct {
    SemLockObject *self;
    long long spin;
    unsigned dead;
} acquire_arg;

static inline int
try_take(SemLockObject *self)
{
    if (self->kind == GOMP_RECORD_SEMAPHORE)
        return sem_take(SEM(self));
    return __atomic_load_n(&LOCK(self)->word, __ATOMIC_RELAXED) == 0 && lock_try(LOCK(self));
}

/* One slice of a blocking acquire, without the GIL (LockRecord.LockWait
 * and SemRecord.SemWait in gomp/sync.go): poll for up to a->spin, then
 * sleep on the word, counted in its waiters, until the slice ends; then
 * ask Go whether the holder died. Returns 2 when polling took it, 1 when
 * it was taken after sleeping, 0 at the end of the slice. */
static int
acquire_step(void *p, long long slice_ns)
{
    acquire_arg *a = p;
    SemLockObject *self = a->self;
    long long now = gomp_now_ns();
    if (a->spin > 0) {
        long long end = now + a->spin;
        a->spin = 0;
        do {
            for (int i = 0; i < 64; i++) {
                if (try_take(self))
                    return 2;
                gomp_cpu_relax();
            }
            now = gomp_now_ns();
        } while (now < end);
    }
    long long deadline = now + slice_ns;
    uint32_t *word, *waiters;
    if (self->kind == GOMP_RECORD_SEMAPHORE) {
        word = &SEM(self)->count;
        waiters = &SEM(self)->waiters;
    } else {
        word = &LOCK(self)->word;
        waiters = &LOCK(self)->waiters;
    }
    for (;;) {
        if (try_take(self))
            return 1;
        uint32_t v = __atomic_load_n(word, __ATOMIC_SEQ_CST);
        int busy = self->kind == GOMP_RECORD_SEMAPHORE ? v == 0 : v != 0;
        if (!busy)
            continue; /* freed meanwhile: try again */
        if (gomp_now_ns() >= deadline)
            break;
        __atomic_fetch_add(waiters, 1, __ATOMIC_SEQ_CST);
        int woken = gomp_sleep_until(word, v, deadline);
        __atomic_fetch_sub(waiters, 1, __ATOMIC_SEQ_CST);
        if (!woken && gomp_now_ns() < deadline)
            return 0; /* a signal: the caller looks at it */
    }
    unsigned dead;
    if (self->kind == GOMP_RECORD_SEMAPHORE) {
        dead = go.GompSemRecover(self->rec);
        if (dead)
            a->dead = dead;
        return sem_take(SEM(self));
    }
    dead = go.GompLockRecover(self->rec);
    if (dead) {
        a->dead = dead;
        return 1;
    }
    return 0;
}

static const char *
kind_name(SemLockObject *self)
{
    switch (self->kind) {
    case GOMP_RECORD_LOCK:
        return "Lock";
    case GOMP_RECORD_RLOCK:
        return "RLock";
    default:
        return "Semaphore";
    }
}

/* after taking it by the slow path: the RLock's owner thread, the holder
 * tally, and the warning when it came from a dead process */
static int
acquired_slow(SemLockObject *self, unsigned dead)
{
    if (self->kind == GOMP_RECORD_RLOCK) {
        __atomic_store_n(&LOCK(self)->thread, (uint64_t)PyThread_get_thread_ident(),
                         __ATOMIC_RELAXED);
        LOCK(self)->count = 1;
    } else if (self->kind == GOMP_RECORD_SEMAPHORE) {
        sem_took(self);
    }
    if (dead && PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                                 "gomp: process %u died holding this %s; %s", dead,
                                 kind_name(self),
                                 self->kind == GOMP_RECORD_SEMAPHORE
                                     ? "its units were given back"
                                     : "it was taken over (what it protects may be inconsistent)") < 0)
        return -1;
    return 0;
}

static PyObject *release_impl(SemLockObject *self);

static PyObject *
acquire_impl(SemLockObject *self, int blocking, long long timeout_ns)
{
    if (gomp_usable() < 0)
        return NULL;
    if (self->kind == GOMP_RECORD_SEMAPHORE) {
        if (sem_try(self))
            Py_RETURN_TRUE;
    } else {
        lock_record *r = LOCK(self);
        if (self->kind == GOMP_RECORD_RLOCK) {
            uint64_t tid = (uint64_t)PyThread_get_thread_ident();
            if (lock_owned_here(r) && __atomic_load_n(&r->thread, __ATOMIC_RELAXED) == tid) {
                r->count++;
                Py_RETURN_TRUE;
            }
            if (lock_try(r)) {
                __atomic_store_n(&r->thread, tid, __ATOMIC_RELAXED);
                r->count = 1;
                Py_RETURN_TRUE;
            }
        } else if (lock_try(r)) {
            Py_RETURN_TRUE;
        }
    }
    unsigned dead = 0;
    if (!blocking) {
        /* a holder that died is looked for now and then, not on every try */
        long long now = gomp_now_ns();
        if (now < self->next_recover)
            Py_RETURN_FALSE;
        self->next_recover = now + RECOVER_EVERY_NS;
        if (self->kind == GOMP_RECORD_SEMAPHORE) {
            dead = go.GompSemRecover(self->rec);
            if (!dead || !sem_take(SEM(self)))
                Py_RETURN_FALSE;
        } else {
            dead = go.GompLockRecover(self->rec);
            if (!dead)
                Py_RETURN_FALSE;
        }
    } else {
        if (ncpus == 0)
            ncpus = sysconf(_SC_NPROCESSORS_ONLN);
        long long spin = ncpus > 1 ? spin_ns : 0;
        if (spin == 0 && ncpus > 1 && ++sleeps_without_spin >= SPIN_RETRY) {
            sleeps_without_spin = 0;
            spin = SPIN_START_NS;
        }
        acquire_arg a = {self, spin, 0};
        int rc = gomp_wait_sliced(acquire_step, &a, timeout_ns);
        if (spin > 0) {
            if (rc == 2)
                spin_ns = spin * 2 > SPIN_MAX_NS ? SPIN_MAX_NS : spin * 2;
            else
                spin_ns = spin / 2 < SPIN_MIN_NS ? 0 : spin / 2;
        }
        if (rc < 0)
            return NULL;
        if (rc == 0)
            Py_RETURN_FALSE;
        dead = a.dead;
    }
    if (acquired_slow(self, dead) < 0) {
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        PyObject *r = release_impl(self);
        Py_XDECREF(r);
        PyErr_Restore(et, ev, tb);
        return NULL;
    }
    Py_RETURN_TRUE;
}

static PyObject *
semlock_acquire(SemLockObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int blocking;
    PyObject *timeout;
    if (gomp_parse_block_timeout("acquire", args, nargs, kwnames, "blocking", &blocking,
                                 &timeout) < 0)
        return NULL;
    long long ns = -1;
    if (blocking && timeout != NULL && gomp_parse_timeout(timeout, &ns) < 0)
        return NULL;
    return acquire_impl(self, blocking, ns);
}

static PyObject *
release_impl(SemLockObject *self)
{
    if (gomp_usable() < 0)
        return NULL;
    if (self->kind == GOMP_RECORD_SEMAPHORE) {
        sem_record *r = SEM(self);
        uint32_t c = __atomic_load_n(&r->count, __ATOMIC_RELAXED);
        for (;;) {
            if (r->max != 0 && c >= r->max) {
                PyErr_SetString(PyExc_ValueError, "semaphore or lock released too many times");
                return NULL;
            }
            if (c >= 0x7fffffffu) {
                PyErr_SetString(PyExc_OverflowError, "semaphore value would overflow");
                return NULL;
            }
            if (__atomic_compare_exchange_n(&r->count, &c, c + 1, 0, __ATOMIC_RELEASE,
                                            __ATOMIC_RELAXED))
                break;
        }
        sem_gave(self);
        if (__atomic_load_n(&r->waiters, __ATOMIC_SEQ_CST) != 0)
            gomp_futex_wake(&r->count, 1);
        Py_RETURN_NONE;
    }
    lock_record *r = LOCK(self);
    if (self->kind == GOMP_RECORD_RLOCK) {
        if (!lock_owned_here(r) ||
            __atomic_load_n(&r->thread, __ATOMIC_RELAXED) != (uint64_t)PyThread_get_thread_ident()) {
            PyErr_SetString(PyExc_AssertionError,
                            "attempt to release recursive lock not owned by thread");
            return NULL;
        }
        if (--r->count > 0)
            Py_RETURN_NONE;
        __atomic_store_n(&r->thread, 0, __ATOMIC_RELAXED);
    }
    /* the sleeper count is read after the word is cleared (sequentially
     * consistent): see LockRecord.Unlock */
    __atomic_store_n(&r->owner_pid, 0, __ATOMIC_RELEASE);
    uint32_t old = __atomic_exchange_n(&r->word, 0, __ATOMIC_SEQ_CST);
    if (old == 0) {
        PyErr_SetString(PyExc_ValueError, "semaphore or lock released too many times");
        return NULL;
    }
    if (__atomic_load_n(&r->waiters, __ATOMIC_SEQ_CST) != 0)
        gomp_futex_wake(&r->word, 1);
    Py_RETURN_NONE;
}

static PyObject *
semlock_release(SemLockObject *self, PyObject *noargs)
{
    return release_impl(self);
}

static PyObject *
semlock_enter(SemLockObject *self, PyObject *noargs)
{
    return acquire_impl(self, 1, -1);
}

static PyObject *
semlock_exit(SemLockObject *self, PyObject *args)
{
    return release_impl(self);
}

static PyObject *
semlock_count(SemLockObject *self, PyObject *noargs)
{
    if (self->kind == GOMP_RECORD_RLOCK) {
        lock_record *r = LOCK(self);
        if (lock_owned_here(r))
            return PyLong_FromUnsignedLong(r->count);
        return PyLong_FromLong(0);
    }
    if (self->kind == GOMP_RECORD_LOCK)
        return PyLong_FromLong(lock_owned_here(LOCK(self)));
    sem_holder *h = sem_my_slot(self, 0);
    return PyLong_FromUnsignedLong(h ? __atomic_load_n(&h->units, __ATOMIC_RELAXED) : 0);
}

static PyObject *
semlock_is_mine(SemLockObject *self, PyObject *noargs)
{
    if (self->kind == GOMP_RECORD_SEMAPHORE) {
        sem_holder *h = sem_my_slot(self, 0);
        return PyBool_FromLong(h && __atomic_load_n(&h->units, __ATOMIC_RELAXED) > 0);
    }
    lock_record *r = LOCK(self);
    int mine = lock_owned_here(r);
    if (mine && self->kind == GOMP_RECORD_RLOCK)
        mine = __atomic_load_n(&r->thread, __ATOMIC_RELAXED) ==
               (uint64_t)PyThread_get_thread_ident();
    return PyBool_FromLong(mine);
}

static PyObject *
semlock_owner(SemLockObject *self, PyObject *noargs)
{
    if (self->kind == GOMP_RECORD_SEMAPHORE)
        Py_RETURN_NONE;
    uint32_t w = __atomic_load_n(&LOCK(self)->word, __ATOMIC_RELAXED);
    if (w == 0)
        Py_RETURN_NONE;
    return PyLong_FromUnsignedLong(w);
}

static PyObject *
semlock_get_value(SemLockObject *self, PyObject *noargs)
{
    if (self->kind == GOMP_RECORD_SEMAPHORE)
        return PyLong_FromUnsignedLong(__atomic_load_n(&SEM(self)->count, __ATOMIC_RELAXED));
    return PyLong_FromLong(__atomic_load_n(&LOCK(self)->word, __ATOMIC_RELAXED) == 0);
}

static PyObject *
semlock_is_zero(SemLockObject *self, PyObject *noargs)
{
    PyObject *v = semlock_get_value(self, NULL);
    if (v == NULL)
        return NULL;
    int zero = PyLong_AsLong(v) == 0;
    Py_DECREF(v);
    return PyBool_FromLong(zero);
}

static PyMethodDef semlock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))semlock_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(block=True, timeout=None) -> bool"},
    {"release", (PyCFunction)semlock_release, METH_NOARGS, "release()"},
    {"__enter__", (PyCFunction)semlock_enter, METH_NOARGS, "acquire()"},
    {"__exit__", (PyCFunction)semlock_exit, METH_VARARGS, "release()"},
    {"_count", (PyCFunction)semlock_count, METH_NOARGS,
     "RLock: recursion depth held by this process; Semaphore: units it holds."},
    {"_is_mine", (PyCFunction)semlock_is_mine, METH_NOARGS,
     "Whether this process (and, for an RLock, this thread) holds it."},
    {"_owner", (PyCFunction)semlock_owner, METH_NOARGS, "Pid of the process holding a lock, or None."},
    {"_get_value", (PyCFunction)semlock_get_value, METH_NOARGS, "Available units (1/0 for locks)."},
    {"_is_zero", (PyCFunction)semlock_is_zero, METH_NOARGS, "Whether no unit is available."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef semlock_members[] = {
    {"kind", T_INT, offsetof(SemLockObject, kind), READONLY, "0 Lock, 1 RLock, 2 Semaphore"},
    {"maxvalue", T_UINT, offsetof(SemLockObject, maxvalue), READONLY, "the semaphore's bound"},
    {"_segment", T_OBJECT, offsetof(SemLockObject, segment), READONLY,
     "the segment holding the record"},
    {"_offset", T_PYSSIZET, offsetof(SemLockObject, offset), READONLY, "the record's offset in it"},
    {NULL},
};

static PyTypeObject SemLock_Type = {
    GOMP_TYPE_HEAD("SemLock", SemLockObject, semlock_dealloc),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "SemLock(segment, offset, kind, value=0, maxvalue=0, init=False): "
              "a Lock, RLock or Semaphore record in a shared segment.",
    .tp_methods = semlock_methods,
    .tp_members = semlock_members,
    .tp_new = semlock_new,
};

/* The types are added to the module on first use of types() (the module
 * init is shared; areas add no init code to it). */
static PyObject *
sync_types(PyObject *mod, PyObject *noargs)
{
    if (PyType_Ready(&Segment_Type) < 0 || PyType_Ready(&SemLock_Type) < 0)
        return NULL;
    return Py_BuildValue("OO", (PyObject *)&Segment_Type, (PyObject *)&SemLock_Type);
}

PyMethodDef gomp_sync_methods[] = {
    {"sync_types", sync_types, METH_NOARGS, "sync_types() -> (Segment, SemLock)"},
    {NULL, NULL, 0, NULL},
};
