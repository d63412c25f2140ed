/*
 * Requests that wait without holding a thread (SPEC.md 4.14): a call() or a
 * body's next() that returns CSGI_PENDING parks its request, which
 * suspends its libmicrohttpd connection, and csgi_host_api.resume() from any
 * thread wakes it. On a stop, every parked request is woken to end.
 */
#ifndef SRV_WAIT_H
#define SRV_WAIT_H

struct csgi_request;
struct srv_http;

/*
 * Park @p r until resume(), from the connection's own thread inside a
 * libmicrohttpd callback (the access handler or the content reader).
 * Returns 1: parked, the connection is suspended (the caller returns to
 * libmicrohttpd); 0: a resume() came already, go on now; -1: the worker
 * stops, end the response instead.
 */
int srv_wait_park(struct csgi_request *r);

/* csgi_host_api.resume(): thread-safe. */
int srv_wait_resume(struct csgi_request *r);

/*
 * The worker stops: nothing parks from now on, and every parked request is
 * woken, to end (srv_wait_park() returns -1 for it from now on).
 */
void srv_wait_stop(struct srv_http *h);

/* Requests parked now. */
unsigned srv_wait_parked(struct srv_http *h);

#endif /* SRV_WAIT_H */
