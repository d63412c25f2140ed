/*
 * Integration-test harness: run a real csgi-server on an ephemeral loopback
 * port with real plugin .so files, and talk to it over real HTTP.
 */
#ifndef CSGI_TEST_HARNESS_H
#define CSGI_TEST_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

struct hserver {
    pid_t pid;
    int port;
    char dir[256];     /* private temp dir: plugins/, logs */
    char plugins[300]; /* dir/plugins */
    char log[300];     /* dir/error.log */
    char access[300];  /* dir/access.log */
    char stats[300];   /* dir/stats.sock */
    /* h_request() sends Accept-Encoding with this value and decodes the body (NULL: neither). */
    const char *accept_encoding;
};

/* Make a private dir with an empty plugins/ subdir. */
void h_init(struct hserver *s);
/* Copy a built plugin (by file name, from $CSGI_FIXTURES or $CSGI_EXAMPLES) into plugins/. */
void h_add_plugin(struct hserver *s, const char *file, const char *as_name);
/* Start csgi-server with extra args (NULL-terminated); waits for `ready` "worker ready" lines. */
void h_start(struct hserver *s, int ready, const char *const *extra);
/*
 * Fork and exec @p argv (argv[0] is the binary, stdin on /dev/null), then wait
 * for the "listening on" line and @p ready "worker ready" lines in s->log; sets
 * s->pid and s->port. h_start() uses it; a test with its own command line too.
 */
void h_spawn(struct hserver *s, const char *const *argv, int ready);
/* Send sig to the master and wait up to timeout_ms; returns the wait status or -1 on timeout. */
int h_stop(struct hserver *s, int sig, int timeout_ms);
/* Remove the private dir (after the server is stopped). */
void h_cleanup(struct hserver *s);

/* Count occurrences of needle in the error log. */
int h_log_count(const struct hserver *s, const char *needle);
/* Wait until the error log has at least n occurrences of needle; returns 1 on success. */
int h_wait_log(const struct hserver *s, const char *needle, int n, int timeout_ms);

/* An HTTP response read with libcurl. */
struct hresp {
    long status;
    char *body;
    size_t len;
    char *headers;
    int curl_code;
};

/* GET (or method) path with optional request body; curl errors are returned, not fatal. */
struct hresp h_request(const struct hserver *s, const char *method, const char *path,
                       const void *body, size_t body_len, const char *const *headers);
#define h_get(s, path) h_request((s), "GET", (path), NULL, 0, NULL)
void h_resp_free(struct hresp *r);

/*
 * Raw exchange: connect, send len bytes, read until the peer closes or
 * timeout_ms passes without data. Returns the bytes read (NUL-terminated in
 * out, truncated to cap-1). *closed is set to 1 when the peer closed.
 */
size_t h_raw(int port, const char *req, size_t len, char *out, size_t cap, int timeout_ms,
             int *closed);

/* The stats JSON read from s->stats (the unix socket), malloc'ed; NULL when it cannot be read. */
char *h_stats_raw(const struct hserver *s);

/*
 * GET @p path (a fixture's stats line, say) every 20 ms until a 200's body
 * contains @p want, for at most @p timeout_ms. Returns 1 when one did.
 */
int h_get_until(const struct hserver *s, const char *path, const char *want, int timeout_ms);

/* Read a file into a malloc'ed NUL-terminated string. */
char *h_slurp(const char *path, size_t *len);

/* CLOCK_MONOTONIC in milliseconds. */
long long h_ms_now(void);
/* Sleep @p ms milliseconds. */
void h_sleep_ms(int ms);
/* True when @p hay (may be NULL) contains @p needle. */
int h_has(const char *hay, const char *needle);

#endif
