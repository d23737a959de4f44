/*
 * skiff-cni: what kubelet executes as /opt/cni/bin/skiff. It carries no logic: it forwards the
 * CNI_* environment and stdin to the skiff agent over a unix socket and relays the answer, so an
 * ADD costs the agent's netlink work instead of a Node.js start-up, and nodes need no Node.js.
 *
 * Wire format (see cni/server.ts): "KEY=VALUE\0"... "\0" stdin, write half shut; the reply is
 * "<exit code>\n<stdout bytes>".
 *
 * The socket is SKIFF_CNI_SOCKET, else the "agentSocket" string of the network config, else
 * /run/skiff/cni.sock. When the agent cannot be reached: STATUS answers 50 (not available),
 * DEL succeeds (the veth dies with the pod's netns and the agent releases the address when it
 * starts: it reconciles allocations against live pods and namespaces), everything else answers
 * 11 (try again later) so the runtime retries.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

#define MAX_STDIN (16 << 20)

static char *read_all(int fd, size_t *len) {
  size_t cap = 65536, n = 0;
  char *buf = malloc(cap + 1);
  if (!buf) return NULL;
  for (;;) {
    if (n == cap) {
      if (cap >= MAX_STDIN) break;
      cap *= 2;
      char *nb = realloc(buf, cap + 1);
      if (!nb) { free(buf); return NULL; }
      buf = nb;
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
  }
  buf[n] = 0;
  *len = n;
  return buf;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Extracts the "agentSocket" string value from the config without a JSON parser. */
static int config_socket(const char *conf, char *out, size_t outlen) {
  const char *k = strstr(conf, "\"agentSocket\"");
  if (!k) return -1;
  k = strchr(k + 13, ':');
  if (!k) return -1;
  k++;
  while (*k == ' ' || *k == '\t' || *k == '\n' || *k == '\r') k++;
  if (*k != '"') return -1;
  k++;
  size_t i = 0;
  while (*k && *k != '"' && i + 1 < outlen) out[i++] = *k++;
  if (*k != '"') return -1;
  out[i] = 0;
  return 0;
}

static const char *version_of(const char *conf, char *out, size_t outlen) {
  const char *k = strstr(conf, "\"cniVersion\"");
  snprintf(out, outlen, "1.1.0");
  if (!k) return out;
  k = strchr(k + 12, '"');
  if (!k) return out;
  k++;
  size_t i = 0;
  while (*k && *k != '"' && i + 1 < outlen) out[i++] = *k++;
  out[i] = 0;
  return out;
}

/* A JSON string body: the version and socket path come from stdin, which may hold anything. */
static void put_json(const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c < 0x20) printf("\\u%04x", c);
    else putchar(c);
  }
}

static int fail(const char *conf, int code, const char *msg, const char *details) {
  char ver[32];
  printf("{\"cniVersion\":\"");
  put_json(version_of(conf, ver, sizeof ver));
  printf("\",\"code\":%d,\"msg\":\"", code);
  put_json(msg);
  printf("\",\"details\":\"");
  put_json(details);
  printf("\"}\n");
  return 1;
}

int main(void) {
  size_t in_len = 0;
  char *in = read_all(0, &in_len);
  if (!in) return fail("", 5, "out of memory reading stdin", "");
  const char *cmd = getenv("CNI_COMMAND");

  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  const char *env_sock = getenv("SKIFF_CNI_SOCKET");
  if (env_sock && *env_sock) snprintf(path, sizeof path, "%s", env_sock);
  else if (config_socket(in, path, sizeof path) != 0) snprintf(path, sizeof path, "/run/skiff/cni.sock");

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    if (cmd && strcmp(cmd, "DEL") == 0) return 0;
    if (cmd && strcmp(cmd, "STATUS") == 0) return fail(in, 50, "skiff agent is not running", path);
    if (cmd && strcmp(cmd, "VERSION") == 0) {
      char ver[32];
      printf("{\"cniVersion\":\"%s\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n", version_of(in, ver, sizeof ver));
      return 0;
    }
    return fail(in, 11, "skiff agent is not reachable, try again later", path);
  }

  for (char **e = environ; *e; e++) {
    if (strncmp(*e, "CNI_", 4) != 0) continue;
    if (write_all(fd, *e, strlen(*e) + 1) != 0) return fail(in, 11, "lost the skiff agent while sending", path);
  }
  if (write_all(fd, "", 1) != 0 || write_all(fd, in, in_len) != 0) return fail(in, 11, "lost the skiff agent while sending", path);
  shutdown(fd, SHUT_WR);

  size_t out_len = 0;
  char *out = read_all(fd, &out_len);
  close(fd);
  char *nl = out ? memchr(out, '\n', out_len) : NULL;
  if (!nl) return fail(in, 11, "the skiff agent closed the connection without an answer", path);
  *nl = 0;
  int code = atoi(out);
  size_t body = out_len - (size_t)(nl + 1 - out);
  if (body > 0) {
    write_all(1, nl + 1, body);
    write_all(1, "\n", 1);
  }
  return code;
}
