/* _gomp, the queue ring: frames, the ring's locks and waits, reading and
 * writing messages (gomp/ring.go documents the layout and the commit
 * protocol). Go hands the mapping's address over once; the copies in and
 * out, and the futex sleeps (through gomp_wait_sliced, so Ctrl-C
 * interrupts) and wakes, are done here; Go is called only to ask whether a
 * lock's holder died. */
#include "_gomp_ring.h"

#include <marshal.h>

#include <stdint.h>
#include <string.h>

#define RING_IMPORTS(X) X(GompLockHolder)
GOMP_IMPORTS(ring, RING_IMPORTS);

/* frames are at most this long, so a big message streams through */
#define MIN_STREAM_CHUNK 4096
/* how long a waiter for data or room spins before it sleeps: a futex sleep
 * and wake cost the other side a system call each */
#define SPIN_NS 40000

/* ---- locks ---- */

typedef struct {
    uint32_t *w;
    uint32_t me;
} lockwait;

/* Take the lock from v (0, or a dead holder's pid) keeping the waiters bit:
 * others may sleep on it. */
static inline int
lock_take_from(uint32_t *w, uint32_t v, uint32_t me)
{
    if (!__atomic_compare_exchange_n(w, &v, me | GOMP_RING_LOCK_WAITERS, 0, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED))
        return 0;
    gomp_holder_record(w);
    return 1;
}

/* one slice of a contended acquire; without the GIL */
static int
lock_step(void *arg, long long slice)
{
    lockwait *lw = arg;
    if (lock_spin(lw->w, lw->me))
        return 1;
    long long end = gomp_now_ns() + slice;
    for (;;) {
        uint32_t v = LOAD(lw->w);
        if (v == 0) {
            if (lock_take_from(lw->w, v, lw->me))
                return 1;
            continue;
        }
        if (!(v & GOMP_RING_LOCK_WAITERS)) {
            uint32_t nv = v | GOMP_RING_LOCK_WAITERS;
            if (!__atomic_compare_exchange_n(lw->w, &v, nv, 0, __ATOMIC_RELAXED,
                                             __ATOMIC_RELAXED))
                continue;
            v = nv;
        }
        if (gomp_sleep_until(lw->w, v, end) == 0 && LOAD(lw->w) == v) {
            /* a whole slice without a release: is the holder alive? (its pid
             * may be ours: a dead process's, reused) */
            return go.GompLockHolder(lw->w) == 0 && lock_take_from(lw->w, v, lw->me);
        }
    }
}

/* what is left of the time to deadline, for gomp_wait_sliced */
static inline long long
left_of(long long deadline)
{
    if (deadline < 0)
        return -1;
    long long left = deadline - gomp_now_ns();
    return left > 0 ? left : 0;
}

int
lock_acquire(RingObject *r, int off, long long deadline)
{
    uint32_t *w = U32(r, off);
    if (lock_try(w, r->pid))
        return 1;
    lockwait lw = {w, r->pid};
    return gomp_wait_sliced(lock_step, &lw, left_of(deadline));
}

/* ---- waiting on a condition, sleeping on a position word (tail or head) ---- */

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
        gomp_spin_step(i);
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
        int rc = gomp_sleep_until(cw->seq, s, end);
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

int
cond_wait(RingObject *r, cond_fn cond, void *carg, int seqoff, int waitoff, uint32_t writer,
          long long deadline)
{
    if (cond(r, carg))
        return 1;
    condwait cw = {r, cond, carg, U32(r, seqoff), U32(r, waitoff), writer};
    return gomp_wait_sliced(cond_step, &cw, left_of(deadline));
}

/* ---- producer side ---- */

void
message_release(message *m)
{
    for (int i = 0; i < m->nparts; i++)
        PyBuffer_Release(&m->views[i]);
    m->nparts = 0;
}

int
message_init(message *m, PyObject *kindobj, PyObject *parts)
{
    m->nparts = 0;
    if (!PyTuple_Check(parts)) {
        PyErr_SetString(PyExc_TypeError, "a message is (kind, (parts...))");
        return -1;
    }
    unsigned long kind = PyLong_AsUnsignedLong(kindobj);
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

int
wait_space(RingObject *r, uint64_t pos, uint64_t need, long long deadline)
{
    spacearg sa = {pos, need};
    return cond_wait(r, has_space, &sa, GOMP_RING_OFF_HEAD, GOMP_RING_OFF_SPACE_WAIT, 0, deadline);
}

int
write_stream(RingObject *r, message *m, long long deadline, int count)
{
    uint64_t pos = LOAD(U64(r, GOMP_RING_OFF_TAIL)), sent = 0;
    while (sent < m->total) {
        uint64_t rest = m->total - sent;
        uint64_t off = pos % r->cap, to_end = r->cap - off;
        uint64_t maxpay = r->cap / 4 - GOMP_RING_FRAME_HEADER;
        uint64_t want = rest < maxpay ? rest : maxpay;
        uint64_t small = want < MIN_STREAM_CHUNK ? want : MIN_STREAM_CHUNK;
        if (to_end < GOMP_RING_FRAME_HEADER + ALIGN8(small)) {
            int rc = wait_space(r, pos, to_end, deadline);
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
        int rc = wait_space(r, pos, goal, deadline);
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

/* ---- consumer side ---- */

/* A part's object is made when its first byte arrives and grows PART_GROW
 * bytes at a time (or to the part's length, if less): a reader reserves at
 * most PART_GROW bytes beyond what arrived, whatever the lengths in the
 * message header (any process of the user can write into the ring). Parts
 * fill in order, so only one is ever growing; a part up to PART_GROW takes
 * one allocation, as before. */
#define PART_GROW (64 << 20)

void
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

int
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
            if (rc <= 0) {
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
            /* gomp's writers never make such a frame, but any process of
             * the user can write into the ring: kept so that a corrupt
             * length never makes us read past the ring's end */
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
