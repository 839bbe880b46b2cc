/* harness.c - runs each registered test in a child process with a timeout. */
#include "harness.h"

#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HARNESS_TESTS_MAX 512

struct harness_test {
    const char *name;
    harness_fn fn;
    unsigned timeout_s;
};

static struct harness_test tests[HARNESS_TESTS_MAX];
static int ntests;

void harness_register(const char *name, harness_fn fn, unsigned timeout_s)
{
    if (ntests >= HARNESS_TESTS_MAX) {
        fprintf(stderr, "harness: too many tests\n");
        exit(2);
    }
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    tests[ntests].timeout_s = timeout_s;
    ntests++;
}

void harness_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "  %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _exit(1);
}

static int run_one(const struct harness_test *t)
{
    struct timespec t0, t1;
    int status;
    pid_t pid;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        alarm(t->timeout_s);
        t->fn();
        fflush(NULL);
        _exit(0);
    }
    while (waitpid(pid, &status, 0) < 0)
        ;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        printf("ok   %s (%.0f ms)\n", t->name, ms);
        return 0;
    }
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
        printf("FAIL %s: timed out after %u s\n", t->name, t->timeout_s);
    else if (WIFSIGNALED(status))
        printf("FAIL %s: killed by signal %d\n", t->name, WTERMSIG(status));
    else
        printf("FAIL %s\n", t->name);
    return 1;
}

int main(int argc, char **argv)
{
    int failed = 0, ran = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < ntests; i++) {
        if (argc > 1 && strstr(tests[i].name, argv[1]) == NULL)
            continue;
        failed += run_one(&tests[i]);
        ran++;
    }
    printf("%d/%d passed\n", ran - failed, ran);
    return failed > 125 ? 125 : failed;
}
