/* Shared declarations of the _gomp extension.
 *
 * The extension is one module built from one C file per area
 * (_gomp_<area>.c). Each area declares the Go exports it needs with
 * GOMP_IMPORTS, resolved when the Go core is loaded, and its Python
 * functions in a PyMethodDef table; _gompmodule.c lists the tables. Every
 * function that calls into Go first calls gomp_usable().
 */
#ifndef GOMP_H
#define GOMP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
/* PyMemberDef's T_* types and READONLY (Python.h has them only from 3.12) */
#include <structmember.h>
#include <sched.h>
#include <stdint.h>

/* cgo's header of the Go core's exports, for their types only: the library
 * is not linked but loaded with dlopen. setup.py keeps it in the build
 * directory, on the include path (<>: never a stale copy beside this file). */
#include <_gocore.h>
/* the shared layouts and constants, generated from the Go core's */
#include "_gomp_layout.h"

typedef struct {
    const char *name; /* exported Go symbol */
    void **slot;      /* where its address goes */
} gomp_symbol;

/* An area's Go imports: LIST(X) names each export the area calls as X(Name).
 * GOMP_IMPORTS(area, LIST) defines go.Name, a pointer of the type cgo
 * declares for Name (so that a change of a Go signature breaks this build),
 * and the table gomp_<area>_symbols that fills them. */
#define GOMP_SLOT(name) __typeof__(&name) name;
#define GOMP_SYMBOL(name) {#name, (void **)&go.name},
#define GOMP_IMPORTS(area, LIST)                                                                   \
    static struct {                                                                                \
        LIST(GOMP_SLOT)                                                                            \
    } go;                                                                                          \
    gomp_symbol gomp_##area##_symbols[] = {LIST(GOMP_SYMBOL){NULL, NULL}}

/* 0 when Go may be called; -1 with RuntimeError set if the Go core is not
 * loaded or this process was forked after it was. */
int gomp_usable(void);

/* The first fields of a type of the extension: its name (in gomp._gomp),
 * the struct of its objects and its tp_dealloc. */
#define GOMP_TYPE_HEAD(name, object, dealloc)                                                      \
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gomp._gomp." name,                                  \
    .tp_basicsize = sizeof(object), .tp_dealloc = (destructor)(dealloc)

/* Raise OSError for a negative errno returned by the Go core. */
PyObject *gomp_errno_error(int negerr);

/* The Python result of a call that returns a negative errno on failure:
 * OSError then, else None or the result as an int. */
static inline PyObject *
gomp_none_or_errno(int rc)
{
    if (rc < 0)
        return gomp_errno_error(rc);
    Py_RETURN_NONE;
}

static inline PyObject *
gomp_long_or_errno(int rc)
{
    return rc < 0 ? gomp_errno_error(rc) : PyLong_FromLong(rc);
}

/* Parse a Python timeout: None -> -1 (forever), seconds -> nanoseconds;
 * negative values count as 0 as in the stdlib. */
int gomp_parse_timeout(PyObject *obj, long long *ns);

long long gomp_now_ns(void);

/* Futex waits and wakes on 32-bit words of shared segments, made here as
 * system calls, never through Go: a call into Go by a thread that was idle
 * wakes Go's runtime threads, measured at 20 us of CPU and 3-4 context
 * switches per call against one context switch for the futex alone (a lock
 * handed between two processes: 51 us per round trip with the sleep in Go,
 * 3.6 us with it here). gomp_futex_wait sleeps while *addr == val, at most
 * ns (-1: no limit): 1 when woken or the word differs, 0 when the time ran
 * out or a signal came. gomp_futex_wake wakes up to n sleepers: how many,
 * or a negative errno. */
int gomp_futex_wait(uint32_t *addr, uint32_t val, long long ns);
int gomp_futex_wake(uint32_t *addr, int n);

/* Read a sequence of ints into a PyMem_Malloc'ed array. */
int gomp_int_array(PyObject *seq, int **out, int *n);

/* One bounded step of a blocking wait; called without the GIL. Returns >0
 * when done, 0 when the slice ran out, a negative errno on failure. */
typedef int (*gomp_wait_step)(void *arg, long long slice_ns);

/* Repeat step with the GIL released, in slices of at most GOMP_SLICE_NS,
 * checking for signals between slices (so Ctrl-C interrupts the wait at
 * once even when SIGINT lands on a Go thread), until it is done or
 * timeout_ns (-1: forever) passes. Returns step's result (>0), 0 on
 * timeout, -1 with an exception set. */
int gomp_wait_sliced(gomp_wait_step step, void *arg, long long timeout_ns);

#define GOMP_SLICE_NS (20 * 1000 * 1000LL)

/* The (int, timeout=None) arguments of a wait on a descriptor or a handle,
 * with Go usable: 0, or -1 with an exception set. */
