/* _gomp, connection area: the shared-memory pipe of gomp/pipe.go.
 *
 * Fast path: a message that fits in the ring (and carries no descriptors)
 * is copied in or out here, with the GIL held and without calling Go, on
 * the memory Go mapped; the ring protocol is gomp/pipe.go's (same fields,
 * same order of atomic operations, futex wake-ups and eventfd signals).
 *
 * Waiting is done here too, never in Go (pipe_wait: spin, then a futex
 * sleep; see gomp_futex_wait in _gomp.h for why), with the GIL released
 * and in slices through gomp_wait_sliced, so that a blocked call lets other
 * threads run and Ctrl-C interrupts it. What the fast path leaves - large
 * messages, descriptors, a closed peer, a dead writer's lock - goes to Go's
 * steps, which never wait, once the wait is over. The end of the stream
 * comes back from Go as -ECONNRESET and is raised as EOFError.
 */
#include "_gomp.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <unistd.h>

#define CONNECTION_IMPORTS(X)                                                                      \
    X(GompPipeNew) X(GompPipeOpen) X(GompPipeFiles) X(GompPipeClose) X(GompPipeSendStep)           \
    X(GompPipeRecvHeaderStep) X(GompPipeRecvBodyStep) X(GompPipeFileno)        \
    X(GompPipeReserve) X(GompPipeLayout) X(GompPipeSendAbort)
GOMP_IMPORTS(connection, CONNECTION_IMPORTS);

#define PIPE_EOF (-ECONNRESET)

/* ---- the fast path ---- */

/* ring control block (gomp/pipe.go) */
#define RING_TAIL(c) ((uint64_t *)((c) + GOMP_PIPE_OFF_TAIL))
#define RING_READER_SLEEPING(c) ((uint32_t *)((c) + GOMP_PIPE_OFF_READER_SLEEPING))
#define RING_WANT_FD(c) ((uint32_t *)((c) + GOMP_PIPE_OFF_WANT_FD))
#define RING_SIGNALED(c) ((uint32_t *)((c) + GOMP_PIPE_OFF_SIGNALED))
#define RING_HEAD(c) ((uint64_t *)((c) + GOMP_PIPE_OFF_HEAD))
#define RING_WRITER_SLEEPING(c) ((uint32_t *)((c) + GOMP_PIPE_OFF_WRITER_SLEEPING))
#define RING_WRITER_LOCK(c) ((uint32_t *)((c) + GOMP_PIPE_OFF_WRITER_LOCK))
#define RING_LOCK_WAITERS(c) ((uint32_t *)((c) + GOMP_PIPE_OFF_LOCK_WAITERS))
/* the writer's record (gomp/liveness.go): thread id, pid, start time */
#define RING_WRITER_TID(c) ((uint32_t *)((c) + GOMP_PIPE_OFF_WRITER_TID))
#define RING_WRITER_PID(c) ((uint32_t *)((c) + GOMP_PIPE_OFF_WRITER_PID))
#define RING_WRITER_START(c) ((uint64_t *)((c) + GOMP_PIPE_OFF_WRITER_START))
/* larger messages go through Go, which copies them with the GIL released */
#define FAST_MAX (64 * 1024)

/* A side spins before it sleeps only while spinning pays: when spins keep
 * running out (the other side is slow, or the machine busy) it sleeps at
 * once, and tries a spin again once in a while. */
#define SPIN_NS (30 * 1000LL)
#define SPIN_GIVE_UP 8 /* spins in a row that run out before spinning stops */
#define SPIN_PROBE 64  /* waits between two spins once it stopped */

typedef struct {
    uint32_t failures, skipped; /* a heuristic: updated without a lock */
} spinner;

typedef struct {
    gomp_pipe_layout l;      /* the end's rings, as Go describes them */
    long long alive_checked; /* when the socket last showed the peer alive */
    int users;               /* waits in progress, without the GIL */
    int closing;             /* pipe_close began: no new waits */
    spinner recv_spin, send_spin;
} pipe_view;

/* A fast send looks at the socket at most this often: a peer that died
 * (and so never closed its end) is noticed within this time, without a
 * system call per message. */
