/*
 * skiff-cni: what kubelet executes as /opt/cni/bin/skiff. It carries no network logic: it forwards the
 * CNI_* environment and stdin to the skiff agent over a unix socket and relays the answer, so an
 * ADD costs the agent's netlink work instead of a Node.js start-up, and nodes need no Node.js.
 *
 * Wire format (see cni/server.ts): "KEY=VALUE\0"... "\0" stdin, write half shut; the reply is
 * "<exit code>\n<stdout bytes>".
 *
 * First it answers by itself what no agent could fix (precheck: the command, the container ID,
 * the interface name, undecodable stdin, the version), so those get their spec code even while
 * the agent is down. The socket is SKIFF_CNI_SOCKET, else the top-level "agentSocket" string of
 * the network config, else /run/skiff/cni.sock. When the agent cannot be reached: STATUS answers
 * 50 (not available), DEL succeeds (the veth dies with the pod's netns and the agent releases the address when it
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

/*
 * What the shim checks by itself, before and without the agent, in the order cni/spec/request.ts
 * checks it so both give the same code: a request that can never succeed must not answer 11, or
 * the runtime retries it forever. The network config's own fields (podCIDRs, mtu, ...) stay the
 * agent's business; the shim only has to know that stdin is JSON and which version it speaks.
 */
static const char *const VERSIONS[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
#define NVERSIONS (sizeof VERSIONS / sizeof VERSIONS[0])
static const char *const COMMANDS[] = {"ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC"};

/* A JSON syntax check (RFC 8259) that keeps the top-level string members the shim needs. */
struct json {
  const char *p, *end;
  int depth;
  char version[32];
  int has_version; /* 1: a string, -1: present but not a string */
  char socket[sizeof(((struct sockaddr_un *)0)->sun_path)];
  int has_socket;
};

static void ws(struct json *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Parses a string; copies its decoded text (escapes other than \uXXXX resolved) into out if given. */
static int jstring(struct json *j, char *out, size_t outlen, int *truncated) {
  size_t n = 0;
  if (j->p >= j->end || *j->p != '"') return -1;
  j->p++;
  while (j->p < j->end) {
    unsigned char c = (unsigned char)*j->p++;
    if (c == '"') {
      if (out) out[n < outlen ? n : outlen - 1] = 0;
      return 0;
    }
    if (c < 0x20) return -1;
    if (c == '\\') {
      if (j->p >= j->end) return -1;
      char e = *j->p++;
      switch (e) {
      case '"': case '\\': case '/': c = (unsigned char)e; break;
      case 'b': c = '\b'; break;
      case 'f': c = '\f'; break;
      case 'n': c = '\n'; break;
      case 'r': c = '\r'; break;
      case 't': c = '\t'; break;
      case 'u':
        if (j->end - j->p < 4) return -1;
        for (int i = 0; i < 4; i++)
          if (hexval(j->p[i]) < 0) return -1;
        j->p += 4;
        c = '?'; /* never part of a version or a socket path the shim could use */
        break;
      default: return -1;
      }
    }
    if (out) {
      if (n + 1 < outlen) out[n++] = (char)c;
      else if (truncated) *truncated = 1;
    }
  }
  return -1;
}

static int jdigits(struct json *j) {
  const char *s = j->p;
  while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
  return j->p > s ? 0 : -1;
}

static int jnumber(struct json *j) {
  if (j->p < j->end && *j->p == '-') j->p++;
  if (j->p < j->end && *j->p == '0') j->p++;
  else if (jdigits(j) != 0) return -1;
  if (j->p < j->end && *j->p == '.') {
    j->p++;
    if (jdigits(j) != 0) return -1;
  }
  if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
    j->p++;
    if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
    if (jdigits(j) != 0) return -1;
  }
  return 0;
}

static int jliteral(struct json *j, const char *lit) {
  size_t n = strlen(lit);
  if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0) return -1;
  j->p += n;
  return 0;
}

static int jvalue(struct json *j);

static int jmembers(struct json *j, int top) {
  j->p++;
  ws(j);
  if (j->p < j->end && *j->p == '}') return j->p++, 0;
  for (;;) {
    char key[16];
    int trunc = 0;
    ws(j);
    if (jstring(j, key, sizeof key, &trunc) != 0) return -1;
    ws(j);
    if (j->p >= j->end || *j->p++ != ':') return -1;
    ws(j);
    if (top && !trunc && strcmp(key, "cniVersion") == 0) {
      int t = 0;
      j->has_version = j->p < j->end && *j->p == '"' ? 1 : -1;
      if (j->has_version == 1 && jstring(j, j->version, sizeof j->version, &t) != 0) return -1;
      if (j->has_version == 1 && t) snprintf(j->version, sizeof j->version, "(too long)");
      if (j->has_version == -1 && jvalue(j) != 0) return -1;
    } else if (top && !trunc && strcmp(key, "agentSocket") == 0 && j->p < j->end && *j->p == '"') {
      int t = 0;
      if (jstring(j, j->socket, sizeof j->socket, &t) != 0) return -1;
      j->has_socket = !t;
    } else if (jvalue(j) != 0) return -1;
    ws(j);
    if (j->p >= j->end) return -1;
    char c = *j->p++;
    if (c == '}') return 0;
    if (c != ',') return -1;
  }
}

