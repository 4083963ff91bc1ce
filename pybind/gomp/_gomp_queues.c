/* _gomp, queues area: the data path of Queue/SimpleQueue/JoinableQueue on a
 * shared ring made and mapped by Go (gomp/ring.go, which documents the layout
 * and the commit protocol). Go hands the mapping's address over once; the
 * copies in and out, and the futex sleeps (through gomp_wait_sliced, so
 * Ctrl-C interrupts) and wakes, are done here; Go is called only to ask
 * whether a lock's holder died, and to watch a ring for select/poll. */
#include "_gomp.h"

#include <marshal.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sched.h>
#include <unistd.h>
#include <sys/eventfd.h>

#define QUEUES_IMPORTS(X)                                                                          \
    X(GompRingCreate) X(GompRingMap) X(GompRingClose)                                               \
    X(GompLockHolder) X(GompSelf) X(GompRingWatch) X(GompRingUnwatch)
GOMP_IMPORTS(queues, QUEUES_IMPORTS);

/* layout: see gomp/ring.go. Each lock is a gomp.Holder: the word, then the
 * holder's pid and start time (gomp/liveness.go) */
#define HOLDER_PID(w) ((uint32_t *)((char *)(w) + GOMP_HOLDER_OFF_PID))
#define HOLDER_START(w) ((uint64_t *)((char *)(w) + GOMP_HOLDER_OFF_START))
_Static_assert(GOMP_RING_OFF_PLOCK % 8 == 0 && GOMP_RING_OFF_CLOCK % 8 == 0 &&
                   GOMP_RING_OFF_PLOCK + GOMP_HOLDER_SIZE <= GOMP_RING_OFF_TAIL &&
                   GOMP_RING_OFF_CLOCK + GOMP_HOLDER_SIZE <= GOMP_RING_OFF_HEAD,
               "a ring lock and its holder record are a gomp.Holder (8-aligned)");

/* The message kinds are GOMP_MSG_* (gomp/ring.go); this one marks a message
 * decoded already, only inside this file (it never travels). */
#define KIND_READY 100
/* version 2: no reference tracking, which costs a hash table per call and
 * buys nothing for the flat objects sent this way */
#define MARSHAL_VERSION 2

/* message header, at the start of a message's first frame:
 * u32 nparts, u32 kind, then nparts u64 (length << 1 | writable) */
#define MSG_HDR(n) (8 + 8 * (size_t)(n))
/* frames are at most this long, so a big message streams through */
#define MIN_STREAM_CHUNK 4096
/* copies longer than this release the GIL */
#define NOGIL_COPY (256 * 1024)
/* busy-wait iterations on a lock held by a running process (short holds) */
#define SPIN 400
/* how long a waiter for data or room spins before it sleeps: a futex sleep
 * and wake cost the other side a system call each */
#define SPIN_NS 40000
/* how long put() waits for room in a full ring before it leaves the item to
 * the backlog (put never blocks; this is a bounded busy wait) */
#define ROOM_SPIN_NS 50000

#define U32(r, off) ((uint32_t *)((r)->base + (off)))
#define U64(r, off) ((uint64_t *)((r)->base + (off)))
#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ALIGN8(n) (((n) + 7) & ~(uint64_t)7)

/* one step of a busy wait: pause, and every 16th step give the CPU away,
 * since with more processes than cores the one we wait for may need it */
