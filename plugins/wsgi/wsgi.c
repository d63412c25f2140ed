/*
 * wsgi: host a Python WSGI application (PEP 3333) on CSGI.
 *
 * Configuration (--set NAME.KEY=VALUE):
 *   app   "package.module:callable" (callable defaults to "application"); required
 *   path  directories to put first on sys.path, separated by ':'
 *   venv  a virtualenv directory: its site-packages join sys.path
 *
 * Python starts in init_worker(), after fork: the master never runs Python,
 * each worker has its own interpreter, and a reload (new workers) imports the
 * code as it is on disk. Several applications in one server are instances of
 * this plugin (csgi-server --instance NAME=wsgi): each gets its own private
 * copy of this file, configuration and mount; they share the worker's one
 * interpreter, the first to start initialises it and the last to stop
 * finalises it.
 *
 * Threads: the GIL is held only while Python runs; it is released whenever
 * the server waits (between callbacks, while reading wsgi.input, during
 * write()), and each next() of the body takes it for one chunk.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "wsgi.h"

#ifndef WSGI_PYTHON
#define WSGI_PYTHON "/usr/bin/python3"
#endif

/* The count of running instances in this interpreter, kept in sys (shared by all copies). */
#define USERS_ATTR "_csgi_wsgi_instances"

/* ------------------------------------------------------------------ */
/* The GIL                                                             */
/* ------------------------------------------------------------------ */

/*
 * This thread's Python thread state while it does not hold the GIL. The
 * first take on a thread makes the state (PyGILState_Ensure registers it);
 * later takes reuse it, so a request costs no thread-state allocation.
 */
static __thread PyThreadState *wsgi_tstate;

void
wsgi_gil_take(void)
{
    if (wsgi_tstate)
        PyEval_RestoreThread(wsgi_tstate);
    else
        PyGILState_Ensure();
}

void
wsgi_gil_drop(void)
{
    wsgi_tstate = PyEval_SaveThread();
}

static const struct csgi_plugin wsgi_plugin;

/* ------------------------------------------------------------------ */
/* The interpreter                                                     */
/* ------------------------------------------------------------------ */

/*
 * Python's C extensions (lib-dynload, site-packages) resolve the interpreter's
 * symbols globally, but the server loads plugins RTLD_LOCAL: promote
 * libpython to RTLD_GLOBAL. And pin this copy of the plugin (RTLD_NODELETE):
 * an interpreter cannot be unloaded, and its objects point into this file
 * (types, methods) until it is finalised, possibly after this instance stopped.
 */
static int
pin_libraries(const struct csgi_host_api *api)
{
    Dl_info py, self;

    if (!dladdr((void *)Py_None, &py) || !py.dli_fname ||
        !dladdr((const void *)&wsgi_plugin, &self) || !self.dli_fname) {
        api->log(api->ctx, CSGI_LOG_ERROR, "cannot find libpython or the plugin file: %s",
                 dlerror());
        return CSGI_ENOENT;
    }
    if (!dlopen(py.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD) ||
        !dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE)) {
        api->log(api->ctx, CSGI_LOG_ERROR, "dlopen(\"%s\") failed: %s", py.dli_fname, dlerror());
        return CSGI_ENOENT;
    }
    return 0;
}

/* Start the interpreter (GIL held on return). @p venv may be NULL. */
static int
start_python(const struct csgi_host_api *api, const char *venv)
{
    PyConfig c;
    PyStatus st;
    char *prog = NULL;

    PyConfig_InitPythonConfig(&c);
    /* The server owns the signals; Python must not install handlers. */
    c.install_signal_handlers = 0;
    c.parse_argv = 0;
    c.user_site_directory = 0;
    /* A venv is found from its bin/python (pyvenv.cfg), as the venv's own python finds it. */
    if (venv && asprintf(&prog, "%s/bin/python3", venv) < 0)
        prog = NULL;
    st = PyConfig_SetBytesString(&c, &c.program_name, prog ? prog : WSGI_PYTHON);
    free(prog);
    if (!PyStatus_Exception(st))
        st = Py_InitializeFromConfig(&c);
    PyConfig_Clear(&c);
    if (PyStatus_Exception(st)) {
        api->log(api->ctx, CSGI_LOG_ERROR, "python did not start: %s",
                 st.err_msg ? st.err_msg : "unknown error");
        return CSGI_EINVAL;
    }
    return 0;
}

/* Add one to the instance count (GIL held). Returns the new count or -1. */
static long
add_users(long delta)
{
    PyObject *old = PySys_GetObject(USERS_ATTR), *now;
    long n = (old ? PyLong_AsLong(old) : 0) + delta;

    now = PyLong_FromLong(n);
    if (!now || PySys_SetObject(USERS_ATTR, now) < 0) {
        Py_XDECREF(now);
        return -1;
    }
    Py_DECREF(now);
    return n;
}

