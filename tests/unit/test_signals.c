/* test_signals.c — the cleanup handlers of check.h when the kernel hands a signal to a
 * thread other than the main one (an OpenMP or OpenBLAS pool thread, a tool's worker):
 * the main thread, which registers and creates the temporary files, must be the one
 * that removes them and ends the process, or it goes on creating the next file between
 * the sweep and the end. Each case runs in a child process: the main thread creates
 * and registers files as fast as it can while a second thread receives the signal. */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "test.h"

static char dir[256];

static void *send_to_self(void *arg) {
    usleep(20000);   /* the main thread is busy creating files by now */
    pthread_kill(pthread_self(), *(int *)arg);   /* to this thread, not the main one */
    for (;;) pause();
    return NULL;
}

/* The child: a file registered and created per iteration, until the signal ends it. */
static void child(int sig) {
    /* a signal the test's own parent ignores (a background job of a non-interactive
     * shell has SIGINT ignored; nohup, SIGHUP) would stay ignored (check.h): this test
     * is about delivery, so it takes them back */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    dr_set_progname("test_signals");
    dr_install_cleanup_signals();
    pthread_t th;
    static int s;
    s = sig;
    CHECK(pthread_create(&th, NULL, send_to_self, &s) == 0, "pthread_create");
    char path[400];
    for (long k = 0;; k++) {
        snprintf(path, sizeof path, "%s/out-%ld.tmp", dir, k);
        dr_tmp_register(path);
        FILE *f = fopen(path, "w");
        if (f) fclose(f);
        if (k > 200000) _exit(3);   /* no signal came (registering is O(k): keep it bounded) */
    }
}

static int leftovers(void) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, "out-", 4) == 0) {
            char p[600];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
            n++;
        }
    if (d) closedir(d);
    return n;
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/dr_test_signals.XXXXXX");
    CHECK(mkdtemp(dir), "mkdtemp");
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (int rep = 0; rep < 10; rep++)
        for (int k = 0; k < 3; k++) {
            fflush(stdout);
            fflush(stderr);
            pid_t pid = fork();
            CHECK(pid >= 0, "fork");
            if (pid == 0) {
                freopen("/dev/null", "w", stderr);   /* its "interrupted" line */
                child(sigs[k]);
            }
            int status = 0;
            CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
            TEST_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == sigs[k],
                       "signal %d to a second thread: the process did not end by it (status %d)",
                       sigs[k], status);
            int n = leftovers();
            TEST_CHECK(n == 0, "signal %d to a second thread (try %d): %d temporary files left", sigs[k],
                       rep, n);
        }
    rmdir(dir);
    return test_finish("test_signals");
}
