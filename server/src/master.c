/*
 * The master process: binds the listening sockets, forks workers (which load
 * the plugins), and never loads a plugin itself. It reloads on SIGHUP by
 * starting a new generation of workers and retiring the old one only once
 * every new worker reports ready; it replaces workers that die, kills workers
 * stuck in one request (--timeout), and serves JSON stats.
 *
 * Signals (gunicorn's mapping): HUP reload, TERM graceful stop (a second TERM
 * stops now), INT/QUIT fast stop, TTIN/TTOU one worker more/less, USR1
 * reopen log files.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "events.h"
#include "listener.h"
#include "log.h"
#include "master.h"
#include "priv_helper.h"
#include "scoreboard.h"
#include "stats.h"
#include "tls.h"
#include "worker.h"

/* The longest the loop sleeps between steps: the resolution of the master's timers. */
#define MASTER_TICK_MS 100
/* The same while stats connections are open: their read wait is SRV_STATS_READ_WAIT_MS. */
#define MASTER_STATS_TICK_MS 20

/* A stopping worker is killed this long after its graceful timeout has run out. */
#define STOP_KILL_SLACK_MS 2000
/* A fast stop (SIGINT, SIGQUIT) gives workers this long, plus the slack, before SIGKILL. */
#define FAST_STOP_GRACE_S 1
/* After the watchdog's SIGABRT, the time a worker has to dump core before SIGKILL. */
#define ABORT_KILL_AFTER_MS 2000
/* SIGKILL is sent again this often until the worker is reaped. */
#define KILL_REPEAT_MS 5000

/*
 * Crash back-off: a serving worker that dies unexpectedly sooner than
 * CRASH_EARLY_MS after its start extends a crash streak, and the next start
 * waits CRASH_BACKOFF_BASE_MS << streak, at most CRASH_BACKOFF_MAX_MS. A
 * worker that lived longer ends the streak.
 */
#define CRASH_EARLY_MS          2000
#define CRASH_BACKOFF_BASE_MS   100LL
#define CRASH_BACKOFF_MAX_MS    10000LL
#define CRASH_BACKOFF_MAX_SHIFT 7 /* BASE << 7 is past MAX already; bounds the shift */

struct wproc {
    pid_t pid;
    int slot;      /* scoreboard index */
    int worker_id; /* 0..N-1 within its generation */
    unsigned generation;
    long long started_ms;
    long long kill_at_ms; /* escalate to SIGKILL at this time, 0 = not signalled */
    int abort_sent;
    int stopping;  /* no longer counted: told to stop, or retiring itself (max-requests) */
    int term_sent; /* the master sent it SIGTERM (a second one means "stop now") */
};

struct master {
    struct srv_config *cfg;
    int cfg_owned;
    struct srv_config *prev_cfg; /* config of the serving generation during a reload */
    int prev_owned;
    unsigned prev_target;
    unsigned pending_target;
    int notified_ready;
    int argc;
    char **argv;
    struct srv_listener *ls;
    size_t n_ls;
    struct srv_scoreboard *sb;
    struct wproc procs[SRV_MAX_SLOTS];
    unsigned target_workers;
    unsigned generation;  /* serving generation */
    unsigned pending_gen; /* generation being started by a reload, 0 none */
    unsigned last_gen;    /* highest generation ever started: numbers are never reused */
    long long pending_deadline;
    int reload_requested;
    int stopping; /* 1 graceful, 2 fast */
    long long stop_deadline;
    long long started_ms;
    unsigned restarts;
    unsigned crash_streak;
    long long respawn_after_ms;
    struct srv_stats_server stats;
    struct srv_events events; /* recent reloads and crashes, for the stats */
    int sfd;
    unsigned long long retired_requests;
    long long drain_at;  /* SIGTERM with --drain-delay: the graceful stop starts then (0: none) */
    int listeners_shut;  /* stopping: the master closed its listening sockets */
    int refusing_logged; /* stopping: "new connections are refused" was logged */
};

static int
free_slot(struct master *m)
{
    for (int i = 0; i < SRV_MAX_SLOTS; i++) {
        if (m->procs[i].pid == 0)
            return i;
    }
    return -1;
}

static unsigned
count_gen(const struct master *m, unsigned gen, int include_stopping)
{
    unsigned n = 0;

    for (int i = 0; i < SRV_MAX_SLOTS; i++) {
        const struct wproc *w = &m->procs[i];
        if (w->pid && w->generation == gen && (include_stopping || !w->stopping))
            n++;
    }
    return n;
}

/* Lowest worker id not used by a live, non-stopping worker of gen. */
static int
free_worker_id(const struct master *m, unsigned gen)
{
    for (int id = 0;; id++) {
        int used = 0;
        for (int i = 0; i < SRV_MAX_SLOTS; i++) {
            const struct wproc *w = &m->procs[i];
            if (w->pid && w->generation == gen && !w->stopping && w->worker_id == id)
                used = 1;
        }
        if (!used)
            return id;
    }
}

static unsigned long long
max_requests_for(const struct srv_config *cfg)
{
    unsigned long long n = cfg->max_requests;

    if (n && cfg->max_requests_jitter)
        n += (unsigned long long)(random() % (cfg->max_requests_jitter + 1));
    return n;
}

/* In the child after fork: drop the master's descriptors and signal mask, run the worker. */
static void __attribute__((noreturn))
run_worker(struct master *m, struct srv_score *sc, int id, unsigned gen)
{
    struct srv_worker_args a;
    sigset_t all;
    int rc;

    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    close(m->sfd);
    srv_stats_drop_fds(&m->stats);
    srv_priv_helper_forget();
    srandom((unsigned)getpid() ^ (unsigned)time(NULL));
    memset(&a, 0, sizeof(a));
    a.cfg = m->cfg;
    a.listeners = m->ls;
    a.n_listeners = m->n_ls;
    a.worker_id = id;
    a.generation = gen;
    a.workers = m->target_workers;
    a.max_requests = max_requests_for(m->cfg);
    a.score = sc;
    a.board = m->sb;
    atomic_store(&sc->pid, (int)getpid());
    rc = srv_worker_run(&a);
    /* exit(), not _exit(): leak checkers run at exit in sanitizer builds. */
    exit(rc);
}

