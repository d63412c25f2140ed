/*
 * CSGI: the C Server Gateway Interface. Version macros.
 *
 * Versioning policy. Two numbers matter at run time:
 *
 *  - CSGI_ABI_VERSION is the binary-compatibility generation. Plugins and
 *    servers with the same CSGI_ABI_VERSION are binary compatible. It is
 *    bumped only on an incompatible change (a field removed, reordered or
 *    retyped, a function's signature changed), and then the plugin directory
 *    name changes with it (csgi-<ABI>/plugins), so old and new plugins never
 *    meet by accident. A server refuses a plugin whose ABI differs and says
 *    which two numbers it saw.
 *
 *  - Every struct that crosses the boundary carries its own version (and the
 *    descriptor its size). Within one ABI, structs only ever grow at the end;
 *    each new field is marked "Since version N". A reader checks the version
 *    before it touches a newer field (CSGI_HAS), so a newer server loads an
 *    older plugin, and a newer plugin sees which host services an older server
 *    offers.
 *
 * CSGI_VERSION_* is the version of the specification text and headers
 * (semantic versioning: minor releases only append). It is not a server's
 * version: csgi-server's own release number comes from its build (and it
 * reports both with --version).
 */
#ifndef CSGI_VERSION_H
#define CSGI_VERSION_H

#ifdef __cplusplus
extern "C" {
#endif

/** Binary-compatibility generation; see the policy above. */
#define CSGI_ABI_VERSION 1

#define CSGI_VERSION_MAJOR 1
#define CSGI_VERSION_MINOR 2
#define CSGI_VERSION_PATCH 0
#define CSGI_VERSION_HEX                                                                           \
    ((CSGI_VERSION_MAJOR << 16) | (CSGI_VERSION_MINOR << 8) | (CSGI_VERSION_PATCH))
#define CSGI_VERSION_STRING "1.2.0"

/**
 * True when the versioned struct @p obj is at least version @p v, i.e. when the
 * fields marked "Since version v" may be read. NULL is never "at least".
 */
#define CSGI_HAS(obj, v) ((obj) && (obj)->version >= (v))

#ifdef __cplusplus
}
#endif

#endif /* CSGI_VERSION_H */
