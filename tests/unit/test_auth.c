/* test_auth.c - callback URL checks, the /proc/net/tcp owner lookup, caller identity,
 * and signals that never reach a reused pid (docs/security.md). */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "common/http_client.h"
#include "common/peer.h"
#include "common/proc.h"
#include "common/url.h"
#include "daemon/caller.h"

static int check(const char *url, bool allow_remote)
{
    char why[256];
    int rc = gc_url_check_callback(url, allow_remote, why, sizeof(why));

    if (rc < 0 && why[0] == '\0')
        harness_fail(__FILE__, __LINE__, "'%s' refused without a reason", url);
    return rc;
}

TEST(url_loopback_accepted)
{
    static const char *ok[] = {"http://127.0.0.1:10006",  "http://127.0.0.1:9/base/",
                               "http://localhost:9",      "http://LocalHost:9",
                               "http://[::1]:9",          "http://127.1:9",
                               "http://127.255.255.254",  "http://[::ffff:127.0.0.1]:9",
                               "http://127.0.0.1:9/a/b/c"};

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (check(ok[i], false) != 0)
            harness_fail(__FILE__, __LINE__, "'%s' should be accepted", ok[i]);
    }
}

TEST(url_userinfo_and_foreign_hosts_refused)
{
    static const char *bad[] = {
        /* The host libcurl connects to is the one after '@'. */
        "http://127.0.0.1:1@0.0.0.0:80",
        "http://[::1]@192.0.2.7:80",
        "http://localhost:x@192.0.2.7",
        "http://127.0.0.1@192.0.2.7",
        "http://user:pw@127.0.0.1:9",
        "http://user@localhost:9",
        "http://192.0.2.7:8000",
        "http://0.0.0.0:9",
        "http://[::]:9",
        "http://localhost.example.com:9",
        "http://127.0.0.1.nip.io:9",
        "http://128.0.0.1:9",
        "https://127.0.0.1:9",
        "ftp://127.0.0.1/",
        "127.0.0.1:9",
        "http:/127.0.0.1:9",
        "http://127.0.0.1:9/?x=1",
        "http://127.0.0.1:9#frag",
        "http://127.0.0.1:9 /x",
        "http://",
        "",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (check(bad[i], false) != GC_EINVAL)
            harness_fail(__FILE__, __LINE__, "'%s' should be refused", bad[i]);
    }
}

TEST(url_remote_allowed_by_config_but_never_userinfo)
{
    char why[256];

    ASSERT_EQ_INT(check("http://192.0.2.7:8000", true), 0);
    ASSERT_EQ_INT(check("http://gpu-box.example:8000/x", true), 0);
    ASSERT_EQ_INT(gc_url_check_callback("http://a:b@192.0.2.7", true, why, sizeof(why)), GC_EINVAL);
    ASSERT(strstr(why, "user") != NULL);
}

static void end_v4(const char *ip, unsigned port, struct gc_peer_end *end)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};

    inet_pton(AF_INET, ip, &sa.sin_addr);
    ASSERT(gc_peer_end_from_sockaddr((struct sockaddr *)&sa, end));
}

/* A /proc/net/tcp as the kernel prints it: a listener, the server's accepted socket
 * (uid 0), the client's socket (uid 1000), an orphaned one and a TIME_WAIT one. */
static const char tcp_table[] =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
    "timeout inode\n"
    "   0: 0100007F:2712 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        "
    "0 44636 1 00000000fccc1ea2 100 0 0 10 0\n"
    "   1: 0100007F:2712 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000     0        "
    "0 50001 1 00000000fccc1ea2 20 4 30 10 -1\n"
    "   2: 0100007F:A1B2 0100007F:2712 01 00000000:00000000 00:00000000 00000000  1000        "
    "0 50002 1 00000000fccc1ea2 20 4 30 10 -1\n"
    "   3: 0100007F:A1B3 0100007F:2712 05 00000000:00000000 00:00000000 00000000     0        "
    "0 0 1 00000000fccc1ea2 20 4 30 10 -1\n"
    "   4: 0100007F:A1B4 0100007F:2712 06 00000000:00000000 03:00001770 00000000     0        "
    "0 0 3 0000000000000000\n";

static int table_uid(const char *table, const struct gc_peer_end *local,
                     const struct gc_peer_end *remote, uid_t *uid)
{
    FILE *f = fmemopen((void *)table, strlen(table), "r");
    int rc;

    ASSERT(f != NULL);
    rc = gc_peer_table_uid(f, local, remote, uid);
    fclose(f);
    return rc;
}