/* Fork one worker of generation gen into a free slot. Returns 0 or -1 (logged). */
static int
spawn(struct master *m, unsigned gen)
{
    int i = free_slot(m);
    int id;
    pid_t pid;
    struct srv_score *sc;
    struct wproc *w;

    if (i < 0) {
        srv_log(SRV_LOG_ERROR, "no free worker slot");
        return -1;
    }
    id = free_worker_id(m, gen);
    sc = &m->sb->slots[i];
    memset(sc, 0, sizeof(*sc));
    atomic_store(&sc->state, SRV_W_STARTING);
    atomic_store(&sc->generation, gen);
    atomic_store(&sc->worker_id, id);
    atomic_store(&sc->started_ms, srv_clock_ms());
    pid = fork();
    if (pid < 0) {
        srv_log(SRV_LOG_ERROR, "fork failed: %s", strerror(errno));
        atomic_store(&sc->state, SRV_W_FREE);
        return -1;
    }
    if (pid == 0)
        run_worker(m, sc, id, gen);
    atomic_store(&sc->pid, (int)pid);
    w = &m->procs[i];
    w->pid = pid;
    w->slot = i;
    w->worker_id = id;
    w->generation = gen;
    w->started_ms = srv_clock_ms();
    w->kill_at_ms = 0;
    w->abort_sent = 0;
    w->stopping = 0;
    srv_log(SRV_LOG_INFO, "worker %d (gen %u) started: pid %d", id, gen, (int)pid);
    return 0;
}

/* When a worker told to stop now, with grace_s to finish, is to be killed. */
static long long
kill_deadline(unsigned grace_s)
{
    return srv_clock_ms() + (long long)grace_s * 1000 + STOP_KILL_SLACK_MS;
}

static void
stop_proc(struct wproc *w, int sig, unsigned grace_s)
{
    if (!w->pid)
        return;
    /*
     * A worker takes a second SIGTERM as "stop now" and drops what it has in
     * flight, so one the master already sent SIGTERM (an earlier reload,
     * TTOU) is left to finish; kill_at_ms still bounds it. Only the master's
     * own record decides: a worker's RETIRING in the scoreboard is its word
     * and never spares it the SIGTERM (a worker retiring itself takes its
     * first SIGTERM as "go on draining", worker.c).
     */
    if (!(sig == SIGTERM && w->term_sent))
        kill(w->pid, sig);
    if (sig == SIGTERM)
        w->term_sent = 1;
    w->stopping = 1;
    if (!w->kill_at_ms)
        w->kill_at_ms = kill_deadline(grace_s);
}

/* Stop every worker whose generation is not keep_gen (0: every worker). */
static void
stop_others(struct master *m, unsigned keep_gen, int sig, unsigned grace_s)
{
    for (int i = 0; i < SRV_MAX_SLOTS; i++) {
        struct wproc *w = &m->procs[i];
        if (w->pid && (!keep_gen || w->generation != keep_gen))
            stop_proc(w, sig, grace_s);
    }
}

static void
signal_all(struct master *m, int sig)
{
    for (int i = 0; i < SRV_MAX_SLOTS; i++) {
        if (m->procs[i].pid)
            kill(m->procs[i].pid, sig);
    }
}

static const char *
sig_name(int sig)
{
    const char *s = sigabbrev_np(sig);

    return s ? s : "?";
}

/*
 * The access-log line of a request lost with its worker: status 500 (the
 * client got no response, the connection was closed), written by the master
 * with the dead worker's pid, id and generation so that it matches the
 * worker's error-log lines.
 */
static void
log_lost_request(const struct wproc *w, struct srv_score *sc, pid_t pid, int thread,
                 const struct srv_inflight_text *in)
{
    struct srv_access_record rec;
    long long since = atomic_load(&sc->busy_since_ms[thread]);

    if (!srv_access_log_enabled())
        return;
    memset(&rec, 0, sizeof(rec));
    rec.remote_addr = in->remote_addr[0] ? in->remote_addr : NULL;
    rec.method = in->method[0] ? in->method : NULL;
    rec.target = in->target;
    rec.target_len = strlen(in->target);
    rec.status = 500;
    rec.duration_ms = since ? (double)(srv_clock_ms() - since) : 0.0;
    rec.plugin = in->plugin;
    rec.request_id = in->request_id;
    rec.pid = (int)pid;
    rec.worker_id = w->worker_id;
    rec.generation = w->generation;
    srv_access_log_write(&rec);
}

/*
 * A worker killed by a signal: one line naming the signal and, from the
 * scoreboard, the plugin and request each of its threads was running (one
 * more line per further thread), and an access-log line per lost request.
 * Returns the level logged: SRV_LOG_ERROR for a death the master did not ask for.
 */
