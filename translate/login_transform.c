/* login_transform.c: see login_transform.h. */
#include "login_transform.h"

#include <string.h>
#include <strings.h>

static bool domain_valid(const char *d)
{
    if (!*d || strlen(d) > LOGIN_TRANSFORM_ARG_MAX)
        return false;
    for (const char *p = d; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-'))
            return false;
    return true;
}

static bool template_valid(const char *t)
{
    if (!*t || strlen(t) > LOGIN_TRANSFORM_ARG_MAX)
        return false;
    bool names_user = false;
    for (const char *p = t; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return false;
        if (*p != '%')
            continue;
        p++;
        if (*p == 'u' || *p == 'n')
            names_user = true;
        else if (*p != 'd' && *p != '%')
            return false;
    }
    return names_user;
}

bool login_transform_parse(const char *spec, struct login_transform *t)
{
    static const struct {
        const char *name;
        enum login_transform_kind kind;
        bool (*arg_valid)(const char *arg);
    } kinds[] = {
        { "keep", LOGIN_KEEP, NULL },
        { "strip-domain", LOGIN_STRIP_DOMAIN, NULL },
        { "add-domain", LOGIN_ADD_DOMAIN, domain_valid },
        { "template", LOGIN_TEMPLATE, template_valid },
    };
    size_t name_len = strcspn(spec, " \t");
    const char *arg = spec + name_len;
    while (*arg == ' ' || *arg == '\t')
        arg++;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strlen(kinds[i].name) != name_len || strncasecmp(spec, kinds[i].name, name_len) != 0)
            continue;
        if (kinds[i].arg_valid ? !kinds[i].arg_valid(arg) : *arg != '\0')
            return false;
        t->kind = kinds[i].kind;
        strcpy(t->arg, kinds[i].arg_valid ? arg : "");
        return true;
    }
    return false;
}

/* Appends n bytes; false once the result would not fit. */
static bool put(char *out, size_t *len, const char *s, size_t n)
{
    if (*len + n > LOGIN_USER_MAX)
        return false;
    memcpy(out + *len, s, n);
    *len += n;
    return true;
}

bool login_transform_apply(const struct login_transform *t, const char *login,
                           char out[LOGIN_USER_MAX + 1])
{
    const char *at = strrchr(login, '@');
    size_t login_len = strlen(login);
    size_t local_len = at ? (size_t)(at - login) : login_len;
    const char *domain = at ? at + 1 : "";
    size_t len = 0;
    bool ok = true;
    switch (t->kind) {
    case LOGIN_KEEP:
        ok = put(out, &len, login, login_len);
        break;
    case LOGIN_STRIP_DOMAIN:
        ok = put(out, &len, login, local_len);
        break;
    case LOGIN_ADD_DOMAIN:
        ok = put(out, &len, login, login_len);
        if (ok && !at)
            ok = put(out, &len, "@", 1) && put(out, &len, t->arg, strlen(t->arg));
        break;
    case LOGIN_TEMPLATE:
        for (const char *p = t->arg; *p && ok; p++) {
            if (*p != '%') {
                ok = put(out, &len, p, 1);
                continue;
            }
            p++;
            if (*p == 'u')
                ok = put(out, &len, login, login_len);
            else if (*p == 'n')
                ok = put(out, &len, login, local_len);
            else if (*p == 'd')
                ok = put(out, &len, domain, strlen(domain));
            else
                ok = put(out, &len, "%", 1);
        }
        break;
    }
    out[len] = '\0';
    return ok && len > 0;
}
