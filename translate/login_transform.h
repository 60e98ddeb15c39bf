/* login_transform: the user name a mapping sends upstream, made from the
 * login the POP3 client typed (without its #device suffix). Pure.
 *
 * Spellings, as written after `login =` in the config:
 *   keep                    the login as typed (the default)
 *   strip-domain            "carol@example.org" -> "carol"
 *   add-domain example.com  "carol" -> "carol@example.com"; a login that has
 *                           a domain already keeps it
 *   template %n@new.example expand %u (the whole login), %n (the part before
 *                           the last '@', or all of it), %d (the part after the
 *                           last '@', or empty), %% (a percent sign)
 * A template must use %u or %n, so two users never reach the same upstream
 * account by accident. */
#ifndef POPGATE_LOGIN_TRANSFORM_H
#define POPGATE_LOGIN_TRANSFORM_H

#include <stdbool.h>
#include <stddef.h>

#include "login_name.h"

#define LOGIN_TRANSFORM_ARG_MAX 128   /* the domain or the template */

enum login_transform_kind {
    LOGIN_KEEP = 0,
    LOGIN_STRIP_DOMAIN,
    LOGIN_ADD_DOMAIN,
    LOGIN_TEMPLATE,
};

struct login_transform {
    enum login_transform_kind kind;
    char arg[LOGIN_TRANSFORM_ARG_MAX + 1];
};

/* False, with *t untouched, for an unknown kind, a missing or surplus
 * argument, a domain with characters other than [A-Za-z0-9.-], or a template
 * with an unknown %-sequence or without %u / %n. */
bool login_transform_parse(const char *spec, struct login_transform *t);

/* Writes the upstream user name into out (NUL-terminated). False when the
 * result would be empty or longer than LOGIN_USER_MAX. */
bool login_transform_apply(const struct login_transform *t, const char *login,
                           char out[LOGIN_USER_MAX + 1]);

#endif
