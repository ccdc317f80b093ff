/*
 * resp_parse.c - the incremental RESP request parser (server side).
 *
 * State is kept as offsets from the first byte of the current command, which
 * the caller presents again on every call until the command completes
 * (resp.h, rules 1-3). Each state consumes what it can and either moves on or
 * returns "need more", so no byte is examined twice: header lines resume
 * their CRLF search at `scan`, and a bulk payload is only length-checked.
 */
#include "proto/resp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "proto/resp_internal.h"

/* Memory kept between commands; more is freed once the command is done. */
#define RESP_KEEP_ARGS 1024
#define RESP_KEEP_SCRATCH 4096

enum pstate {
    P_START,    /* at the first byte of a command */
    P_MB_COUNT, /* in "*N\r\n" */
    P_ARG_LEN,  /* at or in "$N\r\n" */
    P_ARG_DATA, /* waiting for arg_len bytes and "\r\n" */
    P_INLINE,   /* in an inline line, searching for "\n" */
    P_ERROR
};

struct resp_parser {
    resp_limits lim;
    enum pstate state;
    size_t pos;       /* next unparsed byte */
    size_t line;      /* where the current line starts */
    size_t scan;      /* terminator search resumes here */
    size_t argc_want; /* from "*N" */
    size_t arg_len;   /* from "$N" */
    size_t nargs;
    size_t cap;      /* of argv and offs */
    resp_arg *argv;  /* lengths while parsing; pointers set on completion */
    size_t *offs;    /* argument offsets from the command's first byte */
    uint8_t *scratch; /* unescaped inline arguments (the one copy) */
    size_t scratch_cap;
    char err[96];
};

int resp_parser_new(resp_parser **out, const resp_limits *lim)
{
    resp_parser *p = calloc(1, sizeof *p);
    if (p == NULL)
        return CAIRN_ERR_NOMEM;
    p->lim = lim ? *lim : resp_limits_default();
    *out = p;
    return 0;
}

void resp_parser_free(resp_parser *p)
{
    if (p == NULL)
        return;
    free(p->argv);
    free(p->offs);
    free(p->scratch);
    free(p);
}

static void start_command(resp_parser *p)
{
    p->state = P_START;
    p->pos = p->line = p->scan = 0;
    p->argc_want = p->arg_len = p->nargs = 0;
}

void resp_parser_reset(resp_parser *p)
{
    start_command(p);
    p->err[0] = '\0';
}

const char *resp_parser_errmsg(const resp_parser *p)
{
    return p->err;
}

