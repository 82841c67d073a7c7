/* exec-timer: start a program `runs` times, one after the other, and print each run's
 * wall time in ms (fork to exit), or "fail <status>". The benchmark's own start-up figures
 * are taken by Node, whose spawn adds about a millisecond to every run; this static
 * program adds a few microseconds, which is what a ≤ 1 ms client start-up needs.
 * Usage: exec-timer <runs> <stdin file> <program> [args...]; the environment is passed on.
 * exec-timer [--net=<netns path>] --pass <program> [args...]: one run (program looked up
 * on PATH, as by execvp) with stdin, stdout and stderr passed on, its wall time appended
 * to stderr as a last line "exec-timer-ms <ms>", and the program's exit status as its
 * own: the other sections' second clock, which leaves out Node's spawn. With --net it
 * first joins that network namespace (the sandbox node), as nsenter did before it: a
 * runtime lives in its node's namespace and pays no such step, and nsenter, a dynamic
 * program, cost about a millisecond of CPU per call, which weighed on 50 parallel calls. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int pass(char **argv) {
  pid_t pid;
  int status;
  double started = now_ms();
  int error = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
  if (error != 0) {
    fprintf(stderr, "exec-timer: %s: %s\n", argv[0], strerror(error));
    return 127;
  }
  if (waitpid(pid, &status, 0) != pid) {
    perror("exec-timer: waitpid");
    return 127;
  }
  fprintf(stderr, "\nexec-timer-ms %.3f\n", now_ms() - started);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

static int join_netns(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
    fprintf(stderr, "exec-timer: entering %s: %s\n", path, strerror(errno));
    return -1;
  }
  close(fd);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 4 && strncmp(argv[1], "--net=", 6) == 0 && strcmp(argv[2], "--pass") == 0) {
    if (join_netns(argv[1] + 6) != 0) return 127;
    return pass(argv + 3);
  }
  if (argc >= 3 && strcmp(argv[1], "--pass") == 0) return pass(argv + 2);
  if (argc < 4) {
    fprintf(stderr, "usage: exec-timer <runs> <stdin file> <program> [args...]\n");
    return 2;
  }
  int runs = atoi(argv[1]);
  int in = open(argv[2], O_RDONLY | O_CLOEXEC);
  int out = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (in < 0 || out < 0) {
    perror("exec-timer: open");
    return 2;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in, 0);
  posix_spawn_file_actions_adddup2(&actions, out, 1);
  for (int i = 0; i < runs; i++) {
    lseek(in, 0, SEEK_SET); /* the offset is shared with the child: rewind for each run */
    pid_t pid;
    int status;
    double started = now_ms();
    if (posix_spawn(&pid, argv[3], &actions, NULL, argv + 3, environ) != 0 || waitpid(pid, &status, 0) != pid) {
      perror("exec-timer: spawn");
      return 1;
    }
    double ms = now_ms() - started;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) printf("%.3f\n", ms);
    else printf("fail %d\n", status);
  }
  return 0;
}
