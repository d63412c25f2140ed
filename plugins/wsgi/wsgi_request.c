/*
 * The per-request side of the WSGI bridge: start_response and write (the
 * request object), wsgi.input, wsgi.errors and the environ dict.
 *
 * PEP 3333's "native strings" are str objects holding latin-1 code points:
 * every byte string of the CSGI environ is decoded as latin-1, and every
 * status and header the application gives must encode as latin-1.
 */
#define _GNU_SOURCE
#include <string.h>
#include <strings.h>

#include "wsgi.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* The latin-1 bytes of a str, or -1 with ValueError when it has a code point above 255. */
static int
latin1_view(PyObject *s, const char *what, struct csgi_str *out)
{
    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "%s must be str, not %.100s", what, Py_TYPE(s)->tp_name);
        return -1;
    }
    if (PyUnicode_READY(s) < 0)
        return -1;
    if (PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) {
        PyErr_Format(PyExc_ValueError, "%s is not latin-1 (a native string): %R", what, s);
        return -1;
    }
    out->ptr = (const char *)PyUnicode_1BYTE_DATA(s);
    out->len = (size_t)PyUnicode_GET_LENGTH(s);
    return 0;
}

static PyObject *
str_latin1(struct csgi_str s)
{
    return PyUnicode_DecodeLatin1(s.ptr ? s.ptr : "", (Py_ssize_t)s.len, NULL);
}

static int
attached(struct wsgi_req *req)
{
    if (req->env)
        return 0;
    PyErr_SetString(PyExc_RuntimeError, "the request this object belongs to has finished");
    return -1;
}

/* ------------------------------------------------------------------ */
/* start_response and write                                            */
/* ------------------------------------------------------------------ */

/* "200 OK" -> 200 and "OK". Returns 0 or -1 with ValueError. */
static int
parse_status(PyObject *status, int *code, struct csgi_str *reason)
{
    struct csgi_str s;

    if (latin1_view(status, "status", &s) < 0)
        return -1;
    if (s.len < 4 || s.ptr[3] != ' ' || s.ptr[0] < '1' || s.ptr[0] > '9' || s.ptr[1] < '0' ||
        s.ptr[1] > '9' || s.ptr[2] < '0' || s.ptr[2] > '9') {
        PyErr_Format(PyExc_ValueError, "status %R is not \"NNN reason\"", status);
        return -1;
    }
    *code = (s.ptr[0] - '0') * 100 + (s.ptr[1] - '0') * 10 + (s.ptr[2] - '0');
    reason->ptr = s.ptr + 4;
    reason->len = s.len - 4;
    return 0;
}

/* The declared Content-Length, or -1 (the host validates its syntax). */
static int64_t
content_length_of(const struct csgi_header *h, size_t n)
{
    int64_t v = -1;

    for (size_t i = 0; i < n; i++) {
        if (h[i].name.len != 14 || strncasecmp(h[i].name.ptr, "content-length", 14) != 0)
            continue;
        v = 0;
        for (size_t k = 0; k < h[i].value.len && k < 18; k++) {
            char c = h[i].value.ptr[k];
            if (c < '0' || c > '9')
                return -1;
            v = v * 10 + (c - '0');
        }
    }
    return v;
}

/*
 * Fill @p out (n entries) from the list of (name, value) tuples. The views
 * borrow from the str objects, which the list keeps alive.
 */
static int
header_views(PyObject *headers, struct csgi_header *out, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PyList_GET_ITEM(headers, i);
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 2) {
            PyErr_Format(PyExc_TypeError, "header %zd is not a (name, value) tuple: %R", i, t);
            return -1;
        }
        if (latin1_view(PyTuple_GET_ITEM(t, 0), "header name", &out[i].name) < 0 ||
            latin1_view(PyTuple_GET_ITEM(t, 1), "header value", &out[i].value) < 0)
            return -1;
    }
    return 0;
}

