/*
 * Compile check: <csgi/csgi.h> as strict C99 (-std=c99 -pedantic -Werror -Wall
 * -Wextra), so the build fails as soon as the public header stops being
 * portable C99. The program then checks that this compilation sees the
 * pinned constants and (on x86_64 LP64) the pinned layout. Exit status: 0 on
 * success, 1 on a mismatch, 77 (meson's "skipped") when only the layout
 * could not be checked on this architecture.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <csgi/csgi.h>

#include "abi_pins.h"

static int
c99_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
         struct csgi_body *out)
{
    (void)state;
    (void)env;
    (void)resp;
    (void)out;
    return CSGI_OK;
}

/* The descriptor exactly as a C99 plugin writes it. */
static const struct csgi_plugin c99_plugin = {
    CSGI_PLUGIN_HEADER,
    .name = "c99",
    .flags = CSGI_PLUGIN_THREADSAFE,
    .call = c99_call,
};

CSGI_EXPORT const struct csgi_plugin *csgi_plugin_entry(uint32_t host_abi_version);

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &c99_plugin;
}

int
main(void)
{
    /* The entry point has exactly the type the header names. */
    csgi_plugin_entry_fn entry = csgi_plugin_entry;
    const struct csgi_plugin *d = entry(CSGI_ABI_VERSION);
    struct csgi_str lit = CSGI_STR_INIT("hello");
    int bad = 0;

#define C99_CONST(name, value)                                                                     \
    if ((long long)(name) != (long long)(value)) {                                                 \
        fprintf(stderr, "%s is %lld, pinned %lld\n", #name, (long long)(name),                     \
                (long long)(value));                                                               \
        bad++;                                                                                     \
    }
    ABI_CONSTANTS(C99_CONST)
#undef C99_CONST

    if (d->magic != CSGI_PLUGIN_MAGIC || d->abi_version != CSGI_ABI_VERSION ||
        d->version != CSGI_PLUGIN_VERSION || d->size != sizeof(struct csgi_plugin) ||
        !CSGI_HAS(d, 1) || CSGI_HAS(d, CSGI_PLUGIN_VERSION + 1)) {
        fprintf(stderr, "CSGI_PLUGIN_HEADER or CSGI_HAS is wrong in C99\n");
        bad++;
    }
    if (lit.len != 5 || memcmp(lit.ptr, "hello", 5) != 0) {
        fprintf(stderr, "CSGI_STR_INIT is wrong in C99\n");
        bad++;
    }
    if (strcmp(csgi_strerror(CSGI_EINVAL), "invalid argument") != 0 ||
        strcmp(csgi_err_name(CSGI_EABI), "EABI") != 0) {
        fprintf(stderr, "csgi_strerror/csgi_err_name are wrong in C99\n");
        bad++;
    }
    if (bad)
        return 1;

    if (!ABI_PINS_APPLY) {
        printf("SKIP: layout pins are for x86_64 LP64; constants checked only\n");
        return 77;
    }
#define C99_SIZE(tag, size)                                                                        \
    if (sizeof(struct tag) != (size)) {                                                            \
        fprintf(stderr, "sizeof(struct %s) is %zu, pinned %d\n", #tag, sizeof(struct tag),         \
                (int)(size));                                                                      \
        bad++;                                                                                     \
    }
#define C99_OFFSET(tag, field, off)                                                                \
    if (offsetof(struct tag, field) != (off)) {                                                    \
        fprintf(stderr, "offsetof(struct %s, %s) is %zu, pinned %d\n", #tag, #field,               \
                offsetof(struct tag, field), (int)(off));                                          \
        bad++;                                                                                     \
    }
    ABI_STRUCT_SIZES(C99_SIZE)
    ABI_FIELD_OFFSETS(C99_OFFSET)
#undef C99_SIZE
#undef C99_OFFSET
    if (bad)
        return 1;
    printf("C99: header compiles pedantically; constants and layout match the pins\n");
    return 0;
}