static inline void cpu_relax(void);
static inline void
spin_step(int i)
{
    if ((i & 15) == 15)
        sched_yield();
    else
        cpu_relax();
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static PyObject *loads_fn = NULL;  /* pickle.loads */
static PyObject *empty_exc = NULL; /* queue.Empty */
static PyObject *full_exc = NULL;  /* queue.Full */
static PyObject *buffers_kw = NULL;
static PyObject *dumps_fn = NULL; /* pickle.dumps */
static PyObject *dumps_kwnames = NULL;
static PyObject *five = NULL;


typedef struct {
    PyObject_HEAD
    char *base;
    char *data;
    uint64_t cap;
    uint64_t maxsize;
    long long size;
    int fd;
    uint32_t pid;
    uint64_t seen_head; /* head and tail as last read: they only grow, so */
    uint64_t seen_tail; /* stale values are safe and save cache misses */
    /* per-process state of the queue that owns this mapping */
    PyObject *owner;      /* weakref to the Queue */
    PyObject *slow_put;   /* Queue._slow_put(queue, obj, block, timeout) */
    PyObject *backlog;    /* Queue._backlog_pickled(queue, data) */
    PyObject *closed_msg; /* ValueError text once closed, else NULL */
    Py_ssize_t pending;   /* items in this process's backlog */
    int wrote;            /* this process has written a message here */
    int tasks;            /* a JoinableQueue: count unfinished tasks */
} RingObject;

static PyTypeObject Ring_Type;

/* ---- locks: word = holder pid, GOMP_RING_LOCK_WAITERS when someone sleeps; the
 * holder records itself beside the word once it took it, and clears the
 * record before it lets go (the commit protocol of gomp/liveness.go) ---- */

static uint64_t self_start; /* this process's start time, set in ring_wrap */

static inline void
lock_record(uint32_t *w, uint32_t me)
{
    STORE(HOLDER_START(w), self_start);
    STORE(HOLDER_PID(w), me);
}

static inline int
lock_try(uint32_t *w, uint32_t me)
{
    uint32_t z = 0;
    if (!__atomic_compare_exchange_n(w, &z, me, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return 0;
    lock_record(w, me);
    return 1;
}

static inline void
lock_release(uint32_t *w)
{
    STORE(HOLDER_PID(w), 0);
    if (__atomic_exchange_n(w, 0, __ATOMIC_RELEASE) & GOMP_RING_LOCK_WAITERS)
        gomp_futex_wake(w, 1);
}

typedef struct {
    uint32_t *w;
    uint32_t me;
} lockwait;

/* one slice of a contended acquire; without the GIL */
static int
lock_step(void *arg, long long slice)
{
    lockwait *lw = arg;
    for (int i = 0; i < SPIN; i++) {
        if (LOAD(lw->w) == 0 && lock_try(lw->w, lw->me))
            return 1;
        spin_step(i);
    }
    long long end = gomp_now_ns() + slice;
    for (;;) {
        uint32_t v = LOAD(lw->w);
        if (v == 0) {
            if (__atomic_compare_exchange_n(lw->w, &v, lw->me | GOMP_RING_LOCK_WAITERS, 0,
                                            __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
                lock_record(lw->w, lw->me);
                return 1;
            }
            continue;
        }
        if (!(v & GOMP_RING_LOCK_WAITERS)) {
            uint32_t nv = v | GOMP_RING_LOCK_WAITERS;
            if (!__atomic_compare_exchange_n(lw->w, &v, nv, 0, __ATOMIC_RELAXED,
                                             __ATOMIC_RELAXED))
                continue;
            v = nv;
        }
        long long left = end - gomp_now_ns();
        if (left <= 0)
            left = 0;
        int rc = left > 0 ? gomp_futex_wait(lw->w, v, left) : 0;
        if (rc < 0)
            return rc;
        if (rc == 0 && LOAD(lw->w) == v) {
            /* a whole slice without a release: is the holder alive? (its pid
             * may be ours: a dead process's, reused) */
            if (go.GompLockHolder(lw->w) == 0 &&
                __atomic_compare_exchange_n(lw->w, &v, lw->me | GOMP_RING_LOCK_WAITERS, 0,
                                            __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
                lock_record(lw->w, lw->me);
                return 1;
            }
            return 0;
        }
    }
}

/* Acquire a ring lock. 1: taken, 0: timed out, -1: exception set. */
static int
lock_acquire(RingObject *r, int off, long long deadline)
{
    uint32_t *w = U32(r, off);
    if (lock_try(w, r->pid))
        return 1;
    lockwait lw = {w, r->pid};
    long long left = deadline < 0 ? -1 : deadline - gomp_now_ns();
    if (deadline >= 0 && left <= 0)
        left = 0;
    return gomp_wait_sliced(lock_step, &lw, left);
}

/* ---- waiting on a condition, sleeping on a position word (tail or head) ---- */

typedef int (*cond_fn)(RingObject *, void *);

typedef struct {
    RingObject *r;
    cond_fn cond;
    void *carg;
    uint32_t *seq; /* the futex word: the low half of tail or head */
    uint32_t *waiters;
    uint32_t writer; /* consumer mid-message: give up if it stops writing */
} condwait;

/* 1: condition holds, 0: slice over, 2: the writer no longer holds the
 * producer lock (it died, or gave the message up).
 * Sleepers set the waiters word to 1 and sleep on the position word (tail
 * or head); the side that moves the position clears the word and wakes
 * them all (wake_waiters), so a stream of puts costs one wake per sleep
 * and none while the other side is awake. */
static int
cond_step(void *arg, long long slice)
{
    condwait *cw = arg;
    long long now = gomp_now_ns(), spin_end = now + (slice < SPIN_NS ? slice : SPIN_NS);
    for (int i = 1;; i++) {
        if (cw->cond(cw->r, cw->carg))
            return 1;
        spin_step(i);
        if ((i & 31) == 0 && gomp_now_ns() >= spin_end)
            break;
    }
    long long end = now + slice;
    for (;;) {
        /* the position is read before the waiters word is set (see
         * gomp/ring_watch.go: read after, it could take in a move whose
         * wake cleared the word before we slept) */
        uint32_t s = __atomic_load_n(cw->seq, __ATOMIC_SEQ_CST);
        __atomic_store_n(cw->waiters, 1, __ATOMIC_SEQ_CST);
        if (cw->cond(cw->r, cw->carg))
            return 1;
        long long left = end - gomp_now_ns();
        int rc = left > 0 ? gomp_futex_wait(cw->seq, s, left) : 0;
        if (rc < 0)
            return rc;
        if (cw->cond(cw->r, cw->carg))
            return 1;
        if (rc == 0 || gomp_now_ns() >= end) {
            /* its last frame is published before the lock is let go */
            if (cw->writer && go.GompLockHolder(U32(cw->r, GOMP_RING_OFF_PLOCK)) != cw->writer)
                return cw->cond(cw->r, cw->carg) ? 1 : 2;
            return 0;
        }
    }
}

static inline void
wake_waiters(RingObject *r, int waitoff, int wordoff)
{
    uint32_t *w = U32(r, waitoff);
    if (__atomic_load_n(w, __ATOMIC_SEQ_CST) && __atomic_exchange_n(w, 0, __ATOMIC_SEQ_CST))
        gomp_futex_wake(U32(r, wordoff), 0x7fffffff);
}

static int
cond_wait(RingObject *r, cond_fn cond, void *carg, int seqoff, int waitoff, uint32_t writer,
          long long deadline)
{
    if (cond(r, carg))
        return 1;
    condwait cw = {r, cond, carg, U32(r, seqoff), U32(r, waitoff), writer};
    long long left = deadline < 0 ? -1 : deadline - gomp_now_ns();
    if (deadline >= 0 && left <= 0)
        left = 0;
    return gomp_wait_sliced(cond_step, &cw, left);
}


/* Room from pos on, using the cached head first. */
static inline uint64_t
room_from(RingObject *r, uint64_t pos, uint64_t need)
{
    /* the cached head may be far behind (another process wrote since):
     * then pos - seen_head exceeds the capacity */
    uint64_t used = pos - r->seen_head;
    if (used > r->cap || r->cap - used < need) {
        r->seen_head = LOAD(U64(r, GOMP_RING_OFF_HEAD));
        used = pos - r->seen_head;
    }
    return r->cap - used;
}

/* Whether a frame is published at pos, using the cached tail first. */
static inline int
data_at(RingObject *r, uint64_t pos)
{
    if (r->seen_tail > pos)
        return 1;
    r->seen_tail = LOAD(U64(r, GOMP_RING_OFF_TAIL));
    return r->seen_tail > pos;
}

static inline void
count_puts(RingObject *r, int64_t n)
{
    __atomic_fetch_add(U64(r, GOMP_RING_OFF_PUTS), (uint64_t)n, __ATOMIC_RELAXED);
}

static long long
deadline_of(long long timeout_ns)
{
    return timeout_ns < 0 ? -1 : gomp_now_ns() + timeout_ns;
}

/* ---- producer side ---- */

typedef struct {
    int nparts;
    uint32_t kind;
    Py_buffer views[GOMP_MSG_MAX_PARTS];
    unsigned char hdr[MSG_HDR(GOMP_MSG_MAX_PARTS)];
    size_t hdrlen;
    uint64_t total;
    /* stream cursor: part -1 is the header */
    int cur;
    uint64_t curoff;
} message;

static void
message_release(message *m)
{
    for (int i = 0; i < m->nparts; i++)
        PyBuffer_Release(&m->views[i]);
    m->nparts = 0;
}

/* (kind, parts) -> message; parts is a tuple of buffer objects */
static int
message_init(message *m, PyObject *item)
{
    unsigned long kind;
    PyObject *parts;
    m->nparts = 0;
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 ||
        !PyTuple_Check(parts = PyTuple_GET_ITEM(item, 1))) {
        PyErr_SetString(PyExc_TypeError, "a message is (kind, (parts...))");
        return -1;
    }
    kind = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(item, 0));
    if (kind == (unsigned long)-1 && PyErr_Occurred())
        return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(parts);
    if (n < 1 || n > GOMP_MSG_MAX_PARTS) {
        PyErr_Format(PyExc_ValueError, "a message has 1 to %d parts", GOMP_MSG_MAX_PARTS);
        return -1;
    }
    m->kind = (uint32_t)kind;
    uint32_t n32 = (uint32_t)n, k32 = (uint32_t)kind;
    memcpy(m->hdr, &n32, 4);
    memcpy(m->hdr + 4, &k32, 4);
    m->total = MSG_HDR(n);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(parts, i), &m->views[i], PyBUF_C_CONTIGUOUS) < 0) {
            message_release(m);
            return -1;
        }
        m->nparts++;
        uint64_t d = ((uint64_t)m->views[i].len << 1) | (m->views[i].readonly ? 0 : 1);
        memcpy(m->hdr + 8 + 8 * i, &d, 8);
        m->total += (uint64_t)m->views[i].len;
    }
    m->hdrlen = MSG_HDR(n);
    m->cur = -1;
    m->curoff = 0;
    return 0;
}

