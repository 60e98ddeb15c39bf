/* Fuzz target: the POP3 command reader and parser (translate/pop3_parse.h).
 *
 * The input is a client's byte stream. It is read three ways: fed whole, fed
 * one byte at a time and fed in chunks split where the input's hash says. All
 * three must report the same events as a reference reader written from the
 * header's contract (split at LF, one CR before it dropped, too long before
 * invalid). Every READY line goes through pop3_command_parse(), whose verb and
 * arguments are checked against a plain re-split of the line, and every
 * argument through pop3_parse_msgnum() and pop3_parse_count(), checked against
 * 64-bit arithmetic. A line whose verb is AUTH raises the limit for the next
 * line, as the session does for a SASL continuation.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "fuzz_input.h"
#include "pop3_parse.h"

enum { EV_READY = 1, EV_TOO_LONG, EV_INVALID };

/* Message-number bounds a maildrop may have: none, one message, a few, the
 * most a 32-bit count allows. */
static const uint32_t msgnum_max[] = { 0, 1, 7, UINT32_MAX };

static bool all_digits(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Decimal value saturated at UINT64_MAX; every digit string has one. */
static uint64_t decimal_value(const char *s, size_t len)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return UINT64_MAX;
        v = v * 10 + d;
    }
    return v;
}

static void check_numbers(const char *arg, size_t len)
{
    bool digits = all_digits(arg, len);
    uint64_t v = digits ? decimal_value(arg, len) : 0;

    for (size_t i = 0; i < sizeof msgnum_max / sizeof msgnum_max[0]; i++) {
        uint32_t got = 0xdeadbeef;
        bool ok = pop3_parse_msgnum(arg, msgnum_max[i], &got);
        bool want = digits && v >= 1 && v <= msgnum_max[i];
        FUZZ_CHECK(ok == want);
        FUZZ_CHECK(ok ? got == v : got == 0xdeadbeef);
    }

    uint32_t count = 0xdeadbeef;
    bool ok = pop3_parse_count(arg, &count);
    FUZZ_CHECK(ok == digits);
    if (ok)
        FUZZ_CHECK(count == (v > UINT32_MAX ? UINT32_MAX : v));
}

/* Checks one command against the line it came from; returns its verb. */
static enum pop3_verb check_command(const char *line, size_t len)
{
    char buf[POP3_SASL_LINE_MAX + 1];   /* a READY line, at most the raised limit, and its NUL */
    struct pop3_command cmd;

    FUZZ_CHECK(len < sizeof buf);
    memcpy(buf, line, len + 1);
    pop3_command_parse(buf, &cmd);

    const char *space = memchr(line, ' ', len);
    size_t verb_len = space ? (size_t)(space - line) : len;
    enum pop3_verb want = POP3_UNKNOWN;
    for (unsigned v = POP3_UNKNOWN + 1; v < POP3_VERB_COUNT; v++) {
        const char *name = pop3_verb_name((enum pop3_verb)v);
        if (strlen(name) == verb_len && strncasecmp(name, line, verb_len) == 0)
            want = (enum pop3_verb)v;
    }
    FUZZ_CHECK(cmd.verb == want);
    FUZZ_CHECK(cmd.argc <= POP3_MAX_ARGS);
    FUZZ_CHECK(cmd.rest != NULL);

    if (space == NULL) {
        FUZZ_CHECK(cmd.argc == 0 && !cmd.too_many_args && cmd.rest[0] == '\0');
        return cmd.verb;
    }

    const char *args = space + 1;
    size_t args_len = len - verb_len - 1;
    if (cmd.verb == POP3_PASS) {
        /* The password is the rest of the line, spaces and all. */
        FUZZ_CHECK(cmd.rest == buf + verb_len + 1);
        FUZZ_CHECK(strlen(cmd.rest) == args_len && memcmp(cmd.rest, args, args_len) == 0);
        FUZZ_CHECK(cmd.argc == (args_len > 0 ? 1u : 0u) && !cmd.too_many_args);
        if (cmd.argc == 1)
            FUZZ_CHECK(cmd.argv[0] == cmd.rest && cmd.argv_len[0] == args_len);
        return cmd.verb;
    }

    FUZZ_CHECK(cmd.rest[0] == '\0');
    /* Reference split: runs of non-space bytes. */
    unsigned n = 0;
    size_t i = 0;
    while (i < args_len) {
        while (i < args_len && args[i] == ' ')
            i++;
        if (i == args_len)
            break;
        size_t start = i;
        while (i < args_len && args[i] != ' ')
            i++;
        if (n < POP3_MAX_ARGS) {
            FUZZ_CHECK(n < cmd.argc);
            FUZZ_CHECK(cmd.argv[n] == buf + verb_len + 1 + start);
            FUZZ_CHECK(cmd.argv_len[n] == i - start && strlen(cmd.argv[n]) == i - start);
            FUZZ_CHECK(memcmp(cmd.argv[n], args + start, i - start) == 0);
            check_numbers(cmd.argv[n], cmd.argv_len[n]);
        }
        n++;
    }
    FUZZ_CHECK(cmd.argc == (n < POP3_MAX_ARGS ? n : POP3_MAX_ARGS));
    FUZZ_CHECK(cmd.too_many_args == (n > POP3_MAX_ARGS));
    return cmd.verb;
}

