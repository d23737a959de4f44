// One call for the CNI plugin: run a synchronous JavaScript function with this thread inside
// another network namespace, then return to the original one. A socket keeps the namespace it was
// created in, so the function opens the pod's rtnetlink socket here and the ADD talks to the pod's
// namespace afterwards without an `ip`/`nsenter` process. setns(2) with CLONE_NEWNET acts on the
// calling thread only: libuv's pool threads stay in the node's namespace, and no other JavaScript
// runs while the function does. Failing to come back would leave the agent in the pod's namespace,
// so that aborts the process.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <node_api.h>

static napi_value throw_errno(napi_env env, const char *what, const char *path, int err) {
  char msg[4096 + 128];
  snprintf(msg, sizeof msg, "%s %s: %s", what, path, strerror(err));
  napi_throw_error(env, err == ENOENT ? "ENOENT" : "ENETNS", msg);
  return NULL;
}

// inNetns(path, fn): fn's result; fn's exception is rethrown after the thread is back home.
static napi_value in_netns(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
    napi_throw_type_error(env, NULL, "inNetns(path, fn)");
    return NULL;
  }
  char path[4096];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok || len == 0 || len >= sizeof path - 1) {
    napi_throw_type_error(env, NULL, "inNetns: path must be a non-empty string");
    return NULL;
  }
  int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) return throw_errno(env, "open", "/proc/thread-self/ns/net", errno);
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int err = errno;
    close(home);
    return throw_errno(env, "open", path, err);
  }
  if (setns(target, CLONE_NEWNET) != 0) {
    int err = errno;
    close(home);
    close(target);
    return throw_errno(env, "setns", path, err);
  }
  close(target);
  napi_value global, result = NULL;
  napi_get_global(env, &global);
  napi_status st = napi_call_function(env, global, argv[1], 0, NULL, &result);
  if (setns(home, CLONE_NEWNET) != 0) {
    fprintf(stderr, "skiff netns: cannot return to the node's network namespace: %s\n", strerror(errno));
    abort();
  }
  close(home);
  return st == napi_ok ? result : NULL; // a pending exception propagates
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "inNetns", NAPI_AUTO_LENGTH, in_netns, NULL, &fn);
  napi_set_named_property(env, exports, "inNetns", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
