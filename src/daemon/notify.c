/* notify.c - sd_notify without libsystemd: a datagram to $NOTIFY_SOCKET. */
#include "daemon/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* sun_path is 108 bytes; an abstract name uses them all but the leading NUL. */
static struct sockaddr_un notify_addr;
static socklen_t notify_addr_len; /* 0: no socket */
static int64_t watchdog_ms;       /* 0: off */
static int64_t watchdog_last_ms = -1;

int gc_notify_init(char *errbuf, size_t errbuf_len)
{
    const char *sock = getenv("NOTIFY_SOCKET");
    const char *usec = getenv("WATCHDOG_USEC");
    const char *pid = getenv("WATCHDOG_PID");
    size_t n = sock != NULL ? strlen(sock) : 0;
    int rc = 0;

    notify_addr_len = 0;
    watchdog_ms = 0;
    watchdog_last_ms = -1;
    if (sock != NULL && (sock[0] == '/' || sock[0] == '@') && n < sizeof(notify_addr.sun_path)) {
        memset(&notify_addr, 0, sizeof(notify_addr));
        notify_addr.sun_family = AF_UNIX;
        memcpy(notify_addr.sun_path, sock, n);
        if (sock[0] == '@')
            notify_addr.sun_path[0] = '\0';
        /* An abstract name's length is exact (no terminating NUL); a path's
         * includes it. */
        notify_addr_len =
            (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (sock[0] == '@' ? 0 : 1));
    } else if (sock != NULL) {
        snprintf(errbuf, errbuf_len,
                 "ignoring NOTIFY_SOCKET '%.200s': not an absolute path or '@' name shorter "
                 "than %zu bytes",
                 sock, sizeof(notify_addr.sun_path));
        rc = -EINVAL;
    }
    if (usec != NULL) {
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(usec, &end, 10);
        if (errno == 0 && end != usec && *end == '\0' && usec[0] != '-' && v >= 1000 &&
            v / 1000 <= INT64_MAX) {
            watchdog_ms = (int64_t)(v / 1000);
        } else {
            /* After a socket complaint, if any: both are worth knowing. */
            size_t used = rc < 0 ? strlen(errbuf) : 0;

            snprintf(errbuf + used, errbuf_len - used,
                     "%signoring WATCHDOG_USEC '%.40s': not a number of microseconds >= 1000",
                     used > 0 ? "; " : "", usec);
            rc = -EINVAL;
        }
    }
    if (pid != NULL) {
        char *end;
        long p = strtol(pid, &end, 10);

        /* The watchdog is meant for another process of this service. */
        if (end == pid || *end != '\0' || p != (long)getpid())
            watchdog_ms = 0;
    }
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    return rc;
}

int gc_notify_send(const char *state)
{
    ssize_t sent;
    size_t len = strlen(state);
    int fd, rc = 0;

    if (notify_addr_len == 0)
        return 0;
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    sent = sendto(fd, state, len, MSG_NOSIGNAL, (const struct sockaddr *)&notify_addr,
                  notify_addr_len);
    if (sent < 0)
        rc = -errno;
    else if ((size_t)sent != len)
        rc = -EMSGSIZE;
    close(fd);
    return rc;
}

int64_t gc_notify_watchdog_ms(void)
{
    return watchdog_ms;
}

int64_t gc_notify_watchdog_tick(int64_t now_ms, int64_t timeout_ms)
{
    int64_t half = watchdog_ms / 2, next;

    if (watchdog_ms == 0)
        return timeout_ms;
    if (half < 1)
        half = 1;
    if (watchdog_last_ms < 0 || now_ms - watchdog_last_ms >= half) {
        /* A failed send is retried at the next tick; systemd restarts us if none
         * gets through, which is what a watchdog is for. */
        gc_notify_send("WATCHDOG=1");
        watchdog_last_ms = now_ms;
    }
    next = watchdog_last_ms + half - now_ms;
    return timeout_ms < 0 || next < timeout_ms ? next : timeout_ms;
}