/* The exception as exc_info for the host: code EAPP and "Type: message". */
static int
host_start(struct wsgi_req *req, int code, struct csgi_str reason, const struct csgi_header *h,
           size_t n, PyObject *exc)
{
    struct csgi_exc_info info = {CSGI_EXC_INFO_VERSION, CSGI_EAPP, {NULL, 0}};
    const char *msg = NULL;
    PyObject *text = NULL;
    int rc;

    if (exc) {
        PyObject *value = PyTuple_GET_ITEM(exc, 1);
        text = PyObject_Str(value);
        if (text)
            msg = PyUnicode_AsUTF8(text);
        if (!msg) {
            PyErr_Clear();
            msg = Py_TYPE(value)->tp_name;
        }
        info.message.ptr = msg;
        info.message.len = strlen(msg);
    }
    rc = req->resp->start_response(req->resp->ctx, code, reason, h, n, exc ? &info : NULL);
    Py_XDECREF(text);
    return rc;
}

/* Re-raise the exc_info tuple (PEP 3333: headers already sent). */
static PyObject *
reraise(PyObject *exc)
{
    PyObject *t = PyTuple_GET_ITEM(exc, 0), *v = PyTuple_GET_ITEM(exc, 1),
             *tb = PyTuple_GET_ITEM(exc, 2);

    Py_INCREF(t);
    Py_INCREF(v);
    Py_INCREF(tb);
    PyErr_Restore(t, v, tb == Py_None ? NULL : tb);
    if (tb == Py_None)
        Py_DECREF(tb);
    return NULL;
}

static PyMethodDef write_def;

/* start_response(status, response_headers, exc_info=None) -> write */
static PyObject *
req_call(PyObject *self, PyObject *args, PyObject *kw)
{
    static char k_status[] = "status", k_headers[] = "headers", k_exc[] = "exc_info";
    static char *kwlist[] = {k_status, k_headers, k_exc, NULL};
    struct wsgi_req *req = (struct wsgi_req *)self;
    PyObject *status, *headers, *exc = NULL;
    struct csgi_header stack[32], *h = stack;
    struct csgi_str reason;
    Py_ssize_t n;
    int code, rc;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O:start_response", kwlist, &status, &headers,
                                     &exc))
        return NULL;
    if (attached(req) < 0)
        return NULL;
    if (exc == Py_None)
        exc = NULL;
    if (exc && (!PyTuple_Check(exc) || PyTuple_GET_SIZE(exc) != 3)) {
        PyErr_SetString(PyExc_TypeError, "exc_info must be a 3-tuple from sys.exc_info()");
        return NULL;
    }
    if (parse_status(status, &code, &reason) < 0)
        return NULL;
    if (!PyList_Check(headers)) {
        PyErr_Format(PyExc_TypeError, "response_headers must be a list, not %.100s",
                     Py_TYPE(headers)->tp_name);
        return NULL;
    }
    n = PyList_GET_SIZE(headers);
    if (n > (Py_ssize_t)(sizeof(stack) / sizeof(stack[0]))) {
        h = PyMem_Malloc((size_t)n * sizeof(*h));
        if (!h)
            return PyErr_NoMemory();
    }
    rc = header_views(headers, h, n);
    if (rc == 0) {
        rc = host_start(req, code, reason, h, (size_t)n, exc);
        if (rc == 0)
            req->content_length = content_length_of(h, (size_t)n);
        else if (rc == CSGI_EHEADERS_SENT)
            req->failed = rc;
        else if (rc == CSGI_ESTATE)
            PyErr_SetString(PyExc_RuntimeError, "start_response() called again without exc_info");
        else
            PyErr_Format(PyExc_ValueError, "start_response(): %s (status %d)", csgi_strerror(rc),
                         code);
    }
    if (h != stack)
        PyMem_Free(h);
    if (rc == CSGI_EHEADERS_SENT)
        return reraise(exc);
    if (rc < 0)
        return NULL;
    if (!req->write) {
        req->write = PyCFunction_New(&write_def, self);
        if (!req->write)
            return NULL;
    }
    Py_INCREF(req->write);
    return req->write;
}

