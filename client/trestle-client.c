/* trestle-client: what a CNI runtime runs as trestle-bridge, trestle-host-local and
 * trestle-portmap when Trestle's daemon may be resident (issue 10, wire protocol v1).
 *
 * One call: send the whole environment and stdin to the daemon over a unix socket
 * ($TRESTLE_SOCKET, default /run/trestle/trestled.sock), write the daemon's stdout and
 * stderr bytes unchanged, exit with its status. The daemon is an accelerator, never a
 * dependency:
 *   - nobody listens (no socket, stale socket, not a socket, refused, closed before we
 *     sent a byte), or the daemon answers 409 (another build) or 503 (shutting down):
 *     exec the one-shot plugin `<dir of /proc/self/exe>/trestle-node <plugin>` with the
 *     same environment and the same stdin bytes;
 *   - no complete answer within TRESTLE_CLIENT_TIMEOUT_MS (default 30000 ms from the
 *     start, connect and send included), the connection closed early, or a malformed
 *     answer: CNI error 11 "try again later", exit 1. Never a fallback there, since the
 *     daemon may have done part of the work, and never a success that did not happen.
 * stdout carries only the daemon's stdout, the one-shot plugin's, or one CNI error line.
 * The plugin is the basename of argv[0]; run as trestle-client, argv[1] names it (tests).
 * Build: scripts/build-client.sh [build-id] -> dist/client/trestle-client (static musl).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef TRESTLE_BUILD
#error "define TRESTLE_BUILD (scripts/build-client.sh does)"
#endif

#define DEFAULT_SOCKET "/run/trestle/trestled.sock"
#define MAX_STDIN ((size_t)64 << 20)
#define MAX_HEAD ((size_t)64 << 10)
#define MAX_BODY (2 * MAX_STDIN) /* stdout and stderr together */

extern char **environ;

struct buf { char *p; size_t len, cap; };

static const char *plugins[] = {"trestle-bridge", "trestle-host-local", "trestle-portmap"};
static const char *versions[] = {"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
static struct buf in;          /* stdin, once read */
static int in_read;
static const char *sock_path;
static long timeout_ms = 30000;
static long long deadline;     /* CLOCK_MONOTONIC, ms */
static struct sigaction old_pipe; /* the runtime's SIGPIPE disposition, for the plugin */

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Room for one more byte at least: reads fill what is there, and the buffer doubles only
 * when full. Asking for a read's worth more each time made every call realloc its 64 KiB
 * stdin and answer buffers to 128 KiB, past musl's mmap threshold: a copy, page faults
 * and an munmap per buffer, a fifth of the client's CPU time (measured). */
static int grow(struct buf *b, size_t need) {
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 65536;
  while (cap < need) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}

/* Blocks until fd is ready for ev; -1 once the deadline has passed. */
static int wait_fd(int fd, short ev, long long until) {
  for (;;) {
    long long left = until - now_ms();
    if (left <= 0) return -1;
    struct pollfd p = {fd, ev, 0};
    int r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
    if (r > 0) return 0;
    if (r < 0 && errno != EINTR) return -1;
  }
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN && wait_fd(fd, POLLOUT, LLONG_MAX) == 0) continue;
      return; /* nobody to tell: the runtime closed our stdout or stderr */
    }
    p += w;
    n -= (size_t)w;
  }
}

/* Reads all of stdin once; an error string, or NULL. A closed fd 0 reads as empty. */
static const char *read_stdin(void) {
  if (in_read++) return NULL;
  for (;;) {
    if (grow(&in, in.len + 1)) return "out of memory reading stdin";
    ssize_t n = read(0, in.p + in.len, in.cap - in.len);
    if (n == 0 || (n < 0 && errno == EBADF)) return NULL;
    if (n < 0) {
      if (errno == EINTR || (errno == EAGAIN && wait_fd(0, POLLIN, LLONG_MAX) == 0)) continue;
      return strerror(errno);
    }
    in.len += (size_t)n;
    if (in.len > MAX_STDIN) return "stdin is larger than 64 MiB";
  }
}