static int jelements(struct json *j) {
  j->p++;
  ws(j);
  if (j->p < j->end && *j->p == ']') return j->p++, 0;
  for (;;) {
    ws(j);
    if (jvalue(j) != 0) return -1;
    ws(j);
    if (j->p >= j->end) return -1;
    char c = *j->p++;
    if (c == ']') return 0;
    if (c != ',') return -1;
  }
}

static int jvalue(struct json *j) {
  ws(j);
  if (j->p >= j->end) return -1;
  int r;
  switch (*j->p) {
  case '{':
  case '[':
    /* Recursion is bounded so 16 MiB of "[" cannot overflow the stack. */
    if (++j->depth > 512) return -1;
    r = *j->p == '{' ? jmembers(j, 0) : jelements(j);
    j->depth--;
    return r;
  case '"': return jstring(j, NULL, 0, NULL);
  case 't': return jliteral(j, "true");
  case 'f': return jliteral(j, "false");
  case 'n': return jliteral(j, "null");
  default: return jnumber(j);
  }
}

/* 0: a JSON object; -1: not JSON; -2: JSON but not an object. */
static int parse_conf(struct json *j, const char *in, size_t len) {
  memset(j, 0, sizeof *j);
  j->p = in;
  j->end = in + len;
  ws(j);
  if (j->p < j->end && *j->p == '{') {
    j->depth = 1;
    if (jmembers(j, 1) != 0) return -1;
  } else if (jvalue(j) != 0) return -1;
  else return -2;
  ws(j);
  return j->p == j->end ? 0 : -1;
}

static int supported(const char *v) {
  for (size_t i = 0; i < NVERSIONS; i++)
    if (strcmp(v, VERSIONS[i]) == 0) return 1;
  return 0;
}

/* Index in VERSIONS order, so "at least" is a comparison of indexes among supported versions. */
static int version_rank(const char *v) {
  for (size_t i = 0; i < NVERSIONS; i++)
    if (strcmp(v, VERSIONS[i]) == 0) return (int)i;
  return -1;
}

static int valid_container_id(const char *id) {
  if (!id || !*id) return 0;
  if (!((id[0] >= 'a' && id[0] <= 'z') || (id[0] >= 'A' && id[0] <= 'Z') || (id[0] >= '0' && id[0] <= '9'))) return 0;
  for (const char *c = id; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '.' || *c == '-')) return 0;
  return strstr(id, "..") == NULL;
}

static int valid_ifname(const char *n) {
  size_t len = strlen(n);
  if (len == 0 || len > 15 || strcmp(n, ".") == 0 || strcmp(n, "..") == 0) return 0;
  for (const char *c = n; *c; c++)
    if (*c == '/' || *c == ':' || *c == ' ' || (*c >= '\t' && *c <= '\r')) return 0;
  return 1;
}

static int valid_cni_args(const char *s) {
  while (s && *s) {
    const char *semi = strchr(s, ';');
    size_t len = semi ? (size_t)(semi - s) : strlen(s);
    if (len > 0) {
      const char *eq = memchr(s, '=', len);
      if (!eq || eq == s) return 0;
    }
    s = semi ? semi + 1 : NULL;
  }
  return 1;
}

/* The version to answer in: the request's when the shim speaks it, else the newest. */
static const char *answer_version(const struct json *j) {
  return j && j->has_version == 1 && supported(j->version) ? j->version : VERSIONS[NVERSIONS - 1];
}

/* A JSON string body: messages may carry stdin's values, which may hold anything. */
static void put_json(const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c < 0x20) printf("\\u%04x", c);
    else putchar(c);
  }
}

static int fail(const struct json *j, int code, const char *msg, const char *details) {
  printf("{\"cniVersion\":\"%s\",\"code\":%d,\"msg\":\"", answer_version(j), code);
  put_json(msg);
  printf("\"");
  if (details && *details) {
    printf(",\"details\":\"");
    put_json(details);
    printf("\"");
  }
  printf("}\n");
  return 1;
}

