/* session: one POP3 client connection, from accept to close.
 *
 * A session walks the RFC 1939 states (see enum session_state and its names
 * table) and owns everything it uses: the client net_stream, the upstream
 * imap_client, the maildrop snapshot and a reference to the config it started
 * with. It frees itself when the client connection ends; the gateway only
 * keeps it on its list. */
#ifndef POPGATE_SESSION_H
#define POPGATE_SESSION_H

#include <stdbool.h>
#include <sys/socket.h>

struct gateway;
struct session;

/* Take over an accepted socket. implicit_tls: the POP3S listener. */
void session_start(struct gateway *gw, int fd, const struct sockaddr *peer, socklen_t peerlen,
                   bool implicit_tls);

/* Close now without committing (drain deadline passed): the session is freed
 * before this returns. Never call it from inside the session's own callbacks. */
void session_abort(struct session *s, const char *reason);

/* The next session on the gateway's list (for iteration). */
struct session *session_next(struct session *s);
void session_link(struct session **head, struct session *s);
void session_unlink(struct session **head, struct session *s);

#endif
