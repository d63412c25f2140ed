/*
 * wsgi: a CSGI plugin that hosts a Python WSGI (PEP 3333) application in an
 * embedded CPython, started in init_worker() (after fork, one interpreter per
 * worker process). Internal header shared by the plugin's files; every name
 * here has hidden visibility (the .so exports csgi_plugin_entry only).
 */
#ifndef WSGI_H
#define WSGI_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <csgi/csgi.h>

/* One application: the state of one instance of the plugin in one worker. */
struct wsgi_app {
    const struct csgi_host_api *api;
    /* The WSGI callable. */
    PyObject *app;
    /* "module:callable" as configured, for log lines. */
    char *spec;
};

/*
 * The per-request Python object: it is the start_response callable the
 * application receives, owns the write callable, and is what wsgi.input and
 * wsgi.errors refer to. The C pointers are cleared when the plugin is done
 * with the request (wsgi_req_detach), so an application that keeps one of
 * these objects past its request gets an exception, never a dangling pointer.
 */
struct wsgi_req {
    PyObject_HEAD struct wsgi_app *app;
    /* NULL once detached. */
    struct csgi_environ *env;
    const struct csgi_responder *resp;
    /* The bound write() callable, made on the first start_response(). */
    PyObject *write;
    /* The Content-Length the application declared, or -1. */
    int64_t content_length;
    /* A code that must end the response (CSGI_EHEADERS_SENT, a failed write()), or 0. */
    int failed;
    /* The result iterable, its iterator and the chunk handed out last (body path). */
    PyObject *result;
    PyObject *iter;
    PyObject *chunk;
};

/* The types and the interned environ keys; once per interpreter. Returns 0 or -1 (exception set).
 */
int wsgi_types_init(void);

/* A new request object, or NULL (exception set). */
struct wsgi_req *wsgi_req_new(struct wsgi_app *app, struct csgi_environ *env,
                              const struct csgi_responder *resp);
/* Forget the request's C pointers: later Python calls on it raise. */
void wsgi_req_detach(struct wsgi_req *req);
/* The PEP 3333 environ dict for @p req, or NULL (exception set). */
PyObject *wsgi_environ_new(struct wsgi_req *req);

/*
 * Log the pending Python exception with its traceback (to wsgi.errors while
 * the request is attached, else to the host log) and clear it.
 */
void wsgi_log_exception(struct wsgi_app *app, struct wsgi_req *req);

/*
 * Turn the application's result into @p out (file_wrapper as a file body,
 * lists and tuples of bytes as a buffer body, anything else as an iterator
 * body). Takes ownership of @p result. Returns CSGI_OK, or a negative code with
 * the result closed and the error logged.
 */
int wsgi_body_from_result(struct wsgi_req *req, PyObject *result, struct csgi_body *out);

/* The GIL around server callbacks: per-thread state kept between requests. */
void wsgi_gil_take(void);
void wsgi_gil_drop(void);

/* The wsgi.file_wrapper type. */
extern PyTypeObject wsgi_file_wrapper_type;

#endif /* WSGI_H */
