// Batched UDP socket I/O for the DNS server: recvmmsg/sendmmsg with ONE call into JavaScript per
// batch of datagrams, where Node's dgram makes one per datagram. Only socket I/O lives here; the
// DNS logic stays in TypeScript (dns/server/native-udp.ts is the other half, and the README says why).
//
// Readiness comes from a uv_poll_t on Node's own event loop (no thread, no hop): when the socket is
// readable, one recvmmsg takes up to 64 datagrams straight into a Buffer JS handed over at start
// (one 4 KiB slot per datagram) and JS gets them in one call. Nothing is allocated per batch: a
// fresh Buffer per batch was garbage the serving thread had to collect.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/filter.h>
#include <node_api.h>

// Node exports libuv's symbols. The few used are declared here so the build needs no libuv headers:
// libuv 1.x keeps its ABI (handle type numbers, signatures, `data` as every handle's first field),
// and the poll handle's size is asked of libuv at run time instead of taken from a struct layout.
typedef struct uv_poll_s uv_poll_t;
typedef struct uv_handle_s uv_handle_t;
typedef void (*uv_poll_cb)(uv_poll_t *handle, int status, int events);
typedef void (*uv_close_cb)(uv_handle_t *handle);
extern size_t uv_handle_size(int type);
extern int uv_poll_init(struct uv_loop_s *loop, uv_poll_t *handle, int fd);
extern int uv_poll_start(uv_poll_t *handle, int events, uv_poll_cb cb);
extern int uv_poll_stop(uv_poll_t *handle);
extern void uv_close(uv_handle_t *handle, uv_close_cb cb);
enum { SKIFF_UV_POLL = 8, SKIFF_UV_READABLE = 1 };

enum {
  BATCH = 64,
  /** Larger queries are dropped: our advertised EDNS size is 1232 and clients cap at 4096. */
  SLOT = 4096,
  /** int32 words per entry of the meta table shared with JS (see META_* below). */
  META_WORDS = 24,
};
// Meta entry: offset, length, family (4|6), port, scope id, 16 raw address bytes, text length, text.
enum { M_OFF = 0, M_LEN = 1, M_FAM = 2, M_PORT = 3, M_SCOPE = 4, M_ADDR = 5, M_TEXTLEN = 9, M_TEXT = 10 };

typedef struct {
  int fd;
  int family;
  int closed;
  /** Inside a call into JS: references are released after it returns, not under its feet. */
  int busy;
  napi_env env;
  uv_poll_t *poll;
  napi_ref callback;
  napi_ref meta_ref;
  napi_ref data_ref;
  int32_t *meta;
  size_t meta_entries;
  /** Datagrams one recvmmsg may take: the smaller of BATCH, the meta table and the data Buffer. */
  int batch;
  napi_async_context async;
  /** The last source address seen (family, scope, address; not the port) and its text form. */
  int32_t last_source[6];
  char last_text[INET6_ADDRSTRLEN];
  int32_t last_text_len;
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_in6 names[BATCH];
} sock_t;

#define CHECK(env, call)                                                     \
  do {                                                                       \
    if ((call) != napi_ok) {                                                 \
      napi_throw_error((env), "ERR_UDPBATCH", "udpbatch: " #call " failed"); \
      return NULL;                                                           \
    }                                                                        \
  } while (0)

static napi_value throw_errno(napi_env env, const char *what, int err) {
  // The code is what Node's own errors carry (EADDRINUSE, EACCES...), so callers treat both alike.
  const char *code = "EIO";
  switch (err) {
    case EADDRINUSE: code = "EADDRINUSE"; break;
    case EADDRNOTAVAIL: code = "EADDRNOTAVAIL"; break;
    case EACCES: code = "EACCES"; break;
    case EINVAL: code = "EINVAL"; break;
    case EAFNOSUPPORT: code = "EAFNOSUPPORT"; break;
    default: break;
  }
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, code, msg);
  return NULL;
}

static void on_poll_closed(uv_handle_t *h) { free(h); }

static void release_js(sock_t *s) {
  if (s->callback) napi_delete_reference(s->env, s->callback);
  if (s->meta_ref) napi_delete_reference(s->env, s->meta_ref);
  if (s->data_ref) napi_delete_reference(s->env, s->data_ref);
  if (s->async) napi_async_destroy(s->env, s->async);
  s->callback = s->meta_ref = s->data_ref = NULL;
  s->async = NULL;
}