/* write(data): the imperative body output. */
static PyObject *
req_write(PyObject *self, PyObject *data)
{
    struct wsgi_req *req = (struct wsgi_req *)self;
    const struct csgi_responder *resp;
    PyThreadState *ts;
    int rc;

    if (attached(req) < 0)
        return NULL;
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "write() takes bytes, not %.100s", Py_TYPE(data)->tp_name);
        return NULL;
    }
    resp = req->resp;
    ts = PyEval_SaveThread();
    rc = resp->write(resp->ctx, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data));
    PyEval_RestoreThread(ts);
    if (rc < 0) {
        if (rc != CSGI_ESTATE && rc != CSGI_EINVAL)
            req->failed = rc;
        PyErr_Format(rc == CSGI_ECONNRESET ? PyExc_ConnectionResetError : PyExc_OSError,
                     "write(): %s", csgi_strerror(rc));
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef write_def = {"write", req_write, METH_O, "write(data): send body bytes"};

static void
req_dealloc(PyObject *self)
{
    struct wsgi_req *req = (struct wsgi_req *)self;

    Py_CLEAR(req->write);
    Py_CLEAR(req->chunk);
    Py_CLEAR(req->iter);
    Py_CLEAR(req->result);
    Py_TYPE(self)->tp_free(self);
}

static PyTypeObject req_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "csgi.start_response",
    .tp_basicsize = sizeof(struct wsgi_req),
    .tp_dealloc = req_dealloc,
    .tp_call = req_call,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "start_response(status, response_headers, exc_info=None) -> write",
};

/* ------------------------------------------------------------------ */
/* wsgi.input                                                          */
/* ------------------------------------------------------------------ */

struct wsgi_stream {
    PyObject_HEAD struct wsgi_req *req;
};

static void
stream_dealloc(PyObject *self)
{
    Py_CLEAR(((struct wsgi_stream *)self)->req);
    Py_TYPE(self)->tp_free(self);
}