/* The configuration's top-level cniVersion when it is one we know, else 1.1.0: a scan
 * of the JSON's depth and strings, since the error must be answered even for bad input. */
static const char *cni_version(void) {
  const char *p = in.p, *found = "1.1.0";
  size_t n = in.len, i = 0;
  int depth = 0;
  while (i < n) {
    if (p[i] == '{' || p[i] == '[') depth++;
    if (p[i] == '}' || p[i] == ']') depth--;
    if (p[i++] != '"') continue;
    size_t start = i;
    while (i < n && p[i] != '"') i += p[i] == '\\' ? 2 : 1;
    if (i >= n) break;
    size_t end = i++;
    if (depth != 1 || end - start != 10 || memcmp(p + start, "cniVersion", 10)) continue;
    size_t j = i;
    while (j < n && memchr(" \t\r\n", p[j], 4)) j++;
    if (j >= n || p[j] != ':') continue; /* a value "cniVersion", not the key */
    for (j++; j < n && memchr(" \t\r\n", p[j], 4); j++) {}
    found = "1.1.0"; /* JSON.parse keeps the last duplicate key, and so do we */
    for (size_t v = 0; v < sizeof versions / sizeof *versions; v++) {
      size_t len = strlen(versions[v]);
      if (j + len + 2 <= n && p[j] == '"' && !memcmp(p + j + 1, versions[v], len) && p[j + 1 + len] == '"')
        found = versions[v];
    }
  }
  return found;
}

/* Prints {"cniVersion":…,"code":…,"msg":…} on stdout and exits 1. */
static _Noreturn void cni_error(int code, const char *fmt, ...) {
  static char msg[8192], out[6 * sizeof msg + 128];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  read_stdin(); /* for the cniVersion; a read error leaves what was read */
  int n = snprintf(out, sizeof out, "{\"cniVersion\":\"%s\",\"code\":%d,\"msg\":\"", cni_version(), code);
  for (const unsigned char *c = (const unsigned char *)msg; *c; c++) {
    if (*c == '"' || *c == '\\') n += sprintf(out + n, "\\%c", *c);
    else if (*c < 0x20) n += sprintf(out + n, "\\u%04x", *c);
    else out[n++] = (char)*c;
  }
  n += sprintf(out + n, "\"}\n");
  write_all(1, out, (size_t)n);
  exit(1);
}

static _Noreturn void try_again(const char *why) {
  cni_error(11, "the Trestle daemon (%s) %s: try again later", sock_path, why);
}

/* The one-shot plugin, with stdin untouched (in_read == 0) or fed back from memory.
 * Fed back through a memfd as fd 0 rather than a pipe: a pipe holds 64 KiB, so a writer
 * would have to be a second process outliving our exec; a memfd needs no process and no
 * file to clean up, and the plugin reads it like a redirected file. */
static _Noreturn void one_shot(const char *plugin) {
  static char path[PATH_MAX];
  const char *name = "trestle-node";
  ssize_t n = readlink("/proc/self/exe", path, sizeof path);
  char *slash = n > 0 && (size_t)n < sizeof path ? memrchr(path, '/', (size_t)n) : NULL;
  if (!slash || (size_t)(slash - path) + strlen(name) + 2 > sizeof path)
    cni_error(5, "cannot find the one-shot plugin: /proc/self/exe unreadable");
  strcpy(slash + 1, name);
  if (in_read) {
    int fd = memfd_create("trestle-stdin", 0);
    if (fd < 0) cni_error(5, "cannot pass stdin to %s: memfd_create: %s", path, strerror(errno));
    write_all(fd, in.p, in.len);
    if (lseek(fd, 0, SEEK_SET) != 0 || dup2(fd, 0) != 0)
      cni_error(5, "cannot pass stdin to %s: %s", path, strerror(errno));
    if (fd != 0) close(fd);
  }
  struct sigaction ours;
  sigaction(SIGPIPE, &old_pipe, &ours); /* an ignored signal would stay ignored across exec */
  char *argv[] = {(char *)name, (char *)plugin, NULL};
  execve(path, argv, environ);
  int e = errno;
  sigaction(SIGPIPE, &ours, NULL);
  cni_error(5, "cannot run the one-shot plugin %s: %s", path, strerror(e));
}