/* copy the next n bytes of the message to dst */
static void
message_copy(message *m, char *dst, uint64_t n)
{
    while (n > 0) {
        const char *src;
        uint64_t avail;
        if (m->cur < 0) {
            src = (const char *)m->hdr;
            avail = m->hdrlen;
        } else {
            src = m->views[m->cur].buf;
            avail = (uint64_t)m->views[m->cur].len;
        }
        uint64_t k = avail - m->curoff;
        if (k > n)
            k = n;
        memcpy(dst, src + m->curoff, k);
        dst += k;
        n -= k;
        m->curoff += k;
        if (m->curoff == avail) {
            m->cur++;
            m->curoff = 0;
        }
    }
}

/* a wrap marker may sit in the last 8 bytes of the ring: only len and flags */
static inline void
wrap_marker(char *p)
{
    uint32_t h[2] = {0, GOMP_RING_WRAP};
    memcpy(p, h, 8);
}

static inline void
frame_header(char *p, uint32_t len, uint32_t flags, uint32_t pid)
{
    uint32_t h[4] = {len, flags, pid, 0};
    memcpy(p, h, GOMP_RING_FRAME_HEADER);
}

/* Room the message needs as one frame at position pos, or 0 if it must
 * stream (larger than a quarter of the ring). */
static uint64_t
single_need(RingObject *r, uint64_t pos, uint64_t total)
{
    uint64_t need = GOMP_RING_FRAME_HEADER + ALIGN8(total);
    if (need > r->cap / 4)
        return 0;
    uint64_t to_end = r->cap - pos % r->cap;
    if (to_end < need)
        need += to_end;
    return need;
}

/* Write a message as one frame at *pos, which has room (producer lock held).
 * Does not publish. */
static void
write_single(RingObject *r, uint64_t *pos, message *m)
{
    uint64_t off = *pos % r->cap, to_end = r->cap - off;
    if (to_end < GOMP_RING_FRAME_HEADER + ALIGN8(m->total)) {
        wrap_marker(r->data + off);
        *pos += to_end;
        off = 0;
    }
    frame_header(r->data + off, (uint32_t)m->total, GOMP_RING_FIRST | GOMP_RING_LAST, r->pid);
    message_copy(m, r->data + off + GOMP_RING_FRAME_HEADER, m->total);
    *pos += GOMP_RING_FRAME_HEADER + ALIGN8(m->total);
}

typedef struct {
    uint64_t pos;
    uint64_t need;
} spacearg;

static int
has_space(RingObject *r, void *arg)
{
    spacearg *s = arg;
    return room_from(r, s->pos, s->need) >= s->need;
}

static inline void
publish(RingObject *r, uint64_t pos)
{
    r->wrote = 1;
    /* consumers sleep on the tail's low word (see cond_step) */
    __atomic_store_n(U64(r, GOMP_RING_OFF_TAIL), pos, __ATOMIC_SEQ_CST);
    wake_waiters(r, GOMP_RING_OFF_DATA_WAIT, GOMP_RING_OFF_TAIL);
}

/* Stream a message in frames, waiting for room (producer lock held).
 * 1 done, 0 timed out (partial message left: readers drop it), -1 error. */
