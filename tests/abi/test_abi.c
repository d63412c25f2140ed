/*
 * The CSGI ABI suite (STYLE.md R18):
 *
 *  - layout: sizeof/offsetof of every public struct and the value of every
 *    public constant, pinned in abi_pins.h (layout on x86_64 LP64 only);
 *  - symbols: every plugin .so (the fixtures and the bundled examples) exports
 *    only csgi_plugin_entry and needs nothing but the C library, checked with
 *    nm; fixtures that break the rule must be flagged;
 *  - loader: fixture plugins go through the server's real loader,
 *    srv_plugins_load() and srv_plugins_init(), and each refusal must name the
 *    file and the reason in the error log.
 *
 * usage: test_abi FIXTURE_DIR NM [EXAMPLE_PLUGIN.so...]
 * (meson passes the directory of the fixture .so files, the nm program and the
 * example plugins.)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#ifdef __GLIBC__
#include <gnu/libc-version.h>
#endif

#include <csgi/csgi.h>

#include "abi_pins.h"
#include "config.h"
#include "log.h"
#include "plugin_loader.h"

/* Set by meson from b_sanitize: the sanitizer runtimes plugins may call into. */
#ifndef ABI_SANITIZE
#define ABI_SANITIZE "none"
#endif

static char *fixture_dir;
static const char *nm_prog;
static char **example_plugins;
static int n_example_plugins;

static void
skip_note(const char *what)
{
    static int said;

    if (!said++)
        printf("SKIP: %s: layout pins are for x86_64 LP64 only\n", what);
}

/* ------------------------------------------------------------------ */
/* Layout and constants                                                */
/* ------------------------------------------------------------------ */

struct size_pin {
    const char *tag;
    size_t actual;
    size_t pinned;
};

struct offset_pin {
    const char *tag;
    const char *field;
    size_t actual;
    size_t pinned;
    size_t field_size;
};

struct const_pin {
    const char *name;
    long long actual;
    long long pinned;
};

struct code_entry {
    const char *name;
    int value;
    const char *message;
};

#define SIZE_ENTRY(tag, size) {#tag, sizeof(struct tag), (size)},
#define OFFSET_ENTRY(tag, field, off)                                                              \
    {#tag, #field, offsetof(struct tag, field), (off), sizeof(((struct tag *)0)->field)},
#define CONST_ENTRY(name, value)    {#name, (long long)(name), (long long)(value)},
#define MAP_ENTRY(name, value, msg) {#name, (value), (msg)},
#define PIN_ENTRY(name, value)      {#name, (value), NULL},

static const struct size_pin size_pins[] = {ABI_STRUCT_SIZES(SIZE_ENTRY)};
static const struct offset_pin offset_pins[] = {ABI_FIELD_OFFSETS(OFFSET_ENTRY)};
static const struct const_pin const_pins[] = {ABI_CONSTANTS(CONST_ENTRY)};
/* What the header's map says now, and what was pinned. */
static const struct code_entry map_codes[] = {CSGI_ERRNO_MAP(MAP_ENTRY)};
static const struct code_entry pinned_codes[] = {ABI_ERROR_CODES(PIN_ENTRY)};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

START_TEST(abi_struct_sizes)
{
    const struct size_pin *p = &size_pins[_i];

    if (!ABI_PINS_APPLY) {
        skip_note("abi_struct_sizes");
        return;
    }
    ck_assert_msg(p->actual == p->pinned, "sizeof(struct %s) is %zu, pinned %zu", p->tag, p->actual,
                  p->pinned);
}
END_TEST

START_TEST(abi_field_offsets)
{
    const struct offset_pin *p = &offset_pins[_i];

    if (!ABI_PINS_APPLY) {
        skip_note("abi_field_offsets");
        return;
    }
    ck_assert_msg(p->actual == p->pinned, "offsetof(struct %s, %s) is %zu, pinned %zu", p->tag,
                  p->field, p->actual, p->pinned);
}
END_TEST

/*
 * The pinned fields of each struct, in order, tile it exactly: every field
 * follows the previous one without a gap and the last one ends the struct.
 * So every field is pinned (a new field must be added to abi_pins.h), none was
 * reordered, and no struct has implicit padding, whose bytes would be
 * uninitialised and whose placement is up to the compiler.
 */
START_TEST(abi_fields_tile_structs)
{
    for (size_t s = 0; s < N_OF(size_pins); s++) {
        const char *tag = size_pins[s].tag;
        size_t end = 0, n = 0;

        for (size_t i = 0; i < N_OF(offset_pins); i++) {
            const struct offset_pin *p = &offset_pins[i];

            if (strcmp(p->tag, tag) != 0)
                continue;
            ck_assert_msg(p->actual == end, "struct %s: %s is at %zu, expected %zu (%s)", tag,
                          p->field, p->actual, end,
                          p->actual > end ? "padding or an unpinned field before it"
                                          : "fields out of order");
            end = p->actual + p->field_size;
            n++;
        }
        ck_assert_msg(n > 0, "struct %s has no pinned fields", tag);
        ck_assert_msg(end == size_pins[s].actual,
                      "struct %s: pinned fields end at %zu but the struct is %zu bytes "
                      "(tail padding or an unpinned field)",
                      tag, end, size_pins[s].actual);
    }
}
END_TEST

START_TEST(abi_constants)
{
    const struct const_pin *p = &const_pins[_i];

    ck_assert_msg(p->actual == p->pinned, "%s is %lld, pinned %lld", p->name, p->actual, p->pinned);
}
END_TEST

/* CSGI_ERRNO_MAP is append-only: same names, same values, same order. */
START_TEST(abi_error_map_pinned)
{
    size_t n = N_OF(map_codes) < N_OF(pinned_codes) ? N_OF(map_codes) : N_OF(pinned_codes);

    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(strcmp(map_codes[i].name, pinned_codes[i].name) == 0,
                      "CSGI_ERRNO_MAP entry %zu is %s, pinned %s (reordered or removed)", i,
                      map_codes[i].name, pinned_codes[i].name);
        ck_assert_msg(map_codes[i].value == pinned_codes[i].value,
                      "CSGI_E%s is %d, pinned %d (renumbered)", map_codes[i].name,
                      map_codes[i].value, pinned_codes[i].value);
    }
    ck_assert_msg(N_OF(map_codes) == N_OF(pinned_codes),
                  "CSGI_ERRNO_MAP has %zu entries, %zu pinned: pin the new codes in abi_pins.h",
                  N_OF(map_codes), N_OF(pinned_codes));
}
END_TEST

