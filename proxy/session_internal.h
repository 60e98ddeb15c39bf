/* session_internal.h: the session object, shared by the session_*.c files
 * (session.c: lifecycle and command dispatch; session_auth.c: CAPA, STLS,
 * USER/PASS, AUTH; session_login.c: the login's steps and their order;
 * session_transaction.c: the
 * TRANSACTION commands and message streaming; session_commit.c: QUIT and the
 * UPDATE state). Nothing outside proxy/session*.c includes it. */
#ifndef POPGATE_SESSION_INTERNAL_H
#define POPGATE_SESSION_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "auth_throttle.h"
#include "config.h"
#include "device_state.h"
#include "dot_stream.h"
#include "gateway.h"
#include "imap_client.h"
#include "legacy_uidl.h"
#include "login_name.h"
#include "login_transform.h"
#include "maildrop.h"
#include "net_stream.h"
#include "pop3_parse.h"
#include "session.h"
#include "view.h"

enum session_state {
    SESSION_TLS_HANDSHAKE,   /* implicit TLS or after STLS: no commands yet */
    SESSION_AUTHORIZATION,
    SESSION_SASL_RESPONSE,   /* AUTH PLAIN sent "+ ", waiting for the client's response line */
    SESSION_LOGIN,           /* upstream connect, login, select, listing in progress */
    SESSION_TRANSACTION,
    SESSION_UPDATE,          /* QUIT: committing */
    SESSION_CLOSING,         /* final reply queued; closing after flush */
    SESSION_STATE_COUNT
};
extern const char *const session_state_names[SESSION_STATE_COUNT];

/* A multi-line reply produced piece by piece as the client reads (LIST and
 * UIDL of a 100,000-message maildrop never sit whole in a buffer). */
struct listing_cursor {
    bool active;
    bool uidl;               /* UIDL lines instead of LIST lines */
    uint32_t next;           /* next message number to emit */
};

/* RETR / TOP in progress. */
struct transfer {
    bool active;
    bool is_top;
    bool started;            /* +OK sent: on error we must cut the connection */
    bool paused;             /* sink refused bytes; resume when the client drains */
    bool found;              /* set by imap_fetch_body */
    uint32_t msgnum;
    uint32_t top_lines;
    int top_phase;           /* 0 = header, 1 = body windows */
    uint64_t header_octets;  /* TOP: length of BODY[HEADER] = where the text starts in BODY[] */
    uint64_t text_offset;    /* TOP: next offset into the body text */
    uint64_t window;         /* TOP: size of the window being fetched */
    uint64_t literal_len;    /* length announced for the current literal */
    uint64_t received;       /* bytes of the current literal seen */
    bool batch;              /* RETR: its prefetch batch is asked for first */
    const char *held;        /* RETR served from the prefetch buffer: the body, */
    size_t held_len;         /* its length */
    size_t held_off;         /* and how much of it went through the dot_stream */
    struct dot_stream ds;
};

/* QUIT's walk through the upstream changes. */
struct commit_progress {
    uint8_t folder;          /* the maildrop folder whose steps run */
    int step;                /* index into the commit step table */
    uint32_t cursor;         /* maildrop cursor inside a step */
    char uidset[4096];       /* one bounded UID set per IMAP command */
    uint32_t hidden_instead; /* deleted messages on_dele could not remove: hidden instead */
};

/* The steps of the LOGIN state, in the order session_login.c enters them
 * (its next_step() holds the order, with the per-folder loop). */
enum login_step {
    LOGIN_IDLE,              /* no login running */
    LOGIN_THROTTLE,          /* failed-login and upstream-backoff throttles (Redis) */
    LOGIN_MAPPING,           /* the user's Redis override and the mapping it selects */
    LOGIN_APP_PASSWORD,      /* auth = oauth2: the device's app password (Argon2id off the loop) */
    LOGIN_TOKEN,             /* auth = oauth2: an access token, cached or from the provider */
    LOGIN_CONNECT,           /* the mapping's upstream: TCP, TLS or STARTTLS */
    LOGIN_AUTHENTICATE,      /* upstream LOGIN or AUTHENTICATE */
    LOGIN_DEVICE_LOCK,       /* the device lock (Redis) */
    LOGIN_LEGACY_CHECK,      /* stored legacy UIDLs; the lazy import if the mapping asks */
    LOGIN_SELECT,            /* SELECT the folder login.folder */
    LOGIN_LISTING,           /* its UIDs, sizes and ids into the maildrop */
    LOGIN_LEGACY_MATCH,      /* first folder: its messages matched to legacy UIDLs */
    LOGIN_STATE_LOAD,        /* the device's state and sizes (Redis), then the view */
    LOGIN_MEASURE_SIZES,     /* exact_sizes: measure what no node measured yet */
    LOGIN_COMPLETE,          /* log, +OK, TRANSACTION */
    LOGIN_STEP_COUNT
};
extern const char *const login_step_names[LOGIN_STEP_COUNT];