static int
write_stream(RingObject *r, message *m, long long deadline, int count)
{
    uint64_t pos = LOAD(U64(r, GOMP_RING_OFF_TAIL)), sent = 0;
    while (sent < m->total) {
        uint64_t rest = m->total - sent;
        uint64_t off = pos % r->cap, to_end = r->cap - off;
        uint64_t maxpay = r->cap / 4 - GOMP_RING_FRAME_HEADER;
        uint64_t want = rest < maxpay ? rest : maxpay;
        uint64_t small = want < MIN_STREAM_CHUNK ? want : MIN_STREAM_CHUNK;
        if (sent == 0 && want < m->hdrlen)
            small = want; /* never true: the header is < MIN_STREAM_CHUNK */
        if (to_end < GOMP_RING_FRAME_HEADER + ALIGN8(small)) {
            spacearg sa = {pos, to_end};
            int rc = cond_wait(r, has_space, &sa, GOMP_RING_OFF_HEAD, GOMP_RING_OFF_SPACE_WAIT, 0,
                               deadline);
            if (rc <= 0)
                return rc;
            wrap_marker(r->data + off);
            pos += to_end;
            continue;
        }
        if (want > to_end - GOMP_RING_FRAME_HEADER)
            want = (to_end - GOMP_RING_FRAME_HEADER) & ~(uint64_t)7;
        /* wait until at least a good chunk fits, then take what fits */
        uint64_t goal = GOMP_RING_FRAME_HEADER + ALIGN8(want < r->cap / 8 ? want : r->cap / 8);
        spacearg sa = {pos, goal};
        int rc = cond_wait(r, has_space, &sa, GOMP_RING_OFF_HEAD, GOMP_RING_OFF_SPACE_WAIT, 0,
                           deadline);
        if (rc <= 0)
            return rc;
        uint64_t room = room_from(r, pos, r->cap) - GOMP_RING_FRAME_HEADER;
        uint64_t n = want < room ? want : room & ~(uint64_t)7;
        if (n > want)
            n = want;
        uint32_t flags =
            (sent == 0 ? GOMP_RING_FIRST : 0) | (sent + n == m->total ? GOMP_RING_LAST : 0);
        char *dst = r->data + off;
        if (n >= NOGIL_COPY) {
            Py_BEGIN_ALLOW_THREADS
            message_copy(m, dst + GOMP_RING_FRAME_HEADER, n);
            Py_END_ALLOW_THREADS
        } else {
            message_copy(m, dst + GOMP_RING_FRAME_HEADER, n);
        }
        frame_header(dst, (uint32_t)n, flags, r->pid);
        pos += GOMP_RING_FRAME_HEADER + ALIGN8(n);
        sent += n;
        if (sent == m->total && count)
            count_puts(r, 1); /* counted once whole: a writer killed half-way
                               * leaves qsize right */
        publish(r, pos);
    }
    return 1;
}

static PyObject *
ring_try_put_many(RingObject *r, PyObject *items, int count)
{
    /* items: list of (kind, parts). Returns how many were written. */
    Py_ssize_t n = PyList_GET_SIZE(items), done = 0;
    if (n == 0)
        return PyLong_FromLong(0);
    uint32_t *pl = U32(r, GOMP_RING_OFF_PLOCK);
    int got = lock_try(pl, r->pid);
    for (int i = 0; !got && i < SPIN; i++) {
        spin_step(i);
        got = LOAD(pl) == 0 && lock_try(pl, r->pid);
    }
    if (!got)
        return PyLong_FromLong(0);
    uint64_t pos = LOAD(U64(r, GOMP_RING_OFF_TAIL)), start = pos;
    message *m = PyMem_Malloc(sizeof(message));
    if (m == NULL) {
        lock_release(pl);
        return PyErr_NoMemory();
    }
    int err = 0;
    for (; done < n; done++) {
        if (message_init(m, PyList_GET_ITEM(items, done)) < 0) {
            err = 1;
            break;
        }
        uint64_t need = single_need(r, pos, m->total);
        if (need == 0 || room_from(r, pos, need) < need) {
            message_release(m);
            break;
        }
        write_single(r, &pos, m);
        message_release(m);
        if (count)
            count_puts(r, 1);
    }
    PyMem_Free(m);
    if (pos != start)
        publish(r, pos);
    lock_release(pl);
    if (err)
        return NULL;
    return PyLong_FromSsize_t(done);
}

/* try_put(kind, parts, count) -> bool: one frame if the lock and the room
 * are there now; count: add to qsize. */
static PyObject *
ring_try_put(RingObject *r, PyObject *args)
{
    unsigned int kind;
    PyObject *parts;
    int count;
    if (!PyArg_ParseTuple(args, "IO!p", &kind, &PyTuple_Type, &parts, &count))
        return NULL;
    uint32_t *pl = U32(r, GOMP_RING_OFF_PLOCK);
    int got = lock_try(pl, r->pid);
    for (int i = 0; !got && i < SPIN; i++) {
        spin_step(i);
        got = LOAD(pl) == 0 && lock_try(pl, r->pid);
    }
    if (!got)
        Py_RETURN_FALSE;
    message m;
    PyObject *item = PyTuple_Pack(2, PyTuple_GET_ITEM(args, 0), parts);
    if (item == NULL || message_init(&m, item) < 0) {
        Py_XDECREF(item);
        lock_release(pl);
        return NULL;
    }
    Py_DECREF(item);
    uint64_t pos = LOAD(U64(r, GOMP_RING_OFF_TAIL));
    uint64_t need = single_need(r, pos, m.total);
    int ok = need != 0 && room_from(r, pos, need) >= need;
    if (ok) {
        write_single(r, &pos, &m);
        if (count)
            count_puts(r, 1);
        publish(r, pos);
    }
    message_release(&m);
    lock_release(pl);
    return PyBool_FromLong(ok);
}