int gomp_parse_wait_args(PyObject *args, int *i, long long *ns);

/* gomp_wait_sliced as a Python result: True when done, False on timeout,
 * NULL with an exception set. */
PyObject *gomp_wait_bool(gomp_wait_step step, void *arg, long long timeout_ns);

/* A whole Python wait on a descriptor or a handle, f(i, timeout=None) ->
 * bool: gomp_parse_wait_args, then gomp_wait_bool of step with &i. */
PyObject *gomp_wait_on_int(PyObject *args, gomp_wait_step step);

/* The (block=True, timeout=None) arguments of a vectorcall (get, acquire):
 * alias is another name for block ("blocking"), or NULL. *timeout is NULL
 * when not given. 0, or -1 with TypeError set. */
static inline int
gomp_parse_block_timeout(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames, const char *alias, int *block, PyObject **timeout)
{
    PyObject *b = nargs > 0 ? args[0] : NULL;
    *timeout = nargs > 1 ? args[1] : NULL;
    *block = 1;
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most 2 arguments", fname);
        return -1;
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i), *v = args[nargs + i], **slot;
        if (PyUnicode_CompareWithASCIIString(k, "block") == 0 ||
            (alias != NULL && PyUnicode_CompareWithASCIIString(k, alias) == 0))
            slot = &b;
        else if (PyUnicode_CompareWithASCIIString(k, "timeout") == 0)
            slot = timeout;
        else {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname,
                         k);
            return -1;
        }
        if (*slot != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%U'", fname, k);
            return -1;
        }
        *slot = v;
    }
    if (b != NULL && (*block = PyObject_IsTrue(b)) < 0)
        return -1;
    return 0;
}

/* This process's identity as lock holders record it (gomp.Self: pid and
 * start time, against pid reuse), set when the Go core is loaded. */
extern uint32_t gomp_self_pid;
extern uint64_t gomp_self_start;

/* ---- lock words: the steps that gomp's locks share. A lock taken through
 * gomp_holder_take is a gomp.Holder (gomp/liveness.go): the word (0 free,
 * else the holder's id), then the holder's pid and start time, recorded
 * after the word is taken and cleared before it is let go. */

#define GOMP_HOLDER_PID(w) ((uint32_t *)((char *)(w) + GOMP_HOLDER_OFF_PID))
#define GOMP_HOLDER_START(w) ((uint64_t *)((char *)(w) + GOMP_HOLDER_OFF_START))

static inline void
gomp_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* one step of a busy wait: pause, and every 16th step give the CPU away,
 * since with more processes than cores the one we wait for may need it */
static inline void
gomp_spin_step(int i)
{
    if ((i & 15) == 15)
        sched_yield();
    else
        gomp_cpu_relax();
}

static inline void
gomp_holder_record(uint32_t *w)
{
    __atomic_store_n(GOMP_HOLDER_START(w), gomp_self_start, __ATOMIC_RELEASE);
    __atomic_store_n(GOMP_HOLDER_PID(w), gomp_self_pid, __ATOMIC_RELEASE);
}

/* Take a free holder word as id (this process's pid, with flags): 1 taken
 * (and recorded), 0 busy. */
static inline int
gomp_holder_take(uint32_t *w, uint32_t id)
{
    uint32_t z = 0;
    if (!__atomic_compare_exchange_n(w, &z, id, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return 0;
    gomp_holder_record(w);
    return 1;
}

/* A lock waiter's sleep on w, seen holding v, until end (gomp_now_ns
 * time): 1 woken or w changed, 0 the time ran out or a signal came. */
static inline int
gomp_sleep_until(uint32_t *w, uint32_t v, long long end)
{
    long long left = end - gomp_now_ns();
    return left > 0 ? gomp_futex_wait(w, v, left) : 0;
}

/* areas */
extern gomp_symbol gomp_process_symbols[];
extern PyMethodDef gomp_process_methods[];
extern gomp_symbol gomp_connection_symbols[];
extern PyMethodDef gomp_connection_methods[];
extern gomp_symbol gomp_sync_symbols[];
extern PyMethodDef gomp_sync_methods[];
extern gomp_symbol gomp_queues_symbols[];
extern PyMethodDef gomp_queues_methods[];
extern gomp_symbol gomp_ring_symbols[];
extern PyMethodDef gomp_encode_methods[];
extern gomp_symbol gomp_pool_symbols[];
extern PyMethodDef gomp_pool_methods[];
extern PyMethodDef gomp_interrupts_methods[];

/* SIGINT held back while the main thread hands out what a read took
 * (_gomp_interrupts.c): a read that took records holds it until resumed;
 * a wait passes a held-back one on while nothing is held */
void gomp_interrupts_hold(void);
void gomp_interrupts_pass_on(void);

#endif