static void stop_socket(sock_t *s) {
  if (s->closed) return;
  s->closed = 1;
  if (s->poll) {
    uv_poll_stop(s->poll);
    uv_close((uv_handle_t *)s->poll, on_poll_closed);
    s->poll = NULL;
  }
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
  if (!s->busy) release_js(s);
}

static void finalize_socket(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  stop_socket(data);
  free(data);
}

static sock_t *unwrap(napi_env env, napi_value v) {
  sock_t *s = NULL;
  if (napi_get_value_external(env, v, (void **)&s) != napi_ok || s == NULL) {
    napi_throw_type_error(env, "ERR_UDPBATCH", "udpbatch: not a socket");
    return NULL;
  }
  return s;
}

static int parse_addr(const char *text, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, text, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    *len = sizeof *a4;
    return AF_INET;
  }
  if (inet_pton(AF_INET6, text, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    *len = sizeof *a6;
    return AF_INET6;
  }
  return -1;
}

/**
 * Spreads datagrams over the sockets of a SO_REUSEPORT group at random, per packet. The kernel's
 * default picks by the client's 4-tuple, so a few busy clients can land all on one worker; DNS over
 * UDP keeps no state between packets, so any worker may answer any of them.
 */
static int attach_random_spread(int fd, uint32_t n) {
  struct sock_filter code[] = {
      {BPF_LD | BPF_W | BPF_ABS, 0, 0, (uint32_t)(SKF_AD_OFF + SKF_AD_RANDOM)},
      {BPF_ALU | BPF_MOD | BPF_K, 0, 0, n},
      {BPF_RET | BPF_A, 0, 0, 0},
  };
  struct sock_fprog prog = {.len = 3, .filter = code};
  return setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog);
}

static napi_value wrap_fd(napi_env env, int fd, int family);

// open(address, port, reusePortGroupSize, bufferBytes) -> socket. Group size 0: no SO_REUSEPORT.
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char addr[64];
  size_t alen = 0;
  int32_t port = 0, group = 0, bufsize = 0;
  CHECK(env, napi_get_value_string_utf8(env, argv[0], addr, sizeof addr, &alen));
  CHECK(env, napi_get_value_int32(env, argv[1], &port));
  CHECK(env, napi_get_value_int32(env, argv[2], &group));
  CHECK(env, napi_get_value_int32(env, argv[3], &bufsize));
  struct sockaddr_storage ss;
  socklen_t sslen = 0;
  int family = parse_addr(addr, port, &ss, &sslen);
  if (family < 0) return throw_errno(env, "udpbatch: bad address", EINVAL);
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "udpbatch: socket", errno);
  int one = 1;
  if (group > 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "udpbatch: SO_REUSEPORT", e);
  }
  if (bufsize > 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize);
  }
  if (bind(fd, (struct sockaddr *)&ss, sslen) != 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "udpbatch: bind", e);
  }
  // Best effort: without the filter the kernel's hash still spreads clients over the group.
  if (group > 1) attach_random_spread(fd, (uint32_t)group);
  return wrap_fd(env, fd, family);
}

/** Takes ownership of a bound socket `fd` (closed on failure) and wraps it for JS. */
static napi_value wrap_fd(napi_env env, int fd, int family) {
  sock_t *s = calloc(1, sizeof *s);
  if (!s) {
    close(fd);
    return throw_errno(env, "udpbatch: alloc", ENOMEM);
  }
  s->fd = fd;
  s->family = family;
  s->env = env;
  for (int i = 0; i < BATCH; i++) {
    s->msgs[i].msg_hdr.msg_iov = &s->iov[i];
    s->msgs[i].msg_hdr.msg_iovlen = 1;
    s->msgs[i].msg_hdr.msg_name = &s->names[i];
  }
  napi_value ext;
  if (napi_create_external(env, s, finalize_socket, NULL, &ext) != napi_ok) {
    close(fd);
    free(s);
    napi_throw_error(env, "ERR_UDPBATCH", "udpbatch: cannot wrap the socket");
    return NULL;
  }
  return ext;
}

