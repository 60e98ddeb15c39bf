/* gateway.c: see gateway.h. */
#include "gateway.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "proxy_accept.h"
#include "redis_keys.h"
#include "session.h"

/* Accepts per readiness event, so one busy listener cannot starve the loop. */
#define ACCEPTS_PER_EVENT 64
#define LISTEN_BACKLOG 511

static bool listener_implicit_tls[CONFIG_MAX_LISTENERS];

static void refuse_connection(int fd, const char *reply)
{
    /* Best effort on a fresh socket: the kernel buffer takes this line. */
    (void)send(fd, reply, strlen(reply), MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop; (void)revents;
    struct gateway *gw = w->data;
    unsigned index = (unsigned)(w - gw->listen_watchers);
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        struct sockaddr_storage peer;
        socklen_t peerlen = sizeof peer;
        int fd = accept4(w->fd, (struct sockaddr *)&peer, &peerlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                log_event(LOG_LEVEL_WARN, NULL, "accept-failed", "error", strerror(errno), LOG_END);
            return;
        }
        /* Only a trusted balancer may say who the client is. */
        const struct config *c = gw->config;
        if (c->n_proxy_trusted > 0 &&
            proxy_cidr_list_contains(c->proxy_trusted, c->n_proxy_trusted, (struct sockaddr *)&peer)) {
            if (gw->n_sessions + gw->n_pending >= c->max_connections) {
                refuse_connection(fd, "");
                metrics_counter_add(METRIC_CONNECTIONS_REFUSED_TOTAL, "max_connections", 1);
                continue;
            }
            proxy_accept_start(gw, fd, (struct sockaddr *)&peer, peerlen, listener_implicit_tls[index]);
            continue;
        }
        gateway_admit(gw, fd, (struct sockaddr *)&peer, peerlen, listener_implicit_tls[index]);
    }
}

void gateway_admit(struct gateway *gw, int fd, const struct sockaddr *client, socklen_t clientlen,
                   bool implicit_tls)
{
    if (gw->n_sessions >= gw->config->max_connections) {
        log_event(LOG_LEVEL_WARN, NULL, "connection-refused", "reason", "max_connections", LOG_END);
        metrics_counter_add(METRIC_CONNECTIONS_REFUSED_TOTAL, "max_connections", 1);
        refuse_connection(fd, "-ERR [SYS/TEMP] Too many connections, try again later.\r\n");
        return;
    }
    if (!addr_limit_acquire(&gw->per_addr, client, gw->config->max_connections_per_addr)) {
        log_event(LOG_LEVEL_WARN, NULL, "connection-refused", "reason", "max_connections_per_addr", LOG_END);
        metrics_counter_add(METRIC_CONNECTIONS_REFUSED_TOTAL, "max_connections_per_addr", 1);
        refuse_connection(fd, "-ERR [SYS/TEMP] Too many connections from your address.\r\n");
        return;
    }
    session_start(gw, fd, client, clientlen, implicit_tls);
}


