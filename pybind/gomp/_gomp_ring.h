/* The queue ring, private to the queue files: _gomp_ring.c (frames, the
 * ring's locks and waits, reading and writing messages), _gomp_encode.c
 * (what a message holds: the encoding policy and decoding) and
 * _gomp_queues.c (the Ring type). The layout and the commit protocol are
 * gomp/ring.go's. What the put and get fast paths call is static inline
 * here, so that it stays inlined as it was in one file. */
#ifndef GOMP_RING_H
#define GOMP_RING_H

#include "_gomp.h"

#include <string.h>

_Static_assert(GOMP_RING_OFF_PLOCK % 8 == 0 && GOMP_RING_OFF_CLOCK % 8 == 0 &&
                   GOMP_RING_OFF_PLOCK + GOMP_HOLDER_SIZE <= GOMP_RING_OFF_TAIL &&
                   GOMP_RING_OFF_CLOCK + GOMP_HOLDER_SIZE <= GOMP_RING_OFF_HEAD,
               "a ring lock and its holder record are a gomp.Holder (8-aligned)");

/* The message kinds are GOMP_MSG_* (gomp/ring.go); this one marks a message
 * decoded already, only inside the extension (it never travels). */
#define KIND_READY 100
/* version 2: no reference tracking, which costs a hash table per call and
 * buys nothing for the flat objects sent this way */
#define MARSHAL_VERSION 2

/* message header, at the start of a message's first frame:
 * u32 nparts, u32 kind, then nparts u64 (length << 1 | writable) */
#define MSG_HDR(n) (8 + 8 * (size_t)(n))
/* copies longer than this release the GIL */
#define NOGIL_COPY (256 * 1024)
/* busy-wait iterations on a lock held by a running process (short holds) */
#define SPIN 400

#define U32(r, off) ((uint32_t *)((r)->base + (off)))
#define U64(r, off) ((uint64_t *)((r)->base + (off)))
#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ALIGN8(n) (((n) + 7) & ~(uint64_t)7)

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
    /* called by put_obj, which is Queue.put itself (see there) */
    PyObject *slow_put;   /* Queue._slow_put(queue, obj, block, timeout) */
    PyObject *backlog;    /* Queue._backlog_pickled(queue, data, kind) */
    PyObject *closed_msg; /* ValueError text once closed, else NULL */
    Py_ssize_t pending;   /* items in this process's backlog */
    int wrote;            /* this process has written a message here */
    uint64_t last_pub;    /* the tail after this process's last message */
    int tasks;            /* a JoinableQueue: count unfinished tasks */
} RingObject;

/* ---- locks: word = holder pid, GOMP_RING_LOCK_WAITERS when someone
 * sleeps; a gomp.Holder (see gomp_holder_take) ---- */

static inline int
lock_try(uint32_t *w, uint32_t me)
{
    return gomp_holder_take(w, me);
}

/* lock_try, spinning SPIN steps while the lock is busy */
static inline int
lock_spin(uint32_t *w, uint32_t me)
{
    int got = lock_try(w, me);
    for (int i = 0; !got && i < SPIN; i++) {
        gomp_spin_step(i);
        got = LOAD(w) == 0 && lock_try(w, me);
    }
    return got;
}

static inline void
lock_release(uint32_t *w)
{
    STORE(GOMP_HOLDER_PID(w), 0);
    if (__atomic_exchange_n(w, 0, __ATOMIC_RELEASE) & GOMP_RING_LOCK_WAITERS)
        gomp_futex_wake(w, 1);
}

/* Acquire a ring lock (at offset off). 1: taken, 0: timed out, -1:
 * exception set. */
int lock_acquire(RingObject *r, int off, long long deadline);

/* ---- waiting on a condition, sleeping on a position word (tail or head) */

typedef int (*cond_fn)(RingObject *, void *);