#define ALIVE_CHECK_NS (10 * 1000 * 1000LL)

/* by handle (Go reuses the handles of closed ends, so this stays small);
 * only touched with the GIL held */
static pipe_view **views;
static int nviews;

static int
view_add(int h)
{
    if (h >= nviews) {
        int n = h + 16;
        pipe_view **nv = PyMem_Realloc(views, n * sizeof(*views));
        if (nv == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memset(nv + nviews, 0, (n - nviews) * sizeof(*views));
        views = nv;
        nviews = n;
    }
    pipe_view *v = PyMem_Calloc(1, sizeof(*v));
    if (v == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int rc = go.GompPipeLayout(h, &v->l);
    if (rc < 0) {
        PyMem_Free(v);
        gomp_errno_error(rc);
        return -1;
    }
    PyMem_Free(views[h]);
    views[h] = v;
    return 0;
}

static void
view_drop(int h)
{
    if (h >= 0 && h < nviews) {
        PyMem_Free(views[h]);
        views[h] = NULL;
    }
}

/* The end's view, for a fast path (with the GIL held throughout), or NULL
 * when the handle is closed or closing. */
static pipe_view *
view_get(int h)
{
    pipe_view *v = h >= 0 && h < nviews ? views[h] : NULL;
    return v != NULL && !v->closing ? v : NULL;
}

/* view_get for a wait, which runs without the GIL: pipe_close waits for
 * view_leave before it unmaps. NULL with OSError(EBADF) set. */
static pipe_view *
view_enter(int h)
{
    pipe_view *v = view_get(h);
    if (v == NULL) {
        gomp_errno_error(-EBADF);
        return NULL;
    }
    __atomic_add_fetch(&v->users, 1, __ATOMIC_SEQ_CST);
    return v;
}

static void
view_leave(pipe_view *v)
{
    __atomic_sub_fetch(&v->users, 1, __ATOMIC_SEQ_CST);
}

static void
futex_wake_all(void *addr)
{
    /* the low 32 bits of a 64-bit position (little-endian), as in Go */
    gomp_futex_wake(addr, INT_MAX);
}

/* wake whoever announced a sleep on word in flag (pipe_wait), as Go's
 * wakeSleepers */
static void
wake_sleepers(uint32_t *flag, void *word)
{
    if (__atomic_load_n(flag, __ATOMIC_SEQ_CST)) {
        __atomic_store_n(flag, 0, __ATOMIC_SEQ_CST);
        futex_wake_all(word);
    }
}

static void
event_signal(int fd)
{
    uint64_t one = 1;
    ssize_t r = write(fd, &one, sizeof(one));
    (void)r;
}

static void
pipe_copy_in(char *data, uint64_t size, uint64_t pos, const char *src, uint64_t n)
{
    uint64_t off = pos % size, first = size - off < n ? size - off : n;
    memcpy(data + off, src, first);
    memcpy(data, src + first, n - first);
}

static void
pipe_copy_out(const char *data, uint64_t size, uint64_t pos, char *dst, uint64_t n)
{
    uint64_t off = pos % size, first = size - off < n ? size - off : n;
    memcpy(dst, data + off, first);
    memcpy(dst + first, data, n - first);
}

static __thread uint32_t thread_id;

/* the writer lock of gomp/pipe.go (ring.lockWriter): one message at a time
 * from the threads and processes that share an end; the holder records
 * itself after taking it and clears the record before letting it go. Its
 * word holds a thread id and its sleepers announce themselves in a word of
 * their own (lock_wait); whether a holder died is Go's to judge (SendStep). */
static int
try_lock_writer(char *c)
{
    if (thread_id == 0)
        thread_id = (uint32_t)syscall(SYS_gettid);
    uint32_t free_ = 0;
    if (!__atomic_compare_exchange_n(RING_WRITER_LOCK(c), &free_, thread_id, 0, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST))
        return 0;
    __atomic_store_n(RING_WRITER_START(c), gomp_self_start, __ATOMIC_RELEASE);
    __atomic_store_n(RING_WRITER_PID(c), gomp_self_pid, __ATOMIC_RELEASE);
    __atomic_store_n(RING_WRITER_TID(c), thread_id, __ATOMIC_RELEASE);
    return 1;
}

static void
unlock_writer(char *c)
{
    __atomic_store_n(RING_WRITER_TID(c), 0, __ATOMIC_RELEASE);
    __atomic_store_n(RING_WRITER_LOCK(c), 0, __ATOMIC_SEQ_CST);
    wake_sleepers(RING_LOCK_WAITERS(c), RING_WRITER_LOCK(c));
}

/* 1 when the message was written; 0 when it must go through Go. */
static int
fast_send(pipe_view *v, const char *buf, uint64_t n)
{
    char *c = v->l.out_ctl;
    if (c == NULL || n > FAST_MAX || __atomic_load_n(v->l.peer_open, __ATOMIC_SEQ_CST) == 0)
        return 0;
    long long now = gomp_now_ns();
    if (now - v->alive_checked > ALIVE_CHECK_NS) {
        struct pollfd p = {v->l.sock, POLLIN | POLLRDHUP, 0};
        if (poll(&p, 1, 0) != 0)
            return 0; /* hung up, or descriptors pending: Go decides */
        v->alive_checked = now;
    }
    if (!try_lock_writer(c))
        return 0; /* another writer: Go waits for it */
    uint64_t tail = __atomic_load_n(RING_TAIL(c), __ATOMIC_RELAXED);
    uint64_t head = __atomic_load_n(RING_HEAD(c), __ATOMIC_ACQUIRE);
    if (v->l.size - (tail - head) < GOMP_PIPE_MSG_HEADER + n) {
        unlock_writer(c);
        return 0;
    }
    uint64_t hdr = n; /* little-endian on every platform gomp runs on */
    pipe_copy_in(v->l.out_data, v->l.size, tail, (const char *)&hdr, GOMP_PIPE_MSG_HEADER);
    pipe_copy_in(v->l.out_data, v->l.size, tail + GOMP_PIPE_MSG_HEADER, buf, n);
    __atomic_store_n(RING_TAIL(c), tail + GOMP_PIPE_MSG_HEADER + n, __ATOMIC_SEQ_CST);
    wake_sleepers(RING_READER_SLEEPING(c), RING_TAIL(c));
    uint32_t zero = 0;
    if (__atomic_load_n(RING_WANT_FD(c), __ATOMIC_SEQ_CST) &&
        __atomic_compare_exchange_n(RING_SIGNALED(c), &zero, 1, 0, __ATOMIC_SEQ_CST,
                                    __ATOMIC_SEQ_CST))
        event_signal(v->l.out_ev);
    unlock_writer(c);
    return 1;
}

static uint64_t
ring_used(char *c)
{
    return __atomic_load_n(RING_TAIL(c), __ATOMIC_SEQ_CST) -
           __atomic_load_n(RING_HEAD(c), __ATOMIC_SEQ_CST);
}

/* The next message, when it is whole in the ring, small, without
 * descriptors and within maxlength (-1: any): a new bytes object. NULL
 * without an exception when it must go through Go. */
static PyObject *
fast_recv(pipe_view *v, long long maxlength)
{
    char *c = v->l.in_ctl;
    if (c == NULL)
        return NULL;
    uint64_t head = __atomic_load_n(RING_HEAD(c), __ATOMIC_RELAXED);
    uint64_t used = __atomic_load_n(RING_TAIL(c), __ATOMIC_ACQUIRE) - head;
    if (used < GOMP_PIPE_MSG_HEADER)
        return NULL;
    uint64_t hdr;
    pipe_copy_out(v->l.in_data, v->l.size, head, (char *)&hdr, GOMP_PIPE_MSG_HEADER);
    uint64_t n = hdr & GOMP_PIPE_MSG_LEN_MASK;
    if ((hdr >> GOMP_PIPE_FDS_SHIFT) != 0 || used < GOMP_PIPE_MSG_HEADER + n || n > FAST_MAX ||
        (maxlength >= 0 && n > (uint64_t)maxlength))
        return NULL;
    PyObject *data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (data == NULL) {
        PyErr_Clear(); /* let Go skip it and report */
        return NULL;
    }
    pipe_copy_out(v->l.in_data, v->l.size, head + GOMP_PIPE_MSG_HEADER, PyBytes_AS_STRING(data), n);
    __atomic_store_n(RING_HEAD(c), head + GOMP_PIPE_MSG_HEADER + n, __ATOMIC_SEQ_CST);
    wake_sleepers(RING_WRITER_SLEEPING(c), RING_HEAD(c));
    if (__atomic_load_n(RING_SIGNALED(c), __ATOMIC_SEQ_CST) && ring_used(c) == 0) {
        /* empty again: clear the eventfd (see ring.drain in Go) */
        __atomic_store_n(RING_SIGNALED(c), 0, __ATOMIC_SEQ_CST);
        uint64_t cnt;
        ssize_t r = read(v->l.in_ev, &cnt, sizeof(cnt));
        (void)r;
        if (ring_used(c) != 0) {
            __atomic_store_n(RING_SIGNALED(c), 1, __ATOMIC_SEQ_CST);
            event_signal(v->l.in_ev);
        }
    }
    return data;
}

/* ---- waiting ---- */

static long ncpus; /* no spinning on one CPU: the other side cannot run meanwhile */

/* What a wait is for: need bytes of data in the ring at c (a reader), or of
 * room in it (out: a writer). */
typedef struct {
    pipe_view *v;
    char *c;
    int out;
    uint64_t need;
} pipe_cond;

static int
cond_holds(const pipe_cond *w)
{
    uint64_t used = ring_used(w->c);
    return w->out ? w->v->l.size - used >= w->need : used >= w->need;
}

/* whether every copy of the other end is closed (or its processes died) */
static int
peer_hung_up(pipe_view *v)
{
    struct pollfd p = {v->l.sock, POLLIN | POLLRDHUP, 0};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR));
}