static int
log_worker_killed(const struct wproc *w, struct srv_score *sc, pid_t pid, int status)
{
    int lvl = w->stopping && WTERMSIG(status) == SIGKILL ? SRV_LOG_WARN : SRV_LOG_ERROR;
    const char *core = WCOREDUMP(status) ? " (core dumped)" : "";
    int n = 0;

    for (int t = 0; t < SRV_MAX_THREADS; t++) {
        struct srv_inflight_text in;
        if (!srv_inflight_read(sc, t, &in))
            continue;
        if (n++ == 0)
            srv_log(lvl,
                    "worker %d (gen %u, pid %d) killed by signal %s%s in plugin \"%s\" during "
                    "request %llu \"%s %s\" from %s",
                    w->worker_id, w->generation, (int)pid, sig_name(WTERMSIG(status)), core,
                    in.plugin, (unsigned long long)in.request_id, in.method, in.target,
                    in.remote_addr[0] ? in.remote_addr : "-");
        else
            srv_log(lvl,
                    "worker %d (gen %u, pid %d) was also in plugin \"%s\" during request %llu "
                    "\"%s %s\" from %s",
                    w->worker_id, w->generation, (int)pid, in.plugin,
                    (unsigned long long)in.request_id, in.method, in.target,
                    in.remote_addr[0] ? in.remote_addr : "-");
        log_lost_request(w, sc, pid, t, &in);
    }
    if (n == 0)
        srv_log(lvl, "worker %d (gen %u, pid %d) killed by signal %s%s (not in plugin code)",
                w->worker_id, w->generation, (int)pid, sig_name(WTERMSIG(status)), core);
    return lvl;
}

/*
 * Log how a reaped worker ended, at a level that says whether it was
 * expected. Returns 1 when it was not (logged as an error), else 0.
 */
static int
log_worker_end(const struct wproc *w, struct srv_score *sc, pid_t pid, int status)
{
    if (WIFSIGNALED(status))
        return log_worker_killed(w, sc, pid, status) == SRV_LOG_ERROR;
    if (WEXITSTATUS(status) != 0 || !w->stopping) {
        int lvl = w->stopping ? SRV_LOG_INFO : SRV_LOG_ERROR;
        /* A worker's RETIRING only excuses a clean exit. */
        if (WEXITSTATUS(status) == 0 && atomic_load(&sc->state) == SRV_W_RETIRING)
            lvl = SRV_LOG_INFO;
        srv_log(lvl, "worker %d (gen %u, pid %d) exited with status %d", w->worker_id,
                w->generation, (int)pid, WEXITSTATUS(status));
        return lvl == SRV_LOG_ERROR;
    }
    srv_log(SRV_LOG_INFO, "worker %d (gen %u, pid %d) stopped", w->worker_id, w->generation,
            (int)pid);
    return 0;
}

/* The master's age, for event stamps. */
static long long
uptime_ms(const struct master *m)
{
    return srv_clock_ms() - m->started_ms;
}

/*
 * Record a worker's unexpected death in the events ring: its pid, id and
 * generation, the signal or exit status, and the plugin and request its
 * first busy thread was in (read from the scoreboard before the slot is
 * freed).
 */
static void
record_crash(struct master *m, const struct wproc *w, struct srv_score *sc, pid_t pid, int status)
{
    struct srv_event *e =
        srv_events_add(&m->events, SRV_EVENT_CRASH, w->generation, uptime_ms(m), NULL);

    e->pid = (int)pid;
    e->worker_id = w->worker_id;
    e->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    e->exit_status = WIFSIGNALED(status) ? 0 : WEXITSTATUS(status);
    if (e->signal)
        snprintf(e->detail, sizeof(e->detail), "killed by signal %s%s", sig_name(e->signal),
                 WCOREDUMP(status) ? " (core dumped)" : "");
    else
        snprintf(e->detail, sizeof(e->detail), "exited with status %d", e->exit_status);
    for (int t = 0; t < SRV_MAX_THREADS; t++) {
        struct srv_inflight_text in;
        if (!srv_inflight_read(sc, t, &in))
            continue;
        memcpy(e->plugin, in.plugin, sizeof(e->plugin));
        memcpy(e->method, in.method, sizeof(e->method));
        memcpy(e->target, in.target, sizeof(e->target));
        break;
    }
}

/*
 * An unexpected death of a serving worker is a crash: count it, and when
 * workers keep dying soon after they start, delay the next start more each
 * time.
 */
static void
note_crash(struct master *m, const struct wproc *w)
{
    long long lived = srv_clock_ms() - w->started_ms;

    m->restarts++;
    if (lived < CRASH_EARLY_MS) {
        unsigned shift;
        long long delay;
        m->crash_streak++;
        shift =
            m->crash_streak > CRASH_BACKOFF_MAX_SHIFT ? CRASH_BACKOFF_MAX_SHIFT : m->crash_streak;
        delay = CRASH_BACKOFF_BASE_MS << shift;
        if (delay > CRASH_BACKOFF_MAX_MS)
            delay = CRASH_BACKOFF_MAX_MS;
        m->respawn_after_ms = srv_clock_ms() + delay;
        srv_log(SRV_LOG_WARN, "worker crash loop (%u in a row): next start in %lld ms",
                m->crash_streak, delay);
    } else {
        m->crash_streak = 0;
    }
}

static struct wproc *
find_proc(struct master *m, pid_t pid)
{
    for (int i = 0; i < SRV_MAX_SLOTS; i++) {
        if (m->procs[i].pid == pid)
            return &m->procs[i];
    }
    return NULL;
}

/* Reap dead workers, log why, and schedule replacements. */
static void
reap(struct master *m)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        struct wproc *w;
        struct srv_score *sc;

        if (pid <= 0)
            return;
        w = find_proc(m, pid);
        if (!w)
            continue;
        sc = &m->sb->slots[w->slot];
        m->retired_requests += atomic_load(&sc->requests);
        if (log_worker_end(w, sc, pid, status))
            record_crash(m, w, sc, pid, status);
        if (!w->stopping &&
            !(WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
              atomic_load(&sc->state) == SRV_W_RETIRING) &&
            w->generation == m->generation && !m->stopping)
            note_crash(m, w);
        atomic_store(&sc->state, SRV_W_FREE);
        atomic_store(&sc->pid, 0);
        memset(w, 0, sizeof(*w));
    }
}

