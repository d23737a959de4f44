// Where and how promptly the agent's threads run (common/cpu-split.ts). Node has no API for
// either: sched_setaffinity(2) for a thread or a child process, and sched_setattr(2) for the
// calling thread's niceness and, on Linux 6.12 and later (EEVDF), its requested time slice. A
// short slice lets a thread that wakes preempt the one running at once instead of at the end of
// that one's slice (up to a tick, 4 ms at HZ=250); older kernels ignore the field for these threads.
//
//   getAffinity(tid)            CPUs tid may run on (0: the calling thread), ascending
//   setAffinity(tid, cpus)      restricts tid to cpus (a thread or a single-threaded child)
//   getNice()                   the calling thread's niceness
//   setLatency(nice, sliceNs)   SCHED_OTHER with that niceness and slice for the calling thread
//   setFifo(priority)           SCHED_FIFO at that priority for the calling thread
//
// Failures throw an Error with `code` set to the errno name (EPERM without CAP_SYS_NICE, ...).
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

// Not in older libc headers; the layout is the kernel's (SCHED_ATTR_SIZE_VER1).
struct skiff_sched_attr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
  uint32_t sched_util_min;
  uint32_t sched_util_max;
};

static napi_value fail(napi_env env, int err, const char *what) {
  char msg[160];
  const char *name = err == EPERM ? "EPERM" : err == EINVAL ? "EINVAL" : err == ESRCH ? "ESRCH" : err == ENOSYS ? "ENOSYS" : "EUNKNOWN";
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, name, msg);
  return NULL;
}

static int32_t arg_i32(napi_env env, napi_value v) {
  int32_t out = 0;
  napi_get_value_int32(env, v, &out);
  return out;
}

/* The call's first `n` arguments into argv; false (a TypeError thrown) when fewer were passed. */
static int args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage) {
  size_t argc = n;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < n) {
    napi_throw_type_error(env, NULL, usage);
    return 0;
  }
  return 1;
}

static napi_value get_affinity(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  pid_t tid = argc > 0 ? arg_i32(env, argv[0]) : 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(tid, sizeof set, &set) != 0) return fail(env, errno, "sched_getaffinity");
  napi_value out;
  napi_create_array(env, &out);
  uint32_t n = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (!CPU_ISSET(cpu, &set)) continue;
    napi_value v;
    napi_create_int32(env, cpu, &v);
    napi_set_element(env, out, n++, v);
  }
  return out;
}

static napi_value set_affinity(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!args(env, info, 2, argv, "setAffinity(tid, cpus)")) return NULL;
  pid_t tid = arg_i32(env, argv[0]);
  uint32_t len = 0;
  napi_get_array_length(env, argv[1], &len);
  cpu_set_t set;
  CPU_ZERO(&set);
  for (uint32_t i = 0; i < len; i++) {
    napi_value v;
    napi_get_element(env, argv[1], i, &v);
    int32_t cpu = arg_i32(env, v);
    if (cpu >= 0 && cpu < CPU_SETSIZE) CPU_SET(cpu, &set);
  }
  if (CPU_COUNT(&set) == 0) return fail(env, EINVAL, "sched_setaffinity: no CPU");
  if (sched_setaffinity(tid, sizeof set, &set) != 0) return fail(env, errno, "sched_setaffinity");
  return NULL;
}

static int getattr(struct skiff_sched_attr *a) {
  memset(a, 0, sizeof *a);
  return (int)syscall(SYS_sched_getattr, 0, a, sizeof *a, 0);
}

static napi_value get_nice(napi_env env, napi_callback_info info) {
  (void)info;
  struct skiff_sched_attr a;
  if (getattr(&a) != 0) return fail(env, errno, "sched_getattr");
  napi_value out;
  napi_create_int32(env, a.sched_nice, &out);
  return out;
}

static napi_value set_latency(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!args(env, info, 2, argv, "setLatency(nice, sliceNs)")) return NULL;
  int32_t nice = arg_i32(env, argv[0]);
  double slice = 0;
  napi_get_value_double(env, argv[1], &slice);
  struct skiff_sched_attr a;
  if (getattr(&a) != 0) return fail(env, errno, "sched_getattr");
  a.size = sizeof a;
  a.sched_policy = SCHED_OTHER;
  a.sched_flags = 0;
  a.sched_nice = nice;
  a.sched_priority = 0;
  a.sched_runtime = slice > 0 ? (uint64_t)slice : 0;
  if (syscall(SYS_sched_setattr, 0, &a, 0) != 0) return fail(env, errno, "sched_setattr");
  return NULL;
}

static napi_value set_fifo(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!args(env, info, 1, argv, "setFifo(priority)")) return NULL;
  struct skiff_sched_attr a;
  memset(&a, 0, sizeof a);
  a.size = sizeof a;
  a.sched_policy = SCHED_FIFO;
  a.sched_priority = (uint32_t)arg_i32(env, argv[0]);
  if (syscall(SYS_sched_setattr, 0, &a, 0) != 0) return fail(env, errno, "sched_setattr");
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {{"getAffinity", get_affinity}, {"setAffinity", set_affinity}, {"getNice", get_nice}, {"setLatency", set_latency}, {"setFifo", set_fifo}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
    napi_set_named_property(env, exports, fns[i].name, f);
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
