// Two calls for the CNI plugin. inNetns runs a synchronous JavaScript function with this thread
// inside another network namespace, then returns to the original one. A socket keeps the namespace it was
// created in, so the function opens the pod's rtnetlink socket here and the ADD talks to the pod's
// namespace afterwards without an `ip`/`nsenter` process. setns(2) with CLONE_NEWNET acts on the
// calling thread only: libuv's pool threads stay in the node's namespace, and no other JavaScript
// runs while the function does. Failing to come back would leave the agent in the pod's namespace,
// so that aborts the process.
//
// rtnl(messages) sends complete rtnetlink requests (built in JavaScript, each with NLM_F_ACK) one
// at a time on a fresh NETLINK_ROUTE socket of the calling thread's namespace and waits for each
// acknowledgement, stopping at the first error. An ADD's few requests then cost their kernel work
// and no event-loop turns: the netlink package queues every send for a later turn of the loop and
// reads the answer on another, and under load each turn costs more than the kernel's work.
// rtnlAsync(messages) does the same on a libuv pool thread (which stays in the namespace the process
// started in) and returns a promise: the node side's requests (creating a bridge port, deleting a
// veth) hold the kernel's rtnl lock for milliseconds, and meanwhile the main thread serves the other
// requests of a burst. ifIndex(name) is if_nametoindex(3) in the calling thread's namespace, 0 when
// there is none.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/socket.h>
#include <linux/netlink.h>
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

// Sends the requests in order, each acknowledged before the next. 0, or an errno with *index the
// failing request; EBADMSG for a malformed buffer. Touches no JavaScript, so it runs on any thread.
static int send_requests(char *data, size_t len, unsigned *index) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  *index = 0;
  if (fd < 0) return errno;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  char reply[8192];
  size_t off = 0;
  unsigned seq = 0;
  int result = 0;
  while (result == 0 && off + sizeof(struct nlmsghdr) <= len) {
    struct nlmsghdr *req = (struct nlmsghdr *)(data + off);
    if (req->nlmsg_len < sizeof *req || off + req->nlmsg_len > len) {
      result = EBADMSG;
      break;
    }
    req->nlmsg_seq = ++seq;
    req->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    ssize_t w;
    do w = sendto(fd, req, req->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel);
    while (w < 0 && errno == EINTR);
    if (w < 0) {
      result = errno;
      break;
    }
    // The kernel answers each request with one NLMSG_ERROR (error 0 is the acknowledgement).
    int err = -1;
    while (err < 0) {
      ssize_t r;
      do r = recv(fd, reply, sizeof reply, 0);
      while (r < 0 && errno == EINTR);
      if (r < 0) {
        err = errno;
        break;
      }
      for (struct nlmsghdr *h = (struct nlmsghdr *)reply; NLMSG_OK(h, (size_t)r); h = NLMSG_NEXT(h, r)) {
        if (h->nlmsg_seq != seq || h->nlmsg_type != NLMSG_ERROR) continue;
        err = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
        break;
      }
    }
    result = err;
    if (result == 0) {
      off += NLMSG_ALIGN(req->nlmsg_len);
      (*index)++;
    }
  }
  close(fd);
  return result;
}

static napi_value nl_error(napi_env env, unsigned index, int err) {
  char msg[256];
  const char *name = strerrorname_np(err);
  napi_value code, text, error;
  // "Request rejected: E…" is the netlink package's wording, which the callers already match.
  snprintf(msg, sizeof msg, "Request rejected: %s (%s), message %u", name ? name : "E?", strerror(err), index);
  napi_create_string_utf8(env, name ? name : "E?", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, code, text, &error);
  return error;
}

struct async_req {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref buffer;
  char *data;
  size_t len;
  unsigned index;
  int err;
};

static void async_execute(napi_env env, void *arg) {
  (void)env;
  struct async_req *r = arg;
  r->err = send_requests(r->data, r->len, &r->index);
}

static void async_complete(napi_env env, napi_status status, void *arg) {
  struct async_req *r = arg;
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  if (status != napi_ok) r->err = ECANCELED;
  if (r->err == 0) napi_resolve_deferred(env, r->deferred, undefined);
  else napi_reject_deferred(env, r->deferred, nl_error(env, r->index, r->err));
  napi_delete_reference(env, r->buffer);
  napi_delete_async_work(env, r->work);
  free(r);
}

// rtnlAsync(buffer): a promise; the buffer is kept alive (and written: sequence numbers) meanwhile.
static napi_value rtnl_async(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], promise, name;
  bool is_buf = false;
  struct async_req *r = calloc(1, sizeof *r);
  if (!r) {
    napi_throw_error(env, NULL, "rtnlAsync: out of memory");
    return NULL;
  }
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_is_buffer(env, argv[0], &is_buf) != napi_ok || !is_buf ||
      napi_get_buffer_info(env, argv[0], (void **)&r->data, &r->len) != napi_ok) {
    free(r);
    napi_throw_type_error(env, NULL, "rtnlAsync(buffer)");
    return NULL;
  }
  napi_create_reference(env, argv[0], 1, &r->buffer);
  napi_create_promise(env, &r->deferred, &promise);
  napi_create_string_utf8(env, "skiff-rtnl", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, async_execute, async_complete, r, &r->work);
  napi_queue_async_work(env, r->work);
  return promise;
}

// rtnl(buffer): buffer holds whole nlmsghdr-framed requests back to back; returns undefined.
static napi_value rtnl(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *data = NULL;
  size_t len = 0;
  bool is_buf = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_is_buffer(env, argv[0], &is_buf) != napi_ok || !is_buf ||
      napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "rtnl(buffer)");
    return NULL;
  }
  unsigned index = 0;
  int err = send_requests(data, len, &index);
  if (err != 0) napi_throw(env, nl_error(env, index, err));
  return NULL;
}

static napi_value if_index(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  char name[IF_NAMESIZE + 1];
  size_t len = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "ifIndex(name)");
    return NULL;
  }
  napi_create_uint32(env, len >= IF_NAMESIZE ? 0 : if_nametoindex(name), &out);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "inNetns", NAPI_AUTO_LENGTH, in_netns, NULL, &fn);
  napi_set_named_property(env, exports, "inNetns", fn);
  napi_create_function(env, "rtnl", NAPI_AUTO_LENGTH, rtnl, NULL, &fn);
  napi_set_named_property(env, exports, "rtnl", fn);
  napi_create_function(env, "rtnlAsync", NAPI_AUTO_LENGTH, rtnl_async, NULL, &fn);
  napi_set_named_property(env, exports, "rtnlAsync", fn);
  napi_create_function(env, "ifIndex", NAPI_AUTO_LENGTH, if_index, NULL, &fn);
  napi_set_named_property(env, exports, "ifIndex", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
