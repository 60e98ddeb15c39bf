/* session_auth.c: the AUTHORIZATION state. CAPA, STLS, USER/PASS and AUTH
 * PLAIN (RFC 5034): what turns a command into credentials, handed to the
 * login's step machine (session_login.c). */
#include "session_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "sasl_plain.h"

/* RFC 5034 allows longer SASL lines; the decoded PLAIN message of a user name
 * and password up to the line limit fits in this. */
#define SASL_DECODED_MAX ((POP3_SASL_LINE_MAX / 4) * 3 + 3)

static bool auth_allowed(const struct session *s)
{
    return net_stream_is_tls(s->client) || s->cfg->allow_plaintext_auth;
}

static const char plaintext_refused[] =
    "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.";

/* ---- CAPA and STLS ------------------------------------------------------ */

void session_cmd_capa(struct session *s, const struct pop3_command *cmd)
{
    (void)cmd;
    bool pre_auth = s->state == SESSION_AUTHORIZATION;
    session_reply(s, "+OK Capability list follows");
    session_reply(s, "TOP");
    session_reply(s, "UIDL");
    session_reply(s, "RESP-CODES");
    session_reply(s, "AUTH-RESP-CODE");
    session_reply(s, "PIPELINING");
    if (pre_auth && auth_allowed(s)) {
        session_reply(s, "USER");
        session_reply(s, "SASL PLAIN");
    }
    if (pre_auth && !net_stream_is_tls(s->client) && s->cfg->server_tls)
        session_reply(s, "STLS");
    char line[40];
    if (pre_auth ? s->cfg->capa_login_delay[0] != '\0' : mapping_capa_login_delay(s->mapping, line, sizeof line))
        session_reply(s, pre_auth ? s->cfg->capa_login_delay : line);
    if (pre_auth ? s->cfg->capa_expire[0] != '\0' : mapping_capa_expire(s->mapping, line, sizeof line))
        session_reply(s, pre_auth ? s->cfg->capa_expire : line);
    session_reply(s, ".");
}

static void on_tls_ready(struct net_stream *ns, bool ok, enum net_stream_error err, void *arg)
{
    (void)ns;
    struct session *s = arg;
    if (!ok) {
        log_event(LOG_LEVEL_INFO, s->id, "tls-failed", "peer", s->peer,
                  "error", net_stream_error_name(err), LOG_END);
        session_tls_failed(s, err);
        return;
    }
    /* RFC 2595: forget everything learned before TLS. */
    pop3_line_reader_init(&s->reader);
    s->have_user = false;
    session_set_state(s, SESSION_AUTHORIZATION);
    if (!s->greeted)
        session_greet(s);
    session_command_done(s);
}

void session_start_tls_handshake(struct session *s)
{
    s->busy = true;
    session_set_state(s, SESSION_TLS_HANDSHAKE);
    net_stream_start_tls(s->client, s->cfg->server_tls, true, NULL, s->cfg->preauth_timeout,
                         on_tls_ready);
}

void session_cmd_stls(struct session *s, const struct pop3_command *cmd)
{
    (void)cmd;
    if (net_stream_is_tls(s->client)) {
        session_bad_command(s, "-ERR TLS is already active.");
        return;
    }
    if (!s->cfg->server_tls) {
        session_bad_command(s, "-ERR TLS is not available.");
        return;
    }
    session_reply(s, "+OK Begin TLS negotiation now.");
    session_start_tls_handshake(s);
}

/* Takes user and password; the password is copied and wiped after use. */
static void begin_login(struct session *s, const char *user, size_t user_len,
                        const char *password, size_t password_len)
{
    if (user_len == 0 || user_len >= sizeof s->user ||
        !login_name_parse(user, user_len, s->cfg->device_separator, &s->device.login)) {
        session_reply(s, "-ERR [AUTH] Invalid user name or device name (device: A-Z a-z 0-9 . _ -, 1 to 32).");
        return;
    }
    memmove(s->user, user, user_len);
    s->user[user_len] = '\0';
    s->have_user = true;
    s->password = malloc(password_len + 1);
    if (!s->password) {
        session_reply(s, "-ERR [SYS/TEMP] Out of resources.");
        return;
    }
    memcpy(s->password, password, password_len);
    s->password[password_len] = '\0';
    s->busy = true;
    login_start(s);
}