static int
spin_until(spinner *s, const pipe_cond *w, long long end)
{
    if (ncpus == 0)
        ncpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpus < 2 || (__atomic_load_n(&s->failures, __ATOMIC_RELAXED) >= SPIN_GIVE_UP &&
                      __atomic_add_fetch(&s->skipped, 1, __ATOMIC_RELAXED) % SPIN_PROBE != 0))
        return 0;
    long long spin_end = gomp_now_ns() + SPIN_NS;
    if (spin_end > end)
        spin_end = end;
    for (int i = 1;; i++) {
        if (cond_holds(w)) {
            __atomic_store_n(&s->failures, 0, __ATOMIC_RELAXED);
            return 1;
        }
        gomp_spin_step(i);
        if ((i & 31) == 0 && gomp_now_ns() >= spin_end) {
            __atomic_add_fetch(&s->failures, 1, __ATOMIC_RELAXED);
            return 0;
        }
    }
}

/* Wait until end (gomp_now_ns time) for w's condition or the peer's
 * hang-up: 1 for either (the Go step that follows tells them apart), 0 when
 * the time ran out or a signal came, -EBADF when the end is being closed.
 * A sleeper announces itself in the ring's sleeping flag after reading the
 * position it sleeps on, and the side that moves the position clears the
 * flag and wakes every sleeper (pipe.go, wakeSleepers): a move between the
 * read and the flag is seen by the check that follows, one after it wakes
 * the sleep or fails it at once. */