static PyObject *
ring_try_put_many_py(RingObject *r, PyObject *args)
{
    PyObject *items;
    int count;
    if (!PyArg_ParseTuple(args, "O!p", &PyList_Type, &items, &count))
        return NULL;
    return ring_try_put_many(r, items, count);
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
    if (!PyArg_ParseTuple(args, "IO!p|O", &kind, &PyTuple_Type, &parts, &count, &timeout) ||
        gomp_parse_timeout(timeout, &ns) < 0 || gomp_usable() < 0)
        return NULL;
    long long deadline = deadline_of(ns);
    message m;
    PyObject *item = PyTuple_Pack(2, PyTuple_GET_ITEM(args, 0), parts);
    if (item == NULL || message_init(&m, item) < 0) {
        Py_XDECREF(item);
        return NULL;
    }
    Py_DECREF(item);
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
        spacearg sa = {pos, need};
        rc = cond_wait(r, has_space, &sa, GOMP_RING_OFF_HEAD, GOMP_RING_OFF_SPACE_WAIT, 0,
                       deadline);
        if (rc > 0) {
            write_single(r, &pos, &m);
            if (count)
                count_puts(r, 1);
            publish(r, pos);
        }
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

/* ---- consumer side ---- */

typedef struct {
    uint32_t kind;
    int nparts;
    PyObject *parts[GOMP_MSG_MAX_PARTS]; /* NULL until the part's first byte arrives */
    char *dst[GOMP_MSG_MAX_PARTS];
    uint64_t len[GOMP_MSG_MAX_PARTS];      /* as the message header says */
    uint64_t cap[GOMP_MSG_MAX_PARTS];      /* bytes allocated so far */
    unsigned char writable[GOMP_MSG_MAX_PARTS];
    uint64_t left; /* bytes of the parts still to come */
    int cur;
    uint64_t curoff;
    uint32_t writer;
    int active;
    PyObject *obj; /* decoded straight from the ring */
} incoming;

/* A part's object is made when its first byte arrives and grows PART_GROW
 * bytes at a time (or to the part's length, if less): a reader reserves at
 * most PART_GROW bytes beyond what arrived, whatever the lengths in the
 * message header (any process of the user can write into the ring). Parts
 * fill in order, so only one is ever growing; a part up to PART_GROW takes
 * one allocation, as before. */
#define PART_GROW (64 << 20)

static void
incoming_clear(incoming *in)
{
    for (int i = 0; i < in->nparts; i++)
        Py_CLEAR(in->parts[i]);
    Py_CLEAR(in->obj);
    in->nparts = 0;
    in->active = 0;
    in->left = 0;
}

static int
has_data(RingObject *r, void *arg)
{
    return data_at(r, *(uint64_t *)arg);
}

/* Grow part i to hold at least need bytes (see PART_GROW). 0 or -1. */
static int
part_grow(incoming *in, int i, uint64_t need)
{
    uint64_t want = in->cap[i] + PART_GROW;
    if (want < need)
        want = need;
    if (want > in->len[i])
        want = in->len[i];
    if (in->writable[i]) {
        if (in->parts[i] == NULL)
            in->parts[i] = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)want);
        else if (PyByteArray_Resize(in->parts[i], (Py_ssize_t)want) < 0)
            return -1;
        if (in->parts[i] == NULL)
            return -1;
        in->dst[i] = PyByteArray_AS_STRING(in->parts[i]);
    } else {
        if (in->parts[i] == NULL)
            in->parts[i] = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)want);
        else if (_PyBytes_Resize(&in->parts[i], (Py_ssize_t)want) < 0)
            return -1; /* the part is freed and NULL */
        if (in->parts[i] == NULL)
            return -1;
        in->dst[i] = PyBytes_AS_STRING(in->parts[i]);
    }
    in->cap[i] = want;
    return 0;
}

/* Make room for the next n bytes of the message, which have arrived (with
 * the GIL held). 0 or -1. */
static int
incoming_reserve(incoming *in, uint64_t n)
{
    uint64_t off = in->curoff;
    for (int i = in->cur; n > 0 && i < in->nparts; i++, off = 0) {
        uint64_t k = in->len[i] - off < n ? in->len[i] - off : n;
        if (off + k > in->cap[i] && part_grow(in, i, off + k) < 0)
            return -1;
        n -= k;
    }
    return 0;
}

/* Copy n bytes of the message (at most in->left), reserved before. */
static void
incoming_copy(incoming *in, const char *src, uint64_t n)
{
    in->left -= n;
    while (n > 0 && in->cur < in->nparts) {
        uint64_t k = in->len[in->cur] - in->curoff;
        if (k > n)
            k = n;
        memcpy(in->dst[in->cur] + in->curoff, src, k);
        src += k;
        n -= k;
        in->curoff += k;
        if (in->curoff == in->len[in->cur]) {
            in->cur++;
            in->curoff = 0;
        }
    }
}

/* Start a message from its first frame's payload (whole: the frame is the
 * message's last too); 0 ok, -1 exception, 1 malformed (skip it): the part
 * lengths must add up to what the frames carry. */
static int
incoming_start(incoming *in, const char *p, uint64_t n, int whole)
{
    uint32_t np, kind;
    if (n < 8)
        return 1;
    memcpy(&np, p, 4);
    memcpy(&kind, p + 4, 4);
    if (np < 1 || np > GOMP_MSG_MAX_PARTS || n < MSG_HDR(np))
        return 1;
    uint64_t h = MSG_HDR(np), total = 0;
    for (uint32_t i = 0; i < np; i++) {
        uint64_t d;
        memcpy(&d, p + 8 + 8 * i, 8);
        uint64_t len = d >> 1;
        if (len > (uint64_t)PY_SSIZE_T_MAX - total)
            return 1;
        total += len;
        in->len[i] = len;
        in->writable[i] = (unsigned char)(d & 1);
    }
    if (whole ? total != n - h : total < n - h)
        return 1;
    in->kind = kind;
    for (uint32_t i = 0; i < np; i++) {
        in->parts[i] = NULL;
        in->cap[i] = 0;
    }
    in->nparts = (int)np;
    for (uint32_t i = 0; i < np; i++) {
        if (in->len[i] > 0)
            continue;
        in->parts[i] = in->writable[i] ? PyByteArray_FromStringAndSize(NULL, 0)
                                       : PyBytes_FromStringAndSize(NULL, 0);
        if (in->parts[i] == NULL) {
            incoming_clear(in);
            return -1;
        }
    }
    in->left = total;
    in->cur = 0;
    while (in->cur < in->nparts && in->len[in->cur] == 0)
        in->cur++;
    in->curoff = 0;
    in->active = 1;
    if (incoming_reserve(in, n - h) < 0) {
        incoming_clear(in);
        return -1;
    }
    incoming_copy(in, p + h, n - h);
    return 0;
}

/* Read one message (consumer lock held). 1 got it (in->parts), 0 nothing
 * before the deadline (wait=0: nothing now), -1 exception. */