/* Codes are distinct, negative, named, and csgi_strerror() knows each one. */
START_TEST(abi_error_names_and_messages)
{
    for (size_t i = 0; i < N_OF(map_codes); i++) {
        const struct code_entry *c = &map_codes[i];

        ck_assert_int_lt(c->value, 0);
        ck_assert_int_gt(c->value, CSGI__ERRNO_MAP_END);
        ck_assert_str_eq(csgi_err_name(c->value), c->name);
        ck_assert_str_eq(csgi_strerror(c->value), c->message);
        ck_assert_msg(c->message[0] != '\0', "CSGI_E%s has an empty message", c->name);
        for (size_t j = 0; j < i; j++)
            ck_assert_msg(map_codes[j].value != c->value, "CSGI_E%s and CSGI_E%s share %d",
                          map_codes[j].name, c->name, c->value);
    }
    ck_assert_str_eq(csgi_strerror(CSGI_OK), "success");
    ck_assert_str_eq(csgi_err_name(CSGI_OK), "OK");
    ck_assert_str_eq(csgi_strerror(CSGI_DONE), "end of body");
    ck_assert_str_eq(csgi_err_name(CSGI_DONE), "DONE");
    ck_assert_str_eq(csgi_strerror(-4), "unknown error");
    ck_assert_str_eq(csgi_err_name(-4), "UNKNOWN");
    ck_assert_str_eq(csgi_strerror(-1999), "unknown error");
    ck_assert_str_eq(csgi_strerror(CSGI_PENDING), "pending: waits for resume()");
    ck_assert_str_eq(csgi_err_name(CSGI_PENDING), "PENDING");
    ck_assert_str_eq(csgi_strerror(3), "unknown error");
}
END_TEST

/* Codes that have an errno equal -errno (the header promises it; Linux numbering). */
START_TEST(abi_errors_are_negative_errno)
{
#ifdef __linux__
    ck_assert_int_eq(CSGI_EPERM, -EPERM);
    ck_assert_int_eq(CSGI_ENOENT, -ENOENT);
    ck_assert_int_eq(CSGI_EIO, -EIO);
    ck_assert_int_eq(CSGI_EBADF, -EBADF);
    ck_assert_int_eq(CSGI_ENOMEM, -ENOMEM);
    ck_assert_int_eq(CSGI_EINVAL, -EINVAL);
    ck_assert_int_eq(CSGI_ENOSYS, -ENOSYS);
    ck_assert_int_eq(CSGI_ENOTSUP, -ENOTSUP);
    ck_assert_int_eq(CSGI_ECONNRESET, -ECONNRESET);
    ck_assert_int_eq(CSGI_ETIMEDOUT, -ETIMEDOUT);
#else
    printf("SKIP: abi_errors_are_negative_errno: the codes use Linux errno numbers\n");
#endif
}
END_TEST

START_TEST(abi_version_macros)
{
    char buf[32];

    ck_assert_int_eq(CSGI_VERSION_HEX,
                     (CSGI_VERSION_MAJOR << 16) | (CSGI_VERSION_MINOR << 8) | CSGI_VERSION_PATCH);
    snprintf(buf, sizeof(buf), "%d.%d.%d", CSGI_VERSION_MAJOR, CSGI_VERSION_MINOR,
             CSGI_VERSION_PATCH);
    ck_assert_str_eq(CSGI_VERSION_STRING, buf);
    ck_assert_str_eq(CSGI_PLUGIN_ENTRY_SYMBOL, "csgi_plugin_entry");
    /* "CSGI" in ASCII, as documented. */
    ck_assert_int_eq((CSGI_PLUGIN_MAGIC >> 24) & 0xff, 'C');
    ck_assert_int_eq((CSGI_PLUGIN_MAGIC >> 16) & 0xff, 'S');
    ck_assert_int_eq((CSGI_PLUGIN_MAGIC >> 8) & 0xff, 'G');
    ck_assert_int_eq(CSGI_PLUGIN_MAGIC & 0xff, 'I');
}
END_TEST

static int
abi_dummy_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
               struct csgi_body *out)
{
    (void)state;
    (void)env;
    (void)resp;
    (void)out;
    return CSGI_OK;
}