static napi_value js_port(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = unwrap(env, argv[0]);
  if (!s) return NULL;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (s->fd < 0 || getsockname(s->fd, (struct sockaddr *)&ss, &len) != 0) return throw_errno(env, "udpbatch: getsockname", s->fd < 0 ? EBADF : errno);
  int port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port);
  CHECK(env, napi_create_int32(env, port, &out));
  return out;
}

/** Writes one received datagram's source into meta entry `e`; the text is what JS hands the ACL. */
static void fill_source(sock_t *s, int32_t *e, const struct sockaddr_in6 *name) {
  char *text = (char *)&e[M_TEXT];
  memset(&e[M_ADDR], 0, 16);
  if (name->sin6_family == AF_INET) {
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)name;
    e[M_FAM] = 4;
    e[M_PORT] = ntohs(a4->sin_port);
    e[M_SCOPE] = 0;
    memcpy(&e[M_ADDR], &a4->sin_addr, 4);
  } else {
    e[M_FAM] = 6;
    e[M_PORT] = ntohs(name->sin6_port);
    e[M_SCOPE] = (int32_t)name->sin6_scope_id;
    memcpy(&e[M_ADDR], &name->sin6_addr, 16);
  }
  // inet_ntop formats through sprintf (2% of a worker in perf); a burst comes from few clients.
  int32_t key[6] = {e[M_FAM], e[M_SCOPE], e[M_ADDR], e[M_ADDR + 1], e[M_ADDR + 2], e[M_ADDR + 3]};
  if (s->last_text_len == 0 || memcmp(key, s->last_source, sizeof key) != 0) {
    memcpy(s->last_source, key, sizeof key);
    inet_ntop(e[M_FAM] == 4 ? AF_INET : AF_INET6, &e[M_ADDR], s->last_text, sizeof s->last_text);
    s->last_text_len = (int32_t)strlen(s->last_text);
  }
  memcpy(text, s->last_text, (size_t)s->last_text_len);
  e[M_TEXTLEN] = s->last_text_len;
}