/* The session's reaction to an event that the reader must see: AUTH may be
 * followed by a long SASL continuation line. */
static void on_event(struct pop3_line_reader *r, struct fuzz_log *log, uint8_t type,
                     const char *line, size_t len)
{
    fuzz_log_event(log, type, line, len);
    if (type == EV_READY && check_command(line, len) == POP3_AUTH)
        pop3_line_reader_allow_long_line(r);
}

/* The contract, written out plainly for the whole input at once. */
static void reference_events(const char *in, size_t len, struct fuzz_log *log)
{
    size_t limit = POP3_LINE_MAX;
    size_t start = 0;

    while (start < len) {
        const char *lf = memchr(in + start, '\n', len - start);
        size_t end = lf ? (size_t)(lf - in) : len;
        size_t n = end - start;
        /* Only a CR right before the LF (or at the end of the input, where
         * it may still be the CR of a CRLF) is not part of the line. */
        if (n > 0 && in[end - 1] == '\r')
            n--;
        if (n > limit) {
            fuzz_log_event(log, EV_TOO_LONG, NULL, 0);
            limit = POP3_LINE_MAX;
        } else if (lf == NULL) {
            break;
        } else if (memchr(in + start, '\0', n) != NULL) {
            fuzz_log_event(log, EV_INVALID, NULL, 0);
            limit = POP3_LINE_MAX;
        } else {
            fuzz_log_event(log, EV_READY, in + start, n);
            const char *space = memchr(in + start, ' ', n);
            size_t verb_len = space ? (size_t)(space - (in + start)) : n;
            limit = (verb_len == 4 && strncasecmp(in + start, "AUTH", 4) == 0) ? POP3_SASL_LINE_MAX
                                                                                : POP3_LINE_MAX;
        }
        if (lf == NULL)
            break;
        start = end + 1;
    }
}

/* Feeds in[0..len) in chunks of at most max_chunk bytes, or of sizes drawn
 * from rng when it is not NULL. */
static void run_reader(const char *in, size_t len, struct fuzz_rng *rng, size_t max_chunk,
                       struct fuzz_log *log)
{
    struct pop3_line_reader r;
    size_t pos = 0;

    pop3_line_reader_init(&r);
    while (pos < len) {
        size_t chunk = rng ? fuzz_chunk_len(rng, len - pos) : len - pos;
        if (chunk > max_chunk)
            chunk = max_chunk;
        size_t end = pos + chunk;
        while (pos < end) {
            enum pop3_line_status st;
            const char *line;
            size_t line_len;
            size_t limit = r.limit;
            size_t used = pop3_line_reader_feed(&r, in + pos, end - pos, &st, &line, &line_len);
            FUZZ_CHECK(used <= end - pos);
            pos += used;
            switch (st) {
            case POP3_LINE_AGAIN:
                FUZZ_CHECK(pos == end && line == NULL);
                break;
            case POP3_LINE_READY:
                FUZZ_CHECK(used > 0 && in[pos - 1] == '\n');
                FUZZ_CHECK(line != NULL && line_len <= limit && line[line_len] == '\0');
                FUZZ_CHECK(memchr(line, '\0', line_len) == NULL);
                FUZZ_CHECK(memchr(line, '\n', line_len) == NULL);
                on_event(&r, log, EV_READY, line, line_len);
                break;
            case POP3_LINE_TOO_LONG:
                FUZZ_CHECK(used > 0 && line == NULL);
                on_event(&r, log, EV_TOO_LONG, NULL, 0);
                break;
            case POP3_LINE_INVALID:
                FUZZ_CHECK(used > 0 && in[pos - 1] == '\n' && line == NULL);
                on_event(&r, log, EV_INVALID, NULL, 0);
                break;
            default:
                FUZZ_CHECK(!"unknown status");
            }
            FUZZ_CHECK(r.len <= r.limit && r.limit <= POP3_SASL_LINE_MAX);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    struct fuzz_log want = { 0 }, whole = { 0 }, bytes = { 0 }, split = { 0 };
    struct fuzz_rng rng;

    /* Inputs no command line can carry. */
    check_numbers("", 0);
    FUZZ_CHECK(strcmp(pop3_verb_name(POP3_VERB_COUNT), "UNKNOWN") == 0);

    reference_events(in, size, &want);
    run_reader(in, size, NULL, SIZE_MAX, &whole);
    run_reader(in, size, NULL, 1, &bytes);
    fuzz_rng_init(&rng, fuzz_hash(data, size));
    run_reader(in, size, &rng, SIZE_MAX, &split);

    FUZZ_CHECK(fuzz_log_equal(&whole, &want));
    FUZZ_CHECK(fuzz_log_equal(&bytes, &want));
    FUZZ_CHECK(fuzz_log_equal(&split, &want));

    fuzz_log_free(&want);
    fuzz_log_free(&whole);
    fuzz_log_free(&bytes);
    fuzz_log_free(&split);
    return 0;
}
