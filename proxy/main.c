/* popgate: a POP3 gateway to IMAP servers. See README.md. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <ev.h>

#include "config.h"
#include "gateway.h"
#include "http_client.h"
#include "oauth_json.h"
#include "log.h"
#include "version.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: popgate -c FILE [-t]\n"
            "POP3 server that keeps no mail: a gateway to an IMAP server.\n"
            "\n"
            "  -c, --config FILE  configuration file (INI; see popgate.conf(5), README.md)\n"
            "  -t, --check        check the configuration, print warnings, and exit\n"
            "  -h, --help         this help, then exit\n"
            "  -V, --version      the version, then exit\n"
            "\n"
            "Runs in the foreground and logs to stderr. SIGHUP reloads the configuration,\n"
            "SIGTERM drains and stops. Manual: popgate(8).\n");
}

/* GNU style: the complaint (getopt printed it, or the caller did), then a
 * pointer to --help rather than the whole text. */
static int usage_error(void)
{
    fprintf(stderr, "Try 'popgate --help' for more information.\n");
    return 2;
}

static void version(void)
{
    printf("popgate " POPGATE_VERSION "\n");
}

static void print_warning(const char *msg, void *arg)
{
    (void)arg;
    printf("warning: %s\n", msg);
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    bool check_only = false;
    /* GNU conventions: --help and --version print to stdout and exit 0;
     * a usage error prints the usage to stderr and exits 2. */
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check", no_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "c:thV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 't': check_only = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': version(); return 0;
        default: return usage_error();
        }
    }
    if (!config_path || optind != argc) {
        if (!config_path)
            fprintf(stderr, "popgate: no configuration file given (-c FILE)\n");
        else
            fprintf(stderr, "popgate: unexpected argument %s\n", argv[optind]);
        return usage_error();
    }

    char err[512];
    struct config *config = config_load(config_path, err, sizeof err);
    if (!config) {
        fprintf(stderr, "popgate: %s: %s\n", config_path, err);
        return 1;
    }
    if (check_only) {
        unsigned warnings = config_warnings(config, print_warning, NULL);
        printf("%s: configuration ok (%u warning%s)\n", config_path, warnings, warnings == 1 ? "" : "s");
        config_unref(config);
        return 0;
    }

    /* Writes to a vanished peer must fail with EPIPE, not kill the process
     * (OpenSSL writes with write(2), which has no MSG_NOSIGNAL). */
    signal(SIGPIPE, SIG_IGN);
    log_set_level(config->log_level);
    /* Before any thread exists (curl's global state; the hash workers). */
    if (!http_client_global_init()) {
        fprintf(stderr, "popgate: cannot initialise libcurl\n");
        config_unref(config);
        return 1;
    }
    oauth_json_use_wiping_allocator();

    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    struct gateway gw;
    if (!gateway_init(&gw, loop, config_path, config)) {
        config_unref(config);
        return 1;
    }
    if (!gateway_drop_privileges(config, err, sizeof err)) {
        log_event(LOG_LEVEL_ERROR, NULL, "privileges", "error", err, LOG_END);
        gateway_deinit(&gw);
        return 1;
    }
    log_event(LOG_LEVEL_INFO, NULL, "started", "config", config_path,
              "user", config->run_user[0] ? config->run_user : NULL, LOG_END);
    gateway_run(&gw);
    gateway_deinit(&gw);
    log_event(LOG_LEVEL_INFO, NULL, "stopped", LOG_END);
    return 0;
}
