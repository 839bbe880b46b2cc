/* simtest.c - helpers for the gpusim tests (see simtest.h). */
#include "simtest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define SIMTEST_PATH_MAX 512

static char test_dir[SIMTEST_PATH_MAX];
static char state_path[SIMTEST_PATH_MAX + 16];

const char *simtest_env(const char *devices, const char *context)
{
    static const char *const vars[] = {
        "GPUSIM_STATE",       "GPUSIM_DEVICES",  "GPUSIM_CONTEXT_BYTES",
        "GPUSIM_BACKED",      "GPUSIM_H2D_GBPS", "GPUSIM_D2H_GBPS",
        "GPUSIM_FREE_LAG_MS", "GPUSIM_DEBUG",    "GPUSIM_PIDS",
    };
    const char *tmp = getenv("TMPDIR");

    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    snprintf(test_dir, sizeof(test_dir), "%s/gpusim-test-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(test_dir) == NULL)
        harness_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
    snprintf(state_path, sizeof(state_path), "%s/state", test_dir);
    setenv("GPUSIM_STATE", state_path, 1);
    if (devices != NULL)
        setenv("GPUSIM_DEVICES", devices, 1);
    if (context != NULL)
        setenv("GPUSIM_CONTEXT_BYTES", context, 1);
    return state_path;
}

void simtest_cleanup(void)
{
    DIR *d;
    struct dirent *e;

    if (test_dir[0] == '\0')
        return;
    d = opendir(test_dir);
    if (d != NULL) {
        while ((e = readdir(d)) != NULL) {
            char p[SIMTEST_PATH_MAX + 256];
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof(p), "%s/%s", test_dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(test_dir);
}

double simtest_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t simtest_rss_bytes(void)
{
    unsigned long long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f == NULL || fscanf(f, "%llu %llu", &size, &resident) != 2)
        harness_fail(__FILE__, __LINE__, "cannot read /proc/self/statm");
    fclose(f);
    return resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

int simtest_run(char *const argv[], char *const env_extra[], char *out, size_t outlen)
{
    int fds[2], status;
    size_t got = 0;
    pid_t pid;

    if (pipe(fds) < 0)
        harness_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid = fork();
    if (pid < 0)
        harness_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        for (size_t i = 0; env_extra != NULL && env_extra[i] != NULL; i++)
            putenv(env_extra[i]);
        execv(argv[0], argv);
        fprintf(stderr, "cannot run '%s': %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        char sink[256];
        ssize_t n;
        if (got + 1 < outlen)
            n = read(fds[0], out + got, outlen - got - 1);
        else
            n = read(fds[0], sink, sizeof(sink));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (got + 1 < outlen)
            got += (size_t)n;
    }
    close(fds[0]);
    if (outlen > 0)
        out[got] = '\0';
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

const char *simtest_path_env(const char *name)
{
    const char *v = getenv(name);

    if (v == NULL || v[0] == '\0')
        harness_fail(__FILE__, __LINE__, "%s is not set (run through meson test)", name);
    return v;
}
