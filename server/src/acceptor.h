/*
 * The acceptor: one thread per worker that accepts connections on the shared
 * listening sockets and hands each one to the HTTP front. It balances
 * connections between the workers of a generation through the scoreboard.
 */
#ifndef SRV_ACCEPTOR_H
#define SRV_ACCEPTOR_H

#include <stddef.h>
#include <sys/socket.h>

#include "config.h"
#include "listener.h"

struct srv_acceptor;
struct srv_score;
struct srv_scoreboard;

/*
 * Hand an accepted connection (non-blocking, close-on-exec) on listener
 * @p index to the HTTP front. The callee owns @p fd from then on, also on
 * failure. Returns 0 when the connection was taken (and counted), -1 if not.
 */
typedef int (*srv_hand_fn)(void *cls, size_t index, int fd, const struct sockaddr *addr,
                           socklen_t addr_len);

/* Create an acceptor over @p listeners (borrowed). NULL on failure (logged). */
struct srv_acceptor *srv_acceptor_new(const struct srv_config *cfg, struct srv_listener *listeners,
                                      size_t n_listeners, srv_hand_fn hand, void *cls);

/* Publish the connection count into @p sc and balance against @p board. */
void srv_acceptor_set_score(struct srv_acceptor *a, struct srv_score *sc,
                            struct srv_scoreboard *board);

/* Start the accept thread. 0 or -1 (logged). */
int srv_acceptor_start(struct srv_acceptor *a);

/* Stop accepting and join the thread; the sockets stay open. Idempotent. */
void srv_acceptor_stop(struct srv_acceptor *a);

/*
 * A connection handed over by srv_hand_fn ended: call it from the HTTP
 * front's connection-closed notification, on any thread. If the accept thread
 * is waiting for this worker's count to drop (over its share), it wakes it.
 */
void srv_acceptor_conn_closed(struct srv_acceptor *a);

/* Connections this worker holds now. */
long srv_acceptor_connections(struct srv_acceptor *a);

/* Stop and free. NULL is ignored. */
void srv_acceptor_free(struct srv_acceptor *a);

#endif /* SRV_ACCEPTOR_H */