struct login_progress {
    enum login_step step;    /* the step running (or the last one) */
    uint8_t folder;          /* SELECT / LISTING / LEGACY_MATCH: index in mapping->folders */
};

/* Where on_dele = trash puts mail (session_trash.c). */
enum trash_state { TRASH_UNKNOWN = 0, TRASH_FOUND, TRASH_MISSING };

/* The device this session speaks for, and its lock and state in Redis. */
struct device_session {
    struct login_name login;
    struct device_keys *keys;        /* allocated when the lock is taken (1.5 KiB) */
    char lock_token[DEVICE_TOKEN_MAX];
    bool lock_held;
    bool lock_lost;                  /* a refresh found the lock gone: QUIT must fail */
    struct device_legacy_check legacy;  /* read with the lock, for the legacy-check step */
    struct redis_request *request;   /* acquire, load or commit in flight */
    struct redis_request *refresh;   /* lock refresh in flight */
    ev_timer refresh_timer;
    enum imap_stable_ids ids;        /* where state ids come from (the first folder's server) */
    bool mark_all_downloaded;        /* UIDVALIDITY changed or mark-all asked: record every message as retrieved */
    bool mark_all_requested;         /* popgate-admin device mark-all: clear the request at commit */
    void (*next)(struct session *s); /* QUIT: where precheck and commit continue */
    ev_tstamp request_started;       /* for the Redis latency histogram */
    /* Every upstream id, kept from login to QUIT only when Redis holds ids of
     * messages no longer upstream, so the commit can prune them. */
    char *all_ids;
    size_t all_ids_len;
    char *old_ids;             /* all_ids as the previous release formed them, during the load */
    size_t old_ids_len;
};

struct session {
    struct session *prev, *next;     /* gateway list */
    struct gateway *gw;
    struct config *cfg;              /* reference held for the session's life */
    char id[17];
    char peer[64];                   /* "address:port", for logs */
    char peer_addr[48];              /* address only: throttling key */
    struct sockaddr_storage peer_sa; /* counted against max_connections_per_addr */
    struct auth_throttle_check *throttle;
    enum session_state state;

    struct net_stream *client;
    struct imap_client *imap;
    /* The upstream asked to slow down (a throttle answer): until then no
     * RETR or TOP is sent upstream (README "Hosted providers"). */
    ev_tstamp upstream_backoff_until;

    struct pop3_line_reader reader;
    unsigned bad_commands;
    bool busy;                       /* an asynchronous command holds the input */
    bool input_paused;               /* we returned fewer bytes than offered */

    ev_timer idle_timer;             /* pre-auth or idle timeout */
    ev_timer delay_timer;            /* auth failure delay */
    const char *delayed_reply;
    bool greeted;                    /* the +OK greeting went out */

    char user[POP3_LINE_MAX + 1];    /* the login as typed (USER or AUTH); never the password */
    bool have_user;
    struct device_session device;
    char *password;                  /* held only between PASS/AUTH and upstream LOGIN; wiped */
    struct login_progress login;     /* the LOGIN state's step machine (session_login.c) */

    struct oauth_login *oauth;       /* auth = oauth2, login only (session_oauth.c) */
    const struct mapping *mapping;   /* the login's mapping, inside cfg */
    int selected_folder;             /* index in mapping->folders SELECTed upstream; -1 = none */
    imap_done_cb *select_done;       /* session_select_folder's caller (login, RETR, QUIT) */
    struct view_policy policy;       /* the mapping's policy, then the user's Redis override */
    struct maildrop drop;
    struct folder_listing *folder_listing;  /* login only: the folder being listed (session_listing.c) */
    struct listing_cursor listing;
    struct transfer xfer;
    struct session_prefetch *prefetch; /* bodies held for the RETRs to come (session_prefetch.c) */
    struct commit_progress *commit;  /* allocated at QUIT: most of a session's size */
    enum trash_state trash_state;
    bool trash_warned;               /* the trash problem was logged (once per session) */
    char *trash;                     /* MAPPING_FOLDER_MAX bytes, allocated at the first lookup */
    void (*trash_next)(struct session *s, enum imap_result r);
    uint32_t dele_msgnum;            /* DELE waiting for the trash lookup */