/* Keep the serving generation at target size; replace retiring workers early. */
static void
manage(struct master *m)
{
    unsigned gen = m->generation;
    unsigned live;

    if (m->stopping)
        return;
    /*
     * Workers of the serving generation (the first start, replacements,
     * TTIN) go as soon as they have loaded: a plugin that fails there is
     * skipped and logged, and the others serve.
     */
    for (int i = 0; i < SRV_MAX_SLOTS; i++) {
        struct wproc *w = &m->procs[i];
        struct srv_score *sc = &m->sb->slots[w->slot];
        if (w->pid && w->generation == gen && atomic_load(&sc->state) == SRV_W_LOADED &&
            !atomic_load(&sc->go))
            atomic_store(&sc->go, 1);
    }
    /* A worker that retires itself (max-requests) gets its replacement now. */
    for (int i = 0; i < SRV_MAX_SLOTS; i++) {
        struct wproc *w = &m->procs[i];
        if (w->pid && !w->stopping && atomic_load(&m->sb->slots[w->slot].state) == SRV_W_RETIRING) {
            w->stopping = 1;
            w->kill_at_ms = kill_deadline(m->cfg->graceful_timeout);
        }
    }
    live = count_gen(m, gen, 0);
    if (live < m->target_workers && srv_clock_ms() >= m->respawn_after_ms) {
        for (unsigned k = live; k < m->target_workers; k++) {
            if (spawn(m, gen) < 0)
                break;
        }
    }
    while (live > m->target_workers) {
        /* TTOU: retire the highest worker id of the serving generation. */
        struct wproc *pick = NULL;
        for (int i = 0; i < SRV_MAX_SLOTS; i++) {
            struct wproc *w = &m->procs[i];
            if (w->pid && w->generation == gen && !w->stopping &&
                (!pick || w->worker_id > pick->worker_id))
                pick = w;
        }
        if (!pick)
            break;
        srv_log(SRV_LOG_INFO, "retiring worker %d (pid %d)", pick->worker_id, (int)pick->pid);
        stop_proc(pick, SIGTERM, m->cfg->graceful_timeout);
        live--;
    }
}

/* Watchdog: SIGABRT a worker stuck in one request, SIGKILL what ignores us. */
static void
watchdog(struct master *m)
{
    long long now = srv_clock_ms();

    for (int i = 0; i < SRV_MAX_SLOTS; i++) {
        struct wproc *w = &m->procs[i];
        struct srv_score *sc;

        if (!w->pid)
            continue;
        sc = &m->sb->slots[w->slot];
        if (w->kill_at_ms && now >= w->kill_at_ms) {
            srv_log(SRV_LOG_WARN, "worker %d (pid %d) did not stop in time: SIGKILL", w->worker_id,
                    (int)w->pid);
            kill(w->pid, SIGKILL);
            w->kill_at_ms = now + KILL_REPEAT_MS;
            continue;
        }
        if (!m->cfg->timeout || w->abort_sent)
            continue;
        for (int t = 0; t < SRV_MAX_THREADS; t++) {
            long long since = atomic_load(&sc->busy_since_ms[t]);
            if (since && now - since > (long long)m->cfg->timeout * 1000) {
                struct srv_inflight_text in;
                if (!srv_inflight_read(sc, t, &in))
                    memset(&in, 0, sizeof(in));
                srv_log(SRV_LOG_ERROR,
                        "worker %d (pid %d) stuck in one request for %lld ms (--timeout %u): "
                        "SIGABRT (plugin \"%s\", request %llu \"%s %s\")",
                        w->worker_id, (int)w->pid, now - since, m->cfg->timeout,
                        in.plugin[0] ? in.plugin : "-", (unsigned long long)in.request_id,
                        in.method[0] ? in.method : "-", in.target);
                kill(w->pid, SIGABRT);
                w->abort_sent = 1;
                w->kill_at_ms = now + ABORT_KILL_AFTER_MS;
                break;
            }
        }
    }
}

/* ------------------------------------------------------------------ */
/* Reload                                                              */
/* ------------------------------------------------------------------ */

/* Free a configuration: its contents always, the struct when the master allocated it. */
static void
release_config(struct srv_config *cfg, int owned)
{
    srv_config_free(cfg);
    if (owned)
        free(cfg);
}

static int
same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int
same_binds(const struct srv_config *a, const struct srv_config *b)
{
    if (a->n_binds != b->n_binds)
        return 0;
    for (size_t i = 0; i < a->n_binds; i++) {
        if (strcmp(a->binds[i], b->binds[i]) != 0)
            return 0;
    }
    return 1;
}

/* A reload cannot apply these: warn, naming each one. */
static void
warn_restart_settings(const struct master *m, const struct srv_config *ncfg)
{
    const struct srv_config *old = m->cfg;

    if (!same_binds(old, ncfg) && !(m->n_ls && m->ls[0].inherited))
        srv_log(SRV_LOG_WARN,
                "reload: --bind changed (now \"%s\"%s): needs a restart; the old sockets "
                "stay",
                ncfg->binds[0], ncfg->n_binds > 1 ? ", ..." : "");
    if (!same_str(old->pid_file, ncfg->pid_file))
        srv_log(SRV_LOG_WARN, "reload: --pid changed: needs a restart; the pid file stays \"%s\"",
                old->pid_file ? old->pid_file : "(none)");
    if (!same_str(old->user, ncfg->user) || !same_str(old->group, ncfg->group))
        srv_log(SRV_LOG_WARN, "reload: --user/--group changed: needs a restart (privileges "
                              "were dropped at start)");
}

/*
 * Point the master's log files at cfg's paths when they differ from the open
 * ones; workers started afterwards inherit them. Logged on failure (the old
 * files stay).
 */
static void
apply_log_paths(const struct srv_config *cfg, const char *why)
{
    int rc;

    if (same_str(srv_log_error_path(), cfg->error_log) &&
        same_str(srv_log_access_path(), cfg->access_log) &&
        srv_log_access_json() == cfg->access_json)
        return;
    rc = srv_log_open(cfg->error_log, cfg->access_log, cfg->access_json);
    if (rc < 0)
        srv_log(SRV_LOG_ERROR, "%s: cannot open log file \"%s\": %s; the old log files stay", why,
                srv_log_failed_path(), srv_log_strerror(rc));
    else
        srv_log(SRV_LOG_INFO, "%s: log files now --error-log %s, --access-log %s", why,
                cfg->error_log ? cfg->error_log : "-", cfg->access_log ? cfg->access_log : "(off)");
}