static int
read_message(RingObject *r, incoming *in, long long deadline, int wait)
{
    uint64_t *headp = U64(r, GOMP_RING_OFF_HEAD);
    uint64_t pos = LOAD(headp);
    in->nparts = 0;
    in->active = 0;
    in->obj = NULL;
    in->left = 0;
    for (;;) {
        if (!data_at(r, pos)) {
            if (!wait && !in->active)
                return 0;
            /* a message begun is finished whatever the timeout (its frames
             * taken so far would be lost otherwise), unless its writer dies */
            int rc = cond_wait(r, has_data, &pos, GOMP_RING_OFF_TAIL, GOMP_RING_OFF_DATA_WAIT,
                               in->active ? in->writer : 0, in->active ? -1 : deadline);
            if (rc < 0 || rc == 0) {
                incoming_clear(in);
                return rc;
            }
            if (rc == 2) { /* the writer died mid-message */
                incoming_clear(in);
                if (!wait)
                    return 0;
            }
            continue;
        }
        uint64_t off = pos % r->cap;
        char *f = r->data + off;
        uint32_t h[3];
        memcpy(h, f, 8);
        uint32_t n = h[0], flags = h[1];
        if (flags & GOMP_RING_WRAP) {
            pos += r->cap - off;
            STORE(headp, pos);
            continue;
        }
        memcpy(h + 2, f + 8, 4);
        if (GOMP_RING_FRAME_HEADER + ALIGN8((uint64_t)n) > r->cap - off) {
            /* cannot happen with gomp's writers (frames are published
             * whole); do not read past the ring if it does */
            incoming_clear(in);
            pos = LOAD(U64(r, GOMP_RING_OFF_TAIL));
            __atomic_store_n(headp, pos, __ATOMIC_SEQ_CST);
            PyErr_SetString(PyExc_RuntimeError, "gomp queue: corrupt frame skipped");
            return -1;
        }
        uint64_t next = pos + GOMP_RING_FRAME_HEADER + ALIGN8(n);
        const char *p = f + GOMP_RING_FRAME_HEADER;
        int skip = 0;
        int failed = 0; /* an exception is set: return it once the frame is taken */
        uint32_t np_kind[2] = {0, 0};
        if (n >= 8)
            memcpy(np_kind, p, 8);
        uint32_t whole = GOMP_RING_FIRST | GOMP_RING_LAST;
        if ((flags & whole) == whole && np_kind[0] == 1 && np_kind[1] == GOMP_MSG_MARSHAL &&
            n >= MSG_HDR(1)) {
            /* a small marshalled object: decoded from the ring, no copy */
            if (in->active)
                incoming_clear(in);
            uint64_t d;
            memcpy(&d, p + 8, 8);
            uint64_t len = d >> 1;
            if (len > n - MSG_HDR(1))
                skip = 1;
            else {
                in->obj = PyMarshal_ReadObjectFromString(p + MSG_HDR(1), (Py_ssize_t)len);
                in->kind = KIND_READY;
                in->active = 1;
                failed = in->obj == NULL;
            }
        } else if (flags & GOMP_RING_FIRST) {
            if (in->active) /* its writer died before finishing the last one */
                incoming_clear(in);
            int rc = incoming_start(in, p, n, (flags & GOMP_RING_LAST) != 0);
            if (rc != 0)
                skip = 1;
            failed = rc < 0;
            in->writer = h[2];
        } else if (!in->active) {
            skip = 1; /* rest of a message whose start a dead consumer took */
        } else if (n > in->left || incoming_reserve(in, n) < 0) {
            /* more than its header declared (malformed), or no memory */
            failed = PyErr_Occurred() != NULL;
            incoming_clear(in);
            skip = 1;
        } else if (n >= NOGIL_COPY) {
            Py_BEGIN_ALLOW_THREADS
            incoming_copy(in, p, n);
            Py_END_ALLOW_THREADS
        } else {
            incoming_copy(in, p, n);
        }
        if (!skip && (flags & GOMP_RING_LAST) && in->obj == NULL && in->left != 0) {
            incoming_clear(in); /* ends short of its header's lengths */
            skip = 1;
        }
        int done = !skip && (flags & GOMP_RING_LAST);
        if (flags & GOMP_RING_LAST) /* delivered, or lost with a dead process */
            __atomic_fetch_add(U64(r, GOMP_RING_OFF_GETS), 1, __ATOMIC_RELAXED);
        pos = next;
        /* producers waiting for room sleep on the head's low word */
        __atomic_store_n(headp, pos, __ATOMIC_SEQ_CST);
        wake_waiters(r, GOMP_RING_OFF_SPACE_WAIT, GOMP_RING_OFF_HEAD);
        if (failed) {
            in->active = 0;
            return -1;
        }
        if (done)
            return 1;
    }
}

/* incoming -> the object */
static PyObject *
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

static int
parse_get(PyObject *args, PyObject *kwds, const char *fmt, char **names, int *block,
          long long *deadline, Py_ssize_t *max)
{
    PyObject *timeout = Py_None;
    long long ns;
    int ok = max ? PyArg_ParseTupleAndKeywords(args, kwds, fmt, names, max, block, &timeout)
                 : PyArg_ParseTupleAndKeywords(args, kwds, fmt, names, block, &timeout);
    if (!ok || gomp_parse_timeout(timeout, &ns) < 0)
        return -1;
    if (!*block)
        ns = 0;
    *deadline = deadline_of(ns);
    return 0;
}

