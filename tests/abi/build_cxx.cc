/*
 * Compile check: <csgi/csgi.h> as C++11 (-std=c++11 -pedantic -Werror -Wall
 * -Wextra). The build fails as soon as the public header stops being valid
 * C++; the program then checks that the C++ compiler sees the pinned
 * constants and (on x86_64 LP64) the same layout as C. Exit status as in
 * build_c99.c.
 *
 * CSGI_PLUGIN_HEADER uses designated initializers, which C++ has only since
 * C++20, so a C++11 plugin fills its descriptor field by field.
 */
#include <cstddef>
#include <cstdio>
#include <cstring>

#include <csgi/csgi.h>

#include "abi_pins.h"

namespace
{

int
cxx_call(void *state, csgi_environ *env, const csgi_responder *resp, csgi_body *out)
{
    (void)state;
    (void)env;
    (void)resp;
    (void)out;
    return CSGI_OK;
}

csgi_plugin
cxx_descriptor()
{
    csgi_plugin d = csgi_plugin();

    d.magic = CSGI_PLUGIN_MAGIC;
    d.abi_version = CSGI_ABI_VERSION;
    d.version = CSGI_PLUGIN_VERSION;
    d.size = sizeof(csgi_plugin);
    d.name = "cxx";
    d.call = cxx_call;
    return d;
}

const csgi_plugin cxx_plugin = cxx_descriptor();

} // namespace

extern "C" CSGI_EXPORT const struct csgi_plugin *csgi_plugin_entry(uint32_t host_abi_version);

extern "C" CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &cxx_plugin;
}

int
main()
{
    csgi_plugin_entry_fn entry = csgi_plugin_entry;
    const csgi_plugin *d = entry(CSGI_ABI_VERSION);
    csgi_str lit = CSGI_STR_INIT("hello");
    int bad = 0;

#define CXX_CONST(name, value)                                                                     \
    if ((long long)(name) != (long long)(value)) {                                                 \
        std::fprintf(stderr, "%s is %lld, pinned %lld\n", #name, (long long)(name),                \
                     (long long)(value));                                                          \
        bad++;                                                                                     \
    }
    ABI_CONSTANTS(CXX_CONST)
#undef CXX_CONST

    if (!CSGI_HAS(d, 1) || CSGI_HAS(d, CSGI_PLUGIN_VERSION + 1) || d->call != cxx_call) {
        std::fprintf(stderr, "CSGI_HAS is wrong in C++\n");
        bad++;
    }
    if (lit.len != 5 || std::memcmp(lit.ptr, "hello", 5) != 0) {
        std::fprintf(stderr, "CSGI_STR_INIT is wrong in C++\n");
        bad++;
    }
    if (std::strcmp(csgi_strerror(CSGI_ENOMEM), "out of memory") != 0 ||
        std::strcmp(csgi_err_name(CSGI_EDECLINED), "EDECLINED") != 0) {
        std::fprintf(stderr, "csgi_strerror/csgi_err_name are wrong in C++\n");
        bad++;
    }
    if (bad)
        return 1;

    if (!ABI_PINS_APPLY) {
        std::printf("SKIP: layout pins are for x86_64 LP64; constants checked only\n");
        return 77;
    }
#define CXX_SIZE(tag, size)                                                                        \
    if (sizeof(struct tag) != (size)) {                                                            \
        std::fprintf(stderr, "sizeof(struct %s) is %zu, pinned %d\n", #tag, sizeof(struct tag),    \
                     (int)(size));                                                                 \
        bad++;                                                                                     \
    }
#define CXX_OFFSET(tag, field, off)                                                                \
    if (offsetof(struct tag, field) != (off)) {                                                    \
        std::fprintf(stderr, "offsetof(struct %s, %s) is %zu, pinned %d\n", #tag, #field,          \
                     offsetof(struct tag, field), (int)(off));                                     \
        bad++;                                                                                     \
    }
    ABI_STRUCT_SIZES(CXX_SIZE)
    ABI_FIELD_OFFSETS(CXX_OFFSET)
#undef CXX_SIZE
#undef CXX_OFFSET
    if (bad)
        return 1;
    std::printf("C++11: header compiles pedantically; constants and layout match the pins\n");
    return 0;
}
