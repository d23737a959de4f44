/*
 * A container runtime's plugin launcher for `npm run bench -- cni`: started once per batch inside
 * the node's namespace (so `ip netns exec` is paid outside the measured time), it starts every
 * request's plugin at once, one thread each, with posix_spawn (clone with CLONE_VFORK, as Go's
 * os/exec does for containerd), feeds its stdin, collects its stdout and times it from just before
 * the spawn to its exit.
 *
 * usage: cni-runtime DIR...   each DIR holds argv and env (NUL-separated strings) and stdin;
 * writes DIR/stdout and prints "<index> <exit code> <milliseconds>" per request.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct req {
  const char *dir;
  int code;
  double ms;
};

static char *slurp(const char *dir, const char *name, size_t *len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  for (size_t r; (r = fread(buf + n, 1, cap - n, f)) > 0;) {
    n += r;
    if (n == cap) buf = realloc(buf, cap *= 2);
  }
  fclose(f);
  *len = n;
  return buf;
}

/* NUL-separated strings -> NULL-terminated vector. */
static char **split(char *buf, size_t len) {
  size_t count = 0;
  for (size_t i = 0; i < len; i++) count += buf[i] == 0;
  char **v = calloc(count + 1, sizeof *v);
  size_t k = 0;
  for (size_t i = 0; i < len && k < count; i += strlen(buf + i) + 1) v[k++] = buf + i;
  return v;
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void *run(void *arg) {
  struct req *r = arg;
  size_t alen = 0, elen = 0, ilen = 0;
  char *a = slurp(r->dir, "argv", &alen), *e = slurp(r->dir, "env", &elen), *in = slurp(r->dir, "stdin", &ilen);
  r->code = -1;
  if (!a || !e || !in) return NULL;
  char **argv = split(a, alen), **envp = split(e, elen);
  int pin[2], pout[2];
  if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC)) return NULL;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
  posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
  double start = now_ms();
  pid_t pid;
  if (posix_spawn(&pid, argv[0], &fa, NULL, argv, envp) != 0) return NULL;
  close(pin[0]);
  close(pout[1]);
  for (size_t off = 0; off < ilen;) {
    ssize_t w = write(pin[1], in + off, ilen - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += (size_t)w;
  }
  close(pin[1]);
  char path[4096];
  snprintf(path, sizeof path, "%s/stdout", r->dir);
  FILE *out = fopen(path, "wb");
  char buf[65536];
  for (ssize_t n; (n = read(pout[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    if (out) fwrite(buf, 1, (size_t)n, out);
  }
  close(pout[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  r->ms = now_ms() - start;
  r->code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (out) fclose(out);
  return NULL;
}

int main(int argc, char **argv) {
  int n = argc - 1;
  struct req *reqs = calloc((size_t)n + 1, sizeof *reqs);
  pthread_t *th = calloc((size_t)n + 1, sizeof *th);
  for (int i = 0; i < n; i++) {
    reqs[i].dir = argv[i + 1];
    pthread_create(&th[i], NULL, run, &reqs[i]);
  }
  for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < n; i++) printf("%d %d %.3f\n", i, reqs[i].code, reqs[i].ms);
  return 0;
}