/* (block=True, timeout=None) from a vectorcall */
static int
parse_block_timeout(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, int *block,
                    PyObject **timeout)
{
    *block = 1;
    *timeout = Py_None;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "expected at most 2 arguments: block, timeout");
        return -1;
    }
    PyObject *b = nargs > 0 ? args[0] : NULL;
    if (nargs > 1)
        *timeout = args[1];
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i), *v = args[nargs + i];
        if (PyUnicode_CompareWithASCIIString(k, "block") == 0 && nargs < 1)
            b = v;
        else if (PyUnicode_CompareWithASCIIString(k, "timeout") == 0 && nargs < 2)
            *timeout = v;
        else {
            PyErr_Format(PyExc_TypeError, "unexpected keyword argument %R", k);
            return -1;
        }
    }
    if (b != NULL && (*block = PyObject_IsTrue(b)) < 0)
        return -1;
    return 0;
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
    long long ns;
    if (parse_block_timeout(args, nargs, kwnames, &block, &timeout) < 0 || check_open(r) < 0 ||
        gomp_parse_timeout(timeout, &ns) < 0 || gomp_usable() < 0)
        return NULL;
    long long deadline = deadline_of(block ? ns : 0);
    uint32_t *cl = U32(r, GOMP_RING_OFF_CLOCK);
    if (!lock_try(cl, r->pid)) {
        int rc = lock_acquire(r, GOMP_RING_OFF_CLOCK, deadline);
        if (rc < 0)
            return NULL;
        if (rc == 0) {
            PyErr_SetNone(empty_exc);
            return NULL;
        }
    }
    incoming in;
    int rc = read_message(r, &in, deadline, 1);
    lock_release(cl);
    if (rc < 0)
        return NULL;
    if (rc == 0) {
        PyErr_SetNone(empty_exc);
        return NULL;
    }
    return incoming_object(&in);
}

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
static int
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

/* Top-level bytes-likes at least GOMP_MSG_RAW_MIN long are copied in as
 * they are, never pickled (as queues.py's _encode does). */
static inline int
travels_raw(PyObject *obj)
{
    PyTypeObject *t = Py_TYPE(obj);
    return t == &PyMemoryView_Type ||
           ((t == &PyBytes_Type || t == &PyByteArray_Type) &&
            PyObject_Length(obj) >= GOMP_MSG_RAW_MIN);
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
static int
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

/* put(obj, block=True, timeout=None): the common case (an unbounded queue,
 * nothing waiting in this process's backlog, a small picklable object) is
 * done here; the rest goes to Queue._slow_put. */
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
    if (gomp_usable() < 0) {
        Py_DECREF(data);
        Py_DECREF(owner);
        return NULL;
    }
    if (r->tasks)
        __atomic_fetch_add(U32(r, GOMP_RING_OFF_TASKS), 1, __ATOMIC_SEQ_CST);
    int ok = 0;
    uint32_t *pl = U32(r, GOMP_RING_OFF_PLOCK);
    int got = lock_try(pl, r->pid);
    for (int i = 0; !got && i < SPIN; i++) {
        spin_step(i);
        got = LOAD(pl) == 0 && lock_try(pl, r->pid);
    }
    if (got) {
        message m;
        m.nparts = 1;
        m.kind = kind;
        uint32_t one = 1;
        memcpy(m.hdr, &one, 4);
        memcpy(m.hdr + 4, &kind, 4);
        m.views[0].buf = PyBytes_AS_STRING(data);
        m.views[0].len = PyBytes_GET_SIZE(data);
        uint64_t d = (uint64_t)m.views[0].len << 1;
        memcpy(m.hdr + 8, &d, 8);
        m.hdrlen = MSG_HDR(1);
        m.total = m.hdrlen + (uint64_t)m.views[0].len;
        m.cur = -1;
        m.curoff = 0;
        uint64_t pos = LOAD(U64(r, GOMP_RING_OFF_TAIL));
        uint64_t need = single_need(r, pos, m.total);
        ok = need != 0 && room_from(r, pos, need) >= need;
        if (!ok && need != 0) {
            /* full: consumers are usually just behind, and waiting a few
             * microseconds for them beats the backlog's thread hop */
            long long until = gomp_now_ns() + ROOM_SPIN_NS;
            for (int i = 0; !ok; i++) {
                spin_step(i);
                ok = room_from(r, pos, need) >= need;
                if ((i & 15) == 15 && gomp_now_ns() > until)
                    break;
            }
        }
        if (ok) {
            write_single(r, &pos, &m);
            if (!r->maxsize)
                count_puts(r, 1);
            publish(r, pos);
        }
        lock_release(pl);
    }
    if (ok) {
        Py_DECREF(data);
        Py_DECREF(owner);
        Py_RETURN_NONE;
    }
    /* no room now: into the backlog (counted when the feeder writes it;
     * a bounded queue's slot is taken already) */
    PyObject *k = PyLong_FromUnsignedLong(kind);
    PyObject *a[3] = {owner, data, k};
    PyObject *res = k ? PyObject_Vectorcall(r->backlog, a, 3, NULL) : NULL;
    Py_XDECREF(k);
    Py_DECREF(owner);
    Py_DECREF(data);
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
    int got = lock_try(pl, r->pid);
    for (int i = 0; !got && i < SPIN; i++) {
        spin_step(i);
        got = LOAD(pl) == 0 && lock_try(pl, r->pid);
    }
    if (!got)
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
        uint32_t one = 1, kind = GOMP_MSG_MARSHAL;
        m.nparts = 1;
        m.kind = kind;
        memcpy(m.hdr, &one, 4);
        memcpy(m.hdr + 4, &kind, 4);
        m.views[0].buf = PyBytes_AS_STRING(data);
        m.views[0].len = PyBytes_GET_SIZE(data);
        uint64_t d = (uint64_t)m.views[0].len << 1;
        memcpy(m.hdr + 8, &d, 8);
        m.hdrlen = MSG_HDR(1);
        m.total = m.hdrlen + (uint64_t)m.views[0].len;
        m.cur = -1;
        m.curoff = 0;
        uint64_t need = single_need(r, pos, m.total);
        int ok = need != 0 && room_from(r, pos, need) >= need;
        if (ok) {
            write_single(r, &pos, &m);
            if (r->tasks)
                __atomic_fetch_add(U32(r, GOMP_RING_OFF_TASKS), 1, __ATOMIC_SEQ_CST);
            count_puts(r, 1);
        }
        Py_DECREF(data);
        if (!ok)
            break;
        if (((done + 1) & 63) == 0) /* let consumers start on long batches */
            publish(r, pos);
    }
    if (pos != start)
        publish(r, pos);
    lock_release(pl);
    if (err)
        return NULL;
    return PyLong_FromSsize_t(done);
}