/* Wait until cond(r, carg), sleeping on the word at seqoff with the
 * waiters word at waitoff; writer (a consumer mid-message): give up when
 * it no longer holds the producer lock. 1: it holds, 2: the writer let go,
 * 0: timed out, -1: exception set. */
int cond_wait(RingObject *r, cond_fn cond, void *carg, int seqoff, int waitoff, uint32_t writer,
              long long deadline);

static inline void
wake_waiters(RingObject *r, int waitoff, int wordoff)
{
    uint32_t *w = U32(r, waitoff);
    if (__atomic_load_n(w, __ATOMIC_SEQ_CST) && __atomic_exchange_n(w, 0, __ATOMIC_SEQ_CST))
        gomp_futex_wake(U32(r, wordoff), 0x7fffffff);
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

static inline long long
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

/* kind and parts (a tuple of buffer objects) -> message; 0 or -1 */
int message_init(message *m, PyObject *kind, PyObject *parts);
void message_release(message *m);

/* A message of one part, data (bytes, kept alive by the caller): the fast
 * puts' marshalled or pickled objects; nothing to release. */
static inline void
message_one(message *m, uint32_t kind, PyObject *data)
{
    uint32_t one = 1;
    m->nparts = 1;
    m->kind = kind;
    memcpy(m->hdr, &one, 4);
    memcpy(m->hdr + 4, &kind, 4);
    m->views[0].buf = PyBytes_AS_STRING(data);
    m->views[0].len = PyBytes_GET_SIZE(data);
    uint64_t d = (uint64_t)m->views[0].len << 1;
    memcpy(m->hdr + 8, &d, 8);
    m->hdrlen = MSG_HDR(1);
    m->total = m->hdrlen + (uint64_t)m->views[0].len;
    m->cur = -1;
    m->curoff = 0;
}

/* copy the next n bytes of the message to dst */
static inline void
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
static inline uint64_t
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

/* Whether the message fits as one frame at pos now. */
static inline int
fits_single(RingObject *r, uint64_t pos, message *m)
{
    uint64_t need = single_need(r, pos, m->total);
    return need != 0 && room_from(r, pos, need) >= need;
}

/* Write a message as one frame at *pos, which has room (producer lock held).
 * Does not publish. */
static inline void
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

static inline void
publish(RingObject *r, uint64_t pos)
{
    r->wrote = 1;
    r->last_pub = pos;
    /* consumers sleep on the tail's low word (see cond_step) */
    __atomic_store_n(U64(r, GOMP_RING_OFF_TAIL), pos, __ATOMIC_SEQ_CST);
    wake_waiters(r, GOMP_RING_OFF_DATA_WAIT, GOMP_RING_OFF_TAIL);
}

/* Wait for room for need bytes at pos (producer lock held); as cond_wait. */
int wait_space(RingObject *r, uint64_t pos, uint64_t need, long long deadline);

/* Stream a message in frames, waiting for room (producer lock held).
 * 1 done, 0 timed out (partial message left: readers drop it), -1 error. */
int write_stream(RingObject *r, message *m, long long deadline, int count);

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

void incoming_clear(incoming *in);

/* Read one message (consumer lock held). 1 got it (in->parts), 0 nothing
 * before the deadline (wait=0: nothing now), -1 exception. */
int read_message(RingObject *r, incoming *in, long long deadline, int wait);

/* ---- encoding (_gomp_encode.c) ---- */

/* Whether marshal gives back exactly o (see _gomp_encode.c). */
int marshal_ok(PyObject *o);

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

/* Encode obj where C can (reduction.py's policy): 1 with *data and *kind
 * set, 0 when the Python encoder must do it, -1 on error. */
int encode_plain(PyObject *obj, PyObject **data, uint32_t *kind);

/* The message read into in, as the object put; in is cleared. */
PyObject *incoming_object(incoming *in);

/* what the codec pickles with (queues_setup) */
int encode_setup(PyObject *loads, PyObject *dumps);
/* whether encode_setup was called */
int encode_ready(void);

#endif
