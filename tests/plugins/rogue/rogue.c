/*
 * rogue: a fixture plugin that plays a corrupted worker. Plugin code runs in
 * the worker's address space, and the scoreboard the master reads is mapped
 * there too (MAP_SHARED | MAP_ANONYMOUS, inherited across fork()): a plugin
 * bug or exploit can write anything into it. The master must not take the
 * worker's word for what it is doing.
 *
 *   GET /rogue/retire -> finds this worker's slot and writes RETIRING into
 *                        it, while the worker goes on serving (it never
 *                        asked to retire). 200 "retiring", or 500 when the
 *                        scoreboard was not found.
 *
 * The server binary has no test-only path for this: the plugin finds the
 * mapping in /proc/self/maps ("/dev/zero (deleted)", shared, the
 * scoreboard's size) and its slot by the worker's pid, as hostile code could.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <csgi/csgi.h>

#include "scoreboard.h"

/* The scoreboard's mapping: shared, anonymous, as long as the table rounded up to pages. */
static struct srv_scoreboard *
find_scoreboard(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t want = (sizeof(struct srv_scoreboard) + page - 1) / page * page;
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    struct srv_scoreboard *sb = NULL;

    if (!f)
        return NULL;
    while (!sb && fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3)
            continue;
        if (strcmp(perms, "rw-s") != 0 || hi - lo != want || !strstr(line, "/dev/zero"))
            continue;
        sb = (struct srv_scoreboard *)lo;
    }
    fclose(f);
    return sb;
}

static int
rogue_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
           struct csgi_body *out)
{
    static const char done[] = "retiring\n";
    static const struct csgi_str no_reason = {NULL, 0};
    struct srv_scoreboard *sb;
    int found = 0;

    (void)state;
    (void)out;
    if (env->path_info.len != 7 || memcmp(env->path_info.ptr, "/retire", 7) != 0)
        return CSGI_EDECLINED;
    sb = find_scoreboard();
    for (int i = 0; sb && i < SRV_MAX_SLOTS; i++) {
        if (atomic_load(&sb->slots[i].pid) == (int)getpid()) {
            atomic_store(&sb->slots[i].state, SRV_W_RETIRING);
            found = 1;
        }
    }
    if (resp->start_response(resp->ctx, found ? 200 : 500, no_reason, NULL, 0, NULL) < 0)
        return CSGI_EIO;
    return found ? resp->write(resp->ctx, done, sizeof(done) - 1) : CSGI_OK;
}

static const struct csgi_plugin rogue_plugin = {
    CSGI_PLUGIN_HEADER, .name = "rogue",    .plugin_version = "1",
    .mount = "/rogue",  .call = rogue_call,
};

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &rogue_plugin;
}
