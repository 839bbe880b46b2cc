/* proc.c - process liveness from /proc and pidfds. */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Reads the state letter, parent and start time from /proc/PID/stat; -1 if gone. */
static int proc_stat_full(pid_t pid, char *ret_state, pid_t *ret_ppid, uint64_t *ret_start)
{
    char path[64], buf[1024], *p;
    ssize_t n;
    int fd;
    unsigned long long start = 0;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* The command name may contain spaces and ')': the state follows the last ')'. */
    p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ')
        return -1;
    *ret_state = p[2];
    if (ret_ppid != NULL) {
        int ppid = 0;
        sscanf(p + 3, " %d", &ppid);
        *ret_ppid = (pid_t)ppid;
    }
    /* Field 22 (starttime); after ')' we are at field 3. */
    p += 2;
    for (int field = 3; field < 22 && p != NULL; field++) {
        p = strchr(p, ' ');
        if (p != NULL)
            p++;
    }
    if (p != NULL)
        sscanf(p, "%llu", &start);
    *ret_start = start;
    return 0;
}

static int proc_stat(pid_t pid, char *ret_state, uint64_t *ret_start)
{
    return proc_stat_full(pid, ret_state, NULL, ret_start);
}

pid_t gc_proc_parent(pid_t pid)
{
    char state;
    pid_t ppid = -1;
    uint64_t start;

    if (pid <= 0 || proc_stat_full(pid, &state, &ppid, &start) < 0)
        return -1;
    return ppid;
}

bool gc_proc_alive(pid_t pid)
{
    char state;
    uint64_t start;

    if (pid <= 0)
        return false;
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return false;
    if (proc_stat(pid, &state, &start) < 0)
        return false;
    return state != 'Z' && state != 'X' && state != 'x';
}

bool gc_proc_exists(pid_t pid)
{
    if (pid <= 0)
        return false;
    return kill(pid, 0) == 0 || errno == EPERM;
}

uint64_t gc_proc_start_ticks(pid_t pid)
{
    char state;
    uint64_t start;

    if (proc_stat(pid, &state, &start) < 0)
        return 0;
    return start;
}

int gc_proc_owner(pid_t pid, uid_t *ret_uid, uint64_t *ret_start_ticks)
{
    char path[64], line[256];
    uint64_t before, after;
    unsigned long uid = 0;
    bool found = false;
    FILE *f;

    if (pid <= 0 || !gc_proc_alive(pid))
        return -1;
    before = gc_proc_start_ticks(pid);
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "re");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "Uid:", 4) == 0) {
            found = sscanf(line + 4, "%lu", &uid) == 1; /* real, effective, saved, fs */
            break;
        }
    }
    fclose(f);
    after = gc_proc_start_ticks(pid);
    if (!found || before == 0 || before != after)
        return -1;
    *ret_uid = (uid_t)uid;
    *ret_start_ticks = before;
    return 0;
}

int gc_proc_signal(pid_t pid, uint64_t start_ticks, int sig)
{
    int fd, rc;

    if (pid <= 0) {
        errno = ESRCH;
        return -1;
    }
    fd = gc_pidfd_open(pid);
    if (fd < 0) {
        if (errno != ENOSYS)
            return -1;
        /* No pidfds: check, then signal (a narrow window remains on such kernels). */
        if (start_ticks != 0 && gc_proc_start_ticks(pid) != start_ticks) {
            errno = ESRCH;
            return -1;
        }
        return kill(pid, sig);
    }
    /* Opened first, checked second: if the start time still matches, the pidfd names
     * our process, and a signal through it cannot reach a later one with its pid. */
    if (start_ticks != 0 && gc_proc_start_ticks(pid) != start_ticks) {
        close(fd);
        errno = ESRCH;
        return -1;
    }
#ifdef SYS_pidfd_send_signal
    rc = (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
#else
    rc = kill(pid, sig);
#endif
    close(fd);
    return rc;
}

int gc_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}