static int
pipe_wait(const pipe_cond *w, long long end)
{
    if (cond_holds(w) || spin_until(w->out ? &w->v->send_spin : &w->v->recv_spin, w, end))
        return 1;
    uint32_t *pos = (uint32_t *)(w->out ? RING_HEAD(w->c) : RING_TAIL(w->c));
    uint32_t *flag = w->out ? RING_WRITER_SLEEPING(w->c) : RING_READER_SLEEPING(w->c);
    for (;;) {
        if (__atomic_load_n(&w->v->closing, __ATOMIC_SEQ_CST))
            return -EBADF;
        uint32_t seen = __atomic_load_n(pos, __ATOMIC_SEQ_CST);
        __atomic_store_n(flag, 1, __ATOMIC_SEQ_CST);
        if (cond_holds(w) || peer_hung_up(w->v))
            return 1;
        if (!gomp_sleep_until(pos, seen, end) || gomp_now_ns() >= end)
            return cond_holds(w);
    }
}

/* Wait until end for the writer lock of the ring at c to change hands: 1
 * when it is free or changed, 0 when the time ran out (its holder may have
 * died: Go's step judges that), -EBADF when the end is being closed. */
static int
lock_wait(pipe_view *v, char *c, long long end)
{
    uint32_t *lock = RING_WRITER_LOCK(c);
    uint32_t held = __atomic_load_n(lock, __ATOMIC_SEQ_CST);
    if (held == 0)
        return 1;
    __atomic_store_n(RING_LOCK_WAITERS(c), 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(lock, __ATOMIC_SEQ_CST) != held)
        return 1;
    int woken = gomp_sleep_until(lock, held, end);
    if (__atomic_load_n(&v->closing, __ATOMIC_SEQ_CST))
        return -EBADF;
    return woken || __atomic_load_n(lock, __ATOMIC_SEQ_CST) != held;
}

