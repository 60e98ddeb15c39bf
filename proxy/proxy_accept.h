/* proxy_accept: a connection from a trusted load balancer (HAProxy) waiting
 * for its PROXY protocol header (v1 or v2) before it becomes a session, so
 * logs, caps and throttles see the real client address.
 *
 * The header is read with MSG_PEEK and only its own bytes are taken from the
 * socket: whatever the client sent after it stays for the session. Bounded:
 * PROXY_ACCEPT_TIMEOUT seconds and PROXY_PROTOCOL_MAX bytes per connection,
 * and at most max_connections of them at once (they count as sessions). */
#ifndef POPGATE_PROXY_ACCEPT_H
#define POPGATE_PROXY_ACCEPT_H

#include <stdbool.h>
#include <sys/socket.h>

#define PROXY_ACCEPT_TIMEOUT 5.0

struct gateway;

void proxy_accept_start(struct gateway *gw, int fd, const struct sockaddr *peer, socklen_t peerlen,
                        bool implicit_tls);

#endif
