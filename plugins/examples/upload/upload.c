/*
 * upload: a form handler with a file upload, on csgi/util.h (issue 15).
 *
 *   GET  /upload -> an HTML form (a text field and a file)
 *   POST /upload -> 200 {"fields": [[name, value], ...], "files": [{"field",
 *     "filename", "content_type", "size", "fnv1a"}, ...]}, from a
 *     multipart/form-data or an application/x-www-form-urlencoded body;
 *     400 for a malformed body, 413 past the limits, 415 for another type.
 *
 * Files above 64 KiB go to unlinked files in --set upload.tmp_dir=DIR (413
 * when it is not set). fnv1a is the 32-bit FNV-1a hash of the file's bytes.
 */
#define _POSIX_C_SOURCE 200809L
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <csgi/csgi.h>
#include <csgi/util.h>

static const char form_html[] =
    "<!DOCTYPE html><form method=\"post\" enctype=\"multipart/form-data\">"
    "<input name=\"title\"><input type=\"file\" name=\"file\"><button>Send</button></form>\n";

static uint32_t
fnv1a(uint32_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* The FNV-1a hash of a part, in memory or in its temporary file. -1 on a read error. */
static int64_t
part_hash(const struct csgi_multipart_part *part)
{
    unsigned char buf[8192];
    uint32_t h = 2166136261u;
    ssize_t n;

    if (part->fd < 0)
        return fnv1a(h, (const unsigned char *)part->data.ptr, part->data.len);
    for (off_t off = 0; (n = pread(part->fd, buf, sizeof(buf), off)) > 0; off += n)
        h = fnv1a(h, buf, (size_t)n);
    return n < 0 ? -1 : (int64_t)h;
}

/* Fill fields and files from a multipart body. @return 0 or the parser's code. */
static int
read_multipart(const struct csgi_environ *env, cJSON *fields, cJSON *files)
{
    struct csgi_multipart_limits limits = {.tmp_dir = NULL};
    struct csgi_multipart *mp;
    struct csgi_multipart_part part;
    int rc;

    for (size_t i = 0; i < env->n_config; i++)
        if (strcmp(env->config[i].key, "tmp_dir") == 0)
            limits.tmp_dir = env->config[i].value;
    rc = csgi_multipart_open(env->host, env, &limits, &mp);
    while (rc == 0 && (rc = csgi_multipart_next(mp, &part)) == 1) {
        cJSON *f;
        int64_t h;

        if (!part.filename.ptr) {
            const char *pair[2] = {part.name.ptr, part.data.ptr};
            cJSON_AddItemToArray(fields, cJSON_CreateStringArray(pair, 2));
            rc = 0;
            continue;
        }
        h = part_hash(&part);
        f = cJSON_CreateObject();
        if (h < 0 || !cJSON_AddItemToArray(files, f))
            return h < 0 ? CSGI_EIO : CSGI_ENOMEM;
        cJSON_AddStringToObject(f, "field", part.name.ptr);
        cJSON_AddStringToObject(f, "filename", part.filename.ptr);
        cJSON_AddStringToObject(f, "content_type",
                                part.content_type.ptr ? part.content_type.ptr : "text/plain");
        cJSON_AddNumberToObject(f, "size", (double)part.size);
        cJSON_AddNumberToObject(f, "fnv1a", (double)h);
        rc = 0;
    }
    return rc;
}

/* Fill fields from an urlencoded body. @return 0 or a negative code. */
static int
read_urlencoded(const struct csgi_environ *env, cJSON *fields)
{
    struct csgi_str body, k, v;
    struct csgi_query_iter it;
    int rc = csgi_read_body(env->host, env, 64 * 1024, &body);

    csgi_query_iter_init(&it, rc == 0 ? body : (struct csgi_str){"", 0});
    while (rc == 0 && csgi_query_next(&it, &k, &v) == 1) {
        char *kd = env->host->alloc(env->request, k.len + 1);
        char *vd = env->host->alloc(env->request, v.len + 1);
        const char *pair[2] = {kd, vd};
        unsigned fl = CSGI_URL_PLUS_SPACE | CSGI_URL_LENIENT | CSGI_URL_NO_NUL;

        if (!kd || !vd)
            return CSGI_ENOMEM;
        rc = csgi_url_decode(k, fl, kd, k.len + 1, NULL);
        if (rc == 0)
            rc = csgi_url_decode(v, fl, vd, v.len + 1, NULL);
        if (rc == 0)
            cJSON_AddItemToArray(fields, cJSON_CreateStringArray(pair, 2));
    }
    return rc;
}

static int
reply_error(const struct csgi_environ *env, const struct csgi_responder *resp, int status,
            const char *msg, struct csgi_body *out)
{
    cJSON *o = cJSON_CreateObject();
    int rc = o && cJSON_AddStringToObject(o, "error", msg)
                 ? csgi_json_respond(env->host, env, resp, status, NULL, 0, o, out)
                 : CSGI_ENOMEM;

    cJSON_Delete(o);
    return rc;
}

static int
upload_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
            struct csgi_body *out)
{
    static const struct csgi_header html[] = {
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/html; charset=utf-8")}};
    cJSON *root, *fields, *files;
    struct csgi_str b;
    int rc;

    (void)state;
    if (csgi_str_eq_c(env->request_method, "GET") || csgi_str_eq_c(env->request_method, "HEAD")) {
        rc = env->host->body_from_buffer(env->request, form_html, sizeof(form_html) - 1,
                                         CSGI_BUF_BORROW, out);
        return rc ? rc : resp->start_response(resp->ctx, 200, (struct csgi_str){0}, html, 1, NULL);
    }
    if (!csgi_str_eq_c(env->request_method, "POST"))
        return reply_error(env, resp, 405, "method not allowed", out);
    root = cJSON_CreateObject();
    fields = cJSON_AddArrayToObject(root, "fields");
    files = cJSON_AddArrayToObject(root, "files");
    if (!fields || !files)
        rc = CSGI_ENOMEM;
    else if (csgi_multipart_boundary(env->content_type, &b) != CSGI_ENOTSUP)
        rc = read_multipart(env, fields, files);
    else if (csgi_str_has_iprefix(env->content_type,
                                  csgi_str_c("application/x-www-form-urlencoded")))
        rc = read_urlencoded(env, fields);
    else
        rc = CSGI_ENOTSUP;
    if (rc == 0)
        rc = csgi_json_respond(env->host, env, resp, 200, NULL, 0, root, out);
    else if (rc == CSGI_EINVAL || rc == CSGI_ETOOBIG || rc == CSGI_ENOTSUP)
        rc = reply_error(env, resp,
                         rc == CSGI_EINVAL    ? 400
                         : rc == CSGI_ETOOBIG ? 413
                                              : 415,
                         csgi_strerror(rc), out);
    cJSON_Delete(root);
    return rc;
}

static const struct csgi_plugin upload_plugin = {
    CSGI_PLUGIN_HEADER,
    .name = "upload",
    .plugin_version = "1.0.0",
    .description = "a form handler with a file upload (multipart/form-data)",
    .flags = CSGI_PLUGIN_THREADSAFE,
    .call = upload_call,
};

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &upload_plugin;
}
