/*
 * Request body storage (body_store.c).
 */
#ifndef SRV_BODY_STORE_H
#define SRV_BODY_STORE_H

#include <stddef.h>

struct csgi_request;

/*
 * Append [data, data+len) to the request's body: in memory while the body
 * fits --body-buffer, else in an unlinked temporary file under --tmp-dir.
 * Returns 0 or a negative errno (logged): -ENOSPC when the bytes this
 * worker's spilled bodies hold together would pass --max-spill (the
 * request is to be answered 503: the server is short of room, the request
 * is not at fault), any other for an I/O failure (500).
 */
int srv_body_store(struct csgi_request *r, const char *data, size_t len);

#endif /* SRV_BODY_STORE_H */
