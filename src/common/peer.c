/* peer.c - the owner of a loopback TCP client socket, from /proc/net/tcp{,6}. */
#include "peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

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

int gc_peer_tcp_uid(const struct sockaddr *peer, const struct sockaddr *local, uid_t *ret_uid)
{
    struct sockaddr_in p4, l4;

    if (!gc_peer_is_loopback(peer))
        return -1; /* a remote client's socket is not in this host's tables */
    if (unmap_v4(peer, &p4) && unmap_v4(local, &l4) &&
        lookup("/proc/net/tcp", (struct sockaddr *)&p4, (struct sockaddr *)&l4, ret_uid) == 0)
        return 0;
    return lookup(peer->sa_family == AF_INET6 ? "/proc/net/tcp6" : "/proc/net/tcp", peer, local,
                  ret_uid);
}
