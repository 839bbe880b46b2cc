/*
 * notify.h - the service manager notification protocol (systemd's sd_notify),
 * spoken directly: one datagram per message to the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or an abstract name written with a leading '@').
 *
 * Without $NOTIFY_SOCKET every call is a no-op, so the daemon behaves the same
 * under any supervisor or none. Process-wide state: call gc_notify_init() once,
 * before any thread starts.
 */
#ifndef GC_NOTIFY_H
#define GC_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

/* Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID and removes them from the
 * environment, so that processes the daemon starts (a resident's start command) do
 * not talk to the service manager in its name. The watchdog is on only when
 * WATCHDOG_USEC is a positive number and WATCHDOG_PID is unset or this process.
 * Returns 0, or -EINVAL when a variable is set but unusable (a relative or too long
 * socket name, a malformed number): errbuf (required) then says which, and the
 * rest is used. */
int gc_notify_init(char *errbuf, size_t errbuf_len);

/* Sends state ("READY=1", "STOPPING=1", "STATUS=...", lines joined by '\n').
 * Returns 0 when sent or when there is no socket to send to, else a negative
 * errno; the caller decides whether to log it. */
int gc_notify_send(const char *state);

/* The watchdog interval in ms (WATCHDOG_USEC / 1000), 0 when it is off. */
int64_t gc_notify_watchdog_ms(void);

/* For the engine loop: sends WATCHDOG=1 when half the interval has passed since the
 * last ping (systemd's advice, so a ping late by a scheduling hiccup still counts),
 * and returns timeout_ms shortened so that the loop wakes for the next one. With
 * the watchdog off it returns timeout_ms unchanged. now_ms is monotonic. */
int64_t gc_notify_watchdog_tick(int64_t now_ms, int64_t timeout_ms);

#endif