TEST(peer_table_finds_the_client_socket)
{
    struct gc_peer_end client, server, other;
    uid_t uid = 42;

    end_v4("127.0.0.1", 0xA1B2, &client);
    end_v4("127.0.0.1", 10002, &server);
    ASSERT_STREQ(client.hex, "0100007F"); /* as the kernel prints it (little-endian, as above) */
    ASSERT_EQ_INT(table_uid(tcp_table, &client, &server, &uid), 0);
    ASSERT_EQ_INT((int)uid, 1000);
    /* The server's own accepted socket is the other direction: not it. */
    ASSERT_EQ_INT(table_uid(tcp_table, &server, &client, &uid), 0);
    ASSERT_EQ_INT((int)uid, 0);
    end_v4("127.0.0.1", 0xA1B9, &other);
    ASSERT_EQ_INT(table_uid(tcp_table, &other, &server, &uid), -1);
    /* A socket its process closed (inode 0) reads as uid 0: never trusted. */
    end_v4("127.0.0.1", 0xA1B3, &other);
    ASSERT_EQ_INT(table_uid(tcp_table, &other, &server, &uid), -1);
    end_v4("127.0.0.1", 0xA1B4, &other);
    ASSERT_EQ_INT(table_uid(tcp_table, &other, &server, &uid), -1);
    ASSERT_EQ_INT(table_uid("garbage\n\n:::\n", &client, &server, &uid), -1);
}

TEST(peer_table_ipv6)
{
    static const char table[] =
        "  sl  local_address                         remote_address                        st "
        "tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 00000000000000000000000001000000:C350 00000000000000000000000001000000:2712 01 "
        "00000000:00000000 00:00000000 00000000  1001        0 777 1 0000000000000000 20 4 30 "
        "10 -1\n";
    struct sockaddr_in6 c = {.sin6_family = AF_INET6, .sin6_port = htons(0xC350)};
    struct sockaddr_in6 s = {.sin6_family = AF_INET6, .sin6_port = htons(10002)};
    struct gc_peer_end ce, se;
    uid_t uid = 0;

    c.sin6_addr = in6addr_loopback;
    s.sin6_addr = in6addr_loopback;
    ASSERT(gc_peer_is_loopback((struct sockaddr *)&c));
    ASSERT(gc_peer_end_from_sockaddr((struct sockaddr *)&c, &ce));
    ASSERT(gc_peer_end_from_sockaddr((struct sockaddr *)&s, &se));
    ASSERT_EQ_INT(table_uid(table, &ce, &se, &uid), 0);
    ASSERT_EQ_INT((int)uid, 1001);
}

/* A real connection to ourselves over family's loopback: the kernel's table names our
 * own user. False when this host has no such loopback (no IPv6). */
static bool live_lookup(int family)
{
    struct sockaddr_storage sa, client_addr, server_side;
    socklen_t len = sizeof(sa);
    int lfd, cfd, afd;
    uid_t uid = 12345;

    memset(&sa, 0, sizeof(sa));
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&sa;
        in->sin_family = AF_INET;
        inet_pton(AF_INET, "127.0.0.1", &in->sin_addr);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_loopback;
    }
    lfd = socket(family, SOCK_STREAM, 0);
    cfd = socket(family, SOCK_STREAM, 0);
    ASSERT(lfd >= 0 && cfd >= 0);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(lfd);
        close(cfd);
        return false;
    }
    ASSERT_EQ_INT(listen(lfd, 1), 0);
    ASSERT_EQ_INT(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
    ASSERT_EQ_INT(connect(cfd, (struct sockaddr *)&sa, len), 0);
    afd = accept(lfd, NULL, NULL);
    ASSERT(afd >= 0);
    len = sizeof(client_addr);
    ASSERT_EQ_INT(getpeername(afd, (struct sockaddr *)&client_addr, &len), 0);
    len = sizeof(server_side);
    ASSERT_EQ_INT(getsockname(afd, (struct sockaddr *)&server_side, &len), 0);
    ASSERT_EQ_INT(
        gc_peer_tcp_uid((struct sockaddr *)&client_addr, (struct sockaddr *)&server_side, &uid), 0);
    ASSERT_EQ_INT((int)uid, (int)geteuid());
    /* The kernel is asked for that one socket (sock_diag), not its whole table. */
    uid = 12345;
    ASSERT_EQ_INT(
        gc_peer_diag_uid((struct sockaddr *)&client_addr, (struct sockaddr *)&server_side, &uid),
        0);
    ASSERT_EQ_INT((int)uid, (int)geteuid());
    /* Once the client has closed its socket, it is no one's. */
    close(cfd);
    ASSERT_EQ_INT(
        gc_peer_tcp_uid((struct sockaddr *)&client_addr, (struct sockaddr *)&server_side, &uid),
        -1);
    ASSERT_EQ_INT(
        gc_peer_diag_uid((struct sockaddr *)&client_addr, (struct sockaddr *)&server_side, &uid),
        -1);
    close(afd);
    close(lfd);
    return true;
}