static int bind_listener(const struct listen_spec *l)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (l->addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static void stop_listening(struct gateway *gw)
{
    for (unsigned i = 0; i < gw->n_listen; i++) {
        ev_io_stop(gw->loop, &gw->listen_watchers[i]);
        close(gw->listen_fds[i]);
    }
    gw->n_listen = 0;
}

static void on_sighup(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop; (void)revents;
    struct gateway *gw = w->data;
    char err[512];
    struct config *fresh = config_load(gw->config_path, err, sizeof err);
    if (!fresh) {
        log_event(LOG_LEVEL_ERROR, NULL, "reload-failed", "config", gw->config_path, "error", err, LOG_END);
        return;
    }
    bool same_listeners = fresh->n_listeners == gw->config->n_listeners;
    for (unsigned i = 0; same_listeners && i < fresh->n_listeners; i++)
        same_listeners = !strcmp(fresh->listeners[i].text, gw->config->listeners[i].text) &&
                         fresh->listeners[i].implicit_tls == gw->config->listeners[i].implicit_tls;
    if (!same_listeners)
        log_event(LOG_LEVEL_WARN, NULL, "reload", "note", "listen addresses change only on restart", LOG_END);
    if (memcmp(&fresh->redis, &gw->config->redis, sizeof fresh->redis) != 0)
        log_event(LOG_LEVEL_WARN, NULL, "reload", "note", "[redis] changes only on restart", LOG_END);
    config_unref(gw->config);
    gw->config = fresh;
    listing_cache_set_limits(&gw->listing_cache, (size_t)fresh->listing_cache_mb << 20,
                             (size_t)fresh->listing_cache_user_mb << 20);
    log_set_level(fresh->log_level);
    log_event(LOG_LEVEL_INFO, NULL, "reload", "config", gw->config_path, "result", "ok", LOG_END);
}

static void on_final_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w; (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void on_drain_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct gateway *gw = w->data;
    if (gw->n_sessions == 0) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    log_event(LOG_LEVEL_WARN, NULL, "shutdown", "note", "deadline passed, closing sessions",
              "sessions", LOG_U64(gw->n_sessions), LOG_END);
    for (struct session *s = gw->sessions, *next; s; s = next) {
        next = session_next(s);
        session_abort(s, "shutdown");
    }
    /* Give the final replies a moment to leave, then stop regardless. */
    ev_set_cb(w, on_final_deadline);
    ev_timer_set(w, 2., 0.);
    ev_timer_start(loop, w);
}

static void on_sigterm(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    struct gateway *gw = w->data;
    if (gw->draining)
        return;
    gw->draining = true;
    metrics_set_health(false, "draining");
    stop_listening(gw);
    log_event(LOG_LEVEL_INFO, NULL, "shutdown", "sessions", LOG_U64(gw->n_sessions), LOG_END);
    if (gw->n_sessions == 0) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    ev_timer_set(&gw->drain_deadline, gw->config->shutdown_timeout, 0.);
    ev_timer_start(loop, &gw->drain_deadline);
}

/* popgate-admin stats reads these: one hash per node, gone 30 s after the
 * node stops publishing. */
#define STATS_INTERVAL 5.
#define STATS_TTL "30"

static void on_stats_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    struct gateway *gw = w->data;
    char key[REDIS_KEY_MAX], started[24], updated[24], active[24], total[24], ok[24], failed[24];
    redis_key(key, REDIS_KEY_NODE, gw->node_id, NULL);
    snprintf(started, sizeof started, "%lld", gw->started);
    snprintf(updated, sizeof updated, "%lld", (long long)time(NULL));
    snprintf(active, sizeof active, "%u", gw->n_sessions);
    snprintf(total, sizeof total, "%llu", gw->sessions_total);
    snprintf(ok, sizeof ok, "%llu", gw->logins_ok);
    snprintf(failed, sizeof failed, "%llu", gw->logins_failed);
    const char *hset[] = { "HSET", key, "node", gw->node_id, "started", started, "updated", updated,
                           "sessions_active", active, "sessions_total", total, "logins_ok", ok,
                           "logins_failed", failed };
    const char *expire[] = { "EXPIRE", key, STATS_TTL };
    /* /health: a node without Redis cannot log anyone in. */
    if (!gw->draining)
        metrics_set_health(redis_store_connected(gw->redis),
                           redis_store_connected(gw->redis) ? NULL : "redis unavailable");
    redis_store_send(gw->redis, sizeof hset / sizeof hset[0], hset, NULL);
    redis_store_send(gw->redis, 3, expire, NULL);
}

bool gateway_init(struct gateway *gw, struct ev_loop *loop, const char *config_path,
                  struct config *config)
{
    memset(gw, 0, sizeof *gw);
    addr_limit_init(&gw->per_addr);
    gw->loop = loop;
    gw->config = config;
    listing_cache_init(&gw->listing_cache, (size_t)config->listing_cache_mb << 20,
                       (size_t)config->listing_cache_user_mb << 20);
    snprintf(gw->config_path, sizeof gw->config_path, "%s", config_path);
    for (unsigned i = 0; i < config->n_listeners; i++) {
        const struct listen_spec *l = &config->listeners[i];
        int fd = bind_listener(l);
        if (fd < 0) {
            log_event(LOG_LEVEL_ERROR, NULL, "listen-failed", "address", l->text,
                      "error", strerror(errno), LOG_END);
            stop_listening(gw);
            return false;
        }
        gw->listen_fds[i] = fd;
        listener_implicit_tls[i] = l->implicit_tls;
        ev_io_init(&gw->listen_watchers[i], on_accept, fd, EV_READ);
        gw->listen_watchers[i].data = gw;
        ev_io_start(loop, &gw->listen_watchers[i]);
        gw->n_listen = i + 1;
        log_event(LOG_LEVEL_INFO, NULL, "listening", "address", l->text,
                  "tls", l->implicit_tls ? "implicit" : "stls", LOG_END);
    }
    if (config->metrics_listen[0]) {
        char err[256];
        if (!metrics_listen(loop, config->metrics_listen, err, sizeof err)) {
            log_event(LOG_LEVEL_ERROR, NULL, "listen-failed", "address", config->metrics_listen,
                      "error", err, LOG_END);
            stop_listening(gw);
            return false;
        }
        log_event(LOG_LEVEL_INFO, NULL, "listening", "address", config->metrics_listen, "tls", "metrics",
                  LOG_END);
    }
    gw->redis = redis_store_new(loop, &config->redis);
    /* Two threads: the machine's cores are the loop's too; the queue bound
     * turns a login storm into [SYS/TEMP] answers instead of a backlog. */
    gw->http = http_client_new(loop, &(struct http_client_options){ .user_agent = "popgate" });
    gw->work = work_pool_new(loop, GATEWAY_HASH_THREADS, WORK_POOL_QUEUE_DEFAULT);
    if (!gw->redis || !gw->http || !gw->work) {
        redis_store_free(gw->redis);
        http_client_free(gw->http);
        if (gw->work)
            work_pool_free(gw->work);
        stop_listening(gw);
        return false;
    }
    char host[64] = "unknown";
    gethostname(host, sizeof host - 1);
    snprintf(gw->node_id, sizeof gw->node_id, "%s:%ld", host, (long)getpid());
    gw->started = (long long)time(NULL);
    ev_timer_init(&gw->stats_timer, on_stats_timer, 1., STATS_INTERVAL);
    gw->stats_timer.data = gw;
    ev_timer_start(loop, &gw->stats_timer);
    ev_signal_init(&gw->sighup, on_sighup, SIGHUP);
    ev_signal_init(&gw->sigterm, on_sigterm, SIGTERM);
    ev_signal_init(&gw->sigint, on_sigterm, SIGINT);
    gw->sighup.data = gw->sigterm.data = gw->sigint.data = gw;
    ev_signal_start(loop, &gw->sighup);
    ev_signal_start(loop, &gw->sigterm);
    ev_signal_start(loop, &gw->sigint);
    ev_timer_init(&gw->drain_deadline, on_drain_deadline, 0., 0.);
    gw->drain_deadline.data = gw;
    return true;
}

