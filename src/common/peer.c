/* peer.c - the owner of a loopback TCP client socket: asked of the kernel for that
 * one socket (sock_diag), or found in /proc/net/tcp{,6} where that is refused. */
#include "peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* A table line is about 150 bytes; longer ones are not socket lines. */
#define PEER_LINE_MAX 512

int gc_peer_table_uid(FILE *f, const struct gc_peer_end *local, const struct gc_peer_end *remote,
                      uid_t *ret_uid)
{
    char line[PEER_LINE_MAX];

    while (fgets(line, sizeof(line), f) != NULL) {
        char lhex[40], rhex[40];
        unsigned lport, rport, state;
        unsigned long uid, inode;

        /* "sl: local:port remote:port st tx:rx tr:when retrnsmt uid timeout inode" */
        if (sscanf(line,
                   " %*u: %39[0-9A-Fa-f]:%x %39[0-9A-Fa-f]:%x %x %*x:%*x %*x:%*x %*x %lu %*d %lu",
                   lhex, &lport, rhex, &rport, &state, &uid, &inode) != 7)
            continue;
        if (lport != local->port || rport != remote->port || strcasecmp(lhex, local->hex) != 0 ||
            strcasecmp(rhex, remote->hex) != 0)
            continue;
        if (inode == 0)
            return -1; /* closed by its process: the uid column no longer names anyone */
        *ret_uid = (uid_t)uid;
        return 0;
    }
    return -1;
}

bool gc_peer_end_from_sockaddr(const struct sockaddr *sa, struct gc_peer_end *end)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        uint32_t word;
        memcpy(&word, &in->sin_addr, sizeof(word));
        /* The kernel prints the address's bytes as one native-endian word. */
        snprintf(end->hex, sizeof(end->hex), "%08X", word);
        end->port = ntohs(in->sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        uint32_t w[4];
        memcpy(w, &in6->sin6_addr, sizeof(w));
        snprintf(end->hex, sizeof(end->hex), "%08X%08X%08X%08X", w[0], w[1], w[2], w[3]);
        end->port = ntohs(in6->sin6_port);
        return true;
    }
    return false;
}

bool gc_peer_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

/* An IPv4-mapped IPv6 address as the IPv4 address it maps (the client's socket may be
 * an IPv4 one connected to a dual-stack listener); false when sa is not one. */
static bool unmap_v4(const struct sockaddr *sa, struct sockaddr_in *out)
{
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

    if (sa->sa_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
        return false;
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = in6->sin6_port;
    memcpy(&out->sin_addr, &in6->sin6_addr.s6_addr[12], 4);
    return true;
}

static int lookup(const char *table, const struct sockaddr *peer, const struct sockaddr *local,
                  uid_t *ret_uid)
{
    struct gc_peer_end pe, le;
    FILE *f;
    int rc;

    if (!gc_peer_end_from_sockaddr(peer, &pe) || !gc_peer_end_from_sockaddr(local, &le))
        return -1;
    f = fopen(table, "re");
    if (f == NULL)
        return -1;
    /* The client's socket: its local end is our peer, its remote end is us. */
    rc = gc_peer_table_uid(f, &pe, &le, ret_uid);
    fclose(f);
    return rc;
}

/* Copies sa's address and port into a sock_diag socket id's end. */
static void diag_end(const struct sockaddr *sa, __be32 addr[4], __be16 *port)
{
    memset(addr, 0, 4 * sizeof(addr[0]));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memcpy(addr, &in->sin_addr, sizeof(in->sin_addr));
        *port = in->sin_port;
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(addr, &in6->sin6_addr, sizeof(in6->sin6_addr));
        *port = in6->sin6_port;
    }
}

int gc_peer_diag_uid(const struct sockaddr *peer, const struct sockaddr *local, uid_t *ret_uid)
{
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
    } msg;
    union {
        struct nlmsghdr nlh;
        char buf[1024];
    } answer;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    struct timeval tv = {.tv_sec = 1};
    const struct inet_diag_msg *diag;
    ssize_t n;
    int fd, rc = -2;

    if ((peer->sa_family != AF_INET && peer->sa_family != AF_INET6) ||
        local->sa_family != peer->sa_family)
        return -1;
    memset(&msg, 0, sizeof(msg));
    msg.nlh.nlmsg_len = sizeof(msg);
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST; /* one socket, found by its ends: no dump */
    msg.req.sdiag_family = (__u8)peer->sa_family;
    msg.req.sdiag_protocol = IPPROTO_TCP;
    msg.req.idiag_states = ~0U;
    /* The client's socket: its local end is our peer, its remote end is us. */
    diag_end(peer, msg.req.id.idiag_src, &msg.req.id.idiag_sport);
    diag_end(local, msg.req.id.idiag_dst, &msg.req.id.idiag_dport);
    msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
    msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

    fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return -2;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)); /* the kernel answers at once */
    if (sendto(fd, &msg, sizeof(msg), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
        goto out;
    do {
        n = recv(fd, &answer, sizeof(answer), 0);
    } while (n < 0 && errno == EINTR);
    if (n < (ssize_t)sizeof(struct nlmsghdr) || !NLMSG_OK(&answer.nlh, (size_t)n))
        goto out;
    if (answer.nlh.nlmsg_type == NLMSG_ERROR &&
        answer.nlh.nlmsg_len >= NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
        const struct nlmsgerr *e = NLMSG_DATA(&answer.nlh);
        if (e->error == -ENOENT)
            rc = -1; /* no such socket */
        goto out;    /* else: not allowed to ask, or not supported */
    }
    rc = -1;
    if (answer.nlh.nlmsg_type != SOCK_DIAG_BY_FAMILY ||
        answer.nlh.nlmsg_len < NLMSG_LENGTH(sizeof(*diag)))
        goto out;
    diag = NLMSG_DATA(&answer.nlh);
    if (diag->idiag_inode == 0)
        goto out; /* closed by its process: its uid no longer names anyone */
    *ret_uid = (uid_t)diag->idiag_uid;
    rc = 0;
out:
    close(fd);
    return rc;
}

int gc_peer_tcp_uid(const struct sockaddr *peer, const struct sockaddr *local, uid_t *ret_uid)
{
    struct sockaddr_in p4, l4;
    bool mapped;
    int rc, rc2;

    if (!gc_peer_is_loopback(peer))
        return -1; /* a remote client's socket is not in this host's tables */
    /* The client's socket may be an IPv4 one connected to a dual-stack listener. */
    mapped = unmap_v4(peer, &p4) && unmap_v4(local, &l4);
    /* Asked of the kernel for this one socket: reading /proc/net/tcp walks every bucket
     * of its connection table, about a millisecond on a machine with much memory. The
     * tables only where the kernel will not answer. */
    rc = mapped ? gc_peer_diag_uid((struct sockaddr *)&p4, (struct sockaddr *)&l4, ret_uid) : -1;
    if (rc == 0)
        return 0;
    rc2 = gc_peer_diag_uid(peer, local, ret_uid);
    if (rc2 == 0)
        return 0;
    if (rc2 == -1 && (!mapped || rc == -1))
        return -1; /* the kernel says: no such open socket */
    if (mapped &&
        lookup("/proc/net/tcp", (struct sockaddr *)&p4, (struct sockaddr *)&l4, ret_uid) == 0)
        return 0;
    return lookup(peer->sa_family == AF_INET6 ? "/proc/net/tcp6" : "/proc/net/tcp", peer, local,
                  ret_uid);
}
