/* test_http_slots.c - connection slots: general, reserved, per peer, making way,
 * deadlines. Connections are socketpairs; a slot shut down shows as EOF at the
 * other end. */
#include "harness.h"

#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/http_slots.h"

#define CONNS_MAX 16

struct conn {
    int fd[2]; /* [0] the server's end, [1] the client's */
    struct gc_http_slot *slot;
};

static struct gc_http_slots *slots_new(unsigned limit, unsigned reserve, unsigned per_peer,
                                       unsigned header_ms)
{
    struct gc_http_slots_config c = {.limit = limit,
                                     .reserve = reserve,
                                     .per_peer = per_peer,
                                     .header_ms = header_ms,
                                     .body_ms = 60000,
                                     .keepalive_ms = 60000};
    struct gc_http_slots *s = NULL;

    ASSERT_EQ_INT(gc_http_slots_new(&c, &s), 0);
    return s;
}

static void conn_open(struct gc_http_slots *s, struct conn *c, unsigned char peer_byte)
{
    struct gc_http_slot_peer peer = {{0}};

    peer.key[15] = peer_byte;
    ASSERT_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, c->fd), 0);
    c->slot = gc_http_slots_open(s, c->fd[0], &peer);
    ASSERT(c->slot != NULL);
    gc_sleep_ms(2); /* distinct waiting times: the oldest is well defined */
}

/* True once the server's end was shut down. */
static bool conn_cut(const struct conn *c)
{
    char b;

    return recv(c->fd[1], &b, 1, MSG_DONTWAIT) == 0;
}

static void conns_close(struct gc_http_slots *s, struct conn *c, int n)
{
    for (int i = 0; i < n; i++) {
        gc_http_slots_close(s, c[i].slot);
        close(c[i].fd[0]);
        close(c[i].fd[1]);
    }
    gc_http_slots_free(s);
}

TEST(the_longest_waiting_makes_way_then_the_reserve_serves)
{
    struct gc_http_slots *s = slots_new(4, 1, 4, 60000);
    struct gc_http_slots_stats st;
    struct conn c[CONNS_MAX];

    for (int i = 0; i < 3; i++)
        conn_open(s, &c[i], 1);
    for (int i = 0; i < 3; i++)
        ASSERT(!gc_http_slot_reserved(c[i].slot));
    /* General slots full: the oldest connection still waiting for its request makes
     * way (c[0] is past waiting: never made to go), before the reserve is touched. */
    gc_http_slot_headers_in(s, c[0].slot);
    conn_open(s, &c[3], 2);
    ASSERT(!gc_http_slot_reserved(c[3].slot));
    ASSERT(!conn_cut(&c[0]));
    ASSERT(conn_cut(&c[1]));
    /* Every general connection busy: the reserve. */
    gc_http_slot_handling(s, c[2].slot);
    gc_http_slot_handling(s, c[3].slot);
    conn_open(s, &c[4], 2);
    ASSERT(gc_http_slot_reserved(c[4].slot));
    /* Reserve full: its waiting connection makes way. */
    conn_open(s, &c[5], 2);
    ASSERT(gc_http_slot_reserved(c[5].slot));
    ASSERT(conn_cut(&c[4]));
    /* Nothing waits: the newcomer is refused. */
    gc_http_slot_handling(s, c[5].slot);
    conn_open(s, &c[6], 3);
    ASSERT(conn_cut(&c[6]));
    gc_http_slots_stats(s, &st);
    ASSERT_EQ_INT(st.general, 3);
    ASSERT_EQ_INT(st.reserved, 1);
    ASSERT_EQ_U64(st.evicted, 2);
    ASSERT_EQ_U64(st.refused, 1);
    /* A connection that closes gives its slot back. */
    gc_http_slots_close(s, c[0].slot);
    c[0].slot = NULL;
    conn_open(s, &c[7], 3);
    ASSERT(!gc_http_slot_reserved(c[7].slot));
    ASSERT(!conn_cut(&c[7]));
    conns_close(s, c, 8);
}

TEST(a_peer_at_its_cap_makes_way_only_among_its_own)
{
    struct gc_http_slots *s = slots_new(8, 2, 2, 60000);
    struct conn c[CONNS_MAX];

    conn_open(s, &c[0], 9); /* another peer, waiting longest */
    conn_open(s, &c[1], 1);
    conn_open(s, &c[2], 1);
    conn_open(s, &c[3], 1); /* over the cap: its own oldest goes */
    ASSERT(!gc_http_slot_reserved(c[3].slot));
    ASSERT(!conn_cut(&c[0]));
    ASSERT(conn_cut(&c[1]));
    /* Its own are all busy: a reserved slot, while other peers still get general. */
    gc_http_slot_handling(s, c[2].slot);
    gc_http_slot_handling(s, c[3].slot);
    conn_open(s, &c[4], 1);
    ASSERT(gc_http_slot_reserved(c[4].slot));
    conn_open(s, &c[5], 7);
    ASSERT(!gc_http_slot_reserved(c[5].slot));
    ASSERT(!conn_cut(&c[0]));
    conns_close(s, c, 6);
}

TEST(a_connection_is_cut_at_its_deadline_but_not_while_handled)
{
    struct gc_http_slots *s = slots_new(8, 2, 8, 150);
    struct gc_http_slots_stats st;
    struct conn c[CONNS_MAX];
    int64_t t0 = gc_mono_ms();

    conn_open(s, &c[0], 1);
    conn_open(s, &c[1], 1);
    gc_http_slot_handling(s, c[1].slot); /* a handler may wait as long as it likes */
    while (!conn_cut(&c[0]) && gc_mono_ms() - t0 < 2000)
        gc_sleep_ms(10);
    ASSERT(conn_cut(&c[0]));
    ASSERT_CMP_INT(gc_mono_ms() - t0, >=, 140);
    gc_sleep_ms(200);
    ASSERT(!conn_cut(&c[1]));
    gc_http_slots_stats(s, &st);
    ASSERT_EQ_U64(st.expired, 1);
    conns_close(s, c, 2);
}

TEST(a_connection_whose_request_sits_unread_is_not_made_to_go)
{
    struct gc_http_slots *s = slots_new(3, 1, 3, 60000);
    struct conn c[CONNS_MAX];

    conn_open(s, &c[0], 1);
    conn_open(s, &c[1], 1);
    /* c[0] waits longest, but its request has arrived: the server is slow, not it. */
    ASSERT_EQ_INT(write(c[0].fd[1], "GET / HTTP/1.1\r\n\r\n", 18), 18);
    conn_open(s, &c[2], 2);
    ASSERT(!gc_http_slot_reserved(c[2].slot));
    ASSERT(!conn_cut(&c[0]));
    ASSERT(conn_cut(&c[1]));
    conns_close(s, c, 3);
}
