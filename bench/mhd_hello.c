/*
 * The floor for the benchmarks: a raw libmicrohttpd hello world, with the
 * same threading mode and the same keep-alive-friendly handler pattern as
 * csgi-server (answer on the second handler call), but no gateway at all.
 *
 * Built against libmicrohttpd 0.9.7x or 1.0.x: the calls below mean the same in both.
 * libmicrohttpd reports why a start fails on stderr (MHD_USE_ERROR_LOG, as csgi-server).
 *
 * Usage: mhd_hello PORT [POOL_BYTES]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

static const char body[] = "Hello, world!\n";

static enum MHD_Result
handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
        const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    static int first_call_marker;
    struct MHD_Response *r;
    enum MHD_Result ret;

    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload_data;
    if (*con_cls != &first_call_marker) {
        *con_cls = &first_call_marker;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    r = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

int
main(int argc, char **argv)
{
    struct MHD_Daemon *d;
    sigset_t set;
    int sig;
    size_t pool = argc > 2 ? (size_t)atol(argv[2]) : 32768;

    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [POOL_BYTES]\n", argv[0]);
        return 2;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG,
                         (uint16_t)atoi(argv[1]), NULL, NULL, handler, NULL,
                         MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool, MHD_OPTION_CONNECTION_TIMEOUT,
                         (unsigned)15, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "mhd_hello: cannot start on port %s (libmicrohttpd %s)\n", argv[1],
                MHD_get_version());
        return 1;
    }
    printf("mhd_hello listening on %s\n", argv[1]);
    fflush(stdout);
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    return 0;
}
