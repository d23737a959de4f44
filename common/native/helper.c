// skiff-helper: the agent's long-lived small children (common/nft/helper.ts, dns/server/handoff.ts)
// as a static binary of 0.7 MB resident instead of bash (3 MB) or sh (1.7 MB) (issue 16).
//
//   skiff-helper launch ARGV...  one line in per run ("<id> <file>"), ARGV + file runs with its
//                                output in <file>.out; one line out when it ends ("<id> <exit
//                                code>"); runs overlap; ends at end of input
//   skiff-helper spare ARGV...   waits for one line, then becomes ARGV on the same pipes, stderr
//                                joined to stdout; end of input first: exits 0
//   skiff-helper hold SECONDS    keeps the descriptors it was given: waits for a line or the end
//                                of input, then SECONDS more (the DNS socket holder)
//
// launch and spare first close every descriptor above stderr they inherited: a long-lived child
// must never hold the agent's DNS sockets, or the next agent cannot take them over or bind them.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

static void close_inherited(void) {
  if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return;
  // Before Linux 5.9: whatever /proc lists (the listing's own descriptor is closed last).
  DIR *d = opendir("/proc/self/fd");
  if (!d) return;
  int own = dirfd(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    int fd = atoi(e->d_name);
    if (fd > 2 && fd != own) close(fd);
  }
  closedir(d);
}

static void write_all(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    s += w;
    n -= (size_t)w;
  }
}

static int spare(char **argv) {
  char c;
  for (;;) {
    ssize_t r = read(0, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 0;
    if (c == '\n') break;
  }
  dup2(1, 2);
  execvp(argv[0], argv);
  dprintf(1, "Error: skiff-helper: %s: %s\n", argv[0], strerror(errno));
  return 127;
}

struct run {
  pid_t pid;
  long id;
};

static struct run *runs;
static size_t nruns, capruns;

static void start(char **argv, int argc, const sigset_t *mask, long id, const char *file) {
  pid_t pid = fork();
  if (pid < 0) {
    char line[64];
    int n = snprintf(line, sizeof line, "%ld 126\n", id);
    write_all(1, line, (size_t)n);
    return;
  }
  if (pid == 0) {
    sigprocmask(SIG_UNBLOCK, mask, NULL);
    char out[4096];
    snprintf(out, sizeof out, "%s.out", file);
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int o = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (in >= 0) dup2(in, 0);
    if (o >= 0) {
      dup2(o, 1);
      dup2(o, 2);
    }
    char **args = calloc((size_t)argc + 2, sizeof *args);
    if (!args) _exit(126);
    for (int i = 0; i < argc; i++) args[i] = argv[i];
    args[argc] = (char *)file;
    execvp(args[0], args);
    dprintf(2, "skiff-helper: %s: %s\n", args[0], strerror(errno));
    _exit(127);
  }
  if (nruns == capruns) {
    size_t cap = capruns ? capruns * 2 : 16;
    struct run *r = realloc(runs, cap * sizeof *r);
    if (!r) abort();
    runs = r;
    capruns = cap;
  }
  runs[nruns++] = (struct run){pid, id};
}

static void reap(void) {
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    for (size_t i = 0; i < nruns; i++) {
      if (runs[i].pid != pid) continue;
      int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      char line[64];
      int n = snprintf(line, sizeof line, "%ld %d\n", runs[i].id, code);
      write_all(1, line, (size_t)n);
      runs[i] = runs[--nruns];
      break;
    }
  }
}

static int launch(char **argv, int argc) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
  if (sfd < 0) return 1;
  char buf[8192];
  size_t len = 0;
  struct pollfd fds[2] = {{.fd = 0, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (fds[1].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) < 0 && errno == EINTR) {
      }
      reap();
    }
    if (!fds[0].revents) continue;
    ssize_t r = read(0, buf + len, sizeof buf - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    // End of input: the agent is gone or done with us; runs in flight finish on their own.
    if (r <= 0) return 0;
    len += (size_t)r;
    char *line = buf, *nl;
    while ((nl = memchr(line, '\n', (size_t)(buf + len - line))) != NULL) {
      *nl = '\0';
      char *file = strchr(line, ' ');
      if (file) {
        *file++ = '\0';
        start(argv, argc, &mask, strtol(line, NULL, 10), file);
      }
      line = nl + 1;
    }
    len = (size_t)(buf + len - line);
    memmove(buf, line, len);
    if (len == sizeof buf - 1) len = 0; // a line longer than any path: dropped
  }
}

static int hold(const char *seconds) {
  char c;
  for (;;) {
    ssize_t r = read(0, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || c == '\n') break;
  }
  unsigned left = (unsigned)strtoul(seconds, NULL, 10);
  while ((left = sleep(left)) > 0) {
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "hold") == 0) return hold(argv[2]);
  close_inherited();
  if (argc >= 3 && strcmp(argv[1], "spare") == 0) return spare(argv + 2);
  if (argc >= 3 && strcmp(argv[1], "launch") == 0) return launch(argv + 2, argc - 2);
  fprintf(stderr, "usage: skiff-helper launch|spare ARGV... | hold SECONDS\n");
  return 2;
}