/* Serve stats where cfg says, when that changed; the old endpoint stays on failure. */
static void
apply_stats_addr(struct master *m, const char *old_addr)
{
    struct srv_stats_server ns;
    const char *addr = m->cfg->stats;
    int rc;

    if (same_str(old_addr, addr))
        return;
    if (!addr) {
        srv_stats_close(&m->stats);
        srv_log(SRV_LOG_INFO, "reload: stats endpoint closed");
        return;
    }
    rc = srv_stats_open(&ns, addr, srv_config_socket_mode(m->cfg));
    if (rc < 0) {
        srv_log(SRV_LOG_ERROR, "reload: cannot serve stats on \"%s\": %s; the old endpoint stays",
                addr, strerror(-rc));
        return;
    }
    srv_stats_close(&m->stats);
    m->stats = ns;
    srv_log(SRV_LOG_INFO, "reload: stats now on \"%s\"", addr);
}

/*
 * Read the new configuration's certificates and keys again (a renewal is
 * picked up here), and check that the https:// sockets, which a reload
 * keeps, still have a certificate. After --user the privileged helper opens
 * the files when they are the ones given at start; other files are read as
 * the user. Returns 0 or -1 with err set.
 */
static int
reload_tls(const struct master *m, struct srv_config *ncfg, char *err, size_t err_len)
{
    int fds[64], n = srv_priv_helper_tls_files(ncfg, fds, sizeof(fds) / sizeof(fds[0]));
    int rc;

    /* After --user, the root helper opens the files given at start (a 0600 root key). */
    if (n > 0) {
        srv_tls_free(ncfg->tls);
        ncfg->tls = NULL;
        rc = srv_tls_load_fds(ncfg, fds, &ncfg->tls, err, err_len);
        for (int i = 0; i < n; i++) {
            if (fds[i] >= 0)
                close(fds[i]);
        }
    } else {
        rc = srv_config_load_tls(ncfg, err, err_len);
    }
    if (rc < 0)
        return -1;
    for (size_t i = 0; i < m->n_ls; i++) {
        if (m->ls[i].tls && !ncfg->tls) {
            snprintf(err, err_len, "\"%s\" serves TLS and the new configuration has no --tls-cert",
                     m->ls[i].spec);
            return -1;
        }
    }
    if (ncfg->tls)
        srv_log(SRV_LOG_INFO, "reload: %zu TLS certificate(s) read", srv_tls_cert_count(ncfg->tls));
    return 0;
}

static void
start_reload(struct master *m)
{
    struct srv_config *ncfg;
    char err[512];

    /* Called with no reload in progress: a SIGHUP during one waits for its end (master_step). */
    m->reload_requested = 0;
    ncfg = calloc(1, sizeof(*ncfg));
    if (!ncfg)
        return;
    srv_config_init(ncfg);
    if (srv_config_parse_args(ncfg, m->argc, m->argv, err, sizeof(err)) < 0 ||
        srv_config_validate(ncfg, err, sizeof(err)) < 0 ||
        srv_config_check_paths(ncfg, err, sizeof(err)) < 0 ||
        reload_tls(m, ncfg, err, sizeof(err)) < 0) {
        srv_log(SRV_LOG_ERROR, "reload refused, old workers keep serving: %s", err);
        srv_events_add(&m->events, SRV_EVENT_RELOAD_REFUSED, m->generation, uptime_ms(m), "%s",
                       err);
        release_config(ncfg, 1);
        return;
    }
    warn_restart_settings(m, ncfg);
    if (!ncfg->workers)
        ncfg->workers = 1;
    /*
     * The worker count TTIN/TTOU set survives a reload that leaves --workers
     * as it was; a changed --workers wins.
     */
    m->pending_target = ncfg->workers == m->cfg->workers ? m->target_workers : ncfg->workers;
    if (m->pending_target != ncfg->workers)
        srv_log(SRV_LOG_INFO, "reload: keeping %u worker(s) set by TTIN/TTOU (--workers %u)",
                m->pending_target, ncfg->workers);
    /* Kept until the reload ends: a rolled-back reload restores it. */
    m->prev_cfg = m->cfg;
    m->prev_owned = m->cfg_owned;
    m->prev_target = m->target_workers;
    m->cfg = ncfg;
    m->cfg_owned = 1;
    srv_log_verbosity = ncfg->log_level;
    /* Before the fork: the new workers write to the new files. */
    apply_log_paths(ncfg, "reload");
    m->pending_gen = ++m->last_gen;
    atomic_store(&m->sb->generation, m->pending_gen);
    srv_log_set_identity("master", -1, m->pending_gen);
    m->pending_deadline = srv_clock_ms() + (long long)m->cfg->ready_timeout * 1000;
    srv_log(SRV_LOG_INFO, "reload: starting generation %u with %u worker(s)", m->pending_gen,
            m->pending_target);
    srv_events_add(&m->events, SRV_EVENT_RELOAD_START, m->pending_gen, uptime_ms(m), "%u worker(s)",
                   m->pending_target);
    for (unsigned k = 0; k < m->pending_target; k++)
        spawn(m, m->pending_gen);
}

