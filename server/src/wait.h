/*
 * Requests that wait without holding a thread (SPEC.md 4.14): a call() or a
 * body's next() that returns CSGI_PENDING parks its request, which
 * suspends its libmicrohttpd connection, and csgi_host_api.resume() from any
 * thread wakes it. On a stop, every parked request is woken to end. A wake
 * loop thread per worker runs host timers and descriptor watches, and notices
 * a client that closes the connection of a parked request.
 */
#ifndef SRV_WAIT_H
#define SRV_WAIT_H

#include <stddef.h>
#include <stdint.h>

struct csgi_request;
struct srv_http;

/*
 * Park @p r until resume(), from the connection's own thread inside a
 * libmicrohttpd callback (the access handler or the content reader).
 * Returns 1: parked, the connection is suspended (the caller returns to
 * libmicrohttpd); 0: a resume() came already, go on now; -1: the worker
 * stops, end the response instead. A stream that may be woken without
 * libmicrohttpd (request.h, wake_task) is from its first park on; then it
 * parks from its task too (its connection stays suspended).
 */
int srv_wait_park(struct csgi_request *r);

/*
 * A stream woken without libmicrohttpd (request.h, direct): set whether its
 * connection is watched for room to write (a chunk the socket did not take
 * whole); the wake loop then queues its task when the socket drains or
 * fails. 0, or -1 when it cannot be watched.
 */
int srv_wait_want_write(struct csgi_request *r, int on);

/*
 * Whether such a stream's task has work: it is woken (not parked) and still
 * written by the loop. A task can be queued by a watch event after its run
 * parked the stream again, or gave it back.
 */
int srv_wait_direct_due(struct csgi_request *r);

/*
 * Give such a stream back to libmicrohttpd (on its loop's thread, nothing
 * held back): resume its connection, which calls the content reader next.
 */
void srv_wait_hand_back(struct csgi_request *r);

/* csgi_host_api.resume(): thread-safe. */
int srv_wait_resume(struct csgi_request *r);

/*
 * The worker stops: nothing parks from now on, and every parked request is
 * woken, to end (srv_wait_park() returns -1 for it from now on).
 */
void srv_wait_stop(struct srv_http *h);

/* Requests parked now. */
unsigned srv_wait_parked(struct srv_http *h);

/* csgi_host_api.stopping(): thread-safe. */
int srv_wait_stopping(struct csgi_request *r);

/* csgi_host_api.timer() and watch_fd(): one-shot wakes from the wake loop. */
int srv_wait_timer(struct csgi_request *r, uint64_t ms);
int srv_wait_watch_fd(struct csgi_request *r, int fd, uint32_t events);

/* The request is finishing: cancel its timers and watches (before its memory goes). */
void srv_wait_request_done(struct csgi_request *r);

/*
 * libmicrohttpd is done with the request (its connection's descriptor is
 * still open): the watch for the client leaving goes, before the descriptor
 * can be closed and its number used again.
 */
void srv_wait_conn_done(struct csgi_request *r);

/*
 * Start the worker's wake loop thread (timers, descriptor watches, parked
 * connections closed by their client). Returns 0, or -1 (logged).
 */
int srv_wait_loop_start(struct srv_http *h);

/* Stop and free it, once no request can use it any more. */
void srv_wait_loop_stop(struct srv_http *h);

/*
 * Upgraded connections (SPEC 4.15): the wake loop drives them. Their
 * callbacks run on the loop thread; a stop tells each (on_stop()), and the
 * worker's exit ends those left (srv_wait_upgrades_end()).
 */
struct csgi_upgrade;
struct csgi_upgrade_handler;
struct MHD_UpgradeResponseHandle;

/* csgi_host_api.upgrade(). */
int srv_upgrade_begin(struct csgi_request *r, const struct csgi_upgrade_handler *handler, void *arg,
                      struct csgi_upgrade **out);

/*
 * libmicrohttpd sent the 101 and hands over @p fd (its upgrade handler, on
 * the connection's thread): the loop takes it from there. @p extra is copied.
 */
void srv_upgrade_handed(struct csgi_request *r, int fd, const char *extra, size_t n,
                        struct MHD_UpgradeResponseHandle *urh);

/* End every upgraded connection (CSGI_FINISH_SHUTDOWN), waiting a bounded time. */
void srv_wait_upgrades_end(struct srv_http *h);

#endif /* SRV_WAIT_H */