/* ---- USER / PASS -------------------------------------------------------- */

void session_cmd_user(struct session *s, const struct pop3_command *cmd)
{
    if (!auth_allowed(s)) {
        session_bad_command(s, plaintext_refused);
        return;
    }
    if (cmd->argc != 1) {
        session_bad_command(s, "-ERR USER needs one argument.");
        return;
    }
    memcpy(s->user, cmd->argv[0], cmd->argv_len[0]);
    s->user[cmd->argv_len[0]] = '\0';
    s->have_user = true;
    session_reply(s, "+OK");
}

void session_cmd_pass(struct session *s, const struct pop3_command *cmd)
{
    if (!auth_allowed(s)) {
        session_bad_command(s, plaintext_refused);
        return;
    }
    if (!s->have_user) {
        session_bad_command(s, "-ERR No user name given.");
        return;
    }
    if (!cmd->rest || !*cmd->rest) {
        session_bad_command(s, "-ERR PASS needs an argument.");
        return;
    }
    begin_login(s, s->user, strlen(s->user), cmd->rest, strlen(cmd->rest));
}

/* ---- AUTH PLAIN (RFC 5034, RFC 4616) ------------------------------------ */

/* The response's decoded bytes hold the password: wiped on every path. */
static void auth_plain(struct session *s, const char *b64, size_t b64_len)
{
    unsigned char msg[SASL_DECODED_MAX];
    size_t decoded_len;
    struct sasl_plain plain;
    enum sasl_plain_result r = sasl_plain_parse(b64, b64_len, msg, sizeof msg, &decoded_len, &plain);
    if (r == SASL_PLAIN_MALFORMED)
        session_bad_command(s, "-ERR [AUTH] Invalid AUTH PLAIN response.");
    else if (r == SASL_PLAIN_REFUSED)
        session_reply_after(s, s->cfg->auth_failure_delay, "-ERR [AUTH] Authentication failed.");
    else
        begin_login(s, plain.authcid, plain.authcid_len, plain.passwd, plain.passwd_len);
    explicit_bzero(msg, sizeof msg);
}

void session_cmd_auth(struct session *s, const struct pop3_command *cmd)
{
    if (cmd->argc == 0) {
        session_reply(s, "+OK");
        if (auth_allowed(s))
            session_reply(s, "PLAIN");
        session_reply(s, ".");
        return;
    }
    if (strcasecmp(cmd->argv[0], "PLAIN") != 0) {
        session_bad_command(s, "-ERR [AUTH] Unsupported authentication mechanism.");
        return;
    }
    if (!auth_allowed(s)) {
        session_bad_command(s, plaintext_refused);
        return;
    }
    if (cmd->argc == 2) {
        /* "=" is an empty initial response (RFC 5034 section 4). */
        bool empty = cmd->argv_len[1] == 1 && cmd->argv[1][0] == '=';
        auth_plain(s, cmd->argv[1], empty ? 0 : cmd->argv_len[1]);
        return;
    }
    session_set_state(s, SESSION_SASL_RESPONSE);
    pop3_line_reader_allow_long_line(&s->reader);
    session_reply(s, "+ ");
}

void session_sasl_response(struct session *s, const char *line, size_t len)
{
    session_set_state(s, SESSION_AUTHORIZATION);
    if (len == 1 && line[0] == '*') {
        session_bad_command(s, "-ERR [AUTH] Authentication aborted.");
        return;
    }
    auth_plain(s, line, len);
}