/* Returns the exit status of an answer the shim gives itself, or -1 to ask the agent. */
static int precheck(const char *cmd, const char *in, size_t in_len, struct json *j) {
  char msg[160];
  if (!cmd) return fail(NULL, 4, "CNI_COMMAND is not set", "");
  int known = 0;
  for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) known |= strcmp(cmd, COMMANDS[i]) == 0;
  if (!known) {
    snprintf(msg, sizeof msg, "unknown CNI_COMMAND %.100s", cmd);
    return fail(NULL, 4, msg, "");
  }
  int r = parse_conf(j, in, in_len);
  if (r == -1) return fail(NULL, 6, "cannot decode network configuration on stdin", "not valid JSON");
  if (r == -2) return fail(NULL, 6, "network configuration must be a JSON object", "");
  if (strcmp(cmd, "VERSION") == 0) return -1;
  if (j->has_version != 1 || j->version[0] == 0) return fail(j, 7, "cniVersion is required", "");
  if (!supported(j->version)) {
    snprintf(msg, sizeof msg, "incompatible CNI version %s", j->version);
    return fail(j, 1, msg, "supported versions: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0");
  }
  if (strcmp(cmd, "CHECK") == 0 && version_rank(j->version) < version_rank("0.4.0")) {
    snprintf(msg, sizeof msg, "CHECK needs cniVersion 0.4.0 or later, got %s", j->version);
    return fail(j, 1, msg, "");
  }
  if ((strcmp(cmd, "STATUS") == 0 || strcmp(cmd, "GC") == 0) && version_rank(j->version) < version_rank("1.1.0")) {
    snprintf(msg, sizeof msg, "%s needs cniVersion 1.1.0 or later, got %s", cmd, j->version);
    return fail(j, 1, msg, "");
  }
  if (strcmp(cmd, "ADD") == 0 || strcmp(cmd, "DEL") == 0 || strcmp(cmd, "CHECK") == 0) {
    const char *id = getenv("CNI_CONTAINERID"), *ifname = getenv("CNI_IFNAME"), *netns = getenv("CNI_NETNS");
    if (!id || !*id) return fail(j, 4, "CNI_CONTAINERID is not set", "");
    if (!valid_container_id(id)) {
      snprintf(msg, sizeof msg, "invalid CNI_CONTAINERID \"%.100s\"", id);
      return fail(j, 4, msg, "must be alphanumeric with _ . - and no \"..\"");
    }
    if (!ifname || !*ifname) return fail(j, 4, "CNI_IFNAME is not set", "");
    if (!valid_ifname(ifname)) {
      snprintf(msg, sizeof msg, "invalid CNI_IFNAME \"%.100s\"", ifname);
      return fail(j, 4, msg, "at most 15 characters, no \"/\", \":\" or spaces");
    }
    if (strcmp(cmd, "DEL") != 0 && (!netns || !*netns)) return fail(j, 4, "CNI_NETNS is not set", "");
    if (netns && *netns && netns[0] != '/') return fail(j, 4, "CNI_NETNS must be an absolute path", netns);
  }
  if (!valid_cni_args(getenv("CNI_ARGS"))) return fail(j, 4, "CNI_ARGS entry is not KEY=VALUE", getenv("CNI_ARGS"));
  return -1;
}

int main(void) {
  size_t in_len = 0;
  char *in = read_all(0, &in_len);
  if (!in) return fail(NULL, 5, "out of memory reading stdin", "");
  const char *cmd = getenv("CNI_COMMAND");
  struct json conf;
  int early = precheck(cmd, in, in_len, &conf);
  if (early >= 0) return early;

  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  const char *env_sock = getenv("SKIFF_CNI_SOCKET");
  if (env_sock && *env_sock) snprintf(path, sizeof path, "%s", env_sock);
  else if (conf.has_socket && conf.socket[0]) snprintf(path, sizeof path, "%s", conf.socket);
  else snprintf(path, sizeof path, "/run/skiff/cni.sock");

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    if (strcmp(cmd, "DEL") == 0) return 0;
    if (strcmp(cmd, "STATUS") == 0) return fail(&conf, 50, "skiff agent is not running", path);
    if (strcmp(cmd, "VERSION") == 0) {
      printf("{\"cniVersion\":\"%s\",\"supportedVersions\":[", answer_version(&conf));
      for (size_t i = 0; i < NVERSIONS; i++) printf("%s\"%s\"", i ? "," : "", VERSIONS[i]);
      printf("]}\n");
      return 0;
    }
    return fail(&conf, 11, "skiff agent is not reachable, try again later", path);
  }

  for (char **e = environ; *e; e++) {
    if (strncmp(*e, "CNI_", 4) != 0) continue;
    if (write_all(fd, *e, strlen(*e) + 1) != 0) return fail(&conf, 11, "lost the skiff agent while sending", path);
  }
  if (write_all(fd, "", 1) != 0 || write_all(fd, in, in_len) != 0) return fail(&conf, 11, "lost the skiff agent while sending", path);
  shutdown(fd, SHUT_WR);

  size_t out_len = 0;
  char *out = read_all(fd, &out_len);
  close(fd);
  char *nl = out ? memchr(out, '\n', out_len) : NULL;
  if (!nl) return fail(&conf, 11, "the skiff agent closed the connection without an answer", path);
  *nl = 0;
  int code = atoi(out);
  size_t body = out_len - (size_t)(nl + 1 - out);
  if (body > 0) {
    write_all(1, nl + 1, body);
    write_all(1, "\n", 1);
  }
  return code;
}
