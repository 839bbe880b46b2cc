/*
 * peer.h - who is at the other end of a loopback TCP connection.
 *
 * A Unix socket says who connected (SO_PEERCRED); TCP does not. On loopback both
 * ends are sockets of this host, and the kernel lists every TCP socket with its
 * owner in /proc/net/tcp and /proc/net/tcp6: the client's socket is the one whose
 * local end is the connection's remote end and the other way round. Its uid column
 * is the user that created the socket, as trustworthy as SO_PEERCRED (both are the
 * kernel's record of the socket's creator).
 */
#ifndef GC_PEER_H
#define GC_PEER_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

/* One end of a TCP connection as /proc/net/tcp{,6} prints it: the address as the
 * kernel's raw 32-bit words in hexadecimal (8 or 32 digits) and the port. */
struct gc_peer_end {
    char hex[33];
    unsigned port;
};

/*
 * gc_peer_table_uid: reads a /proc/net/tcp or tcp6 table from f and looks for the
 * socket whose local end is `local` and remote end `remote`, owned by a live socket
 * (a socket its process has closed shows inode 0 and uid 0: it is not trusted).
 * Returns 0 with *ret_uid set, or -1 when there is no such line.
 */
int gc_peer_table_uid(FILE *f, const struct gc_peer_end *local, const struct gc_peer_end *remote,
                      uid_t *ret_uid);

/* Fills end from a socket address (AF_INET or AF_INET6); false for other families. */
bool gc_peer_end_from_sockaddr(const struct sockaddr *sa, struct gc_peer_end *end);

/* True when sa is a loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104). */
bool gc_peer_is_loopback(const struct sockaddr *sa);

/*
 * gc_peer_diag_uid: the same question asked of the kernel for that one socket
 * (NETLINK_SOCK_DIAG, found by its two ends): 0 with *ret_uid; -1 when no open
 * socket matches; -2 when the kernel cannot be asked (no sock_diag, refused).
 */
int gc_peer_diag_uid(const struct sockaddr *peer, const struct sockaddr *local, uid_t *ret_uid);

/*
 * gc_peer_tcp_uid: the uid owning the client socket of a loopback TCP connection,
 * given the client's address (peer) and the server's (local), both as the server
 * sees them. 0 with *ret_uid, or -1 when peer is not loopback or no socket matches.
 */
int gc_peer_tcp_uid(const struct sockaddr *peer, const struct sockaddr *local, uid_t *ret_uid);

#endif