/* Bound on waiting for the last Redis writes (lock releases) at exit. */
#define EXIT_FLUSH_SECONDS 2.

static void on_exit_flush_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w; (void)revents;
    ev_break(loop, EVBREAK_ONE);
}

void gateway_run(struct gateway *gw)
{
    ev_run(gw->loop, 0);
    /* Sessions are gone; let their lock releases reach Redis. */
    ev_timer deadline;
    ev_timer_init(&deadline, on_exit_flush_deadline, EXIT_FLUSH_SECONDS, 0.);
    ev_timer_start(gw->loop, &deadline);
    while (gw->redis && redis_store_pending(gw->redis) > 0 && ev_is_active(&deadline))
        ev_run(gw->loop, EVRUN_ONCE);
    ev_timer_stop(gw->loop, &deadline);
}

void gateway_deinit(struct gateway *gw)
{
    stop_listening(gw);
    ev_timer_stop(gw->loop, &gw->drain_deadline);
    ev_timer_stop(gw->loop, &gw->stats_timer);
    ev_signal_stop(gw->loop, &gw->sighup);
    ev_signal_stop(gw->loop, &gw->sigterm);
    ev_signal_stop(gw->loop, &gw->sigint);
    metrics_stop();
    if (gw->work)
        work_pool_free(gw->work);
    gw->work = NULL;
    http_client_free(gw->http);
    gw->http = NULL;
    redis_store_free(gw->redis);
    gw->redis = NULL;
    addr_limit_deinit(&gw->per_addr);
    listing_cache_deinit(&gw->listing_cache);
    config_unref(gw->config);
    gw->config = NULL;
}

void gateway_session_started(struct gateway *gw, struct session *s)
{
    session_link(&gw->sessions, s);
    gw->n_sessions++;
    metrics_gauge_set(METRIC_SESSIONS_ACTIVE, gw->n_sessions);
    gw->sessions_total++;
}

void gateway_session_ended(struct gateway *gw, struct session *s, const struct sockaddr *peer)
{
    addr_limit_release(&gw->per_addr, peer);
    session_unlink(&gw->sessions, s);
    gw->n_sessions--;
    metrics_gauge_set(METRIC_SESSIONS_ACTIVE, gw->n_sessions);
    if (gw->draining && gw->n_sessions == 0)
        ev_break(gw->loop, EVBREAK_ALL);
}

bool gateway_drop_privileges(const struct config *c, char *err, size_t err_len)
{
    if (!c->run_user[0])
        return true;
    /* Start-up only, before the loop runs: a blocking NSS lookup is fine here. */
    const struct passwd *pw = getpwnam(c->run_user);
    if (!pw) {
        snprintf(err, err_len, "[server] user %s: no such user", c->run_user);
        return false;
    }
    gid_t gid = pw->pw_gid;
    if (c->run_group[0]) {
        const struct group *gr = getgrnam(c->run_group);
        if (!gr) {
            snprintf(err, err_len, "[server] group %s: no such group", c->run_group);
            return false;
        }
        gid = gr->gr_gid;
    }
    if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(pw->pw_uid) != 0) {
        snprintf(err, err_len, "dropping privileges to %s: %s", c->run_user, strerror(errno));
        return false;
    }
    /* Make sure there is no way back. */
    if (pw->pw_uid != 0 && setuid(0) == 0) {
        snprintf(err, err_len, "privileges could be regained after dropping them");
        return false;
    }
    return true;
}
