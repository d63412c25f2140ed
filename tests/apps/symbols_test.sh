#!/bin/sh
# The frameworks export only their public API (csgi_res_* / csgi_route_*), with
# the right SONAME; each World plugin (and the gzip and validator middleware
# plugins, which link libcsgi-util statically) exports only csgi_plugin_entry.
# Usage: symbols_test.sh LIBCSGI_RESOURCE LIBCSGI_ROUTE PLUGIN...
set -eu
check_lib() {
    lib=$1
    prefix=$2
    soname=$3
    bad=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v "^${prefix}" || true)
    [ -z "$bad" ] || { echo "$lib exports more than ${prefix}*: $bad"; exit 1; }
    objdump -p "$lib" | grep -q "SONAME *${soname}\$" || { echo "$lib: SONAME is not $soname"; exit 1; }
}
check_lib "$1" csgi_res_ libcsgi-resource.so.1
check_lib "$2" csgi_route_ libcsgi-route.so.1
shift 2
for p in "$@"; do
    syms=$(nm -D --defined-only "$p" | awk '{print $3}' | tr '\n' ' ')
    [ "$syms" = "csgi_plugin_entry " ] || { echo "$p exports: $syms"; exit 1; }
done
echo "symbols ok"