static int fail(resp_parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(resp_parser *p, const char *fmt, ...)
{
    int n = snprintf(p->err, sizeof p->err, "Protocol error: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, sizeof p->err - (size_t)n, fmt, ap);
    va_end(ap);
    p->state = P_ERROR;
    return CAIRN_ERR_PROTO;
}

/* Room for one more argument. Growth follows arguments actually received,
 * never the announced count, so "*1000000\r\n" alone allocates nothing. */
static int grow_args(resp_parser *p)
{
    if (p->nargs < p->cap)
        return 0;
    size_t cap = p->cap ? p->cap * 2 : 16;
    resp_arg *argv = realloc(p->argv, cap * sizeof *argv);
    if (argv == NULL)
        return CAIRN_ERR_NOMEM;
    p->argv = argv;
    size_t *offs = realloc(p->offs, cap * sizeof *offs);
    if (offs == NULL)
        return CAIRN_ERR_NOMEM;
    p->offs = offs;
    p->cap = cap;
    return 0;
}

static int too_big(resp_parser *p)
{
    return fail(p, "request too big (more than %zu bytes)",
                p->lim.message_max);
}

/* Read a "*N" or "$N" line starting at p->line; 1 with *v, 0 = more. */
static int number_line(resp_parser *p, const uint8_t *data, size_t len,
                       const char *what, int64_t *v)
{
    size_t eol;
    switch (resp_find_crlf(data, len, p->line + 1, RESP_NUM_LINE_MAX, &p->scan,
                           &eol)) {
    case RESP_LINE_MORE:
        return 0;
    case RESP_LINE_TOOLONG:
        return fail(p, "too big %s count string", what);
    case RESP_LINE_BADEND:
        return fail(p, "invalid %s length", what);
    case RESP_LINE_OK:
        break;
    }
    if (!resp_parse_i64(data + p->line + 1, eol - p->line - 1, v))
        return fail(p, "invalid %s length", what);
    p->pos = eol + 2;
    if (p->pos > p->lim.message_max)
        return too_big(p);
    return 1;
}

static int parse_mb_count(resp_parser *p, const uint8_t *data, size_t len)
{
    int64_t n;
    int rc = number_line(p, data, len, "multibulk", &n);
    if (rc <= 0)
        return rc;
    if (n < 0 || (uint64_t)n > p->lim.args_max)
        return fail(p, "invalid multibulk length");
    if (n == 0) { /* empty command: skipped, as Redis does */
        p->state = P_START;
        return 1;
    }
    p->argc_want = (size_t)n;
    p->nargs = 0;
    p->line = p->scan = p->pos;
    p->state = P_ARG_LEN;
    return 1;
}

static int parse_arg_len(resp_parser *p, const uint8_t *data, size_t len)
{
    if (p->line >= len)
        return 0;
    uint8_t c = data[p->line];
    if (c != '$') {
        if (c >= 0x20 && c < 0x7f)
            return fail(p, "expected '$', got '%c'", c);
        return fail(p, "expected '$', got '\\x%02x'", c);
    }
    if (p->scan == p->line)
        p->scan++;
    int64_t n;
    int rc = number_line(p, data, len, "bulk", &n);
    if (rc <= 0)
        return rc;
    if (n < 0 || (uint64_t)n > p->lim.bulk_max)
        return fail(p, "invalid bulk length");
    if ((uint64_t)n + 2 > p->lim.message_max - p->pos)
        return too_big(p);
    if ((rc = grow_args(p)) != 0)
        return rc;
    p->arg_len = (size_t)n;
    p->state = P_ARG_DATA;
    return 1;
}

/* 1: the command is complete; 0: more bytes needed or more arguments. */
static int parse_arg_data(resp_parser *p, const uint8_t *data, size_t len)
{
    if (len - p->pos < p->arg_len + 2)
        return 0;
    size_t end = p->pos + p->arg_len;
    if (data[end] != '\r' || data[end + 1] != '\n')
        return fail(p, "bulk string not terminated by CRLF");
    p->offs[p->nargs] = p->pos;
    p->argv[p->nargs].len = p->arg_len;
    p->nargs++;
    p->pos = end + 2;
    p->line = p->scan = p->pos;
    p->state = P_ARG_LEN;
    return p->nargs == p->argc_want;
}

static bool is_blank(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' ||
           c == '\0';
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The escape after a backslash in a "double quoted" inline argument, as
 * Redis's sdssplitargs: \xHH, \n \r \t \b \a, else the character itself.
 * Returns how many input bytes after the backslash it used. */
static size_t unescape(const uint8_t *s, const uint8_t *end, uint8_t *out)
{
    if (s[0] == 'x' && end - s >= 3 && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
        *out = (uint8_t)(hexval(s[1]) * 16 + hexval(s[2]));
        return 3;
    }
    switch (s[0]) {
    case 'n': *out = '\n'; break;
    case 'r': *out = '\r'; break;
    case 't': *out = '\t'; break;
    case 'b': *out = '\b'; break;
    case 'a': *out = '\a'; break;
    default: *out = s[0]; break;
    }
    return 1;
}

/*
 * One inline argument starting at *sp (not blank), unquoted and unescaped
 * into *op. A quote may open anywhere in a token (a"b c" is one argument),
 * and a closing quote must be followed by a blank or the end of the line.
 * Returns false on unbalanced quotes.
 */
static bool inline_token(const uint8_t **sp, const uint8_t *end, uint8_t **op)
{
    const uint8_t *s = *sp;
    uint8_t *o = *op;
    uint8_t quote = 0;
    while (s < end) {
        uint8_t c = *s++;
        if (quote == 0) {
            if (is_blank(c))
                break;
            if (c == '"' || c == '\'')
                quote = c;
            else
                *o++ = c;
        } else if (c == '\\' && s < end && quote == '"') {
            s += unescape(s, end, o++);
        } else if (c == '\\' && s < end && *s == '\'') {
            *o++ = *s++; /* the one escape of single quotes */
        } else if (c == quote) {
            if (s < end && !is_blank(*s))
                return false;
            quote = 0;
        } else {
            *o++ = c;
        }
    }
    *sp = s;
    *op = o;
    return quote == 0;
}

/* Split the inline line [line, eol) into arguments in the scratch buffer. */
static int split_inline(resp_parser *p, const uint8_t *data, size_t eol)
{
    size_t n = eol - p->line;
    if (n > p->scratch_cap) {
        uint8_t *s = realloc(p->scratch, n);
        if (s == NULL)
            return CAIRN_ERR_NOMEM;
        p->scratch = s;
        p->scratch_cap = n;
    }
    const uint8_t *s = data + p->line, *end = data + eol;
    uint8_t *o = p->scratch;
    p->nargs = 0;
    for (;;) {
        while (s < end && is_blank(*s))
            s++;
        if (s == end)
            return 0;
        if (p->nargs == p->lim.args_max)
            return fail(p, "too many arguments in inline request");
        int rc = grow_args(p);
        if (rc != 0)
            return rc;
        uint8_t *arg = o;
        if (!inline_token(&s, end, &o))
            return fail(p, "unbalanced quotes in request");
        p->offs[p->nargs] = (size_t)(arg - p->scratch);
        p->argv[p->nargs].len = (size_t)(o - arg);
        p->nargs++;
    }
}

/* 1: complete (or an empty line skipped, with nargs 0); 0: more needed. */
static int parse_inline(resp_parser *p, const uint8_t *data, size_t len)
{
    size_t limit = p->line + p->lim.inline_max + 2; /* body, '\r', '\n' */
    size_t end = len < limit ? len : limit;
    const uint8_t *nl = NULL;
    if (p->scan < end)
        nl = memchr(data + p->scan, '\n', end - p->scan);
    if (nl == NULL) {
        p->scan = end > p->scan ? end : p->scan;
        if (len >= limit)
            return fail(p, "too big inline request");
        return 0;
    }
    size_t at = (size_t)(nl - data);
    size_t eol = at > p->line && data[at - 1] == '\r' ? at - 1 : at;
    if (eol - p->line > p->lim.inline_max)
        return fail(p, "too big inline request");
    if (at + 1 > p->lim.message_max)
        return too_big(p);
    int rc = split_inline(p, data, eol);
    if (rc != 0)
        return rc;
    p->pos = at + 1;
    return 1;
}

static void finish(resp_parser *p, const uint8_t *base, resp_cmd *cmd,
                   bool is_inline)
{
    for (size_t i = 0; i < p->nargs; i++)
        p->argv[i].p = base + p->offs[i];
    cmd->argc = p->nargs;
    cmd->argv = p->argv;
    cmd->consumed = p->pos;
    cmd->is_inline = is_inline;
    start_command(p);
}

/* At the first byte of a command: choose multibulk or inline. */
static void parse_start(resp_parser *p, const uint8_t *data)
{
    p->line = p->pos;
    p->scan = p->pos + 1;
    if (data[p->pos] == '*') {
        p->state = P_MB_COUNT;
    } else {
        p->scan = p->pos;
        p->state = P_INLINE;
    }
}

/* Between commands, give back what one huge command made us hold, so a
 * connection that once sent a million arguments does not keep 24 MiB for
 * its lifetime. The previous command's argv dies here (resp.h, rule 3). */
static void shrink_idle(resp_parser *p)
{
    if (p->cap > RESP_KEEP_ARGS) {
        free(p->argv);
        free(p->offs);
        p->argv = NULL;
        p->offs = NULL;
        p->cap = 0;
    }
    if (p->scratch_cap > RESP_KEEP_SCRATCH) {
        free(p->scratch);
        p->scratch = NULL;
        p->scratch_cap = 0;
    }
}

int resp_parse_command(resp_parser *p, const uint8_t *data, size_t len,
                       resp_cmd *cmd)
{
    int rc = 0;
    if (p->state == P_START && p->pos == 0)
        shrink_idle(p);
    for (;;) {
        switch (p->state) {
        case P_ERROR:
            return CAIRN_ERR_PROTO;
        case P_START:
            if (p->pos >= len)
                return 0;
            parse_start(p, data);
            continue;
        case P_MB_COUNT:
            rc = parse_mb_count(p, data, len);
            break;
        case P_ARG_LEN:
            rc = parse_arg_len(p, data, len);
            break;
        case P_ARG_DATA:
            rc = parse_arg_data(p, data, len);
            if (rc == 1) {
                finish(p, data, cmd, false);
                return 1;
            }
            if (rc == 0 && p->state == P_ARG_LEN)
                continue; /* one argument done, more to come */
            break;
        case P_INLINE:
            rc = parse_inline(p, data, len);
            if (rc == 1 && p->nargs > 0) {
                finish(p, p->scratch, cmd, true);
                return 1;
            }
            if (rc == 1) { /* blank line: skipped, as Redis does */
                p->state = P_START;
                continue;
            }
            break;
        }
        if (rc <= 0)
            return rc;
    }
}
