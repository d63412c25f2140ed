/*
 * From the application's result to a CSGI body: wsgi.file_wrapper over a
 * regular file becomes a file body (sendfile), a list or tuple of bytes one
 * buffer, anything else an iterator body whose next() takes the GIL per chunk.
 * PEP 3333's close() is called exactly once: at the end of call() for the
 * first two (the application's code has run by then), else from the body's
 * close(), which the server calls exactly once.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wsgi.h"

/* ------------------------------------------------------------------ */
/* wsgi.file_wrapper                                                   */
/* ------------------------------------------------------------------ */

struct file_wrapper {
    PyObject_HEAD PyObject *filelike;
    Py_ssize_t blksize;
};

static int
fw_init(PyObject *self, PyObject *args, PyObject *kw)
{
    static char k_file[] = "filelike", k_blk[] = "blksize";
    static char *kwlist[] = {k_file, k_blk, NULL};
    struct file_wrapper *fw = (struct file_wrapper *)self;
    PyObject *f;
    Py_ssize_t blksize = 8192;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|n:file_wrapper", kwlist, &f, &blksize))
        return -1;
    if (blksize <= 0) {
        PyErr_SetString(PyExc_ValueError, "file_wrapper: blksize must be positive");
        return -1;
    }
    Py_INCREF(f);
    Py_XSETREF(fw->filelike, f);
    fw->blksize = blksize;
    return 0;
}

static void
fw_dealloc(PyObject *self)
{
    Py_CLEAR(((struct file_wrapper *)self)->filelike);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *
fw_next(PyObject *self)
{
    struct file_wrapper *fw = (struct file_wrapper *)self;
    PyObject *data;

    if (!fw->filelike)
        return NULL;
    data = PyObject_CallMethod(fw->filelike, "read", "n", fw->blksize);
    if (data && PyObject_Length(data) == 0) {
        Py_DECREF(data);
        return NULL;
    }
    return data;
}

static PyObject *
fw_close(PyObject *self, PyObject *unused)
{
    struct file_wrapper *fw = (struct file_wrapper *)self;
    PyObject *r;

    (void)unused;
    if (!fw->filelike || !PyObject_HasAttrString(fw->filelike, "close"))
        Py_RETURN_NONE;
    r = PyObject_CallMethod(fw->filelike, "close", NULL);
    return r;
}

static PyMethodDef fw_methods[] = {
    {"close", fw_close, METH_NOARGS, "close the file"},
    {NULL, NULL, 0, NULL},
};

PyTypeObject wsgi_file_wrapper_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "csgi.FileWrapper",
    .tp_basicsize = sizeof(struct file_wrapper),
    .tp_dealloc = fw_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = fw_next,
    .tp_methods = fw_methods,
    .tp_init = fw_init,
    .tp_new = PyType_GenericNew,
    .tp_doc = "wsgi.file_wrapper(filelike, blksize=8192)",
};

/* ------------------------------------------------------------------ */
/* Closing the result                                                  */
/* ------------------------------------------------------------------ */