    /* exact_sizes at login (session_sizes.c); uses xfer.ds and xfer.found */
    uint32_t measure_next;           /* message number being measured */
    uint32_t measured;

    /* An old POP3 server's UIDLs (session_legacy.c) */
    struct legacy_uidl legacy_uidls; /* message number -> legacy UIDL, for the session */
    uint64_t legacy_stored;          /* the user's stored legacy UIDLs; 0 = nothing to match */
    struct legacy_job *legacy_job;   /* lazy import the login waits for */
    ev_timer legacy_timer;           /* how long it waits */
    struct legacy_match *legacy_match;     /* login only */
    struct uidl_lookup *legacy_lookup;     /* login only */
    void *legacy_ids;                      /* login only: the lookup's id pointers */
    struct legacy_hashing *legacy_hashing; /* login only: header hashes being fetched */

    const char *close_reason;        /* why session_close was called (static text) */
    ev_tstamp login_started;         /* for the upstream latency histogram */
    unsigned long long bytes_out;
    unsigned retr_count;
};

/* session.c */
/* SELECT the mapping's folder (a no-op when it is selected already), then
 * done(imap, result, s). */
/* session_oauth.c: the auth = oauth2 steps of the login. */
void session_oauth_check_password(struct session *s);
void session_oauth_token(struct session *s);
void session_oauth_authenticate(struct session *s, const char *upstream_user, imap_done_cb *done);
/* After the upstream answered the token: a refused cached token is dropped. */
void session_oauth_authenticated(struct session *s, enum imap_result r);
/* Cancels what is in flight, releases the refresh lock, wipes the keys. */
void session_oauth_release(struct session *s);