/* ------------------------------------------------------------------ */
/* sys.stdout and sys.stderr                                           */
/* ------------------------------------------------------------------ */

/*
 * Plugins never write to the server's standard streams: print() and
 * tracebacks Python writes outside a request go to the host log instead,
 * one line per write (at INFO for stdout, ERROR for stderr).
 */
struct log_stream {
    PyObject_HEAD const struct csgi_host_api *api;
    int level;
};

static PyObject *
log_stream_write(PyObject *self, PyObject *arg)
{
    struct log_stream *ls = (struct log_stream *)self;
    Py_ssize_t len;
    const char *s;

    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "write() takes str");
        return NULL;
    }
    s = PyUnicode_AsUTF8AndSize(arg, &len);
    if (!s)
        return NULL;
    while (len && s[len - 1] == '\n')
        len--;
    if (len)
        ls->api->log(ls->api->ctx, ls->level, "python: %.*s", (int)len, s);
    return PyLong_FromSsize_t(PyUnicode_GET_LENGTH(arg));
}

static PyObject *
log_stream_flush(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    Py_RETURN_NONE;
}

static PyMethodDef log_stream_methods[] = {
    {"write", log_stream_write, METH_O, "write(str): log it"},
    {"flush", log_stream_flush, METH_NOARGS, "flush()"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject log_stream_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "csgi.LogStream",
    .tp_basicsize = sizeof(struct log_stream),
    .tp_dealloc = (destructor)PyObject_Free,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_methods = log_stream_methods,
};

static int
redirect_std(const struct csgi_host_api *api)
{
    static const struct {
        const char *name;
        int level;
    } streams[] = {{"stdout", CSGI_LOG_INFO}, {"stderr", CSGI_LOG_ERROR}};

    if (PyType_Ready(&log_stream_type) < 0)
        return -1;
    for (size_t i = 0; i < 2; i++) {
        struct log_stream *ls = PyObject_New(struct log_stream, &log_stream_type);
        int rc;
        if (!ls)
            return -1;
        ls->api = api;
        ls->level = streams[i].level;
        rc = PySys_SetObject(streams[i].name, (PyObject *)ls);
        Py_DECREF(ls);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Loading the application                                             */
/* ------------------------------------------------------------------ */

/* Run a line of Python with one string argument bound to the name "arg". */
static int
run_with_arg(const char *code, const char *arg)
{
    PyObject *globals = PyDict_New(), *s = PyUnicode_DecodeFSDefault(arg), *r = NULL;

    if (globals && s && PyDict_SetItemString(globals, "arg", s) == 0 &&
        PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) == 0)
        r = PyRun_String(code, Py_file_input, globals, globals);
    Py_XDECREF(globals);
    Py_XDECREF(s);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* "pkg.mod:obj.attr" (or "pkg.mod", meaning "pkg.mod:application") -> the object. */
static PyObject *
import_app(const char *spec)
{
    const char *colon = strchr(spec, ':');
    const char *attr = colon ? colon + 1 : "application";
    PyObject *modname, *obj;

    modname = colon ? PyUnicode_FromStringAndSize(spec, colon - spec) : PyUnicode_FromString(spec);
    if (!modname)
        return NULL;
    obj = PyImport_Import(modname);
    Py_DECREF(modname);
    while (obj && *attr) {
        const char *dot = strchr(attr, '.');
        size_t len = dot ? (size_t)(dot - attr) : strlen(attr);
        PyObject *name = PyUnicode_FromStringAndSize(attr, (Py_ssize_t)len), *next = NULL;
        if (name)
            next = PyObject_GetAttr(obj, name);
        Py_XDECREF(name);
        Py_DECREF(obj);
        obj = next;
        attr += len + (dot ? 1 : 0);
    }
    if (obj && !PyCallable_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "\"%s\" is not callable", spec);
        Py_CLEAR(obj);
    }
    return obj;
}

/* sys.path and the application (GIL held). Returns 0 or a CSGI code (logged). */
static int
load_app(struct wsgi_app *a, const char *path, const char *venv, int started_here)
{
    static const char add_path[] = "import sys\nfor p in reversed(arg.split(':')):\n"
                                   "    if p and p not in sys.path: sys.path.insert(0, p)\n";
    static const char add_venv[] =
        "import glob, site\nfor d in sorted(glob.glob(arg + '/lib/python3*/site-packages')):\n"
        "    site.addsitedir(d)\n";

    if (wsgi_types_init() < 0 || (started_here && redirect_std(a->api) < 0))
        goto error;
    /* A venv is the interpreter's own when this instance started it. */
    if (venv && !started_here && run_with_arg(add_venv, venv) < 0)
        goto error;
    if (path && run_with_arg(add_path, path) < 0)
        goto error;
    a->app = import_app(a->spec);
    if (!a->app)
        goto error;
    return 0;

error:
    wsgi_log_exception(a, NULL);
    a->api->log(a->api->ctx, CSGI_LOG_ERROR, "cannot load the WSGI application \"%s\"", a->spec);
    return CSGI_EINVAL;
}

/* ------------------------------------------------------------------ */
/* The plugin hooks                                                    */
/* ------------------------------------------------------------------ */

static void
free_app(struct wsgi_app *a)
{
    free(a->spec);
    free(a);
}

static int
wsgi_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n_config,
          void **state)
{
    const char *spec = NULL, *path = NULL, *venv = NULL;
    struct wsgi_app *a;
    int rc, started = 0;

    for (size_t i = 0; i < n_config; i++) {
        if (strcmp(config[i].key, "app") == 0)
            spec = config[i].value;
        else if (strcmp(config[i].key, "path") == 0)
            path = config[i].value;
        else if (strcmp(config[i].key, "venv") == 0)
            venv = config[i].value;
        else
            api->log(api->ctx, CSGI_LOG_WARN, "config key \"%s\" ignored", config[i].key);
    }
    if (!spec || !*spec) {
        api->log(api->ctx, CSGI_LOG_ERROR, "no application: set NAME.app=module:callable");
        return CSGI_EINVAL;
    }
    rc = pin_libraries(api);
    if (rc < 0)
        return rc;
    a = calloc(1, sizeof(*a));
    if (!a || !(a->spec = strdup(spec))) {
        free(a);
        return CSGI_ENOMEM;
    }
    a->api = api;
    if (Py_IsInitialized()) {
        wsgi_gil_take();
    } else {
        rc = start_python(api, venv);
        if (rc < 0) {
            free_app(a);
            return rc;
        }
        started = 1;
    }
    rc = load_app(a, path, venv, started);
    if (rc == 0 && add_users(1) < 0)
        rc = CSGI_ENOMEM;
    if (rc < 0) {
        /*
         * The interpreter stays: another instance may use it, and finalising
         * one that imported half an application is not safe to repeat.
         */
        PyErr_Clear();
        wsgi_gil_drop();
        free_app(a);
        return rc;
    }
    wsgi_gil_drop();
    api->log(api->ctx, CSGI_LOG_INFO, "python %s serves \"%s\"", PY_VERSION, spec);
    *state = a;
    return CSGI_OK;
}

static void
wsgi_exit(void *state)
{
    struct wsgi_app *a = state;

    wsgi_gil_take();
    Py_CLEAR(a->app);
    /*
     * The last instance runs the applications' atexit handlers, as a Python
     * process does when it ends, but does not finalise the interpreter: the
     * worker exits right after, finalising would wait for every non-daemon
     * thread an application started (a stop must not hang on them), and it
     * frees only part of the heap (the rest then looks leaked to leak checkers).
     */
    if (add_users(-1) <= 0 && run_with_arg("import atexit\natexit._run_exitfuncs()\n", "") < 0)
        wsgi_log_exception(a, NULL);
    wsgi_gil_drop();
    free_app(a);
}

static int
wsgi_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
          struct csgi_body *out)
{
    struct wsgi_app *a = state;
    struct wsgi_req *req;
    PyObject *environ = NULL, *result = NULL;
    int rc;

    wsgi_gil_take();
    req = wsgi_req_new(a, env, resp);
    if (req)
        environ = wsgi_environ_new(req);
    if (environ)
        result = PyObject_CallFunctionObjArgs(a->app, environ, (PyObject *)req, NULL);
    Py_XDECREF(environ);
    if (!result) {
        wsgi_log_exception(a, req);
        rc = req && req->failed ? req->failed : CSGI_EAPP;
    } else {
        rc = wsgi_body_from_result(req, result, out);
        if (rc == CSGI_OK && req->failed && !out->next)
            rc = req->failed;
    }
    /* An iterator body keeps the request until its close(); the others end here. */
    if (req && !req->iter)
        wsgi_req_detach(req);
    Py_XDECREF(req);
    wsgi_gil_drop();
    return rc;
}

static const struct csgi_plugin wsgi_plugin = {
    CSGI_PLUGIN_HEADER,
    .name = "wsgi",
    .plugin_version = "1.0.0",
    .description = "Python WSGI (PEP 3333) applications in an embedded CPython",
    .flags = CSGI_PLUGIN_THREADSAFE,
    .init_worker = wsgi_init,
    .call = wsgi_call,
    .exit_worker = wsgi_exit,
};

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &wsgi_plugin;
}
