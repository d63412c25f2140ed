/*
 * The event loop of a plain (not TLS) libmicrohttpd daemon, run by
 * csgi-server instead of by the library's own thread.
 *
 * libmicrohttpd's internal epoll thread (0.9.75 and 1.0.1 alike) computes its
 * wait once per round, then calls epoll_wait() again with that same wait
 * whenever a call returned a full batch (128 events), before it serves what
 * the batch made ready. When exactly 128 (or 256, ...) connections became
 * ready at once and nothing else happens after, the thread sleeps with those
 * requests read and unanswered until the nearest connection timeout
 * (--header-timeout, 10 s) or the next unrelated event. A burst of
 * connections (clients reconnecting after a reload, a load test) hits it.
 *
 * Here the daemon runs in libmicrohttpd's "external" epoll mode, on this
 * module's thread. While the daemon holds 125 connections or more, the thread
 * waits on the daemon's epoll descriptor with the daemon's own timeout, then
 * calls MHD_run(), whose inner waits never block. With fewer, no wait can
 * return a full batch, and the thread lets libmicrohttpd wait itself
 * (MHD_run_wait()): one system call per round, as its own thread makes. A
 * connection the acceptor hands over is queued and added by this thread
 * (libmicrohttpd wants MHD_add_connection() on the thread that runs it in
 * this mode). TLS daemons keep libmicrohttpd's poll() thread, which has no
 * such loop (http_mhd.c says why they use poll()).
 */
#ifndef SRV_MHD_LOOP_H
#define SRV_MHD_LOOP_H

#include <sys/socket.h>

struct MHD_Daemon;
struct srv_mhd_loop;

struct srv_mhd_loop_ops {
    /*
     * Add a handed-over connection to the daemon, on the loop's thread.
     * Owns @p fd from then on (libmicrohttpd closes it on failure). 0 when the
     * daemon took it (its close is reported: srv_mhd_loop_closed()), -1 when
     * it never will be (the loop then counts it out as dropped).
     */
    int (*add)(void *cls, struct MHD_Daemon *d, int fd, const struct sockaddr *addr,
               socklen_t addr_len);
    /* A handed-over connection ended without reaching the daemon (its fd is closed already). */
    void (*dropped)(void *cls);
    void *cls;
};

/*
 * Run @p d (started with MHD_USE_EPOLL, without an internal thread; no
 * MHD_USE_ITC is needed) on a new thread. The loop owns @p d from then on: it stops it.
 * NULL on failure (logged); @p d is then the caller's still.
 */
struct srv_mhd_loop *srv_mhd_loop_start(struct MHD_Daemon *d, const struct srv_mhd_loop_ops *ops);

/*
 * Queue an accepted connection for the loop's thread (any thread). Owns
 * @p fd from then on. 0, or -1 when out of memory (@p fd closed).
 */
int srv_mhd_loop_hand(struct srv_mhd_loop *lp, int fd, const struct sockaddr *addr,
                      socklen_t addr_len);

/*
 * Wake the loop (any thread; NULL is ignored). libmicrohttpd has no
 * inter-thread channel in this mode (0.9.75 drops it; csgi-server asks for
 * none), so a connection resumed (or an upgraded one closed) from another
 * thread would wait for the next event: call it after MHD_resume_connection()
 * and MHD_upgrade_action(CLOSE). Wakes from one round of the loop are one
 * write.
 */
void srv_mhd_loop_poke(struct srv_mhd_loop *lp);

/*
 * Connections handed to the loop and not closed yet (any thread): what the
 * acceptor balances on. On 0.9.75, asking the daemon instead
 * (MHD_get_daemon_info()) would clean its closed connections up on the
 * asking thread, racing the loop.
 */
unsigned srv_mhd_loop_connections(struct srv_mhd_loop *lp);

/*
 * A connection of the loop's daemon closed: call it from libmicrohttpd's
 * closed notification (on the loop's thread; NULL is ignored).
 */
void srv_mhd_loop_closed(struct srv_mhd_loop *lp);

/* The loop whose thread this is, NULL on any other thread. */
struct srv_mhd_loop *srv_mhd_loop_current(void);

/*
 * Work for the loop's thread: fn(t) runs there at the loop's next round, in
 * the order queued. Queued once until it ran: a task queued again before that
 * runs once. Embed it in the object it works on; zeroed means idle.
 */
struct srv_mhd_task {
    void (*fn)(struct srv_mhd_task *t);
    struct srv_mhd_task *next;
    int queued; /* under the loop's lock */
};

/* Queue @p t (any thread) and wake the loop. */
void srv_mhd_loop_defer(struct srv_mhd_loop *lp, struct srv_mhd_task *t);

/* Take @p t out of the queue if it is there (before its object is freed). */
void srv_mhd_loop_cancel(struct srv_mhd_loop *lp, struct srv_mhd_task *t);

/*
 * Stop the loop: its thread runs the tasks still queued, closes the
 * connections still queued, stops the daemon
 * (MHD_stop_daemon(), on that thread) and exits; then free. NULL is ignored.
 */
void srv_mhd_loop_stop(struct srv_mhd_loop *lp);

#endif /* SRV_MHD_LOOP_H */
