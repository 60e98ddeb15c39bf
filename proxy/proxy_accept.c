/* proxy_accept.c: see proxy_accept.h. */
#include "proxy_accept.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "gateway.h"
#include "log.h"
#include "metrics.h"
#include "proxy_protocol.h"

struct pending {
    struct gateway *gw;
    int fd;
    bool implicit_tls;
    struct sockaddr_storage peer;   /* the balancer: used when the header says LOCAL */
    socklen_t peerlen;
    ev_io io;
    ev_timer deadline;
    struct proxy_protocol pp;
};

static void finish(struct pending *p, bool close_fd)
{
    ev_io_stop(p->gw->loop, &p->io);
    ev_timer_stop(p->gw->loop, &p->deadline);
    p->gw->n_pending--;
    if (close_fd)
        close(p->fd);
    free(p);
}

static void refuse(struct pending *p, const char *reason)
{
    log_event(LOG_LEVEL_WARN, NULL, "proxy-header-refused", "reason", reason, LOG_END);
    metrics_counter_add(METRIC_CONNECTIONS_REFUSED_TOTAL, "proxy_header", 1);
    finish(p, true);
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop; (void)revents;
    struct pending *p = w->data;
    unsigned char buf[PROXY_PROTOCOL_MAX];
    ssize_t n = recv(p->fd, buf, sizeof buf, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        finish(p, true);
        return;
    }
    size_t used = 0;
    enum proxy_protocol_status st = proxy_protocol_feed(&p->pp, buf, (size_t)n, &used);
    /* Take exactly the header's bytes; the client's first command stays. */
    if (used > 0 && recv(p->fd, buf, used, 0) != (ssize_t)used) {
        finish(p, true);
        return;
    }
    if (st == PROXY_PROTOCOL_NEED_MORE)
        return;
    if (st == PROXY_PROTOCOL_ERROR) {
        refuse(p, proxy_protocol_error(&p->pp));
        return;
    }
    const struct proxy_protocol_header *h = &p->pp.header;
    struct sockaddr_storage client = h->local ? p->peer : h->src;
    socklen_t clientlen = h->local ? p->peerlen : h->addrlen;
    struct gateway *gw = p->gw;
    int fd = p->fd;
    bool implicit_tls = p->implicit_tls;
    finish(p, false);
    gateway_admit(gw, fd, (struct sockaddr *)&client, clientlen, implicit_tls);
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    refuse(w->data, "timeout");
}

void proxy_accept_start(struct gateway *gw, int fd, const struct sockaddr *peer, socklen_t peerlen,
                        bool implicit_tls)
{
    struct pending *p = calloc(1, sizeof *p);
    if (!p || peerlen > sizeof p->peer) {
        free(p);
        close(fd);
        return;
    }
    p->gw = gw;
    p->fd = fd;
    p->implicit_tls = implicit_tls;
    memcpy(&p->peer, peer, peerlen);
    p->peerlen = peerlen;
    proxy_protocol_init(&p->pp);
    ev_io_init(&p->io, on_readable, fd, EV_READ);
    p->io.data = p;
    ev_timer_init(&p->deadline, on_deadline, PROXY_ACCEPT_TIMEOUT, 0.);
    p->deadline.data = p;
    gw->n_pending++;
    ev_io_start(gw->loop, &p->io);
    ev_timer_start(gw->loop, &p->deadline);
}