/* The size argument of read()/readline(): None or missing means -1. */
static int
size_arg(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t *out)
{
    *out = -1;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "expected at most one argument");
        return -1;
    }
    if (nargs == 1 && args[0] != Py_None) {
        *out = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
        if (*out == -1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

/*
 * Read into a bytes object: @p line selects readline(). @p size < 0 reads to
 * the end (of the body or of the line). The GIL is released while the server
 * reads.
 */
static PyObject *
input_read_bytes(struct wsgi_req *req, Py_ssize_t size, int line)
{
    const struct csgi_input *in;
    Py_ssize_t cap, len = 0, limit;
    int64_t known;
    PyObject *buf;
    PyThreadState *ts;

    if (attached(req) < 0)
        return NULL;
    in = req->env->input;
    /* The body's length bounds every buffer: read(10**9) allocates no gigabyte. */
    known = CSGI_HAS(req->env, 2) ? req->env->input_length : req->env->content_length;
    limit = size >= 0 ? size : PY_SSIZE_T_MAX;
    if (known >= 0 && known < limit)
        limit = (Py_ssize_t)known;
    cap = limit < 65536 ? limit : 65536;
    if (!line && known >= 0 && limit < (1 << 30))
        cap = limit;
    buf = PyBytes_FromStringAndSize(NULL, cap);
    if (!buf)
        return NULL;
    for (;;) {
        int64_t r;
        char *at;
        size_t want = (size_t)(cap - len);

        if (want == 0) {
            if (cap >= limit)
                break;
            cap = cap > limit / 2 ? limit : cap * 2;
            if (_PyBytes_Resize(&buf, cap) < 0)
                return NULL;
            continue;
        }
        at = PyBytes_AS_STRING(buf) + len;
        ts = PyEval_SaveThread();
        r = line ? in->readline(in->ctx, at, want) : in->read(in->ctx, at, want);
        PyEval_RestoreThread(ts);
        if (r < 0) {
            Py_DECREF(buf);
            return PyErr_Format(PyExc_OSError, "wsgi.input: %s", csgi_strerror((int)r));
        }
        if (r == 0)
            break;
        len += (Py_ssize_t)r;
        if (line && PyBytes_AS_STRING(buf)[len - 1] == '\n')
            break;
    }
    if (_PyBytes_Resize(&buf, len) < 0)
        return NULL;
    return buf;
}

static PyObject *
input_read(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t size;

    if (size_arg(args, nargs, &size) < 0)
        return NULL;
    return input_read_bytes(((struct wsgi_stream *)self)->req, size, 0);
}

static PyObject *
input_readline(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t size;

    if (size_arg(args, nargs, &size) < 0)
        return NULL;
    return input_read_bytes(((struct wsgi_stream *)self)->req, size, 1);
}

/* readlines(hint=-1): lines until the end, or until their total passes hint. */
static PyObject *
input_readlines(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t hint, total = 0;
    PyObject *lines;

    if (size_arg(args, nargs, &hint) < 0)
        return NULL;
    lines = PyList_New(0);
    while (lines) {
        PyObject *l = input_read_bytes(((struct wsgi_stream *)self)->req, -1, 1);
        if (!l) {
            Py_CLEAR(lines);
            break;
        }
        if (PyBytes_GET_SIZE(l) == 0) {
            Py_DECREF(l);
            break;
        }
        total += PyBytes_GET_SIZE(l);
        if (PyList_Append(lines, l) < 0)
            Py_CLEAR(lines);
        Py_DECREF(l);
        if (hint > 0 && total >= hint)
            break;
    }
    return lines;
}

static PyObject *
input_next(PyObject *self)
{
    PyObject *l = input_read_bytes(((struct wsgi_stream *)self)->req, -1, 1);

    if (l && PyBytes_GET_SIZE(l) == 0) {
        Py_DECREF(l);
        return NULL; /* StopIteration */
    }
    return l;
}

static PyMethodDef input_methods[] = {
    {"read", (PyCFunction)(void (*)(void))input_read, METH_FASTCALL, "read(size=-1)"},
    {"readline", (PyCFunction)(void (*)(void))input_readline, METH_FASTCALL, "readline(size=-1)"},
    {"readlines", (PyCFunction)(void (*)(void))input_readlines, METH_FASTCALL,
     "readlines(hint=-1)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject input_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "csgi.Input",
    .tp_basicsize = sizeof(struct wsgi_stream),
    .tp_dealloc = stream_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = input_next,
    .tp_methods = input_methods,
    .tp_doc = "wsgi.input: the request body",
};

/* ------------------------------------------------------------------ */
/* wsgi.errors                                                         */
/* ------------------------------------------------------------------ */

/* Send text to the request's error stream, or to the host log once it finished. */
static void
errors_put(struct wsgi_req *req, const char *text, size_t len)
{
    const struct csgi_host_api *api = req->app->api;

    if (req->env) {
        req->env->errors->write(req->env->errors->ctx, text, len);
        return;
    }
    while (len && text[len - 1] == '\n')
        len--;
    if (len)
        api->log(api->ctx, CSGI_LOG_ERROR, "%s: %.*s", req->app->spec, (int)len, text);
}

static PyObject *
errors_write(PyObject *self, PyObject *arg)
{
    Py_ssize_t len;
    const char *s;

    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "wsgi.errors.write() takes str, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    s = PyUnicode_AsUTF8AndSize(arg, &len);
    if (!s)
        return NULL;
    errors_put(((struct wsgi_stream *)self)->req, s, (size_t)len);
    return PyLong_FromSsize_t(PyUnicode_GET_LENGTH(arg));
}

static PyObject *
errors_writelines(PyObject *self, PyObject *seq)
{
    PyObject *it = PyObject_GetIter(seq), *item;

    if (!it)
        return NULL;
    while ((item = PyIter_Next(it)) != NULL) {
        PyObject *r = errors_write(self, item);
        Py_DECREF(item);
        if (!r) {
            Py_DECREF(it);
            return NULL;
        }
        Py_DECREF(r);
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
errors_flush(PyObject *self, PyObject *unused)
{
    struct wsgi_req *req = ((struct wsgi_stream *)self)->req;

    (void)unused;
    if (req->env)
        req->env->errors->flush(req->env->errors->ctx);
    Py_RETURN_NONE;
}

static PyMethodDef errors_methods[] = {
    {"write", errors_write, METH_O, "write(str)"},
    {"writelines", errors_writelines, METH_O, "writelines(seq)"},
    {"flush", errors_flush, METH_NOARGS, "flush()"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject errors_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "csgi.Errors",
    .tp_basicsize = sizeof(struct wsgi_stream),
    .tp_dealloc = stream_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_methods = errors_methods,
    .tp_doc = "wsgi.errors: the server's error log, tagged with the request",
};

static PyObject *
stream_new(PyTypeObject *type, struct wsgi_req *req)
{
    struct wsgi_stream *s = PyObject_New(struct wsgi_stream, type);

    if (!s)
        return NULL;
    Py_INCREF(req);
    s->req = req;
    return (PyObject *)s;
}

/* ------------------------------------------------------------------ */
/* Logging exceptions                                                  */
/* ------------------------------------------------------------------ */

static PyObject *format_exception; /* traceback.format_exception */

void
wsgi_log_exception(struct wsgi_app *app, struct wsgi_req *req)
{
    PyObject *t, *v, *tb, *lines = NULL, *text = NULL, *empty;
    const char *s = NULL;
    Py_ssize_t len = 0;

    PyErr_Fetch(&t, &v, &tb);
    if (!t)
        return;
    PyErr_NormalizeException(&t, &v, &tb);
    if (format_exception)
        lines = PyObject_CallFunctionObjArgs(format_exception, t, v ? v : Py_None,
                                             tb ? tb : Py_None, NULL);
    empty = PyUnicode_FromString("");
    if (lines && empty)
        text = PyUnicode_Join(empty, lines);
    if (text)
        s = PyUnicode_AsUTF8AndSize(text, &len);
    if (!s) {
        PyErr_Clear();
        s = ((PyTypeObject *)t)->tp_name;
        len = (Py_ssize_t)strlen(s);
    }
    if (req) {
        errors_put(req, s, (size_t)len);
        if (req->env)
            req->env->errors->flush(req->env->errors->ctx);
    } else {
        app->api->log(app->api->ctx, CSGI_LOG_ERROR, "%s: %.*s", app->spec, (int)len, s);
    }
    Py_XDECREF(text);
    Py_XDECREF(empty);
    Py_XDECREF(lines);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
}

/* ------------------------------------------------------------------ */
/* The environ                                                         */
/* ------------------------------------------------------------------ */

/* Interned keys, made once per interpreter. */
enum env_key {
    K_METHOD,
    K_SCRIPT,
    K_PATH,
    K_QUERY,
    K_CTYPE,
    K_CLEN,
    K_SNAME,
    K_SPORT,
    K_PROTO,
    K_RADDR,
    K_RPORT,
    K_URI,
    K_VERSION,
    K_SCHEME,
    K_INPUT,
    K_ERRORS,
    K_MTHREAD,
    K_MPROC,
    K_RUNONCE,
    K_FWRAP,
    K_TERMINATED,
    K_REQID,
    K_COUNT
};

static const char *const key_names[K_COUNT] = {
    "REQUEST_METHOD",        "SCRIPT_NAME",       "PATH_INFO",     "QUERY_STRING",
    "CONTENT_TYPE",          "CONTENT_LENGTH",    "SERVER_NAME",   "SERVER_PORT",
    "SERVER_PROTOCOL",       "REMOTE_ADDR",       "REMOTE_PORT",   "REQUEST_URI",
    "wsgi.version",          "wsgi.url_scheme",   "wsgi.input",    "wsgi.errors",
    "wsgi.multithread",      "wsgi.multiprocess", "wsgi.run_once", "wsgi.file_wrapper",
    "wsgi.input_terminated", "csgi.request_id",
};

static PyObject *keys[K_COUNT];
static PyObject *wsgi_version; /* (1, 0) */

int
wsgi_types_init(void)
{
    PyObject *tb;

    if (PyType_Ready(&req_type) < 0 || PyType_Ready(&input_type) < 0 ||
        PyType_Ready(&errors_type) < 0 || PyType_Ready(&wsgi_file_wrapper_type) < 0)
        return -1;
    for (int i = 0; i < K_COUNT; i++) {
        if (!keys[i])
            keys[i] = PyUnicode_InternFromString(key_names[i]);
        if (!keys[i])
            return -1;
    }
    if (!wsgi_version)
        wsgi_version = Py_BuildValue("(ii)", 1, 0);
    if (!format_exception) {
        tb = PyImport_ImportModule("traceback");
        if (tb)
            format_exception = PyObject_GetAttrString(tb, "format_exception");
        Py_XDECREF(tb);
    }
    return wsgi_version && format_exception ? 0 : -1;
}

struct wsgi_req *
wsgi_req_new(struct wsgi_app *app, struct csgi_environ *env, const struct csgi_responder *resp)
{
    struct wsgi_req *req = PyObject_New(struct wsgi_req, &req_type);

    if (!req)
        return NULL;
    req->app = app;
    req->env = env;
    req->resp = resp;
    req->write = NULL;
    req->content_length = -1;
    req->failed = 0;
    req->result = NULL;
    req->iter = NULL;
    req->chunk = NULL;
    return req;
}

void
wsgi_req_detach(struct wsgi_req *req)
{
    if (req->env && req->env->errors)
        req->env->errors->flush(req->env->errors->ctx);
    req->env = NULL;
    req->resp = NULL;
}

/* d[key] = value, consuming the reference to value. */
static int
set_steal(PyObject *d, PyObject *key, PyObject *value)
{
    int rc;

    if (!value)
        return -1;
    rc = PyDict_SetItem(d, key, value);
    Py_DECREF(value);
    return rc;
}

/*
 * "HTTP_" + name upper-cased with '-' as '_'; NULL (no error) for names the
 * environ must not carry: Content-Type and Content-Length (they have their
 * own keys) and names with '_', which would be indistinguishable from '-'
 * (a client could pass X_Forwarded_For for X-Forwarded-For, as nginx and
 * Apache know; gunicorn 22 drops them too).
 */
static PyObject *
http_key(struct csgi_str name)
{
    char buf[256];

    if ((name.len == 12 && strncasecmp(name.ptr, "content-type", 12) == 0) ||
        (name.len == 14 && strncasecmp(name.ptr, "content-length", 14) == 0) ||
        memchr(name.ptr, '_', name.len) || name.len + 5 > sizeof(buf))
        return NULL;
    memcpy(buf, "HTTP_", 5);
    for (size_t i = 0; i < name.len; i++) {
        char c = name.ptr[i];
        buf[5 + i] = c == '-' ? '_' : (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
    }
    return PyUnicode_DecodeLatin1(buf, (Py_ssize_t)(name.len + 5), NULL);
}

/* The request headers as HTTP_* keys; repeated fields joined with ",". */
static int
add_headers(PyObject *d, const struct csgi_environ *env)
{
    for (size_t i = 0; i < env->n_headers; i++) {
        PyObject *key = http_key(env->headers[i].name), *old, *val;
        int rc;

        if (!key) {
            if (PyErr_Occurred())
                return -1;
            continue;
        }
        val = str_latin1(env->headers[i].value);
        old = val ? PyDict_GetItemWithError(d, key) : NULL;
        if (old) {
            PyObject *joined = PyUnicode_FromFormat("%U,%U", old, val);
            Py_DECREF(val);
            val = joined;
        }
        rc = val ? PyDict_SetItem(d, key, val) : -1;
        Py_DECREF(key);
        Py_XDECREF(val);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* The CGI keys. */
static int
add_cgi(PyObject *d, const struct csgi_environ *env)
{
    if (set_steal(d, keys[K_METHOD], str_latin1(env->request_method)) < 0 ||
        set_steal(d, keys[K_SCRIPT], str_latin1(env->script_name)) < 0 ||
        set_steal(d, keys[K_PATH], str_latin1(env->path_info)) < 0 ||
        set_steal(d, keys[K_QUERY], str_latin1(env->query_string)) < 0 ||
        set_steal(d, keys[K_SNAME], str_latin1(env->server_name)) < 0 ||
        set_steal(d, keys[K_SPORT], str_latin1(env->server_port)) < 0 ||
        set_steal(d, keys[K_PROTO], str_latin1(env->server_protocol)) < 0 ||
        set_steal(d, keys[K_RADDR], str_latin1(env->remote_addr)) < 0 ||
        set_steal(d, keys[K_RPORT], PyUnicode_FromFormat("%u", env->remote_port)) < 0 ||
        set_steal(d, keys[K_URI], str_latin1(env->raw_target)) < 0)
        return -1;
    if (env->content_type.ptr && set_steal(d, keys[K_CTYPE], str_latin1(env->content_type)) < 0)
        return -1;
    if (env->content_length >= 0 &&
        set_steal(d, keys[K_CLEN], PyUnicode_FromFormat("%lld", (long long)env->content_length)) <
            0)
        return -1;
    return 0;
}

/* The wsgi.* keys. */
static int
add_wsgi(PyObject *d, struct wsgi_req *req)
{
    const struct csgi_environ *env = req->env;

    if (PyDict_SetItem(d, keys[K_VERSION], wsgi_version) < 0 ||
        set_steal(d, keys[K_SCHEME], str_latin1(env->url_scheme)) < 0 ||
        set_steal(d, keys[K_INPUT], stream_new(&input_type, req)) < 0 ||
        set_steal(d, keys[K_ERRORS], stream_new(&errors_type, req)) < 0 ||
        PyDict_SetItem(d, keys[K_MTHREAD], env->flags & CSGI_ENV_MULTITHREAD ? Py_True : Py_False) <
            0 ||
        PyDict_SetItem(d, keys[K_MPROC], env->flags & CSGI_ENV_MULTIPROCESS ? Py_True : Py_False) <
            0 ||
        PyDict_SetItem(d, keys[K_RUNONCE], env->flags & CSGI_ENV_RUN_ONCE ? Py_True : Py_False) <
            0 ||
        PyDict_SetItem(d, keys[K_FWRAP], (PyObject *)&wsgi_file_wrapper_type) < 0 ||
        PyDict_SetItem(d, keys[K_TERMINATED],
                       env->flags & CSGI_ENV_INPUT_TERMINATED ? Py_True : Py_False) < 0)
        return -1;
    if (CSGI_HAS(env, 2) && env->request_id.ptr &&
        set_steal(d, keys[K_REQID], str_latin1(env->request_id)) < 0)
        return -1;
    return 0;
}

PyObject *
wsgi_environ_new(struct wsgi_req *req)
{
    PyObject *d = PyDict_New();

    if (!d)
        return NULL;
    if (add_cgi(d, req->env) < 0 || add_headers(d, req->env) < 0 || add_wsgi(d, req) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}
