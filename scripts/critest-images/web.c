/* The web-server stand-in of the critest images (nginx, httpd, hostnet-nginx): a small PID 1
 * that runs busybox httpd in the foreground and behaves as the specs expect of the real servers:
 *   - its process name is the name it is installed under (/usr/sbin/nginx: `pidof nginx`);
 *   - WEB_TITLE, when set, becomes its argv[0] (by re-executing itself), as nginx renames its
 *     master "nginx: master process ..." (read from /proc/1/cmdline);
 *   - WEB_PIDFILE, when set, gets its pid (nginx's /var/run/nginx.pid);
 *   - it prints a banner with its name to stdout (the httpd spec looks for "httpd" in the log);
 *   - SIGTERM, SIGINT and SIGQUIT stop httpd and end it with status 0, as PID 1 of a PID
 *     namespace ignores signals it has no handler for.
 * WEB_PORT (default 80) and WEB_ROOT (default /var/www) configure httpd. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

static const char *env_or(const char *name, const char *fallback) {
  const char *value = getenv(name);
  return value && *value ? value : fallback;
}

int main(int argc, char **argv) {
  (void)argc;
  const char *title = getenv("WEB_TITLE");
  if (title && *title && strcmp(argv[0], title) != 0) {
    /* Re-exec the binary by its real path, not /proc/self/exe: the kernel names the process
     * (comm) after the path's last component, and `pidof nginx` must still find it. */
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len < 0) {
      perror("web stand-in: readlink /proc/self/exe");
      return 1;
    }
    self[len] = '\0';
    char *args[] = {(char *)title, NULL};
    execv(self, args);
    perror("web stand-in: re-exec with WEB_TITLE");
    return 1;
  }

  const char *pidfile = getenv("WEB_PIDFILE");
  if (pidfile && *pidfile) {
    FILE *f = fopen(pidfile, "w");
    if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0) {
      perror(pidfile);
      return 1;
    }
  }

  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, NULL);
  sigaction(SIGINT, &action, NULL);
  sigaction(SIGQUIT, &action, NULL);

  const char *port = env_or("WEB_PORT", "80");
  const char *root = env_or("WEB_ROOT", "/var/www");
  char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
  printf("%s: busybox httpd stand-in serving %s on port %s (pid %d)\n", name, root, port,
         (int)getpid());
  fflush(stdout);

  pid_t child = fork();
  if (child < 0) {
    perror("fork");
    return 1;
  }
  if (child == 0) {
    char *args[] = {"httpd", "-f", "-p", (char *)port, "-h", (char *)root, NULL};
    execv("/bin/httpd", args);
    perror("exec /bin/httpd");
    _exit(127);
  }

  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, 0);
    if (stop_signal) {
      kill(child, SIGTERM);
      while (waitpid(-1, NULL, 0) > 0 || !stop_signal) {
      }
      return 0;
    }
    if (pid == child) {
      fprintf(stderr, "%s: httpd exited (status %d)\n", name, status);
      return 1;
    }
  }
}