/* pipe_close: wake every waiter of this process on the end's words, then
 * wait for them to leave (they see closing). The GIL is released meanwhile
 * so that they can take it to return. */
static void
view_close(pipe_view *v)
{
    __atomic_store_n(&v->closing, 1, __ATOMIC_SEQ_CST);
    char *ctls[2] = {v->l.in_ctl, v->l.out_ctl};
    for (int i = 0; i < 2; i++) {
        if (ctls[i] == NULL)
            continue;
        futex_wake_all(RING_TAIL(ctls[i]));
        futex_wake_all(RING_HEAD(ctls[i]));
        gomp_futex_wake(RING_WRITER_LOCK(ctls[i]), INT_MAX);
    }
    if (__atomic_load_n(&v->users, __ATOMIC_SEQ_CST) == 0)
        return;
    Py_BEGIN_ALLOW_THREADS
    while (__atomic_load_n(&v->users, __ATOMIC_SEQ_CST) != 0)
        usleep(100);
    Py_END_ALLOW_THREADS
}

/* ---- the steps: a wait here, then Go ---- */

typedef struct {
    pipe_view *v;
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
    int began; /* a header was taken: the end of the stream cuts a message */
} pipe_op;

/* Turn gomp_wait_sliced's -1 for the end of the stream into EOFError, or
 * into an OSError when it cut a message short. */
