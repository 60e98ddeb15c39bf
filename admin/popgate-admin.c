/* popgate-admin: manage popgate's state in Redis from the command line:
 * per-user policy overrides, devices, legacy UIDLs, and node statistics.
 * popgate-admin(8) is the manual; this file reads the options and hands the
 * command to its group (admin_map.c, admin_device.c, admin_uidl.c,
 * admin_stats.c, admin_oauth.c, admin_app_password.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "admin_user.h"
#include "version.h"

/* Arguments after the options; far more than any command takes. */
#define ARGS_MAX 256

struct group {
    const char *name;
    int (*run)(struct admin *a, int argc, char **argv);
    const char *synopsis;
};

static const struct group groups[] = {
    { "map", admin_map_main,
      "  map set USER KEY=VALUE...     set USER's policy overrides; popgate applies them\n"
      "                                at USER's next login. KEY: view, since,\n"
      "                                from_first_login, max_age, max_messages, on_retr,\n"
      "                                on_dele (values as in popgate.conf [policy]), and\n"
      "                                mapping (the NAME of a [mapping NAME] section)\n"
      "  map get USER                  show USER's overrides\n"
      "  map del USER [KEY...]         remove USER's overrides, or only the KEYs named\n"
      "  map list                      every user with overrides\n" },
    { "device", admin_device_main,
      "  device list USER              USER's devices: first and last seen, last address,\n"
      "                                messages retrieved, view, downloaded and hidden\n"
      "  device reset USER DEVICE      forget what DEVICE downloaded and hid: it downloads\n"
      "                                again what its view shows\n"
      "  device mark-all USER DEVICE [--new]\n"
      "                                at DEVICE's next login, record all current mail as\n"
      "                                downloaded (--new: DEVICE has not logged in yet)\n"
      "  device forget USER DEVICE     remove DEVICE's state altogether\n" },
    { "uidl", admin_uidl_main,
      "  uidl import USER FILE         store legacy UIDLs from an old POP3 server, one\n"
      "                                \"<uidl> <size> <message-id>\" line each (message-id\n"
      "                                with its <>, or - if none); FILE - reads stdin\n"
      "  uidl export USER              print the stored legacy UIDLs in that format\n"
      "  uidl del USER                 remove the stored legacy UIDLs\n" },
    { "stats", admin_stats_main,
      "  stats                         sessions and logins of each running popgate node\n" },
    { "oauth", admin_oauth_main,
      "  oauth authorize USER [DEVICE] auth = oauth2, device grant: USER consents with a\n"
      "                                code shown here (on stderr); DEVICE gets the first\n"
      "                                app password; with app passwords already, one of\n"
      "                                them is read from stdin\n"
      "  oauth status [USER]           grant, status (ok, reauth-needed), last refresh and\n"
      "                                access token expiry of USER or of every user\n"
      "  oauth revoke USER             forget USER's tokens (and revoke the grant at the\n"
      "                                provider when it has an endpoint and an app\n"
      "                                password is given on stdin)\n" },
    { "app-password", admin_app_password_main,
      "  app-password add USER DEVICE  issue DEVICE's password for logins as USER#DEVICE,\n"
      "                                shown once; when USER has others, one of them is\n"
      "                                read from stdin\n"
      "  app-password list USER        the devices of USER with an app password\n"
      "  app-password revoke USER DEVICE\n"
      "                                remove DEVICE's app password\n" },
};
#define N_GROUPS (sizeof groups / sizeof groups[0])

static const struct group *find_group(const char *name)
{
    for (size_t i = 0; name && i < N_GROUPS; i++)
        if (strcmp(groups[i].name, name) == 0)
            return &groups[i];
    return NULL;
}

void admin_usage(FILE *f, const char *group)
{
    const struct group *g = find_group(group);
    fputs("usage: " ADMIN_PROG " [-c FILE] [--json] COMMAND ARGS...\n", f);
    if (g) {
        fputs(g->synopsis, f);
        return;
    }
    fputs("\ncommands:\n", f);
    for (size_t i = 0; i < N_GROUPS; i++)
        fputs(groups[i].synopsis, f);
    fputs("\noptions (anywhere on the line; -- ends them):\n"
          "  -c FILE, --config FILE  popgate's configuration, for its [redis] section\n"
          "                          (default " ADMIN_DEFAULT_CONFIG ")\n"
          "  --json                  print one JSON document instead of text\n"
          "  -h, --help              this help; COMMAND --help for one command group\n"
          "  -V, --version           the version\n"
          "\nexit status: 0 done, 1 usage error or bad input (nothing written),\n"
          "2 not found (no such user, device or entry), 3 Redis unavailable or failing\n",
          f);
}