/** Hands one batch to JS: the datagrams sit in their slots of the data Buffer, the meta table says where. */
static void deliver(sock_t *s, int n) {
  napi_env env = s->env;
  int kept = 0;
  for (int i = 0; i < n; i++) {
    if (s->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) continue;
    int32_t *e = s->meta + (size_t)kept * META_WORDS;
    e[M_OFF] = i * SLOT;
    e[M_LEN] = (int32_t)s->msgs[i].msg_len;
    fill_source(s, e, &s->names[i]);
    kept++;
  }
  if (kept == 0) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value count, cb, recv, result;
  if (napi_create_int32(env, kept, &count) == napi_ok && napi_get_reference_value(env, s->callback, &cb) == napi_ok && napi_get_global(env, &recv) == napi_ok) {
    s->busy = 1;
    if (napi_make_callback(env, s->async, recv, cb, 1, &count, &result) != napi_ok) {
      // A throw in the batch handler is an uncaught exception, as it would be from an event listener.
      bool pending = false;
      napi_value err;
      if (napi_is_exception_pending(env, &pending) == napi_ok && pending && napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
    }
    s->busy = 0;
    if (s->closed) release_js(s);
  }
  napi_close_handle_scope(env, scope);
}

static void on_readable(uv_poll_t *poll, int status, int events) {
  (void)events;
  sock_t *s = *(sock_t **)poll;  // handle->data, the first field of every libuv handle
  if (status < 0 || s == NULL || s->closed) return;
  // One batch per wake-up, not a drain to EAGAIN: the poll is level-triggered, so what is left comes
  // back on the next loop turn, after timers, IPC and the other sockets had theirs (draining a burst
  // of thousands in one go starved them, and overran an in-process client's receive buffer).
  for (int i = 0; i < s->batch; i++) {
    s->msgs[i].msg_hdr.msg_namelen = sizeof s->names[i];
    s->msgs[i].msg_hdr.msg_flags = 0;
  }
  int n;
  do n = recvmmsg(s->fd, s->msgs, s->batch, MSG_DONTWAIT, NULL);
  while (n < 0 && errno == EINTR);
  if (n > 0) deliver(s, n);
}

// start(socket, meta: Int32Array, data: Buffer, onBatch(count: number)). Datagram i of a batch is
// received into data[i * SLOT ..]; both tables are read by JS during onBatch and reused after it.
static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], name;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = unwrap(env, argv[0]);
  if (!s) return NULL;
  if (s->closed || s->poll) return throw_errno(env, "udpbatch: start", EINVAL);
  napi_typedarray_type type;
  size_t length;
  void *data;
  CHECK(env, napi_get_typedarray_info(env, argv[1], &type, &length, &data, NULL, NULL));
  if (type != napi_int32_array || length < META_WORDS) return throw_errno(env, "udpbatch: meta must be an Int32Array", EINVAL);
  char *slots;
  size_t slots_len;
  CHECK(env, napi_get_buffer_info(env, argv[2], (void **)&slots, &slots_len));
  if (slots_len < SLOT) return throw_errno(env, "udpbatch: data must hold at least one 4096-byte slot", EINVAL);
  s->meta = data;
  s->meta_entries = length / META_WORDS;
  size_t batch = s->meta_entries < slots_len / SLOT ? s->meta_entries : slots_len / SLOT;
  s->batch = batch < BATCH ? (int)batch : BATCH;
  for (int i = 0; i < s->batch; i++) {
    s->iov[i].iov_base = slots + (size_t)i * SLOT;
    s->iov[i].iov_len = SLOT;
  }
  CHECK(env, napi_create_reference(env, argv[1], 1, &s->meta_ref));
  CHECK(env, napi_create_reference(env, argv[2], 1, &s->data_ref));
  CHECK(env, napi_create_reference(env, argv[3], 1, &s->callback));
  CHECK(env, napi_create_string_utf8(env, "skiff:udpbatch", NAPI_AUTO_LENGTH, &name));
  CHECK(env, napi_async_init(env, NULL, name, &s->async));
  struct uv_loop_s *loop;
  CHECK(env, napi_get_uv_event_loop(env, &loop));
  uv_poll_t *poll = calloc(1, uv_handle_size(SKIFF_UV_POLL));
  if (!poll) return throw_errno(env, "udpbatch: alloc", ENOMEM);
  int r = uv_poll_init(loop, poll, s->fd);
  if (r == 0) {
    *(sock_t **)poll = s;
    r = uv_poll_start(poll, SKIFF_UV_READABLE, on_readable);
    s->poll = poll;
  } else {
    free(poll);
  }
  if (r != 0) return throw_errno(env, "udpbatch: uv_poll", -r);
  return NULL;
}

// send(socket, data: Buffer, meta: Int32Array, count) -> datagrams handed to the kernel.
static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], out;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = unwrap(env, argv[0]);
  if (!s) return NULL;
  char *data;
  size_t dlen, mlen;
  void *mdata;
  napi_typedarray_type type;
  int32_t count;
  CHECK(env, napi_get_buffer_info(env, argv[1], (void **)&data, &dlen));
  CHECK(env, napi_get_typedarray_info(env, argv[2], &type, &mlen, &mdata, NULL, NULL));
  CHECK(env, napi_get_value_int32(env, argv[3], &count));
  if (type != napi_int32_array || count < 0 || (size_t)count * META_WORDS > mlen) return throw_errno(env, "udpbatch: send table", EINVAL);
  int sent = 0;
  if (s->fd >= 0) {
    const int32_t *meta = mdata;
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_in6 names[BATCH];
    int done = 0;
    while (done < count) {
      int n = 0;
      for (; n < BATCH && done + n < count; n++) {
        const int32_t *e = meta + (size_t)(done + n) * META_WORDS;
        size_t off = (uint32_t)e[M_OFF], len = (uint32_t)e[M_LEN];
        if (off > dlen || len > dlen - off) len = 0, off = 0;
        iov[n].iov_base = data + off;
        iov[n].iov_len = len;
        memset(&names[n], 0, sizeof names[n]);
        memset(&msgs[n], 0, sizeof msgs[n]);
        if (e[M_FAM] == 4 && s->family == AF_INET) {
          struct sockaddr_in *a4 = (struct sockaddr_in *)&names[n];
          a4->sin_family = AF_INET;
          a4->sin_port = htons(e[M_PORT]);
          memcpy(&a4->sin_addr, &e[M_ADDR], 4);
          msgs[n].msg_hdr.msg_namelen = sizeof *a4;
        } else {
          names[n].sin6_family = AF_INET6;
          names[n].sin6_port = htons(e[M_PORT]);
          names[n].sin6_scope_id = (uint32_t)e[M_SCOPE];
          memcpy(&names[n].sin6_addr, &e[M_ADDR], 16);
          msgs[n].msg_hdr.msg_namelen = sizeof names[n];
        }
        msgs[n].msg_hdr.msg_name = &names[n];
        msgs[n].msg_hdr.msg_iov = &iov[n];
        msgs[n].msg_hdr.msg_iovlen = 1;
      }
      int k = 0;
      while (k < n) {
        int r = sendmmsg(s->fd, msgs + k, n - k, MSG_DONTWAIT);
        if (r > 0) {
          k += r;
          sent += r;
        } else if (r < 0 && errno == EINTR) {
          continue;
        } else if (r < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
          // The send buffer is full: what is left is lost, like a datagram dropped on the wire.
          done = count;
          break;
        } else {
          k++;  // this one datagram cannot go (unreachable address...); the rest still can
        }
      }
      if (done < count) done += n;
    }
  }
  CHECK(env, napi_create_int32(env, sent, &out));
  return out;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = unwrap(env, argv[0]);
  if (s) stop_socket(s);
  return NULL;
}