/* A connected socket; -1: nobody listens (fall back), -2: connect hit the deadline. */
static int dial(void) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(sock_path) >= sizeof a.sun_path) return -1;
  strcpy(a.sun_path, sock_path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  /* A unix connect waits only while the listener's backlog is full, for up to SO_SNDTIMEO,
   * then fails with EAGAIN: the daemon is there but stalled. */
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    int e = errno;
    close(fd);
    return e == EAGAIN ? -2 : -1;
  }
  fcntl(fd, F_SETFL, O_NONBLOCK);
  return fd;
}

/* Writes the iovecs before the deadline: 0, or -1 on a timeout, -2 on an error. */
static int send_all(int fd, struct iovec *iov, int n, size_t *sent) {
  while (n > 0) {
    ssize_t w = writev(fd, iov, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        if (wait_fd(fd, POLLOUT, deadline)) return -1;
        continue;
      }
      return -2;
    }
    *sent += (size_t)w;
    for (; n > 0 && (size_t)w >= iov->iov_len; iov++, n--) w -= (ssize_t)iov->iov_len;
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + w;
      iov->iov_len -= (size_t)w;
    }
  }
  return 0;
}

/* A decimal header value: digits only, at most 15 of them. */
static long long number(const char *s, const char *e) {
  while (s < e && (*s == ' ' || *s == '\t')) s++;
  while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
  if (s == e || e - s > 15) return -1;
  long long v = 0;
  for (; s < e; s++) {
    if (*s < '0' || *s > '9') return -1;
    v = v * 10 + (*s - '0');
  }
  return v;
}

struct answer { int status; long long length, exit, out; size_t head; };

/* Parses the status line and headers of r; 0 when r holds them all, 1 for more, -1 malformed. */
static int parse_head(const struct buf *r, struct answer *a) {
  const char *end = memmem(r->p, r->len, "\r\n\r\n", 4);
  if (!end) return r->len > MAX_HEAD ? -1 : 1;
  a->head = (size_t)(end - r->p) + 4;
  const char *p = r->p;
  if (end - p < 12 || memcmp(p, "HTTP/1.", 7) || p[8] != ' ') return -1;
  a->status = (int)number(p + 9, p + 12);
  if (a->status < 100) return -1;
  a->length = a->exit = a->out = -1;
  for (const char *line = memmem(p, (size_t)(end + 2 - p), "\r\n", 2); line < end;) {
    line += 2;
    const char *eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
    const char *colon = memchr(line, ':', (size_t)(eol - line));
    if (!colon) return -1;
    size_t k = (size_t)(colon - line);
    if (k == 14 && !strncasecmp(line, "Content-Length", k)) a->length = number(colon + 1, eol);
    if (k == 14 && !strncasecmp(line, "X-Trestle-Exit", k)) a->exit = number(colon + 1, eol);
    if (k == 23 && !strncasecmp(line, "X-Trestle-Stdout-Length", k)) a->out = number(colon + 1, eol);
    line = eol;
  }
  if (a->status == 200 && (a->length < 0 || a->length > (long long)MAX_BODY || a->exit < 0 ||
                           a->exit > 255 || a->out < 0 || a->out > a->length))
    return -1;
  return 0;
}

static const char *plugin_name(int argc, char **argv) {
  const char *name = argc > 0 && argv[0] ? argv[0] : "";
  const char *slash = strrchr(name, '/');
  if (slash) name = slash + 1;
  if (!strcmp(name, "trestle-client")) name = argc > 1 ? argv[1] : "";
  for (size_t i = 0; i < sizeof plugins / sizeof *plugins; i++)
    if (!strcmp(name, plugins[i])) return plugins[i];
  return NULL;
}