void admin_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(ADMIN_PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int admin_usage_error(const char *group, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(ADMIN_PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    admin_usage(stderr, group);
    return ADMIN_USAGE;
}

int main(int argc, char **argv)
{
    struct admin a = { .config_path = ADMIN_DEFAULT_CONFIG };
    char *args[ARGS_MAX];
    int n_args = 0;
    bool help = false, version = false, options_done = false;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        bool option = !options_done && arg[0] == '-' && arg[1] != '\0';
        if (!option) {
            if (n_args == ARGS_MAX)
                return admin_usage_error(NULL, "too many arguments");
            args[n_args++] = argv[i];
        } else if (strcmp(arg, "--") == 0) {
            options_done = true;
        } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            help = true;
        } else if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0) {
            version = true;
        } else if (strcmp(arg, "--json") == 0) {
            a.json = true;
        } else if (strcmp(arg, "--new") == 0) {
            a.new_device = true;
        } else if (strcmp(arg, "-c") == 0 || strcmp(arg, "--config") == 0) {
            if (i + 1 == argc)
                return admin_usage_error(NULL, "%s needs a file name", arg);
            a.config_path = argv[++i];
        } else if (strncmp(arg, "--config=", 9) == 0) {
            a.config_path = arg + 9;
        } else {
            return admin_usage_error(n_args ? args[0] : NULL, "unknown option %s", arg);
        }
    }

    const struct group *g = n_args ? find_group(args[0]) : NULL;
    /* GNU conventions: --help and --version answer on stdout and exit 0,
     * whatever else the line holds; --help wins over --version. */
    if (version && !help) {
        printf(ADMIN_PROG " (popgate) " POPGATE_VERSION "\n");
        return fflush(stdout) == 0 ? ADMIN_OK : ADMIN_UNAVAILABLE;
    }
    if (help) {
        admin_usage(stdout, g ? g->name : NULL);
        return ADMIN_OK;
    }
    if (n_args == 0)
        return admin_usage_error(NULL, "no command given");
    if (!g)
        return admin_usage_error(NULL, "unknown command %s", args[0]);
    if (a.new_device && !(strcmp(g->name, "device") == 0 && n_args > 1 && strcmp(args[1], "mark-all") == 0))
        return admin_usage_error(g->name, "--new only applies to device mark-all");
    if (a.config_path[0] == '\0')
        return admin_usage_error(NULL, "empty configuration file name");

    char *output = NULL;
    size_t output_len = 0;
    a.out = open_memstream(&output, &output_len);
    if (!a.out) {
        admin_error("out of memory");
        return ADMIN_UNAVAILABLE;
    }
    int status = g->run(&a, n_args - 1, args + 1);
    admin_close(&a);
    bool buffered = fclose(a.out) == 0;
    if (status == ADMIN_OK) {
        bool written = buffered && fwrite(output, 1, output_len, stdout) == output_len;
        if (fflush(stdout) != 0 || !written) {
            admin_error("cannot write the output");
            status = ADMIN_UNAVAILABLE;
        }
    }
    free(output);
    return status;
}

int admin_dispatch(struct admin *a, const char *group, const struct admin_subcommand *table, size_t n,
                   int argc, char **argv)
{
    if (argc == 0)
        return admin_usage_error(group, "%s needs a subcommand", group);
    for (size_t i = 0; i < n; i++)
        if (strcmp(argv[0], table[i].name) == 0)
            return table[i].run(a, argc, argv);
    return admin_usage_error(group, "unknown subcommand %s %s", group, argv[0]);
}

int admin_bad_user(const char *group)
{
    return admin_usage_error(group, "invalid user name (1 to 255 characters, no spaces)");
}

int admin_begin_user_command(struct admin *a, int argc, char **argv, const char *group, char *user)
{
    if (argc != 2)
        return admin_usage_error(group, "%s %s needs exactly one USER", group, argv[0]);
    if (!admin_user_parse(argv[1], user))
        return admin_bad_user(group);
    return admin_connect(a);
}
