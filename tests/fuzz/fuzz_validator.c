/*
 * libFuzzer target for the validator middleware: the input is a script that
 * drives a synthetic application (start_response with arbitrary statuses and
 * header bytes, write(), input reads, bodies whose chunks, lengths and errors
 * come from the script, declines and failures), run through the validator
 * and the in-process test client. Every call sequence must be handled
 * without a crash, a leak or undefined behaviour, and the validator must
 * fail fast on the first violation without losing track of the body.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <csgi/csgi.h>
#include <csgi/testclient.h>
#include <csgi/validator.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct script {
    const uint8_t *p;
    size_t n;
    size_t i;
    const struct csgi_host_api *api;
};

static unsigned
take(struct script *s)
{
    return s->i < s->n ? s->p[s->i++] : 0;
}

/* A slice of the script as bytes: length first. */
static struct csgi_str
slice(struct script *s)
{
    struct csgi_str r;
    size_t len = take(s) % 24;

    if (len > s->n - s->i)
        len = s->n - s->i;
    r.ptr = (const char *)s->p + s->i;
    r.len = len;
    s->i += len;
    return r;
}

struct body {
    struct script *s;
    int closed;
};

static int
body_next(void *ctx, struct csgi_chunk *out)
{
    struct body *b = ctx;
    unsigned op = take(b->s);
    struct csgi_str c;

    if (b->s->i >= b->s->n || op % 7 == 0)
        return CSGI_DONE;
    if (op % 7 == 1)
        return CSGI_EIO;
    c = slice(b->s);
    out->ptr = op % 7 == 2 ? NULL : c.ptr;
    out->len = c.len;
    return op % 11 == 3 ? 7 : CSGI_OK;
}

static void
body_close(void *ctx)
{
    struct body *b = ctx;

    b->closed++;
}

static int
app(void *state, struct csgi_environ *env, const struct csgi_responder *resp, struct csgi_body *out)
{
    struct script *s = state;
    char buf[64];

    for (int steps = 0; steps < 32 && s->i < s->n; steps++) {
        unsigned op = take(s) % 9;
        switch (op) {
        case 0: {
            struct csgi_header h[4];
            size_t nh = take(s) % 5;
            int status = 100 + (int)(take(s) * 2);
            struct csgi_exc_info exc = {CSGI_EXC_INFO_VERSION, CSGI_EIO, {"x", 1}};
            for (size_t k = 0; k < nh && k < 4; k++) {
                h[k].name = slice(s);
                h[k].value = slice(s);
            }
            resp->start_response(resp->ctx, status, slice(s), nh ? h : NULL, nh < 4 ? nh : 4,
                                 take(s) & 1 ? &exc : NULL);
            break;
        }
        case 1: {
            struct csgi_str w = slice(s);
            resp->write(resp->ctx, w.ptr, w.len);
            break;
        }
        case 2:
            env->input->read(env->input->ctx, buf, take(s) % sizeof(buf));
            break;
        case 3:
            env->input->readline(env->input->ctx, buf, take(s) % sizeof(buf));
            break;
        case 4: {
            struct body *b = s->api->alloc(env->request, sizeof(*b));
            if (!b)
                return CSGI_ENOMEM;
            b->s = s;
            b->closed = 0;
            out->ctx = b;
            out->next = body_next;
            out->close = take(s) & 1 ? body_close : NULL;
            out->total_length = take(s) & 1 ? -1 : (int64_t)take(s);
            return CSGI_OK;
        }
        case 5:
            return CSGI_EDECLINED;
        case 6:
            return -(int)take(s);
        case 7: {
            struct csgi_str m = slice(s);
            env->errors->log(env->errors->ctx, (int)(take(s) % 7), m.ptr, m.len);
            break;
        }
        default:
            env->input->rewind(env->input->ctx);
            break;
        }
    }
    return CSGI_OK;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct csgi_test_client *client;
    static struct script s;
    struct csgi_validator_options opts = {0, NULL, NULL};
    struct csgi_validator *v;
    struct csgi_test_response *resp = NULL;
    struct csgi_test_request rq;
    char err[256];
    static const char *const methods[] = {"GET", "HEAD", "POST", "PUT"};

    if (size == 0)
        return 0;
    /* A client per input: a client keeps every log line it captured until it is freed. */
    client = csgi_test_client_new_app(app, &s, "/app", err, sizeof(err));
    assert(client);
    s.p = data + 1;
    s.n = size - 1;
    s.i = 0;
    s.api = csgi_test_client_host_api(client);
    opts.flags = data[0] & (CSGI_VALIDATOR_FAIL_FAST | CSGI_VALIDATOR_STRICT);
    opts.report = NULL;
    v = csgi_validator_new(s.api, app, &s, &opts);
    assert(v);
    memset(&rq, 0, sizeof(rq));
    rq.method = methods[(data[0] >> 5) & 3];
    rq.target = "/app/x?q=1";
    rq.body = "line one\nline two\n";
    rq.body_len = 18;
    if (csgi_test_client_request_app(client, csgi_validator_call, v, &rq, &resp) == 0) {
        assert(resp);
        csgi_test_response_free(resp);
    }
    csgi_validator_free(v);
    csgi_test_client_free(client);
    return 0;
}