void session_select_folder(struct session *s, uint8_t folder, imap_done_cb *done);
void session_reply(struct session *s, const char *line);
void session_replyf(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void session_set_state(struct session *s, enum session_state st);
/* An asynchronous command finished: accept input again. */
void session_command_done(struct session *s);
/* Queue a final reply (may be NULL) and close after it is written. */
void session_close(struct session *s, const char *final_reply, const char *reason);
void session_bad_command(struct session *s, const char *reply);
void session_touch(struct session *s);
void session_greet(struct session *s);
/* Cleanse and free the password held between PASS/AUTH and upstream login. */
void session_wipe_password(struct session *s);
/* Send a (static) reply after delay seconds, holding input meanwhile, then
 * finish the command. Used for failed logins. */
void session_reply_after(struct session *s, double delay, const char *line);
/* The TLS handshake failed: the stream reported it through the handshake
 * callback (not on_close), so the session ends here. */
void session_tls_failed(struct session *s, enum net_stream_error err);

/* session_listing.c: the login's select and listing steps (LOGIN_SELECT,
 * LOGIN_LISTING) for s->login.folder, served from the node's listing cache
 * when the upstream says nothing changed. */
void session_listing_select(struct session *s);
void session_listing_fetch(struct session *s);
/* Frees the login's listing work (safe when there is none). */
void session_listing_release(struct session *s);

/* session_auth.c */
void session_cmd_capa(struct session *s, const struct pop3_command *cmd);
void session_cmd_stls(struct session *s, const struct pop3_command *cmd);
void session_cmd_user(struct session *s, const struct pop3_command *cmd);
void session_cmd_pass(struct session *s, const struct pop3_command *cmd);
void session_cmd_auth(struct session *s, const struct pop3_command *cmd);
void session_sasl_response(struct session *s, const char *line, size_t len);
void session_start_tls_handshake(struct session *s);

/* session_transaction.c */
void session_cmd_stat(struct session *s, const struct pop3_command *cmd);
void session_cmd_list(struct session *s, const struct pop3_command *cmd);
void session_cmd_uidl(struct session *s, const struct pop3_command *cmd);
void session_cmd_retr(struct session *s, const struct pop3_command *cmd);
void session_cmd_top(struct session *s, const struct pop3_command *cmd);
void session_cmd_dele(struct session *s, const struct pop3_command *cmd);
void session_cmd_rset(struct session *s, const struct pop3_command *cmd);
void session_cmd_noop(struct session *s, const struct pop3_command *cmd);
/* The client drained its output: continue a listing or a paused transfer. */
void session_output_drained(struct session *s);

/* session_prefetch.c: RETR of a small message fetches the next small
 * messages of its folder with it, at most [server] prefetch_kb KiB held. */
/* Plans the batch for RETR of msgnum (releasing any batch held, unless
 * msgnum was asked for in it) and allocates its buffer; false when prefetch
 * is off, msgnum belongs to the batch held, or the batch would be msgnum
 * alone: then it streams as before. */
bool session_prefetch_plan(struct session *s, uint32_t msgnum);
/* Sends the planned batch's UID FETCH (its folder selected); done as for
 * any IMAP operation. */
void session_prefetch_fetch(struct session *s, imap_done_cb *done);
/* The batch's UID FETCH completed with r: logged (debug); anything but OK
 * frees the batch. */
void session_prefetch_done(struct session *s, enum imap_result r);
/* The held body of message msgnum: valid until the next release. */
bool session_prefetch_body(const struct session *s, uint32_t msgnum, const char **body, size_t *len);
/* RETR sent msgnum from the buffer: the batch ends after its last message. */
void session_prefetch_served(struct session *s, uint32_t msgnum);
/* Frees the batch (safe when there is none). */
void session_prefetch_release(struct session *s);

/* session_commit.c */
void session_cmd_quit(struct session *s, const struct pop3_command *cmd);

/* session_login.c: the login, entered after PASS or AUTH gave credentials
 * (s->user, s->password). Each step's body ends with exactly one of
 * login_step_done (the step succeeded: session_login.c enters the next) or
 * login_fail / login_fail_upstream (the login ends: logged, everything the
 * login took is released, and the reply goes out, after auth_failure_delay
 * when delayed). */
void login_start(struct session *s);
void login_step_done(struct session *s);
void login_fail(struct session *s, const char *reply, const char *reason, bool delayed);
/* The upstream's answer r, mapped to the reply (translate/reply_code.h). */
void login_fail_upstream(struct session *s, enum imap_result r);

/* The step bodies kept in their concern's file (session_login.c orders them): */
/* session_sizes.c: LOGIN_MEASURE_SIZES. With exact_sizes (or auto against
 * Exchange), measure every message no node measured yet. */
void session_measure_sizes(struct session *s);

/* session_trash.c */
/* Find the trash mailbox once per session (trash_folder, else \Trash), then
 * next(s, r): OK (found, or known missing: see session_trash_name) or the
 * upstream error of the lookup. */
void session_trash_resolve(struct session *s, void (*next)(struct session *s, enum imap_result r));
/* The trash mailbox, NULL when the server has none. */
const char *session_trash_name(const struct session *s);
/* Logs the trash problem once per session, with what to configure. */
void session_trash_warn_once(struct session *s, const char *problem);
void session_trash_release(struct session *s);

/* session_mapping.c: LOGIN_MAPPING. The user's Redis override and the
 * mapping it selects: sets s->mapping and s->policy. */
void session_resolve_mapping(struct session *s);

/* session_legacy.c */
void session_legacy_init(struct session *s);
/* LOGIN_LEGACY_CHECK: how many legacy UIDLs the user has; the lazy import
 * first if the mapping asks for one and none ran. */
void session_legacy_prepare(struct session *s);
/* LOGIN_LEGACY_MATCH: the first folder's messages matched to legacy UIDLs
 * (nothing to do when the user has none). */
void session_legacy_match(struct session *s);
/* Once the maildrop is final (after the view): the session's UIDL table. */
void session_legacy_build(struct session *s);
void session_legacy_release(struct session *s);

/* session_device.c */
void session_device_init(struct session *s);
/* LOGIN_DEVICE_LOCK: take the device lock (kept refreshed until release). */
void session_device_lock(struct session *s);
/* LOGIN_STATE_LOAD: load the device's state and measured sizes, apply the view. */
void session_device_load(struct session *s);
/* A size measured while streaming, for every node's LIST (fire and forget). */
void session_device_store_size(struct session *s, const struct maildrop_entry *e);
/* QUIT: first check Redis (lock still ours) before anything changes upstream. */
void session_device_precheck(struct session *s, void (*next)(struct session *s));
/* QUIT: the one atomic Redis step after the upstream changes. */
void session_device_commit(struct session *s, void (*next)(struct session *s));
/* Session end: cancel requests, release the lock (compare-and-delete). */
void session_device_release(struct session *s);
/* Called by session_device_* when a QUIT step fails. */
void session_commit_failed(struct session *s, const char *step, const char *reason);

#endif