static void
fail_reload(struct master *m, const char *why)
{
    srv_log(SRV_LOG_ERROR, "reload to generation %u failed (%s): generation %u keeps serving",
            m->pending_gen, why, m->generation);
    srv_events_add(&m->events, SRV_EVENT_RELOAD_FAILED, m->pending_gen, uptime_ms(m),
                   "%s; generation %u keeps serving", why, m->generation);
    /*
     * A new worker that reported ready already accepts on the shared sockets:
     * let it finish what it took. One still starting has accepted nothing and
     * may be stuck in a plugin's init, so it goes at once.
     */
    for (int i = 0; i < SRV_MAX_SLOTS; i++) {
        struct wproc *w = &m->procs[i];
        if (!w->pid || w->generation != m->pending_gen)
            continue;
        if (atomic_load(&m->sb->slots[w->slot].state) == SRV_W_READY)
            stop_proc(w, SIGTERM, m->cfg->graceful_timeout);
        else
            stop_proc(w, SIGKILL, 0);
    }
    m->pending_gen = 0;
    atomic_store(&m->sb->generation, m->generation);
    srv_log_set_identity("master", -1, m->generation);
    /* Back to the configuration the serving generation runs with. */
    release_config(m->cfg, m->cfg_owned);
    m->cfg = m->prev_cfg;
    m->cfg_owned = m->prev_owned;
    m->prev_cfg = NULL;
    srv_log_verbosity = m->cfg->log_level;
    apply_log_paths(m->cfg, "reload rolled back");
}

/* Check a reload in progress: all ready -> switch; any failure -> roll back. */
static void
check_reload(struct master *m)
{
    unsigned gen = m->pending_gen, loaded = 0, ready = 0, alive = 0;
    int failures = 0;

    if (!gen)
        return;
    for (int i = 0; i < SRV_MAX_SLOTS; i++) {
        struct wproc *w = &m->procs[i];
        struct srv_score *sc;
        int st;
        if (!w->pid || w->generation != gen)
            continue;
        alive++;
        sc = &m->sb->slots[w->slot];
        st = atomic_load(&sc->state);
        if (st == SRV_W_LOADED || st == SRV_W_READY) {
            loaded++;
            /* Worker-written: counted as failed or not, never summed (no overflow). */
            failures += atomic_load(&sc->load_failures) != 0;
        }
        if (st == SRV_W_READY)
            ready++;
    }
    if (failures) {
        fail_reload(m, "a plugin failed to load or init; see the worker log lines above");
        return;
    }
    if (alive < m->pending_target) {
        fail_reload(m, "a new worker died during start-up");
        return;
    }
    if (loaded == m->pending_target && ready < loaded) {
        /* Every new worker loaded cleanly: let them all serve. */
        for (int i = 0; i < SRV_MAX_SLOTS; i++) {
            struct wproc *w = &m->procs[i];
            if (w->pid && w->generation == gen)
                atomic_store(&m->sb->slots[w->slot].go, 1);
        }
    }
    if (ready == m->pending_target) {
        unsigned old = m->generation;
        m->generation = gen;
        m->pending_gen = 0;
        m->target_workers = m->pending_target;
        if (m->prev_cfg) {
            apply_stats_addr(m, m->prev_cfg->stats);
            release_config(m->prev_cfg, m->prev_owned);
            m->prev_cfg = NULL;
        }
        srv_log(SRV_LOG_INFO, "reload: generation %u ready; draining generation %u", gen, old);
        srv_events_add(&m->events, SRV_EVENT_RELOAD_DONE, gen, uptime_ms(m),
                       "generation %u draining", old);
        stop_others(m, gen, SIGTERM, m->cfg->graceful_timeout);
        return;
    }
    if (srv_clock_ms() > m->pending_deadline)
        fail_reload(m, "new workers did not report ready in time (--ready-timeout)");
}

/* Answer the stats connections waiting, from a snapshot of the master's state. */
static void
serve_stats(struct master *m)
{
    struct srv_stats_worker workers[SRV_MAX_SLOTS];
    struct srv_stats_view v;

    memset(&v, 0, sizeof(v));
    v.board = m->sb;
    v.started_ms = m->started_ms;
    v.generation = m->generation;
    v.reloading_generation = m->pending_gen;
    v.target_workers = m->target_workers;
    v.restarts = m->restarts;
    v.retired_requests = m->retired_requests;
    v.events = &m->events;
    v.workers = workers;
    for (int i = 0; i < SRV_MAX_SLOTS; i++) {
        const struct wproc *w = &m->procs[i];
        if (!w->pid)
            continue;
        workers[v.n_workers].pid = w->pid;
        workers[v.n_workers].slot = w->slot;
        workers[v.n_workers].worker_id = w->worker_id;
        workers[v.n_workers].generation = w->generation;
        workers[v.n_workers].started_ms = w->started_ms;
        workers[v.n_workers].stopping = w->stopping;
        v.n_workers++;
    }
    srv_stats_serve(&m->stats, &v);
}

/* ------------------------------------------------------------------ */
/* Main loop                                                           */
/* ------------------------------------------------------------------ */

static void
sd_notify(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    socklen_t sl;
    int fd;

    if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(sa.sun_path))
        return;
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path));
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, sl);
    close(fd);
}

int
srv_master_drop_privileges(const struct srv_config *cfg)
{
    if (cfg->group) {
        struct group *g = getgrnam(cfg->group);
        if (!g || setgroups(0, NULL) < 0 || setgid(g->gr_gid) < 0) {
            srv_log(SRV_LOG_ERROR, "cannot switch to group \"%s\": %s", cfg->group,
                    g ? strerror(errno) : "no such group");
            return -1;
        }
    }
    if (cfg->user) {
        struct passwd *p = getpwnam(cfg->user);
        if (!p || (!cfg->group && setgid(p->pw_gid) < 0) ||
            initgroups(p->pw_name, cfg->group ? getgid() : p->pw_gid) < 0 ||
            setuid(p->pw_uid) < 0) {
            srv_log(SRV_LOG_ERROR, "cannot switch to user \"%s\": %s", cfg->user,
                    p ? strerror(errno) : "no such user");
            return -1;
        }
    }
    return 0;
}