TEST(peer_live_loopback_connection)
{
    ASSERT(live_lookup(AF_INET));
    if (!live_lookup(AF_INET6))
        printf("  (no IPv6 loopback here: the IPv6 lookup was not tried live)\n");
}

TEST(peer_live_ipv4_client_of_a_dual_stack_listener)
{
    /* The server sees ::ffff:127.0.0.1; the client's socket is an IPv4 one. */
    struct sockaddr_in6 any = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
    struct sockaddr_in to = {.sin_family = AF_INET};
    struct sockaddr_storage client_addr, server_side;
    socklen_t len = sizeof(any);
    int lfd = socket(AF_INET6, SOCK_STREAM, 0), cfd = socket(AF_INET, SOCK_STREAM, 0), afd, off = 0;
    uid_t uid = 12345;

    ASSERT(lfd >= 0 && cfd >= 0);
    setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    if (bind(lfd, (struct sockaddr *)&any, sizeof(any)) < 0) {
        printf("  (no IPv6 here: not tried)\n");
        close(lfd);
        close(cfd);
        return;
    }
    ASSERT_EQ_INT(listen(lfd, 1), 0);
    ASSERT_EQ_INT(getsockname(lfd, (struct sockaddr *)&any, &len), 0);
    to.sin_port = any.sin6_port;
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    ASSERT_EQ_INT(connect(cfd, (struct sockaddr *)&to, sizeof(to)), 0);
    afd = accept(lfd, NULL, NULL);
    ASSERT(afd >= 0);
    len = sizeof(client_addr);
    ASSERT_EQ_INT(getpeername(afd, (struct sockaddr *)&client_addr, &len), 0);
    ASSERT_EQ_INT(client_addr.ss_family, AF_INET6);
    len = sizeof(server_side);
    ASSERT_EQ_INT(getsockname(afd, (struct sockaddr *)&server_side, &len), 0);
    ASSERT_EQ_INT(
        gc_peer_tcp_uid((struct sockaddr *)&client_addr, (struct sockaddr *)&server_side, &uid), 0);
    ASSERT_EQ_INT((int)uid, (int)geteuid());
    close(afd);
    close(cfd);
    close(lfd);
}

TEST(peer_remote_addresses_have_no_uid)
{
    struct sockaddr_in remote = {.sin_family = AF_INET, .sin_port = htons(40000)};
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons(10010)};
    uid_t uid = 7;

    inet_pton(AF_INET, "192.0.2.7", &remote.sin_addr);
    inet_pton(AF_INET, "192.0.2.1", &local.sin_addr);
    ASSERT(!gc_peer_is_loopback((struct sockaddr *)&remote));
    ASSERT_EQ_INT(gc_peer_tcp_uid((struct sockaddr *)&remote, (struct sockaddr *)&local, &uid), -1);
    ASSERT_EQ_INT((int)uid, 7);
}

TEST(caller_identity)
{
    struct gc_caller c;

    gc_caller_from_peer(true, 1000, "127.0.0.1", false, 0, &c);
    ASSERT(!c.trusted);
    ASSERT_STREQ(c.key, "uid:1000");
    gc_caller_from_peer(true, 1000, "unix", false, 1000, &c);
    ASSERT(c.trusted); /* the daemon's own user */
    gc_caller_from_peer(true, 0, "unix", false, 1000, &c);
    ASSERT(c.trusted); /* root */
    gc_caller_from_peer(false, 0, "192.0.2.7", false, 0, &c);
    ASSERT(!c.trusted && !c.uid_known); /* an unknown uid is never root */
    ASSERT_STREQ(c.key, "addr:192.0.2.7");
    gc_caller_from_peer(false, 0, "192.0.2.7", true, 0, &c);
    ASSERT(c.trusted);
    ASSERT_STREQ(c.key, "token");
    gc_caller_trusted("config", &c);
    ASSERT(c.trusted);
    ASSERT(gc_caller_owns(&c, "uid:5"));
    gc_caller_from_peer(true, 1000, "127.0.0.1", false, 0, &c);
    ASSERT(gc_caller_owns(&c, "uid:1000"));
    ASSERT(!gc_caller_owns(&c, "uid:1001"));
    ASSERT(!gc_caller_owns(&c, "")); /* owned by no one: trusted callers only */
}