// adopt(fd) -> socket: a bound UDP socket handed over by an earlier agent (see takeFd); its
// options (SO_REUSEPORT group, buffers) stay as its creator set them.
static napi_value js_adopt(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd = -1;
  CHECK(env, napi_get_value_int32(env, argv[0], &fd));
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int type = 0;
  socklen_t tlen = sizeof type;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return throw_errno(env, "udpbatch: adopt getsockname", errno);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 || type != SOCK_DGRAM) return throw_errno(env, "udpbatch: adopt: not a UDP socket", EINVAL);
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) return throw_errno(env, "udpbatch: adopt O_NONBLOCK", errno);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  return wrap_fd(env, fd, ss.ss_family);
}

// fd(socket) -> the descriptor, so it can be left with a process that outlives this one.
static napi_value js_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = unwrap(env, argv[0]);
  if (!s) return NULL;
  CHECK(env, napi_create_int32(env, s->fd, &out));
  return out;
}

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

// takeFd(pid, fd) -> a duplicate, in this process, of descriptor `fd` of process `pid`
// (pidfd_getfd(2), Linux 5.6; needs ptrace access to it: same user, or CAP_SYS_PTRACE).
static napi_value js_take_fd(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t pid = 0, fd = -1;
  CHECK(env, napi_get_value_int32(env, argv[0], &pid));
  CHECK(env, napi_get_value_int32(env, argv[1], &fd));
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) return throw_errno(env, "udpbatch: pidfd_open", errno);
  int got = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
  int e = errno;
  close(pidfd);
  if (got < 0) return throw_errno(env, "udpbatch: pidfd_getfd", e);
  CHECK(env, napi_create_int32(env, got, &out));
  return out;
}

// closeFd(fd): releases a descriptor taken with takeFd but not used.
static napi_value js_close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd = -1;
  CHECK(env, napi_get_value_int32(env, argv[0], &fd));
  if (fd > 2) close(fd);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"port", NULL, js_port, NULL, NULL, NULL, napi_default, NULL},
      {"start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"adopt", NULL, js_adopt, NULL, NULL, NULL, napi_default, NULL},
      {"fd", NULL, js_fd, NULL, NULL, NULL, napi_default, NULL},
      {"takeFd", NULL, js_take_fd, NULL, NULL, NULL, napi_default, NULL},
      {"closeFd", NULL, js_close_fd, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value words;
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  CHECK(env, napi_create_int32(env, META_WORDS, &words));
  CHECK(env, napi_set_named_property(env, exports, "META_WORDS", words));
  CHECK(env, napi_create_int32(env, SLOT, &words));
  CHECK(env, napi_set_named_property(env, exports, "SLOT", words));
  return exports;
}

NAPI_MODULE(udpbatch, init)