/* bind(queue, slow_put, backlog, tasks): attach the per-process queue */
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
    long long deadline;
    Py_ssize_t max = PY_SSIZE_T_MAX;
    if (check_open(r) < 0 ||
        parse_get(args, kwds, "|npO:get_many", names, &block, &deadline, &max) < 0 ||
        gomp_usable() < 0)
        return NULL;
    if (max <= 0)
        max = PY_SSIZE_T_MAX;
    uint32_t *cl = U32(r, GOMP_RING_OFF_CLOCK);
    if (!lock_try(cl, r->pid)) {
        int rc = lock_acquire(r, GOMP_RING_OFF_CLOCK, deadline);
        if (rc < 0)
            return NULL;
        if (rc == 0) {
            PyErr_SetNone(empty_exc);
            return NULL;
        }
    }
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
    __atomic_fetch_add(U32(r, GOMP_RING_OFF_TASKS), 1, __ATOMIC_SEQ_CST);
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
    int rc = gomp_wait_sliced(join_step, &j, ns);
    if (rc < 0)
        return NULL;
    return PyBool_FromLong(rc > 0);
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
    __atomic_store_n(HOLDER_START(w), (uint64_t)start, __ATOMIC_SEQ_CST);
    __atomic_store_n(HOLDER_PID(w), pid, __ATOMIC_SEQ_CST);
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
ring_capacity(RingObject *r, void *closure)
{
    return PyLong_FromUnsignedLongLong(r->cap);
}

static PyObject *
ring_maxsize(RingObject *r, void *closure)
{
    return PyLong_FromUnsignedLongLong(r->maxsize);
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
    {"try_put_many", (PyCFunction)ring_try_put_many_py, METH_VARARGS,
     "try_put_many([(kind, parts)...], count) -> how many were written now."},
    {"put", (PyCFunction)ring_put, METH_VARARGS,
     "put(kind, parts, count, timeout=None) -> bool: write, waiting for room."},
    {"reserve", (PyCFunction)ring_reserve, METH_VARARGS,
     "reserve(block=True, timeout=None): take a slot; raises queue.Full."},
    {"unreserve", (PyCFunction)ring_unreserve, METH_VARARGS, "unreserve(n=1)"},
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

static PyGetSetDef ring_getset[] = {
    {"capacity", (getter)ring_capacity, NULL, NULL, NULL},
    {"maxsize", (getter)ring_maxsize, NULL, NULL, NULL},
    {"wrote", (getter)ring_wrote, NULL, "whether this process has put a message", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject Ring_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gomp._gomp.Ring",
    .tp_basicsize = sizeof(RingObject),
    .tp_dealloc = (destructor)ring_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A queue's shared ring (see gomp/ring.go).",
    .tp_methods = ring_methods,
    .tp_getset = ring_getset,
};

static PyObject *
ring_wrap(void *base, long long size, int fd)
{
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
    r->pid = (uint32_t)getpid();
    if (self_start == 0) {
        unsigned pid;
        unsigned long long start;
        go.GompSelf(&pid, &start);
        self_start = start;
    }
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
    Py_INCREF(dumps);
    Py_XSETREF(dumps_fn, dumps);
    if (five == NULL && (five = PyLong_FromLong(5)) == NULL)
        return NULL;
    if (dumps_kwnames == NULL && (dumps_kwnames = Py_BuildValue("(s)", "buffer_callback")) == NULL)
        return NULL;
    Py_INCREF(loads);
    Py_INCREF(empty);
    Py_INCREF(full);
    Py_XSETREF(loads_fn, loads);
    Py_XSETREF(empty_exc, empty);
    Py_XSETREF(full_exc, full);
    if (buffers_kw == NULL && (buffers_kw = PyUnicode_InternFromString("buffers")) == NULL)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
queues_ring_new(PyObject *self, PyObject *args)
{
    long long capacity, maxsize;
    if (!PyArg_ParseTuple(args, "LL", &capacity, &maxsize) || gomp_usable() < 0)
        return NULL;
    if (loads_fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "queues_setup() was not called");
        return NULL;
    }
    int fd = -1;
    void *base = NULL;
    long long size = 0;
    int rc = go.GompRingCreate(capacity, maxsize, &fd, &base, &size);
    if (rc < 0)
        return gomp_errno_error(rc);
    return ring_wrap(base, size, fd);
}

static PyObject *
queues_ring_map(PyObject *self, PyObject *args)
{
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd) || gomp_usable() < 0)
        return NULL;
    if (loads_fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "queues_setup() was not called");
        return NULL;
    }
    void *base = NULL;
    long long size = 0;
    int rc = go.GompRingMap(fd, &base, &size);
    if (rc < 0)
        return gomp_errno_error(rc);
    return ring_wrap(base, size, fd);
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
    if (rc < 0 && rc != -EINVAL) /* EINVAL: stopped already, with its ring */
        return gomp_errno_error(rc);
    Py_RETURN_NONE;
}

PyMethodDef gomp_queues_methods[] = {
    {"ring_watch", queues_ring_watch, METH_O,
     "ring_watch(ring) -> (eventfd, handle): an eventfd readable while the ring holds a message."},
    {"ring_unwatch", queues_ring_unwatch, METH_VARARGS,
     "ring_unwatch(handle): stop a watch (then close its eventfd)."},
    {"queues_setup", queues_setup, METH_VARARGS,
     "queues_setup(loads, Empty, Full, dumps): what the rings pickle with and raise."},
    {"set_plain_pickle", queues_set_plain_pickle, METH_O,
     "set_plain_pickle(flag): whether the C pickler alone may be tried (reduction.py's policy)."},
    {"queues_encode", queues_encode, METH_O,
     "queues_encode(obj) -> (kind, (data,)), or None when the Python encoder must do it."},
    {"ring_new", queues_ring_new, METH_VARARGS,
     "ring_new(capacity, maxsize) -> Ring: a new queue ring."},
    {"ring_map", queues_ring_map, METH_VARARGS,
     "ring_map(fd) -> Ring: map a ring received from another process (takes fd)."},
    {NULL, NULL, 0, NULL},
};