START_TEST(abi_plugin_header_macro)
{
    static const struct csgi_plugin d = {CSGI_PLUGIN_HEADER, .name = "x", .call = abi_dummy_call};
    const struct csgi_plugin *dp = &d, *none = NULL;
    struct csgi_str s = CSGI_STR_INIT("abc");

    ck_assert_uint_eq(d.magic, CSGI_PLUGIN_MAGIC);
    ck_assert_uint_eq(d.abi_version, CSGI_ABI_VERSION);
    ck_assert_uint_eq(d.version, CSGI_PLUGIN_VERSION);
    ck_assert_uint_eq(d.size, sizeof(struct csgi_plugin));
    ck_assert_ptr_null(d.mount);
    ck_assert(d.init_worker == NULL);
    ck_assert_uint_eq(d.reserved, 0);
    ck_assert(CSGI_HAS(dp, 1));
    ck_assert(CSGI_HAS(dp, CSGI_PLUGIN_VERSION));
    ck_assert(!CSGI_HAS(dp, CSGI_PLUGIN_VERSION + 1));
    ck_assert(!CSGI_HAS(none, 1));
    ck_assert_uint_eq(s.len, 3);
    ck_assert_str_eq(s.ptr, "abc");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Exported and imported symbols (nm)                                  */
/* ------------------------------------------------------------------ */

/* Symbols some toolchains define in every shared object (old GNU ld). */
static const char *const toolchain_defined[] = {"_init", "_fini",       "_edata",
                                                "_end",  "__bss_start", NULL};

/* Weak references the C runtime start files add to every shared object. */
static const char *const toolchain_weak[] = {"__gmon_start__", "_ITM_deregisterTMCloneTable",
                                             "_ITM_registerTMCloneTable", "__cxa_finalize", NULL};

static int
in_list(const char *const *list, const char *name)
{
    for (size_t i = 0; list[i]; i++) {
        if (strcmp(list[i], name) == 0)
            return 1;
    }
    return 0;
}

typedef void (*nm_line_fn)(char type, const char *name, void *arg);

/*
 * Run "nm -D <mode> <path>" and call fn with each symbol's type letter and
 * name ("memcpy@GLIBC_2.14"). Returns nm's exit status (0 = ok) or -1 when it
 * cannot run.
 */
static int
nm_run(const char *path, const char *mode, nm_line_fn fn, void *arg)
{
    char cmd[8192], line[1024];
    size_t n;
    FILE *f;
    int status;

    n = (size_t)snprintf(cmd, sizeof(cmd), "'%s' -D %s '", nm_prog, mode);
    /* Quote the path for sh: ' becomes '\''. */
    for (const char *p = path; *p && n + 8 < sizeof(cmd); p++) {
        if (*p == '\'') {
            memcpy(cmd + n, "'\\''", 4);
            n += 4;
        } else {
            cmd[n++] = *p;
        }
    }
    cmd[n++] = '\'';
    cmd[n] = '\0';
    f = popen(cmd, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        char *tok[4], *save = NULL;
        int nt = 0;

        for (char *t = strtok_r(line, " \t\r\n", &save); t && nt < 4;
             t = strtok_r(NULL, " \t\r\n", &save))
            tok[nt++] = t;
        /* "<value> <type> <name>" or "<type> <name>": the name comes last. */
        if (nt >= 2 && strlen(tok[nt - 2]) == 1)
            fn(tok[nt - 2][0], tok[nt - 1], arg);
    }
    status = pclose(f);
    if (status == -1 || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* The names (without versions) that the C library exports, sorted. */
static struct {
    char **v;
    size_t n, cap;
} libc_names;

static void
libc_name_add(char type, const char *name, void *arg)
{
    (void)type;
    (void)arg;
    if (libc_names.n == libc_names.cap) {
        size_t cap = libc_names.cap ? libc_names.cap * 2 : 4096;
        char **v = realloc(libc_names.v, cap * sizeof(*v));

        if (!v) {
            fputs("test_abi: out of memory\n", stderr);
            exit(2);
        }
        libc_names.v = v;
        libc_names.cap = cap;
    }
    libc_names.v[libc_names.n] = strndup(name, strcspn(name, "@"));
    if (!libc_names.v[libc_names.n]) {
        fputs("test_abi: out of memory\n", stderr);
        exit(2);
    }
    libc_names.n++;
}

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Load the exports of the libraries that define gnu_get_libc_version, dlerror
 * and pthread_self (one file since glibc 2.34), once, before the tests fork.
 * Sanitizer builds need this: a plugin then binds memcpy & co. to the
 * sanitizer's interceptors, and nm shows them without a GLIBC_ version.
 * Returns 0, or -1 when nm cannot read a library.
 */
static int
libc_names_load(void)
{
#ifdef __GLIBC__
    const char *(*probe_libc)(void) = gnu_get_libc_version;
    char *(*probe_libdl)(void) = dlerror;
    pthread_t (*probe_libpthread)(void) = pthread_self;
    void *probes[3];
    char seen[3][4096];
    size_t n_seen = 0;

    /* POSIX guarantees that a function pointer fits in a void *. */
    memcpy(&probes[0], &probe_libc, sizeof(probes[0]));
    memcpy(&probes[1], &probe_libdl, sizeof(probes[1]));
    memcpy(&probes[2], &probe_libpthread, sizeof(probes[2]));
    for (size_t i = 0; i < N_OF(probes); i++) {
        Dl_info info;
        size_t j;

        if (!dladdr(probes[i], &info) || !info.dli_fname)
            continue;
        for (j = 0; j < n_seen && strcmp(seen[j], info.dli_fname) != 0; j++)
            ;
        if (j < n_seen)
            continue;
        snprintf(seen[n_seen++], sizeof(seen[0]), "%s", info.dli_fname);
        printf("note: C library exports read from %s\n", info.dli_fname);
        if (nm_run(info.dli_fname, "--defined-only", libc_name_add, NULL) != 0) {
            fprintf(stderr, "test_abi: %s -D --defined-only %s failed\n", nm_prog, info.dli_fname);
            return -1;
        }
    }
    if (libc_names.n < 100) {
        fprintf(stderr, "test_abi: the C library exports only %zu symbols?\n", libc_names.n);
        return -1;
    }
    qsort(libc_names.v, libc_names.n, sizeof(*libc_names.v), cmp_names);
#endif
    return 0;
}

static void
libc_names_free(void)
{
    for (size_t i = 0; i < libc_names.n; i++)
        free(libc_names.v[i]);
    free(libc_names.v);
    memset(&libc_names, 0, sizeof(libc_names));
}

static int
libc_exports(const char *base)
{
    return libc_names.n &&
           bsearch(&base, libc_names.v, libc_names.n, sizeof(*libc_names.v), cmp_names);
}

/* Accept an undefined dynamic symbol: libc (libdl and libpthread included),
 * the start files' weak ones, and the runtime of the sanitizer the build
 * uses. */
static int
undefined_allowed(const char *sym)
{
    char base[256];

    if (strstr(sym, "@GLIBC_"))
        return 1;
    snprintf(base, sizeof(base), "%.*s", (int)strcspn(sym, "@"), sym);
    if (in_list(toolchain_weak, base) || libc_exports(base))
        return 1;
    if (strstr(ABI_SANITIZE, "address") &&
        (strncmp(base, "__asan_", 7) == 0 || strncmp(base, "__lsan_", 7) == 0 ||
         strncmp(base, "__sanitizer_", 12) == 0))
        return 1;
    if (strstr(ABI_SANITIZE, "undefined") && strncmp(base, "__ubsan_", 8) == 0)
        return 1;
    return 0;
}

/* Append "s" to the comma-separated list in buf. */
static void
list_add(char *buf, size_t size, const char *s)
{
    size_t len = strlen(buf);

    snprintf(buf + len, size - len, "%s%s", len ? ", " : "", s);
}

struct symbol_scan {
    int entries;
    char bad[2048];
};

static void
scan_defined(char type, const char *name, void *arg)
{
    struct symbol_scan *sc = arg;

    (void)type;
    if (strcmp(name, CSGI_PLUGIN_ENTRY_SYMBOL) == 0)
        sc->entries++;
    else if (!in_list(toolchain_defined, name))
        list_add(sc->bad, sizeof(sc->bad), name);
}

static void
scan_undefined(char type, const char *name, void *arg)
{
    struct symbol_scan *sc = arg;

    (void)type;
    if (!undefined_allowed(name))
        list_add(sc->bad, sizeof(sc->bad), name);
}

/*
 * Check one plugin: it must export exactly csgi_plugin_entry and import only
 * what undefined_allowed() accepts. Returns 0, or -1 with the reason in why.
 */
static int
plugin_symbols_check(const char *path, char *why, size_t why_len)
{
    struct symbol_scan sc;
    int rc;

    why[0] = '\0';
    if (access(path, R_OK) != 0) {
        snprintf(why, why_len, "cannot read \"%s\": %s", path, strerror(errno));
        return -1;
    }
    memset(&sc, 0, sizeof(sc));
    rc = nm_run(path, "--defined-only", scan_defined, &sc);
    if (rc != 0) {
        snprintf(why, why_len, "\"%s -D --defined-only %s\" failed (%d)", nm_prog, path, rc);
        return -1;
    }
    if (sc.bad[0]) {
        snprintf(why, why_len, "exports more than %s: %s", CSGI_PLUGIN_ENTRY_SYMBOL, sc.bad);
        return -1;
    }
    if (sc.entries != 1) {
        snprintf(why, why_len, "exports %s %d times, not once", CSGI_PLUGIN_ENTRY_SYMBOL,
                 sc.entries);
        return -1;
    }
    memset(&sc, 0, sizeof(sc));
    rc = nm_run(path, "--undefined-only", scan_undefined, &sc);
    if (rc != 0) {
        snprintf(why, why_len, "\"%s -D --undefined-only %s\" failed (%d)", nm_prog, path, rc);
        return -1;
    }
    if (sc.bad[0]) {
        snprintf(why, why_len, "needs symbols outside the C library: %s", sc.bad);
        return -1;
    }
    return 0;
}

/* Each fixture and what the symbol check must say about it. */
static const struct {
    const char *fixture;
    /* NULL: clean; else a symbol the check must name. */
    const char *flagged;
} symbol_cases[] = {
    {"good", NULL},
    {"wrong_abi", NULL},
    {"null_entry", NULL},
    {"bad_magic", NULL},
    {"too_small", NULL},
    {"bad_version", NULL},
    {"bad_name", NULL},
    {"no_call", NULL},
    {"init_fail", NULL},
    {"same_mount", NULL},
    {"bad_mount", NULL},
    {"newer", NULL},
    /* Exports a misspelt entry point and no csgi_plugin_entry. */
    {"no_entry", "csgi_plugin_entri"},
    /* Exports a helper besides the entry point. */
    {"extra_export", "extra_export_helper"},
    /* Imports a server function. */
    {"server_link", "srv__log"},
};

static void
fixture_path(char *buf, size_t size, const char *fixture)
{
    snprintf(buf, size, "%s/%s.so", fixture_dir, fixture);
}

START_TEST(abi_symbols_fixture)
{
    char path[4096], why[4096];
    int rc;

    fixture_path(path, sizeof(path), symbol_cases[_i].fixture);
    rc = plugin_symbols_check(path, why, sizeof(why));
    if (!symbol_cases[_i].flagged) {
        ck_assert_msg(rc == 0, "%s: %s", path, why);
    } else {
        ck_assert_msg(rc < 0, "%s was not flagged (it must be: %s)", path,
                      symbol_cases[_i].flagged);
        ck_assert_msg(strstr(why, symbol_cases[_i].flagged) != NULL,
                      "%s: the reason \"%s\" does not name %s", path, why,
                      symbol_cases[_i].flagged);
    }
}
END_TEST

START_TEST(abi_symbols_example)
{
    char why[4096];

    ck_assert_msg(plugin_symbols_check(example_plugins[_i], why, sizeof(why)) == 0, "%s: %s",
                  example_plugins[_i], why);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The loader                                                          */
/* ------------------------------------------------------------------ */

static struct {
    char root[512]; /* private temporary directory */
    char dir[600];  /* root/plugins: the plugin directory */
    char log[600];  /* root/error.log: srv_log's error log */
    struct srv_config cfg;
    struct srv_plugin_set set;
    char *text;      /* error log contents after load()/init() */
    char line[2048]; /* last line found by log_line() */
} lt;

/* What plugins logged through the host api handed to init_worker(). */
static char host_log[8192];
static size_t host_log_len;

static void host_vlog(void *ctx, int level, const char *fmt, va_list ap) CSGI_PRINTF(3, 0);
static void host_log_fn(void *ctx, int level, const char *fmt, ...) CSGI_PRINTF(3, 4);

static void
host_vlog(void *ctx, int level, const char *fmt, va_list ap)
{
    int n;

    ck_assert_ptr_eq(ctx, host_log);
    ck_assert_int_ge(level, CSGI_LOG_ERROR);
    ck_assert_int_le(level, CSGI_LOG_TRACE);
    if (host_log_len + 2 >= sizeof(host_log))
        return;
    n = vsnprintf(host_log + host_log_len, sizeof(host_log) - host_log_len - 1, fmt, ap);
    if (n < 0)
        return;
    host_log_len += (size_t)n;
    if (host_log_len > sizeof(host_log) - 2)
        host_log_len = sizeof(host_log) - 2;
    host_log[host_log_len++] = '\n';
    host_log[host_log_len] = '\0';
}

static void
host_log_fn(void *ctx, int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    host_vlog(ctx, level, fmt, ap);
    va_end(ap);
}

static const struct csgi_host_api test_api = {
    .version = CSGI_HOST_API_VERSION,
    .size = sizeof(struct csgi_host_api),
    .abi_version = CSGI_ABI_VERSION,
    .spec_version = CSGI_VERSION_HEX,
    .server_software = "test_abi",
    .ctx = host_log,
    .log = host_log_fn,
    .vlog = host_vlog,
};

/* Unlink every non-directory entry of dir, then dir itself. */
static void
remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        char path[1024];
        struct stat st;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static void
loader_setup(void)
{
    const char *tmp = getenv("TMPDIR");

    memset(&lt, 0, sizeof(lt));
    snprintf(lt.root, sizeof(lt.root), "%s/csgi-abi-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ck_assert_msg(mkdtemp(lt.root) != NULL, "mkdtemp(%s): %s", lt.root, strerror(errno));
    snprintf(lt.dir, sizeof(lt.dir), "%s/plugins", lt.root);
    snprintf(lt.log, sizeof(lt.log), "%s/error.log", lt.root);
    ck_assert_int_eq(mkdir(lt.dir, 0700), 0);
    ck_assert_int_eq(srv_log_open(lt.log, NULL, 0), 0);
    srv_log_verbosity = SRV_LOG_INFO;
    srv_config_init(&lt.cfg);
    lt.cfg.plugin_dir = strdup(lt.dir);
    /* The loader's private copies go here (and are unlinked at once). */
    lt.cfg.tmp_dir = strdup(lt.root);
    ck_assert_ptr_nonnull(lt.cfg.plugin_dir);
    ck_assert_ptr_nonnull(lt.cfg.tmp_dir);
    host_log[0] = '\0';
    host_log_len = 0;
}

static void
loader_teardown(void)
{
    srv_plugins_unload(&lt.set);
    srv_config_free(&lt.cfg);
    srv_log_close();
    free(lt.text);
    lt.text = NULL;
    remove_tree(lt.root);
}

/* Put fixture <fixture>.so into the plugin directory as <file>. */
static void
install(const char *fixture, const char *file)
{
    char src[4096], dst[1024];

    fixture_path(src, sizeof(src), fixture);
    ck_assert_msg(access(src, R_OK) == 0, "fixture %s is not built", src);
    snprintf(dst, sizeof(dst), "%s/%s", lt.dir, file);
    ck_assert_msg(symlink(src, dst) == 0, "symlink(%s): %s", dst, strerror(errno));
}

static void
write_file(const char *file, const char *text)
{
    char path[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", lt.dir, file);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

static void
read_log(void)
{
    FILE *f = fopen(lt.log, "r");
    size_t cap = 65536, len;

    free(lt.text);
    lt.text = calloc(1, cap);
    ck_assert_ptr_nonnull(lt.text);
    if (!f)
        return;
    len = fread(lt.text, 1, cap - 1, f);
    lt.text[len] = '\0';
    fclose(f);
}

/* srv_plugins_load() on the test directory; the log is read afterwards. */
static int
load(void)
{
    int rc = srv_plugins_load(&lt.set, &lt.cfg);

    read_log();
    return rc;
}

/* The first error-log line that contains needle, or NULL. */
static const char *
log_line(const char *needle)
{
    const char *at = lt.text ? strstr(lt.text, needle) : NULL;
    const char *start, *end;

    if (!at)
        return NULL;
    start = at;
    while (start > lt.text && start[-1] != '\n')
        start--;
    end = strchr(at, '\n');
    if (!end)
        end = at + strlen(at);
    snprintf(lt.line, sizeof(lt.line), "%.*s", (int)(end - start), start);
    return lt.line;
}

/*
 * Assert that file was refused: the log has a line 'plugin "<file>" skipped'
 * at level error that contains every given reason fragment (NULL-terminated).
 */
static void
assert_refused(const char *file, ...)
{
    char needle[512];
    const char *line, *frag;
    va_list ap;

    snprintf(needle, sizeof(needle), "plugin \"%s\" skipped", file);
    line = log_line(needle);
    ck_assert_msg(line != NULL, "no refusal naming \"%s\" in the error log:\n%s", file,
                  lt.text ? lt.text : "");
    ck_assert_msg(strstr(line, "[error]") != NULL, "refusal not at level error: %s", line);
    va_start(ap, file);
    while ((frag = va_arg(ap, const char *)) != NULL) {
        if (!strstr(line, frag)) {
            va_end(ap);
            ck_abort_msg("refusal of \"%s\" lacks \"%s\": %s", file, frag, line);
        }
    }
    va_end(ap);
}

static const struct srv_plugin *
find_loaded(const char *name)
{
    for (size_t i = 0; i < lt.set.n; i++) {
        if (strcmp(lt.set.v[i].desc.name, name) == 0)
            return &lt.set.v[i];
    }
    return NULL;
}

START_TEST(abi_loader_good_plugin_loads)
{
    const struct srv_plugin *p;
    size_t iter = 0;

    install("good", "good.so");
    ck_assert_int_eq(load(), 0);
    ck_assert_uint_eq(lt.set.n, 1);
    p = &lt.set.v[0];
    ck_assert_str_eq(p->desc.name, "good");
    ck_assert_str_eq(p->file, "good.so");
    ck_assert_str_eq(p->mount, "/good");
    ck_assert_str_eq(p->desc.plugin_version, "1.2.3");
    ck_assert_uint_eq(p->desc.size, sizeof(struct csgi_plugin));
    ck_assert(p->desc.call != NULL);
    ck_assert_ptr_nonnull(log_line("plugin \"good\" loaded from \"good.so\""));
    ck_assert_ptr_null(log_line("skipped"));

    ck_assert_int_eq(srv_plugins_init(&lt.set, &test_api, 0), 0);
    ck_assert_uint_eq(lt.set.n, 1);
    ck_assert_ptr_nonnull(strstr(host_log, "good: init_worker n_config=0"));
    ck_assert_ptr_eq(srv_plugins_match(&lt.set, "/good/x", 7, &iter), &lt.set.v[0]);
    srv_plugins_unload(&lt.set);
    ck_assert_ptr_nonnull(strstr(host_log, "good: exit_worker"));
}
END_TEST

/* Deployer settings reach init_worker(); a --mount override replaces the default. */
START_TEST(abi_loader_config_and_mount_override)
{
    char args[][32] = {"csgi-server", "--set",   "good.greeting=hi", "--set",
                       "other.key=x", "--mount", "/g=good"};
    char *argv[] = {args[0], args[1], args[2], args[3], args[4], args[5], args[6], NULL};
    char err[256];
    size_t iter = 0;

    install("good", "good.so");
    ck_assert_msg(srv_config_parse_args(&lt.cfg, 7, argv, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(load(), 0);
    ck_assert_uint_eq(lt.set.n, 1);
    ck_assert_str_eq(lt.set.v[0].mount, "/g");
    ck_assert_uint_eq(lt.set.v[0].n_config, 1);
    ck_assert_int_eq(srv_plugins_init(&lt.set, &test_api, 0), 0);
    ck_assert_ptr_nonnull(strstr(host_log, "good: init_worker n_config=1 first=greeting"));
    ck_assert_ptr_null(srv_plugins_match(&lt.set, "/good", 5, &iter));
    iter = 0;
    ck_assert_ptr_eq(srv_plugins_match(&lt.set, "/g", 2, &iter), &lt.set.v[0]);
}
END_TEST

START_TEST(abi_loader_refuses_wrong_abi)
{
    install("wrong_abi", "wrong_abi.so");
    ck_assert_int_eq(load(), 1);
    ck_assert_uint_eq(lt.set.n, 0);
    assert_refused("wrong_abi.so", "ABI 2", "ABI 1", (const char *)NULL);
}
END_TEST

START_TEST(abi_loader_refuses_null_descriptor)
{
    install("null_entry", "null_entry.so");
    ck_assert_int_eq(load(), 1);
    ck_assert_uint_eq(lt.set.n, 0);
    assert_refused("null_entry.so", "refused", "ABI 1", (const char *)NULL);
}
END_TEST

START_TEST(abi_loader_refuses_missing_entry)
{
    install("no_entry", "no_entry.so");
    ck_assert_int_eq(load(), 1);
    ck_assert_uint_eq(lt.set.n, 0);
    assert_refused("no_entry.so", "csgi_plugin_entry", (const char *)NULL);
}
END_TEST

START_TEST(abi_loader_refuses_bad_magic)
{
    install("bad_magic", "bad_magic.so");
    ck_assert_int_eq(load(), 1);
    ck_assert_uint_eq(lt.set.n, 0);
    assert_refused("bad_magic.so", "magic", "0x12345678", (const char *)NULL);
}
END_TEST

START_TEST(abi_loader_refuses_small_descriptor)
{
    char size[32];

    snprintf(size, sizeof(size), "size %zu", offsetof(struct csgi_plugin, exit_worker));
    install("too_small", "too_small.so");
    ck_assert_int_eq(load(), 1);
    ck_assert_uint_eq(lt.set.n, 0);
    assert_refused("too_small.so", size, "smaller", (const char *)NULL);
}
END_TEST

START_TEST(abi_loader_refuses_version_zero)
{
    install("bad_version", "bad_version.so");
    ck_assert_int_eq(load(), 1);
    ck_assert_uint_eq(lt.set.n, 0);
    assert_refused("bad_version.so", "version 0", (const char *)NULL);
}
END_TEST

START_TEST(abi_loader_refuses_invalid_name)
{
    install("bad_name", "bad_name.so");
    ck_assert_int_eq(load(), 1);
    ck_assert_uint_eq(lt.set.n, 0);
    assert_refused("bad_name.so", "invalid plugin name", "Bad-Name", (const char *)NULL);
}
END_TEST

START_TEST(abi_loader_refuses_missing_call)
{
    install("no_call", "no_call.so");
    ck_assert_int_eq(load(), 1);
    ck_assert_uint_eq(lt.set.n, 0);
    assert_refused("no_call.so", "no call function", (const char *)NULL);
}
END_TEST

START_TEST(abi_loader_refuses_non_elf)
{
    write_file("notelf.so", "this is a text file, not a shared object\n");
    ck_assert_int_eq(load(), 1);
    ck_assert_uint_eq(lt.set.n, 0);
    assert_refused("notelf.so", "dlopen failed", (const char *)NULL);
    /* dlerror() names the private copy; the loader must put the file name back. */
    ck_assert_msg(strstr(lt.line, "csgi-plugin-") == NULL, "refusal leaks the copy's path: %s",
                  lt.line);
}
END_TEST

START_TEST(abi_loader_refuses_directory)
{
    char path[1024];

    snprintf(path, sizeof(path), "%s/sub.so", lt.dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    ck_assert_int_eq(load(), 1);
    assert_refused("sub.so", "not a regular file", (const char *)NULL);
}
END_TEST

START_TEST(abi_loader_ignores_other_files)
{
    write_file("README", "not a plugin\n");
    write_file("notes.txt", "not a plugin\n");
    write_file("old.so.1", "not a plugin\n");
    write_file(".hidden.so", "not a plugin\n");
    install("good", "good.so.bak");
    ck_assert_int_eq(load(), 0);
    ck_assert_uint_eq(lt.set.n, 0);
    ck_assert_ptr_null(log_line("skipped"));
    /* Loading nothing is worth a warning. */
    ck_assert_ptr_nonnull(log_line("no plugin loaded"));
}
END_TEST

START_TEST(abi_loader_missing_directory)
{
    free(lt.cfg.plugin_dir);
    lt.cfg.plugin_dir = strdup("/nonexistent/csgi-abi-test");
    ck_assert_int_eq(load(), -ENOENT);
    ck_assert_uint_eq(lt.set.n, 0);
    ck_assert_ptr_nonnull(log_line("/nonexistent/csgi-abi-test"));
}
END_TEST

START_TEST(abi_loader_init_worker_failure)
{
    const char *line;
    size_t iter = 0;

    /* init_fail sorts first, so the survivor has to move down the array. */
    install("init_fail", "0_init_fail.so");
    install("good", "1_good.so");
    ck_assert_int_eq(load(), 0);
    ck_assert_uint_eq(lt.set.n, 2);
    ck_assert_str_eq(lt.set.v[0].desc.name, "init_fail");

    ck_assert_int_eq(srv_plugins_init(&lt.set, &test_api, 1), 1);
    read_log();
    ck_assert_uint_eq(lt.set.n, 1);
    ck_assert_str_eq(lt.set.v[0].desc.name, "good");
    ck_assert_int_eq(lt.set.v[0].initialized, 1);
    /* good is not THREADSAFE, so with serialize it gets the lock. */
    ck_assert_int_eq(lt.set.v[0].serialize, 1);
    ck_assert_ptr_nonnull(strstr(host_log, "init_fail: init_worker refuses"));
    line = log_line("init_worker failed");
    ck_assert_msg(line != NULL, "no init_worker refusal in:\n%s", lt.text);
    ck_assert_msg(strstr(line, "\"init_fail\"") && strstr(line, "0_init_fail.so"),
                  "refusal does not name the plugin and its file: %s", line);
    ck_assert_msg(strstr(line, "ENOSYS") && strstr(line, csgi_strerror(CSGI_ENOSYS)),
                  "refusal does not name the error: %s", line);

    /* The mount index was rebuilt without the failed plugin. */
    ck_assert_ptr_null(srv_plugins_match(&lt.set, "/init_fail", 10, &iter));
    iter = 0;
    ck_assert_ptr_eq(srv_plugins_match(&lt.set, "/good", 5, &iter), &lt.set.v[0]);

    srv_plugins_unload(&lt.set);
    ck_assert_ptr_nonnull(strstr(host_log, "good: exit_worker"));
    ck_assert_msg(strstr(host_log, "init_fail: exit_worker ran") == NULL,
                  "exit_worker ran after a failed init_worker");
}
END_TEST

START_TEST(abi_loader_refuses_duplicate_name)
{
    install("good", "a_good.so");
    install("good", "b_good.so");
    ck_assert_int_eq(load(), 1);
    ck_assert_uint_eq(lt.set.n, 1);
    ck_assert_str_eq(lt.set.v[0].file, "a_good.so");
    assert_refused("b_good.so", "duplicate", "\"good\"", "a_good.so", (const char *)NULL);
}
END_TEST

START_TEST(abi_loader_refuses_same_mount)
{
    install("good", "a.so");
    install("same_mount", "b.so");
    ck_assert_int_eq(load(), 1);
    ck_assert_uint_eq(lt.set.n, 1);
    ck_assert_str_eq(lt.set.v[0].desc.name, "good");
    assert_refused("b.so", "\"/good\"", "already used", "\"good\"", (const char *)NULL);
}
END_TEST

START_TEST(abi_loader_refuses_invalid_mount)
{
    install("bad_mount", "bad_mount.so");
    ck_assert_int_eq(load(), 1);
    ck_assert_uint_eq(lt.set.n, 0);
    assert_refused("bad_mount.so", "invalid mount", "/trailing/", (const char *)NULL);
}
END_TEST

/* A newer plugin's descriptor is larger: load it, copy only the known part. */
START_TEST(abi_loader_accepts_larger_descriptor)
{
    const struct srv_plugin *p;

    install("newer", "newer.so");
    ck_assert_int_eq(load(), 0);
    ck_assert_uint_eq(lt.set.n, 1);
    p = &lt.set.v[0];
    ck_assert_str_eq(p->desc.name, "newer");
    ck_assert_uint_eq(p->desc.version, 2);
    ck_assert_uint_gt(p->desc.size, sizeof(struct csgi_plugin));
    ck_assert(p->desc.call != NULL);
    ck_assert(p->desc.exit_worker == NULL);
    ck_assert_int_eq(srv_plugins_init(&lt.set, &test_api, 0), 0);
}
END_TEST

START_TEST(abi_loader_sorted_order)
{
    const char *a, *b, *c;

    /* Created out of order, so readdir() order is unlikely to be sorted. */
    install("good", "30_good.so");
    install("newer", "10_newer.so");
    install("extra_export", "20_extra.so");
    ck_assert_int_eq(load(), 0);
    ck_assert_uint_eq(lt.set.n, 3);
    ck_assert_str_eq(lt.set.v[0].file, "10_newer.so");
    ck_assert_str_eq(lt.set.v[1].file, "20_extra.so");
    ck_assert_str_eq(lt.set.v[2].file, "30_good.so");
    a = strstr(lt.text, "\"10_newer.so\"");
    b = strstr(lt.text, "\"20_extra.so\"");
    c = strstr(lt.text, "\"30_good.so\"");
    ck_assert(a && b && c && a < b && b < c);
}
END_TEST

/* Everything at once: each refusal is one line naming its file, the rest load. */
START_TEST(abi_loader_mixed_directory)
{
    static const char *const refused[] = {"bad_magic", "bad_mount", "bad_name",   "bad_version",
                                          "no_call",   "no_entry",  "null_entry", "same_mount",
                                          "too_small", "wrong_abi"};
    static const char *const loaded[] = {"extra_export", "good", "init_fail", "newer",
                                         "server_link"};
    char file[128], needle[256];

    for (size_t i = 0; i < N_OF(refused); i++) {
        snprintf(file, sizeof(file), "%s.so", refused[i]);
        install(refused[i], file);
    }
    for (size_t i = 0; i < N_OF(loaded); i++) {
        snprintf(file, sizeof(file), "%s.so", loaded[i]);
        install(loaded[i], file);
    }
    write_file("notelf.so", "#!/bin/sh\n");
    ck_assert_int_eq(load(), (int)N_OF(refused) + 1);
    ck_assert_uint_eq(lt.set.n, N_OF(loaded));
    for (size_t i = 0; i < N_OF(loaded); i++)
        ck_assert_msg(find_loaded(loaded[i]) != NULL, "%s did not load", loaded[i]);
    for (size_t i = 0; i < N_OF(refused); i++) {
        snprintf(needle, sizeof(needle), "plugin \"%s.so\" skipped: ", refused[i]);
        ck_assert_msg(log_line(needle) != NULL, "no refusal for %s.so", refused[i]);
    }
    ck_assert_int_eq(srv_plugins_init(&lt.set, &test_api, 0), 1);
    ck_assert_uint_eq(lt.set.n, N_OF(loaded) - 1);
    ck_assert_ptr_null(find_loaded("init_fail"));
}
END_TEST

static Suite *
abi_suite(void)
{
    Suite *s = suite_create("abi");
    TCase *tc;

    tc = tcase_create("layout");
    tcase_add_loop_test(tc, abi_struct_sizes, 0, (int)N_OF(size_pins));
    tcase_add_loop_test(tc, abi_field_offsets, 0, (int)N_OF(offset_pins));
    tcase_add_test(tc, abi_fields_tile_structs);
    suite_add_tcase(s, tc);

    tc = tcase_create("constants");
    tcase_add_loop_test(tc, abi_constants, 0, (int)N_OF(const_pins));
    tcase_add_test(tc, abi_error_map_pinned);
    tcase_add_test(tc, abi_error_names_and_messages);
    tcase_add_test(tc, abi_errors_are_negative_errno);
    tcase_add_test(tc, abi_version_macros);
    tcase_add_test(tc, abi_plugin_header_macro);
    suite_add_tcase(s, tc);

    tc = tcase_create("symbols");
    tcase_add_loop_test(tc, abi_symbols_fixture, 0, (int)N_OF(symbol_cases));
    if (n_example_plugins > 0)
        tcase_add_loop_test(tc, abi_symbols_example, 0, n_example_plugins);
    suite_add_tcase(s, tc);

    tc = tcase_create("loader");
    tcase_add_checked_fixture(tc, loader_setup, loader_teardown);
    tcase_add_test(tc, abi_loader_good_plugin_loads);
    tcase_add_test(tc, abi_loader_config_and_mount_override);
    tcase_add_test(tc, abi_loader_refuses_wrong_abi);
    tcase_add_test(tc, abi_loader_refuses_null_descriptor);
    tcase_add_test(tc, abi_loader_refuses_missing_entry);
    tcase_add_test(tc, abi_loader_refuses_bad_magic);
    tcase_add_test(tc, abi_loader_refuses_small_descriptor);
    tcase_add_test(tc, abi_loader_refuses_version_zero);
    tcase_add_test(tc, abi_loader_refuses_invalid_name);
    tcase_add_test(tc, abi_loader_refuses_missing_call);
    tcase_add_test(tc, abi_loader_refuses_non_elf);
    tcase_add_test(tc, abi_loader_refuses_directory);
    tcase_add_test(tc, abi_loader_ignores_other_files);
    tcase_add_test(tc, abi_loader_missing_directory);
    tcase_add_test(tc, abi_loader_init_worker_failure);
    tcase_add_test(tc, abi_loader_refuses_duplicate_name);
    tcase_add_test(tc, abi_loader_refuses_same_mount);
    tcase_add_test(tc, abi_loader_refuses_invalid_mount);
    tcase_add_test(tc, abi_loader_accepts_larger_descriptor);
    tcase_add_test(tc, abi_loader_sorted_order);
    tcase_add_test(tc, abi_loader_mixed_directory);
    suite_add_tcase(s, tc);
    return s;
}

int
main(int argc, char **argv)
{
    SRunner *sr;
    int failed;

    if (argc < 3) {
        fprintf(stderr, "usage: %s FIXTURE_DIR NM [EXAMPLE_PLUGIN.so...]\n", argv[0]);
        return 2;
    }
    /* Absolute, because the loader tests symlink the fixtures elsewhere. */
    fixture_dir = realpath(argv[1], NULL);
    if (!fixture_dir) {
        fprintf(stderr, "%s: fixture directory \"%s\": %s\n", argv[0], argv[1], strerror(errno));
        return 2;
    }
    nm_prog = argv[2];
    example_plugins = argv + 3;
    n_example_plugins = argc - 3;
    if (n_example_plugins == 0)
        printf("note: no example plugins given (examples=false): symbols of fixtures only\n");

    if (libc_names_load() < 0) {
        free(fixture_dir);
        return 2;
    }
    sr = srunner_create(abi_suite());
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    libc_names_free();
    free(fixture_dir);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