int main(int argc, char **argv) {
  const char *plugin = plugin_name(argc, argv);
  if (!plugin) {
    static const char usage[] =
        "trestle-client: run as trestle-bridge, trestle-host-local or trestle-portmap (a CNI plugin),\n"
        "or as: trestle-client <trestle-bridge|trestle-host-local|trestle-portmap>\n";
    write_all(2, usage, sizeof usage - 1);
    return 2;
  }
  struct sigaction ignore = {.sa_handler = SIG_IGN};
  sigaction(SIGPIPE, &ignore, &old_pipe); /* a peer that closes early is an error we handle */
  sock_path = getenv("TRESTLE_SOCKET");
  if (!sock_path || !*sock_path) sock_path = DEFAULT_SOCKET;
  const char *t = getenv("TRESTLE_CLIENT_TIMEOUT_MS");
  long long parsed = t ? number(t, t + strlen(t)) : -1;
  if (parsed > 0 && parsed <= 86400000) timeout_ms = (long)parsed;
  deadline = now_ms() + timeout_ms;

  /* Connect before reading stdin: with no daemon, the plugin gets fd 0 as the runtime gave it. */
  int fd = dial();
  if (fd == -1) one_shot(plugin);
  char why[64];
  snprintf(why, sizeof why, "did not answer within %ld ms", timeout_ms);
  if (fd == -2) try_again(why);
  const char *err = read_stdin();
  if (err) cni_error(5, "%s: %s", plugin, err);

  size_t env_len = 0;
  for (char **e = environ; *e; e++) env_len += strlen(*e) + 1;
  char *env = malloc(env_len + 1), *w = env;
  if (!env) cni_error(5, "%s: out of memory", plugin);
  for (char **e = environ; *e; e++) w = stpcpy(w, *e) + 1;
  char head[512];
  int head_len = snprintf(head, sizeof head,
                          "POST /v1/cni HTTP/1.1\r\nHost: trestle\r\nContent-Length: %zu\r\n"
                          "X-Trestle-Plugin: %s\r\nX-Trestle-Build: %s\r\nX-Trestle-Env-Length: %zu\r\n"
                          "Connection: close\r\n\r\n",
                          env_len + in.len, plugin, TRESTLE_BUILD, env_len);
  struct iovec iov[] = {{head, (size_t)head_len}, {env, env_len}, {in.p, in.len}};
  size_t sent = 0;
  int s = send_all(fd, iov, 3, &sent);
  if (s == -1) try_again(why);
  if (s == -2 && sent == 0) { /* closed before it saw a byte of ours: nothing ran */
    close(fd);
    one_shot(plugin);
  }
  /* After a failed send, still read: the daemon may have answered (409, 503) first. */

  struct buf r = {0};
  struct answer a = {0};
  int parsed_head = 1;
  for (;;) {
    if (grow(&r, r.len + 1)) try_again("gave an answer too large to hold");
    ssize_t n = read(fd, r.p + r.len, r.cap - r.len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (wait_fd(fd, POLLIN, deadline)) try_again(why);
      continue;
    }
    if (n <= 0) try_again("closed the connection before answering");
    r.len += (size_t)n;
    if (parsed_head == 1 && (parsed_head = parse_head(&r, &a)) < 0) try_again("gave a malformed answer");
    if (parsed_head == 1) continue;
    if (a.status == 409 || a.status == 503) {
      close(fd);
      one_shot(plugin);
    }
    if (a.status != 200) {
      snprintf(why, sizeof why, "answered with HTTP status %d", a.status);
      try_again(why);
    }
    if (r.len >= a.head + (size_t)a.length) break;
  }
  write_all(1, r.p + a.head, (size_t)a.out);
  write_all(2, r.p + a.head + a.out, (size_t)(a.length - a.out));
  return (int)a.exit;
}