static int
finish(pipe_op *op, int rc)
{
    if (rc < 0 && op->eof) {
        PyErr_Clear();
        if (op->began)
            PyErr_SetString(PyExc_OSError, "got end of file during message");
        else
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

/* waits for a good share of the ring, not for one byte: a large message
 * then moves in big copies, not in a ping-pong of small ones */
static uint64_t
share_of_ring(pipe_view *v, uint64_t left)
{
    return left < v->l.size / 4 ? left : v->l.size / 4;
}

static int
send_step(void *arg, long long slice)
{
    pipe_op *op = arg;
    long long end = gomp_now_ns() + slice;
    char *c = op->v->l.out_ctl;
    for (;;) {
        int w;
        if (op->progress == 0) {
            w = lock_wait(op->v, c, end);
        } else {
            uint64_t written = op->progress < 0 ? 0 : (uint64_t)op->progress;
            pipe_cond room = {op->v, c, 1,
                              share_of_ring(op->v, GOMP_PIPE_MSG_HEADER + op->n - written)};
            w = pipe_wait(&room, end);
        }
        if (w < 0)
            return w;
        /* also when the time ran out: Go takes over a dead writer's lock */
        int rc = note_eof(
            op, go.GompPipeSendStep(op->handle, op->buf, op->n, op->fds, op->nfds, &op->progress));
        if (rc != 0 || w == 0)
            return rc;
    }
}

static int
header_step(void *arg, long long slice)
{
    pipe_op *op = arg;
    pipe_cond header = {op->v, op->v->l.in_ctl, 0, GOMP_PIPE_MSG_HEADER};
    int w = pipe_wait(&header, gomp_now_ns() + slice);
    if (w <= 0)
        return w;
    return note_eof(op, go.GompPipeRecvHeaderStep(op->handle, &op->len, op->rfds, &op->rnfds));
}

static int
body_step(void *arg, long long slice)
{
    pipe_op *op = arg;
    long long end = gomp_now_ns() + slice;
    for (;;) {
        pipe_cond data = {op->v, op->v->l.in_ctl, 0,
                          share_of_ring(op->v, op->n - (uint64_t)op->progress)};
        int w = pipe_wait(&data, end);
        if (w <= 0)
            return w;
        int rc = note_eof(op, go.GompPipeRecvBodyStep(op->handle, op->buf, op->n, &op->progress));
        if (rc != 0)
            return rc;
    }
}

/* a pipe_cond holds, or the stream ended: no Go at all */
static int
poll_step(void *arg, long long slice)
{
    return pipe_wait(arg, gomp_now_ns() + slice);
}

/* An operation on the end h that may wait: with its view entered (op->v),
 * or -1 with OSError set. A receive needs the incoming ring, a send the
 * outgoing one. */
static int
op_begin(pipe_op *op, int h, int out)
{
    memset(op, 0, sizeof(*op));
    op->handle = h;
    if ((op->v = view_enter(h)) == NULL)
        return -1;
    if ((out ? op->v->l.out_ctl : op->v->l.in_ctl) == NULL) {
        view_leave(op->v);
        op->v = NULL;
        gomp_errno_error(-EBADF);
        return -1;
    }
    return 0;
}

static void
op_end(pipe_op *op)
{
    if (op->v != NULL)
        view_leave(op->v);
    op->v = NULL;
}

static PyObject *
conn_pipe_new(PyObject *self, PyObject *args)
{
    int duplex, out[2];
    long long ring = 0;
    if (!PyArg_ParseTuple(args, "p|L", &duplex, &ring) || gomp_usable() < 0)
        return NULL;
    int rc = go.GompPipeNew(duplex, ring, out);
    if (rc < 0)
        return gomp_errno_error(rc);
    if (view_add(out[0]) < 0 || view_add(out[1]) < 0) {
        view_drop(out[0]);
        go.GompPipeClose(out[0]);
        go.GompPipeClose(out[1]);
        return NULL;
    }
    return Py_BuildValue("ii", out[0], out[1]);
}

static PyObject *
conn_pipe_open(PyObject *self, PyObject *args)
{
    int f[6];
    if (!PyArg_ParseTuple(args, "(iiiiii)", &f[0], &f[1], &f[2], &f[3], &f[4], &f[5]) ||
        gomp_usable() < 0)
        return NULL;
    int rc = go.GompPipeOpen(f);
    if (rc < 0)
        return gomp_errno_error(rc);
    if (view_add(rc) < 0) {
        go.GompPipeClose(rc);
        return NULL;
    }
    return PyLong_FromLong(rc);
}

static PyObject *
conn_pipe_files(PyObject *self, PyObject *args)
{
    int h, f[6];
    if (!PyArg_ParseTuple(args, "i", &h) || gomp_usable() < 0)
        return NULL;
    int rc = go.GompPipeFiles(h, f);
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
    pipe_view *v = view_get(h);
    if (v == NULL)
        return gomp_errno_error(-EBADF); /* closed, or closing in another thread */
    /* no fast path or wait uses the mapping once this returns */
    view_close(v);
    view_drop(h);
    /* waits for the Go steps of other threads on this end to leave Go */
    Py_BEGIN_ALLOW_THREADS
    rc = go.GompPipeClose(h);
    Py_END_ALLOW_THREADS
    return gomp_none_or_errno(rc);
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
    if (gomp_usable() < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    pipe_view *pv = view_get(h);
    if (pv != NULL && (fdseq == Py_None || PyObject_Length(fdseq) == 0) &&
        fast_send(pv, view.buf, (uint64_t)view.len)) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    PyErr_Clear();
    pipe_op op;
    if (op_begin(&op, h, 1) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    op.buf = view.buf;
    op.n = (size_t)view.len;
    int rc = -1;
    if (fdseq == Py_None || gomp_int_array(fdseq, &op.fds, &op.nfds) == 0) {
        rc = finish(&op, gomp_wait_sliced(send_step, &op, -1));
        if (rc < 0)
            go.GompPipeSendAbort(h); /* interrupted (Ctrl-C) or failed */
    }
    op_end(&op);
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
 * transparent huge pages are on "madvise"). The advice covers the buffer's
 * pages whole, so that its mapping stays one that realloc can move with
 * mremap when it grows (half of one would be split off and refused). */
static void
prefer_huge_pages(char *buf, size_t n)
{
    if (n < (8u << 20))
        return;
    size_t page = 4096;
    uintptr_t start = (uintptr_t)buf & ~(uintptr_t)(page - 1);
    uintptr_t end = ((uintptr_t)buf + n + page - 1) & ~(uintptr_t)(page - 1);
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
    op->began = 1;
    if (op->len == 0)
        return 1;
    return finish(op, gomp_wait_sliced(body_step, op, -1));
}

/* A payload is received into a buffer that grows RECV_GROW bytes at a time
 * as it arrives: the receiver reserves at most RECV_GROW bytes beyond what
 * arrived, whatever the header claims (any process of the user may write
 * into the ring), and the pages it touches hold what arrived. Up to
 * RECV_GROW a message takes one allocation, as before; growing in smaller
 * steps doubled the CPU time of receiving 64 MiB (moves, small faults). */
#define RECV_GROW (64 << 20)

/* The payload of the message whose header op holds: a new bytes object, or
 * NULL with an exception (the rest of the payload skipped). */
static PyObject *
read_payload(pipe_op *op)
{
    Py_ssize_t len = (Py_ssize_t)op->len; /* < 2**56 */
    Py_ssize_t cap = len < RECV_GROW ? len : RECV_GROW;
    PyObject *data = PyBytes_FromStringAndSize(NULL, cap);
    op->progress = 0;
    op->began = 1;
    for (;;) {
        if (data == NULL) {
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);
            op->buf = NULL; /* skip the rest, the stream stays in step */
            op->n = (size_t)len;
            finish(op, gomp_wait_sliced(body_step, op, -1));
            PyErr_Restore(t, v, tb);
            return NULL;
        }
        op->buf = PyBytes_AS_STRING(data);
        op->n = (size_t)cap;
        prefer_huge_pages(op->buf, op->n);
        if (cap > 0 && finish(op, gomp_wait_sliced(body_step, op, -1)) < 0) {
            Py_DECREF(data);
            return NULL;
        }
        if (cap == len)
            return data;
        cap = len - cap <= RECV_GROW ? len : cap + RECV_GROW;
        if (_PyBytes_Resize(&data, cap) < 0)
            data = NULL;
    }
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
    pipe_view *pv = view_get(h);
    if (pv != NULL) {
        PyObject *data = fast_recv(pv, maxlength);
        if (data != NULL) {
            PyObject *res = Py_BuildValue("(N[])", data);
            return res;
        }
    }
    pipe_op op;
    if (op_begin(&op, h, 0) < 0)
        return NULL;
    PyObject *res = NULL, *data = NULL, *fds = NULL;
    /* a small message that arrives while we wait is taken here too */
    pipe_cond header = {op.v, op.v->l.in_ctl, 0, GOMP_PIPE_MSG_HEADER};
    if (gomp_wait_sliced(poll_step, &header, -1) < 0)
        goto done;
    if ((data = fast_recv(op.v, maxlength)) != NULL) {
        res = Py_BuildValue("(O[])", data);
        goto done;
    }
    if (finish(&op, gomp_wait_sliced(header_step, &op, -1)) < 0)
        goto done;
    if (maxlength >= 0 && op.len > maxlength) {
        close_fds(&op);
        if (read_body(&op, NULL) >= 0)
            res = Py_BuildValue("(OL)", Py_None, op.len);
        goto done;
    }
    if ((data = read_payload(&op)) == NULL || (fds = fd_list(&op)) == NULL) {
        close_fds(&op);
        goto done;
    }
    res = PyTuple_Pack(2, data, fds);
done:
    op_end(&op);
    Py_XDECREF(data);
    Py_XDECREF(fds);
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
    if (gomp_usable() < 0)
        goto done;
    if (offset < 0 || offset > view.len) {
        PyErr_SetString(PyExc_ValueError, "offset out of bounds");
        goto done;
    }
    if (op_begin(&op, h, 0) < 0)
        goto done;
    if (finish(&op, gomp_wait_sliced(header_step, &op, -1)) < 0)
        goto done;
    PyObject *whole;
    if (op.len > view.len - offset) {
        /* too long for the buffer: the whole message goes with the error */
        whole = read_payload(&op);
        if (whole == NULL) {
            close_fds(&op);
            goto done;
        }
    } else {
        whole = Py_None;
        Py_INCREF(whole);
        if (read_body(&op, (char *)view.buf + offset) < 0) {
            close_fds(&op);
            Py_DECREF(whole);
            goto done;
        }
    }
    PyObject *fds = fd_list(&op);
    if (fds == NULL) {
        close_fds(&op);
        Py_DECREF(whole);
        goto done;
    }
    res = Py_BuildValue("(LNN)", op.len, fds, whole);
done:
    op_end(&op);
    PyBuffer_Release(&view);
    return res;
}

static PyObject *
conn_pipe_poll(PyObject *self, PyObject *args)
{
    int h;
    long long ns;
    if (gomp_parse_wait_args(args, &h, &ns) < 0)
        return NULL;
    pipe_view *pv = view_get(h);
    if (pv != NULL && pv->l.in_ctl != NULL && ring_used(pv->l.in_ctl) > 0)
        Py_RETURN_TRUE;
    pipe_op op;
    if (op_begin(&op, h, 0) < 0)
        return NULL;
    pipe_cond any = {op.v, op.v->l.in_ctl, 0, 1};
    PyObject *res = gomp_wait_bool(poll_step, &any, ns);
    op_end(&op);
    return res;
}

/* f(handle) for a Go export that takes the handle alone */
static PyObject *
on_handle(PyObject *args, int (*export)(int), PyObject *(*result)(int))
{
    int h;
    if (!PyArg_ParseTuple(args, "i", &h) || gomp_usable() < 0)
        return NULL;
    return result(export(h));
}

static PyObject *
conn_pipe_fileno(PyObject *self, PyObject *args)
{
    return on_handle(args, go.GompPipeFileno, gomp_long_or_errno);
}

static PyObject *
conn_pipe_reserve(PyObject *self, PyObject *args)
{
    return on_handle(args, go.GompPipeReserve, gomp_none_or_errno);
}

/* pipe_<name>, made by conn_pipe_<name> */
#define PIPE_METHOD(name, doc) {"pipe_" #name, conn_pipe_##name, METH_VARARGS, doc}

PyMethodDef gomp_connection_methods[] = {
    PIPE_METHOD(reserve, "pipe_reserve(handle): count a copy of the end being pickled for another "
                         "process."),
    PIPE_METHOD(new, "pipe_new(duplex[, ring_size]) -> (handle, handle): a shared-memory pipe."),
    PIPE_METHOD(open, "pipe_open(files) -> handle: open an end from its six descriptors/values."),
    PIPE_METHOD(files, "pipe_files(handle) -> (mem, sock, ev0, ev1, in, out)."),
    PIPE_METHOD(close, "pipe_close(handle)."),
    PIPE_METHOD(send, "pipe_send(handle, data[, fds])."),
    PIPE_METHOD(recv, "pipe_recv(handle[, maxlength]) -> (bytes, fds) or (None, size)."),
    PIPE_METHOD(recv_into,
                "pipe_recv_into(handle, buffer[, offset]) -> (size, fds, None or bytes)."),
    PIPE_METHOD(poll, "pipe_poll(handle[, timeout]) -> bool."),
    PIPE_METHOD(fileno,
                "pipe_fileno(handle) -> fd readable when a message waits or the peer closed."),
    {NULL, NULL, 0, NULL},
};
