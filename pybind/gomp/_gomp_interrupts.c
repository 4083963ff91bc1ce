/* _gomp, interrupts: Ctrl-C held back while the main thread is between two
 * writes that must both happen.
 *
 * Python raises KeyboardInterrupt in the main thread between any two
 * bytecodes. A caller that reads its own result (gomp.futures, through
 * pool.py's Pool._await) takes records that other calls wait for too: one
 * raised after they were taken and before each was handed out would lose
 * them, and their futures would never complete. Submitting has such a gap
 * too (a task off the pool's queue and not yet sent). So the main thread
 * defers SIGINT at the C level: a handler of ours is put in front of
 * Python's (Python's table, and so signal.getsignal(), do not change), and
 * while deferring it only notes a SIGINT. The noted one is passed on to
 * Python's handler, which raises KeyboardInterrupt, only where nothing is
 * lost: in a gomp wait while the thread holds nothing (at the wait's next
 * slice, gomp_interrupts_pass_on), so that Ctrl-C still ends a wait for a
 * result, and at release_interrupts(), once what a read took
 * (gomp_interrupts_hold) is handed out or the submitted tasks are sent. */
#include "_gomp.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>

/* the handler ours passes SIGINT on to (Python's, a plain sa_handler) */
static struct sigaction chained;
static volatile sig_atomic_t deferring, holding, noted;
/* the thread that defers (the main thread): only its reads hold, and only
 * its waits pass a noted SIGINT on */
static pthread_t deferrer;

static inline int
is_deferrer(void)
{
    return deferring && pthread_equal(pthread_self(), deferrer);
}

static void
pass_on(int sig)
{
    void (*h)(int) = chained.sa_handler;
    if (h != SIG_DFL && h != SIG_IGN && h != NULL)
        h(sig);
}

static void
on_sigint(int sig, siginfo_t *info, void *ctx)
{
    (void)info;
    (void)ctx;
    int saved = errno;
    if (deferring)
        noted = 1;
    else
        pass_on(sig);
    errno = saved;
}

static void
pass_noted(void)
{
    if (noted) {
        noted = 0;
        pass_on(SIGINT);
    }
}

void
gomp_interrupts_pass_on(void)
{
    if (is_deferrer() && !holding)
        pass_noted();
}

void
gomp_interrupts_hold(void)
{
    if (is_deferrer())
        holding = 1;
}

/* Our handler in front of SIGINT's, if Python's is there (re-done when
 * signal.signal() put Python's back): 1 in place, 0 nothing to hold back
 * (SIG_IGN, or SIG_DFL: Python raises nothing), 2 another C handler, not
 * ours to wrap, -1 error. */
/* a child forked while the main thread deferred (from another thread)
 * starts with nothing deferred, or it would never see Ctrl-C */
static void
reset_in_child(void)
{
    deferring = 0;
    holding = 0;
    noted = 0;
}

static int
install(void)
{
    static int atfork_set;
    if (!atfork_set && pthread_atfork(NULL, NULL, reset_in_child) == 0)
        atfork_set = 1;
    struct sigaction cur;
    if (sigaction(SIGINT, NULL, &cur) < 0)
        return -1;
    if (cur.sa_flags & SA_SIGINFO)
        return cur.sa_sigaction == on_sigint ? 1 : 2;
    if (cur.sa_handler == SIG_DFL || cur.sa_handler == SIG_IGN)
        return 0;
    /* ours is not installed now: nothing reads chained meanwhile */
    chained = cur;
    struct sigaction ours = cur;
    ours.sa_sigaction = on_sigint;
    ours.sa_flags = (cur.sa_flags | SA_SIGINFO) & ~SA_RESETHAND;
    return sigaction(SIGINT, &ours, NULL) < 0 ? -1 : 1;
}

/* what defer_interrupts() returns and release_interrupts() restores: the
 * state before (bit 0 deferring, bit 1 holding), or one of these */
#define NOTHING_TO_DEFER (-2) /* no Python handler: nothing raises */
#define CANNOT_DEFER (-1)     /* a handler not ours to wrap */

static void
restore(long state)
{
    if (state < 0)
        return;
    deferring = (state & 1) != 0;
    holding = (state & 2) != 0;
    if (!holding)
        pass_noted();
}

static PyObject *
interrupts_defer(PyObject *self, PyObject *hold)
{
    int h = PyObject_IsTrue(hold);
    if (h < 0)
        return NULL;
    int rc = install();
    if (rc < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    if (rc != 1)
        return PyLong_FromLong(rc == 0 ? NOTHING_TO_DEFER : CANNOT_DEFER);
    long state = (deferring ? 1 : 0) | (holding ? 2 : 0);
    deferrer = pthread_self();
    deferring = 1;
    /* a SIGINT Python has already seen raises now, before anything is held */
    if (PyErr_CheckSignals() < 0) {
        restore(state);
        return NULL;
    }
    holding = holding || h;
    return PyLong_FromLong(state);
}

static PyObject *
interrupts_release(PyObject *self, PyObject *state)
{
    long s = PyLong_AsLong(state);
    if (s == -1 && PyErr_Occurred())
        return NULL;
    restore(s);
    Py_RETURN_NONE;
}

PyMethodDef gomp_interrupts_methods[] = {
    {"defer_interrupts", interrupts_defer, METH_O,
     "defer_interrupts(hold) -> state: from the main thread, hold SIGINT back "
     "(outside its waits, and in them too while it holds records: from a read "
     "that takes some, or at once with hold) until release_interrupts(state). "
     "-2: nothing to hold back (SIG_IGN, SIG_DFL); -1: SIGINT's handler is "
     "not Python's, and cannot be held back."},
    {"release_interrupts", interrupts_release, METH_O,
     "release_interrupts(state): back to state (1: deferring, holding "
     "nothing); a held-back SIGINT goes on to Python, which raises "
     "KeyboardInterrupt after this call, unless state still holds."},
    {NULL, NULL, 0, NULL},
};