/* Call result.close() if it has one; log what it raises. Returns 0 or -1 (logged). */
static int
close_result(struct wsgi_req *req, PyObject *result)
{
    PyObject *close, *r;

    if (PyList_CheckExact(result) || PyTuple_CheckExact(result) || PyBytes_CheckExact(result))
        return 0;
    close = PyObject_GetAttrString(result, "close");
    if (!close) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
            return 0;
        }
        wsgi_log_exception(req->app, req);
        return -1;
    }
    r = PyObject_CallNoArgs(close);
    Py_DECREF(close);
    if (!r) {
        wsgi_log_exception(req->app, req);
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* ------------------------------------------------------------------ */
/* The file body                                                       */
/* ------------------------------------------------------------------ */

/*
 * A file_wrapper over an object with fileno() naming a regular file: a file
 * body from its current position (tell()) to the end, or to the declared
 * Content-Length. Returns 1 when @p out was made, 0 when the iterator path
 * must serve it, -1 on a host failure.
 */
static int
try_file_body(struct wsgi_req *req, struct file_wrapper *fw, struct csgi_body *out)
{
    const struct csgi_host_api *api = req->app->api;
    PyObject *r;
    struct stat st;
    long fd, pos;
    int64_t count;
    int dupfd;

    r = PyObject_CallMethod(fw->filelike, "fileno", NULL);
    fd = r ? PyLong_AsLong(r) : -1;
    Py_XDECREF(r);
    if (fd < 0 || fstat((int)fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        PyErr_Clear();
        return 0;
    }
    r = PyObject_HasAttrString(fw->filelike, "tell")
            ? PyObject_CallMethod(fw->filelike, "tell", NULL)
            : NULL;
    pos = r ? PyLong_AsLong(r) : (long)lseek((int)fd, 0, SEEK_CUR);
    Py_XDECREF(r);
    if (pos < 0 || pos > st.st_size) {
        PyErr_Clear();
        return 0;
    }
    count = (int64_t)st.st_size - pos;
    if (req->content_length >= 0 && req->content_length < count)
        count = req->content_length;
    dupfd = fcntl((int)fd, F_DUPFD_CLOEXEC, 3);
    if (dupfd < 0)
        return 0;
    if (api->body_from_fd(req->env->request, dupfd, pos, count, CSGI_FD_CLOSE, out) < 0)
        return -1;
    return 1;
}

/* ------------------------------------------------------------------ */
/* The buffer body                                                     */
/* ------------------------------------------------------------------ */

/*
 * A list or tuple whose items are all bytes: one buffer in the request's
 * arena. Returns 1 when @p out was made, 0 when an item is not bytes (the
 * iterator path then reports it), -1 on a host failure.
 */
static int
try_buffer_body(struct wsgi_req *req, PyObject *seq, struct csgi_body *out)
{
    const struct csgi_host_api *api = req->app->api;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    size_t total = 0, at = 0;
    char *buf;

    if (!CSGI_HAS(api, 2))
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyBytes_CheckExact(items[i]))
            return 0;
        total += (size_t)PyBytes_GET_SIZE(items[i]);
    }
    if (n == 1)
        return api->body_from_buffer(req->env->request, PyBytes_AS_STRING(items[0]), total, 0,
                                     out) < 0
                   ? -1
                   : 1;
    buf = total ? api->alloc(req->env->request, total) : NULL;
    if (total && !buf)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        memcpy(buf + at, PyBytes_AS_STRING(items[i]), (size_t)PyBytes_GET_SIZE(items[i]));
        at += (size_t)PyBytes_GET_SIZE(items[i]);
    }
    return api->body_from_buffer(req->env->request, buf, total, CSGI_BUF_BORROW, out) < 0 ? -1 : 1;
}

/* ------------------------------------------------------------------ */
/* The iterator body                                                   */
/* ------------------------------------------------------------------ */

static int
iter_next(void *ctx, struct csgi_chunk *out)
{
    struct wsgi_req *req = ctx;
    PyObject *item;
    int rc = CSGI_OK;

    wsgi_gil_take();
    Py_CLEAR(req->chunk);
    item = PyIter_Next(req->iter);
    if (!item && !PyErr_Occurred()) {
        rc = CSGI_DONE;
    } else if (!item) {
        wsgi_log_exception(req->app, req);
        rc = req->failed ? req->failed : CSGI_EAPP;
    } else if (!PyBytes_Check(item)) {
        PyErr_Format(PyExc_TypeError, "the response iterable yielded %.100s, not bytes",
                     Py_TYPE(item)->tp_name);
        wsgi_log_exception(req->app, req);
        Py_DECREF(item);
        rc = CSGI_EAPP;
    } else {
        req->chunk = item;
        out->ptr = PyBytes_AS_STRING(item);
        out->len = (size_t)PyBytes_GET_SIZE(item);
    }
    if (rc == CSGI_OK && req->failed)
        rc = req->failed;
    wsgi_gil_drop();
    return rc;
}

static void
iter_close(void *ctx)
{
    struct wsgi_req *req = ctx;

    wsgi_gil_take();
    Py_CLEAR(req->chunk);
    Py_CLEAR(req->iter);
    if (req->result)
        close_result(req, req->result);
    Py_CLEAR(req->result);
    wsgi_req_detach(req);
    Py_DECREF(req);
    wsgi_gil_drop();
}

int
wsgi_body_from_result(struct wsgi_req *req, PyObject *result, struct csgi_body *out)
{
    int made = 0;

    if (Py_IS_TYPE(result, &wsgi_file_wrapper_type) && ((struct file_wrapper *)result)->filelike)
        made = try_file_body(req, (struct file_wrapper *)result, out);
    else if (PyList_CheckExact(result) || PyTuple_CheckExact(result))
        made = try_buffer_body(req, result, out);
    if (made != 0) {
        int closed = close_result(req, result);
        Py_DECREF(result);
        if (made < 0)
            return CSGI_ENOMEM;
        return closed < 0 ? CSGI_EAPP : CSGI_OK;
    }
    req->iter = PyObject_GetIter(result);
    if (!req->iter) {
        wsgi_log_exception(req->app, req);
        close_result(req, result);
        Py_DECREF(result);
        return CSGI_EAPP;
    }
    req->result = result;
    /* The body holds the request object until the server closes it. */
    Py_INCREF(req);
    out->ctx = req;
    out->next = iter_next;
    out->close = iter_close;
    out->total_length = -1;
    return CSGI_OK;
}