TEST(caller_pid_checks)
{
    struct gc_caller c;
    uint64_t start = 0;
    char why[256];

    /* Untrusted with our own uid (built by hand: as root, uid 0 is always trusted). */
    memset(&c, 0, sizeof(c));
    c.uid_known = true;
    c.uid = geteuid();
    ASSERT_EQ_INT(gc_caller_check_pid(&c, getpid(), &start, why, sizeof(why)), 0);
    ASSERT(start > 0);
    gc_caller_from_peer(true, geteuid() + 1, "unix", false, 0, &c);
    ASSERT_EQ_INT(gc_caller_check_pid(&c, getpid(), &start, why, sizeof(why)), GC_EFORBIDDEN);
    ASSERT(strstr(why, "another user") != NULL);
    gc_caller_from_peer(false, 0, "192.0.2.7", false, 0, &c);
    ASSERT_EQ_INT(gc_caller_check_pid(&c, getpid(), &start, why, sizeof(why)), GC_EFORBIDDEN);
    ASSERT_EQ_INT(gc_caller_check_pid(&c, 0x3fffffff, &start, why, sizeof(why)), GC_EINVAL);
}

TEST(caller_pid_remembered_only_while_its_process_runs)
{
    struct gc_caller c;
    uint64_t start = 0, again = 0;
    char why[256];
    pid_t child = fork();

    if (child == 0) {
        pause();
        _exit(0);
    }
    ASSERT(child > 0);
    memset(&c, 0, sizeof(c));
    c.uid_known = true;
    c.uid = geteuid();
    ASSERT_EQ_INT(gc_caller_check_pid(&c, child, &start, why, sizeof(why)), 0);
    /* Remembered: the same answer, and still checked against the caller's uid. */
    ASSERT_EQ_INT(gc_caller_check_pid(&c, child, &again, why, sizeof(why)), 0);
    ASSERT_EQ_U64(again, start);
    c.uid = geteuid() + 1;
    ASSERT_EQ_INT(gc_caller_check_pid(&c, child, &again, why, sizeof(why)), GC_EFORBIDDEN);
    /* Once it has exited, it is not named again on the strength of what was read. */
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    c.uid = geteuid();
    ASSERT_EQ_INT(gc_caller_check_pid(&c, child, &again, why, sizeof(why)), GC_EINVAL);
    gc_caller_forget_pids();
}

TEST(http_client_refuses_a_user_part)
{
    struct gc_http_client *c = NULL;

    /* The request (and the bearer token) would go to the host after the '@'. */
    ASSERT_EQ_INT(gc_http_client_new("http://127.0.0.1:1@192.0.2.7:80", &c), GC_EINVAL);
    ASSERT_EQ_INT(gc_http_client_new("http://[::1]@192.0.2.7", &c), GC_EINVAL);
    ASSERT(c == NULL);
    ASSERT_EQ_INT(gc_http_client_new("http://127.0.0.1:9", &c), 0);
    gc_http_client_free(c);
}

TEST(signal_only_the_process_that_was_named)
{
    pid_t child = fork();
    uint64_t start;
    int status = 0;

    ASSERT(child >= 0);
    if (child == 0) {
        pause();
        _exit(0);
    }
    start = gc_proc_start_ticks(child);
    ASSERT(start > 0);
    /* Another start time stands for a later process that got the pid: untouched. */
    ASSERT_EQ_INT(gc_proc_signal(child, start + 1, SIGKILL), -1);
    ASSERT_EQ_INT(errno, ESRCH);
    ASSERT(gc_proc_alive(child));
    ASSERT_EQ_INT(gc_proc_signal(child, start, SIGKILL), 0);
    ASSERT_EQ_INT(waitpid(child, &status, 0), child);
    ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    ASSERT_EQ_INT(gc_proc_signal(child, start, SIGKILL), -1);
}
