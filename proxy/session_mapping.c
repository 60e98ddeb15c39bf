/* session_mapping.c: which mapping a login uses (README.md "Mappings"): the
 * user's Redis override (`popgate-admin map set`) may name one and change
 * the policy; otherwise the config's users / domains lists decide. The
 * override is read at every login, so a change applies at the user's next
 * login without a restart or a reload. */
#include "session_internal.h"

#include <string.h>
#include <strings.h>

#include "log.h"

/* The override key that routes a user to a named mapping; every other key
 * is a [policy] key (view_policy_set). */
#define OVERRIDE_MAPPING_KEY "mapping"

static void on_override_loaded(enum device_result r, const redisReply *const *pairs, size_t n_pairs, void *arg)
{
    struct session *s = arg;
    s->device.request = NULL;
    if (r != DEVICE_OK) {
        login_fail(s, "-ERR [SYS/TEMP] Device state unavailable, try again later.",
                                  "redis", false);
        return;
    }
    const struct mapping *m = config_find_mapping(s->cfg, s->device.login.user);
    /* The mapping first, since the policy overrides apply on top of it. */
    for (size_t i = 0; i < n_pairs; i++) {
        const redisReply *key = pairs[2 * i], *value = pairs[2 * i + 1];
        if (key->type != REDIS_REPLY_STRING || value->type != REDIS_REPLY_STRING ||
            strcasecmp(key->str, OVERRIDE_MAPPING_KEY) != 0)
            continue;
        const struct mapping *named = config_mapping_named(s->cfg, value->str);
        if (named)
            m = named;
        else
            log_event(LOG_LEVEL_WARN, s->id, "override-ignored", "user", s->device.login.user,
                      "key", OVERRIDE_MAPPING_KEY, "reason", "no such mapping", LOG_END);
    }
    s->mapping = m;
    s->policy = m->policy;
    for (size_t i = 0; i < n_pairs; i++) {
        const redisReply *key = pairs[2 * i], *value = pairs[2 * i + 1];
        bool is_mapping_key = key->type == REDIS_REPLY_STRING && strcasecmp(key->str, OVERRIDE_MAPPING_KEY) == 0;
        if (is_mapping_key)
            continue;
        if (key->type != REDIS_REPLY_STRING || value->type != REDIS_REPLY_STRING ||
            !view_policy_set(&s->policy, key->str, value->str))
            log_event(LOG_LEVEL_WARN, s->id, "override-ignored", "user", s->device.login.user,
                      "key", key->type == REDIS_REPLY_STRING ? key->str : "?", LOG_END);
    }
    login_step_done(s);
}

void session_resolve_mapping(struct session *s)
{
    s->device.request = device_override_load(s->gw->redis, s->device.login.state_user, on_override_loaded, s);
    if (!s->device.request)
        on_override_loaded(DEVICE_UNAVAILABLE, NULL, 0, s);
}