/* True when the serving generation has its full count of workers serving. */
static int
serving_ready(const struct master *m)
{
    unsigned n = 0;

    for (int i = 0; i < SRV_MAX_SLOTS; i++) {
        const struct wproc *w = &m->procs[i];
        if (w->pid && w->generation == m->generation && !w->stopping &&
            atomic_load(&m->sb->slots[w->slot].state) == SRV_W_READY)
            n++;
    }
    return n >= m->target_workers;
}

static int
all_gone(const struct master *m)
{
    for (int i = 0; i < SRV_MAX_SLOTS; i++) {
        if (m->procs[i].pid)
            return 0;
    }
    return 1;
}

/* Block the master's signals and take them through a signalfd. Returns 0 or -1 (logged). */
static int
open_signals(struct master *m)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTTIN);
    sigaddset(&set, SIGTTOU);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    m->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (m->sfd < 0) {
        srv_log(SRV_LOG_ERROR, "signalfd failed: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * Set up the master before the first fork: the scoreboard, the signals, the
 * stats endpoint, then the switch to --user/--group. Returns 0, or -1 (logged)
 * with what it had set up undone.
 */
static int
master_init(struct master *m, struct srv_config *cfg, int argc, char **argv,
            struct srv_listener *ls, size_t n_ls)
{
    memset(m, 0, sizeof(*m));
    m->cfg = cfg;
    m->argc = argc;
    m->argv = argv;
    m->ls = ls;
    m->n_ls = n_ls;
    m->stats.fd = -1;
    m->target_workers = cfg->workers ? cfg->workers : 1;
    m->generation = 1;
    m->last_gen = 1;
    m->started_ms = srv_clock_ms();
    srv_log_set_identity("master", -1, m->generation);

    m->sb = mmap(NULL, sizeof(*m->sb), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m->sb == MAP_FAILED) {
        srv_log(SRV_LOG_ERROR, "cannot map the scoreboard: %s", strerror(errno));
        return -1;
    }
    atomic_store(&m->sb->generation, 1);
    if (open_signals(m) < 0)
        goto error_unmap;
    if (cfg->stats) {
        int rc = srv_stats_open(&m->stats, cfg->stats, srv_config_socket_mode(cfg));
        if (rc < 0) {
            srv_log(SRV_LOG_ERROR, "cannot serve stats on \"%s\": %s", cfg->stats, strerror(-rc));
            goto error_close_signals;
        }
    }
    /* Before the switch: what needs root later (a rotated log, the pid file) stays possible. */
    if (srv_priv_helper_start(cfg) < 0 || srv_master_drop_privileges(cfg) < 0)
        goto error_close_stats;
    return 0;

error_close_stats:
    srv_stats_close(&m->stats);
error_close_signals:
    close(m->sfd);
error_unmap:
    munmap(m->sb, sizeof(*m->sb));
    return -1;
}

/* Undo master_init() and free the configurations the master still holds. */
static void
master_cleanup(struct master *m)
{
    srv_stats_close(&m->stats);
    close(m->sfd);
    munmap(m->sb, sizeof(*m->sb));
    if (m->prev_cfg) {
        /* Stopped during a reload: m->cfg is the new one, prev_cfg the serving one. */
        release_config(m->prev_cfg, m->prev_owned);
    }
    if (m->cfg_owned)
        release_config(m->cfg, 1);
}

static void
log_listeners(const struct srv_listener *ls, size_t n_ls)
{
    for (size_t i = 0; i < n_ls; i++) {
        const char *proxy = ls[i].proxy ? " (proxy protocol)" : "";
        if (ls[i].family == AF_UNIX)
            srv_log(SRV_LOG_INFO, "listening on unix:%s%s", ls[i].host, proxy);
        else if (ls[i].family == AF_INET6)
            srv_log(SRV_LOG_INFO, "listening on %s://[%s]:%s/%s", ls[i].tls ? "https" : "http",
                    ls[i].host, ls[i].port, proxy);
        else
            srv_log(SRV_LOG_INFO, "listening on %s://%s:%s/%s", ls[i].tls ? "https" : "http",
                    ls[i].host, ls[i].port, proxy);
    }
}

/*
 * A stop: close the master's listening sockets (systemd's stay with systemd,
 * which queues connections for the next start). A socket lives while any
 * process holds it, so the workers' copies keep it until each one stops
 * accepting and closes its own (worker.c, start_drain()); from then on a new
 * connection is refused at once, while the in-flight requests finish.
 */
static void
shut_listeners(struct master *m)
{
    int closed = 0;

    if (m->listeners_shut)
        return;
    m->listeners_shut = 1;
    for (size_t i = 0; i < m->n_ls; i++)
        closed += srv_listener_shut(&m->ls[i]);
    if (closed < (int)m->n_ls)
        srv_log(SRV_LOG_INFO, "stopping: the sockets from systemd stay open; connections wait "
                              "for the next start");
}

/* Once no worker holds a listening socket any more, say that connections are refused. */
static void
note_refusing(struct master *m)
{
    if (!m->listeners_shut || m->refusing_logged)
        return;
    for (size_t i = 0; i < m->n_ls; i++) {
        if (m->ls[i].fd >= 0)
            return; /* systemd's: nothing is refused */
    }
    for (int i = 0; i < SRV_MAX_SLOTS; i++) {
        const struct wproc *w = &m->procs[i];
        if (w->pid && !atomic_load(&m->sb->slots[w->slot].listeners_closed))
            return;
    }
    m->refusing_logged = 1;
    srv_log(SRV_LOG_INFO, "stopping: listening sockets closed, new connections are refused");
}

/* The graceful stop: every worker drains, the listening sockets close. */
static void
graceful_stop(struct master *m)
{
    srv_log(SRV_LOG_INFO, "graceful stop (up to %u s)", m->cfg->graceful_timeout);
    m->stopping = 1;
    stop_others(m, 0, SIGTERM, m->cfg->graceful_timeout);
    shut_listeners(m);
}

/*
 * SIGTERM: the first stops gracefully; with --drain-delay, after failing
 * health checks (and closing each connection after its response) for that
 * long while still serving, so that a balancer stops sending first. A
 * SIGTERM during the delay starts the graceful stop at once; one during the
 * stop stops now.
 */
static void
on_sigterm(struct master *m)
{
    if (m->stopping) {
        srv_log(SRV_LOG_WARN, "second SIGTERM: stopping now");
        m->stopping = 2;
        signal_all(m, SIGKILL);
        return;
    }
    if (m->drain_at) {
        srv_log(SRV_LOG_INFO, "SIGTERM again: not waiting out --drain-delay");
        graceful_stop(m);
        return;
    }
    sd_notify("STOPPING=1");
    atomic_store(&m->sb->health_failing, 1);
    if (m->cfg->drain_delay) {
        srv_log(SRV_LOG_INFO,
                "SIGTERM: failing health checks for %u s (--drain-delay), then a "
                "graceful stop",
                m->cfg->drain_delay);
        m->drain_at = srv_clock_ms() + (long long)m->cfg->drain_delay * 1000;
        return;
    }
    srv_log(SRV_LOG_INFO, "SIGTERM");
    graceful_stop(m);
}

/* Act on one signal taken from the signalfd (gunicorn's mapping; see the top of this file). */
static void
on_signal(struct master *m, int sig)
{
    switch (sig) {
    case SIGHUP:
        if (!m->stopping && !m->drain_at) {
            srv_log(SRV_LOG_INFO, "SIGHUP: reload requested");
            sd_notify("RELOADING=1");
            m->notified_ready = 0;
            m->reload_requested = 1;
        }
        break;
    case SIGTERM:
        on_sigterm(m);
        break;
    case SIGINT:
    case SIGQUIT:
        srv_log(SRV_LOG_INFO, "%s: fast stop", sig_name(sig));
        sd_notify("STOPPING=1");
        m->stopping = 2;
        stop_others(m, 0, SIGQUIT, FAST_STOP_GRACE_S);
        shut_listeners(m);
        break;
    case SIGUSR1: {
        srv_log(SRV_LOG_INFO, "SIGUSR1: reopening log files");
        /* After --user: files renamed away are created again, as root, for the workers too. */
        srv_priv_helper_logs();
        srv_log_reopen(); /* a failure is logged there */
        signal_all(m, SIGUSR1);
        break;
    }
    case SIGTTIN:
        if (m->target_workers < SRV_MAX_WORKERS) {
            m->target_workers++;
            srv_log(SRV_LOG_INFO, "SIGTTIN: %u worker(s)", m->target_workers);
        } else {
            srv_log(SRV_LOG_WARN, "SIGTTIN ignored: already at the maximum of %d workers",
                    SRV_MAX_WORKERS);
        }
        break;
    case SIGTTOU:
        if (m->target_workers > 1) {
            m->target_workers--;
            srv_log(SRV_LOG_INFO, "SIGTTOU: %u worker(s)", m->target_workers);
        } else {
            srv_log(SRV_LOG_WARN, "SIGTTOU ignored: one worker is the minimum");
        }
        break;
    default: /* SIGCHLD: reap() runs on every step. */
        break;
    }
}

/*
 * One turn of the master's loop: wait up to MASTER_TICK_MS for a signal or a stats
 * connection, act on the signals, reap, then (unless stopping) advance a
 * reload, keep the worker count and run the watchdog. Returns 0 once a stop
 * is complete (every worker gone), 1 to go on.
 */
static int
master_step(struct master *m)
{
    struct pollfd pf[1 + 1 + SRV_STATS_MAX_CONNS];
    struct signalfd_siginfo si;
    size_t npf = 1;
    int stats_ready = 0;

    pf[0] = (struct pollfd){m->sfd, POLLIN, 0};
    npf += srv_stats_pollfds(&m->stats, pf + 1, sizeof(pf) / sizeof(pf[0]) - 1);
    /* A stats connection waiting for its request line is answered on its deadline. */
    poll(pf, (nfds_t)npf, srv_stats_busy(&m->stats) ? MASTER_STATS_TICK_MS : MASTER_TICK_MS);
    for (size_t i = 1; i < npf; i++)
        stats_ready |= pf[i].revents != 0;
    while (read(m->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        on_signal(m, (int)si.ssi_signo);
    reap(m);
    /* Never blocks, and does a bounded amount of work per turn (stats.h). */
    if (m->stats.fd >= 0 && (stats_ready || srv_stats_busy(&m->stats)))
        serve_stats(m);
    if (m->drain_at && !m->stopping && srv_clock_ms() >= m->drain_at)
        graceful_stop(m);
    if (m->stopping) {
        if (all_gone(m))
            return 0;
        note_refusing(m);
        watchdog(m);
        return 1;
    }
    if (m->reload_requested && !m->pending_gen)
        start_reload(m);
    check_reload(m);
    if (!m->pending_gen && !m->notified_ready && serving_ready(m)) {
        sd_notify("READY=1");
        m->notified_ready = 1;
    }
    manage(m);
    watchdog(m);
    return 1;
}

int
srv_master_run(struct srv_config *cfg, int argc, char **argv, struct srv_listener *ls, size_t n_ls)
{
    struct master m;

    if (master_init(&m, cfg, argc, argv, ls, n_ls) < 0)
        return 1;
    log_listeners(ls, n_ls);
    srv_log(SRV_LOG_INFO, "master started: %u worker(s), plugins from \"%s\"", m.target_workers,
            cfg->plugin_dir);
    for (unsigned k = 0; k < m.target_workers; k++)
        spawn(&m, m.generation);
    while (master_step(&m))
        ;
    srv_log(SRV_LOG_INFO, "master exiting");
    master_cleanup(&m);
    return 0;
}
