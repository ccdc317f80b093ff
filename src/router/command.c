#include "command.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "common/limits.h"

typedef int (*parse_fn)(const router_arg *argv, size_t argc, router_cmd *c,
                        router_cmd_error *e);

/* One row of the command table. `arity` follows Redis: n > 0 means exactly
 * n arguments (command name included), n < 0 at least -n. */
struct cmd_def {
    const char *name;
    router_cmd_kind kind;
    int arity;
    parse_fn parse;
};

static int fail(router_cmd_error *e, const char *word, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(router_cmd_error *e, const char *word, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    e->word = word;
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

static int fail_code(router_cmd_error *e, int code)
{
    return fail(e, cairn_err_word(code), "%s", cairn_err_message(code));
}

static bool arg_is(const router_arg *a, const char *word)
{
    size_t n = strlen(word);
    return a->len == n && strncasecmp((const char *)a->p, word, n) == 0;
}

int router_check_key(size_t len)
{
    if (len < CAIRN_KEY_MIN)
        return CAIRN_ERR_KEY_EMPTY;
    if (len > CAIRN_KEY_MAX)
        return CAIRN_ERR_KEY_TOOBIG;
    return 0;
}

bool router_table_name_ok(const uint8_t *p, size_t len)
{
    if (len < 1 || len > CAIRN_TABLE_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        uint8_t ch = p[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
                  ch == '.';
        if (!ok)
            return false;
    }
    return true;
}

static int check_key(const router_arg *a, router_cmd_error *e)
{
    int rc = router_check_key(a->len);
    if (rc == CAIRN_ERR_KEY_TOOBIG)
        return fail(e, "KEYTOOBIG", "key is %zu bytes, limit %d", a->len,
                    CAIRN_KEY_MAX);
    if (rc != 0)
        return fail_code(e, rc);
    return 0;
}

static int check_value(const router_arg *a, router_cmd_error *e)
{
    if (a->len > CAIRN_VALUE_MAX)
        return fail(e, "TOOBIG", "value is %zu bytes, limit %d", a->len,
                    CAIRN_VALUE_MAX);
    return 0;
}

/* Table names are checked here so that a bad name is INVALID, and a
 * well-formed unknown one NOTABLE (decided against the cache). */
static int check_table(const router_arg *a, router_cmd_error *e)
{
    if (!router_table_name_ok(a->p, a->len))
        return fail(e, "INVALID",
                    "table name must be 1..%d bytes of letters, digits, "
                    "'_', '-', '.'",
                    CAIRN_TABLE_NAME_MAX);
    return 0;
}

/* Parse a decimal in [lo, hi]; -1 if it is not one. */
static long long parse_num(const router_arg *a, long long lo, long long hi)
{
    if (a->len == 0 || a->len > 18)
        return -1;
    long long v = 0;
    size_t i = 0;
    bool neg = a->p[0] == '-';
    if (neg)
        i = 1;
    if (i == a->len)
        return -1;
    for (; i < a->len; i++) {
        if (a->p[i] < '0' || a->p[i] > '9')
            return -1;
        v = v * 10 + (a->p[i] - '0');
    }
    if (neg)
        v = -v;
    return v < lo || v > hi ? -1 : v;
}

static void set_default_table(router_cmd *c)
{
    c->table.p = (const uint8_t *)ROUTER_DEFAULT_TABLE;
    c->table.len = strlen(ROUTER_DEFAULT_TABLE);
}

static int p_none(const router_arg *argv, size_t argc, router_cmd *c,
                  router_cmd_error *e)
{
    return 0;
}

static int p_ping(const router_arg *argv, size_t argc, router_cmd *c,
                  router_cmd_error *e)
{
    if (argc > 2)
        return fail(e, "ERR", "wrong number of arguments for 'ping' "
                              "command");
    if (argc == 2) {
        c->value = argv[1];
        c->has_value = true;
    }
    return 0;
}

static int p_echo(const router_arg *argv, size_t argc, router_cmd *c,
                  router_cmd_error *e)
{
    c->value = argv[1];
    c->has_value = true;
    return 0;
}

/* Only database 0 exists: the Redis commands see the table `default`. */
static int p_select(const router_arg *argv, size_t argc, router_cmd *c,
                    router_cmd_error *e)
{
    long long db = parse_num(&argv[1], -1000000, 1000000);
    if (argv[1].len == 0 || db == -1)
        return fail(e, "ERR", "value is not an integer or out of range");
    if (db != 0)
        return fail(e, "ERR", "DB index is out of range");
    return 0;
}

static int p_command(const router_arg *argv, size_t argc, router_cmd *c,
                     router_cmd_error *e)
{
    if (argc >= 2 && arg_is(&argv[1], "count")) {
        c->kind = RCMD_COMMAND_COUNT;
        if (argc != 2)
            return fail(e, "ERR",
                        "wrong number of arguments for 'command|count' "
                        "command");
    }
    return 0;
}

static int p_config(const router_arg *argv, size_t argc, router_cmd *c,
                    router_cmd_error *e)
{
    if (!arg_is(&argv[1], "get"))
        return fail(e, "ERR", "only CONFIG GET is supported");
    if (argc != 3)
        return fail(e, "ERR",
                    "wrong number of arguments for 'config|get' command");
    c->value = argv[2];
    return 0;
}

static int p_client(const router_arg *argv, size_t argc, router_cmd *c,
                    router_cmd_error *e)
{
    if (arg_is(&argv[1], "setname") || arg_is(&argv[1], "setinfo"))
        return 0;
    return fail(e, "ERR", "only CLIENT SETNAME and CLIENT SETINFO are "
                          "supported");
}

static int p_get(const router_arg *argv, size_t argc, router_cmd *c,
                 router_cmd_error *e)
{
    set_default_table(c);
    c->key = argv[1];
    return check_key(&c->key, e);
}

/* SET key value [NX]: NX maps onto IFABSENT; expiry and XX have no
 * equivalent in cairn and are refused rather than ignored. */
static int p_set(const router_arg *argv, size_t argc, router_cmd *c,
                 router_cmd_error *e)
{
    set_default_table(c);
    c->key = argv[1];
    c->value = argv[2];
    for (size_t i = 3; i < argc; i++) {
        if (arg_is(&argv[i], "nx"))
            c->cond = ROUTER_COND_IFABSENT;
        else if (arg_is(&argv[i], "ex") || arg_is(&argv[i], "px") ||
                 arg_is(&argv[i], "exat") || arg_is(&argv[i], "pxat") ||
                 arg_is(&argv[i], "keepttl") || arg_is(&argv[i], "xx") ||
                 arg_is(&argv[i], "get"))
            return fail(e, "UNSUPPORTED", "SET option '%.*s' is not "
                        "supported", (int)argv[i].len, argv[i].p);
        else
            return fail(e, "ERR", "syntax error");
    }
    if (check_key(&c->key, e) != 0)
        return -1;
    return check_value(&c->value, e);
}

/* DEL, EXISTS, MGET: one or more keys. */
static int p_keys(const router_arg *argv, size_t argc, router_cmd *c,
                  router_cmd_error *e)
{
    set_default_table(c);
    c->args = argv + 1;
    c->nargs = argc - 1;
    c->stride = 1;
    for (size_t i = 1; i < argc; i++)
        if (check_key(&argv[i], e) != 0)
            return -1;
    return 0;
}

static int p_mset(const router_arg *argv, size_t argc, router_cmd *c,
                  router_cmd_error *e)
{
    if ((argc - 1) % 2 != 0)
        return fail(e, "ERR", "wrong number of arguments for 'mset' "
                              "command");
    set_default_table(c);
    c->args = argv + 1;
    c->nargs = (argc - 1) / 2;
    c->stride = 2;
    for (size_t i = 1; i < argc; i += 2)
        if (check_key(&argv[i], e) != 0 || check_value(&argv[i + 1], e) != 0)
            return -1;
    return 0;
}

static int p_table_name(const router_arg *argv, size_t argc, router_cmd *c,
                        router_cmd_error *e)
{
    c->table = argv[1];
    return check_table(&c->table, e);
}

static int check_splits(router_cmd *c, router_cmd_error *e)
{
    if (c->nsplits > ROUTER_SPLITS_MAX)
        return fail(e, "INVALID", "at most %d split keys",
                    ROUTER_SPLITS_MAX);
    for (size_t i = 0; i < c->nsplits; i++) {
        if (check_key(&c->splits[i], e) != 0)
            return -1;
        if (i == 0)
            continue;
        const router_arg *a = &c->splits[i - 1], *b = &c->splits[i];
        size_t n = a->len < b->len ? a->len : b->len;
        int cmp = memcmp(a->p, b->p, n);
        if (cmp > 0 || (cmp == 0 && a->len >= b->len))
            return fail(e, "INVALID",
                        "split keys must be distinct and in increasing "
                        "order");
    }
    return 0;
}

/* TABLE.CREATE name [ENGINE btree|lsm] [REPLICAS 1|3|5] [SPLITS key ...]:
 * SPLITS takes every remaining argument, so it comes last. */
static int p_table_create(const router_arg *argv, size_t argc, router_cmd *c,
                          router_cmd_error *e)
{
    if (p_table_name(argv, argc, c, e) != 0)
        return -1;
    for (size_t i = 2; i < argc; i++) {
        if (arg_is(&argv[i], "splits")) {
            c->splits = argv + i + 1;
            c->nsplits = argc - i - 1;
            return check_splits(c, e);
        }
        if (i + 1 >= argc)
            return fail(e, "ERR", "syntax error");
        if (arg_is(&argv[i], "engine")) {
            if (arg_is(&argv[i + 1], "btree"))
                c->engine = ROUTER_ENGINE_BTREE;
            else if (arg_is(&argv[i + 1], "lsm"))
                c->engine = ROUTER_ENGINE_LSM;
            else
                return fail(e, "INVALID", "ENGINE must be btree or lsm");
        } else if (arg_is(&argv[i], "replicas")) {
            long long r = parse_num(&argv[i + 1], 1, 5);
            if (r != 1 && r != 3 && r != 5)
                return fail(e, "INVALID", "REPLICAS must be 1, 3 or 5");
            c->replicas = (int)r;
        } else {
            return fail(e, "ERR", "syntax error");
        }
        i++;
    }
    return 0;
}

/* KV.PUT table key value [IFSEQ seq | IFABSENT] */
static int p_kv_put(const router_arg *argv, size_t argc, router_cmd *c,
                    router_cmd_error *e)
{
    if (p_table_name(argv, argc, c, e) != 0)
        return -1;
    c->key = argv[2];
    c->value = argv[3];
    if (argc == 5 && arg_is(&argv[4], "ifabsent")) {
        c->cond = ROUTER_COND_IFABSENT;
    } else if (argc == 6 && arg_is(&argv[4], "ifseq")) {
        c->cond = ROUTER_COND_IFSEQ;
        if (seq_from_hex((const char *)argv[5].p, argv[5].len, &c->ifseq))
            return fail(e, "INVALID", "IFSEQ needs a sequencer of %d hex "
                        "digits", SEQ_HEX_LEN);
    } else if (argc != 4) {
        return fail(e, "ERR", "syntax error");
    }
    if (check_key(&c->key, e) != 0)
        return -1;
    return check_value(&c->value, e);
}

/* KV.GET table key [WITHSEQ] */
static int p_kv_get(const router_arg *argv, size_t argc, router_cmd *c,
                    router_cmd_error *e)
{
    if (p_table_name(argv, argc, c, e) != 0)
        return -1;
    c->key = argv[2];
    if (argc == 4) {
        if (!arg_is(&argv[3], "withseq"))
            return fail(e, "ERR", "syntax error");
        c->withseq = true;
    }
    return check_key(&c->key, e);
}

static int p_kv_del(const router_arg *argv, size_t argc, router_cmd *c,
                    router_cmd_error *e)
{
    if (p_table_name(argv, argc, c, e) != 0)
        return -1;
    c->key = argv[2];
    return check_key(&c->key, e);
}

/* TABLE.MOVE table key node,node,...: the node ids are positive decimal
 * integers, distinct, 1 to ROUTER_MOVE_NODES_MAX of them. */
static int p_table_move(const router_arg *argv, size_t argc, router_cmd *c,
                        router_cmd_error *e)
{
    if (p_kv_del(argv, argc, c, e) != 0)
        return -1;
    const router_arg *a = &argv[3];
    size_t i = 0;
    c->nnodes = 0;
    while (i < a->len) {
        uint64_t v = 0;
        size_t digits = 0;
        for (; i < a->len && a->p[i] >= '0' && a->p[i] <= '9'; i++) {
            if (v > (UINT64_MAX - 9) / 10)
                return fail(e, "INVALID", "node id too large");
            v = v * 10 + (uint64_t)(a->p[i] - '0');
            digits++;
        }
        if (digits == 0 || v == 0 || (i < a->len && a->p[i++] != ',') ||
            (i == a->len && a->p[i - 1] == ','))
            return fail(e, "INVALID", "nodes are ids separated by commas, "
                        "e.g. 4,5,6");
        for (int k = 0; k < c->nnodes; k++)
            if (c->nodes[k] == v)
                return fail(e, "INVALID", "node %llu is named twice",
                            (unsigned long long)v);
        if (c->nnodes >= ROUTER_MOVE_NODES_MAX)
            return fail(e, "INVALID", "at most %d nodes",
                        ROUTER_MOVE_NODES_MAX);
        c->nodes[c->nnodes++] = v;
    }
    if (c->nnodes == 0)
        return fail(e, "INVALID", "no node named");
    return 0;
}

/* A scan bound is a key or "" (unbounded). */
static int check_bound(const router_arg *a, router_cmd_error *e)
{
    return a->len == 0 ? 0 : check_key(a, e);
}

static int p_scan_options(const router_arg *argv, size_t argc,
                          router_cmd *c, router_cmd_error *e)
{
    for (size_t i = 4; i < argc; i += 2) {
        if (i + 1 >= argc)
            return fail(e, "ERR", "syntax error");
        if (arg_is(&argv[i], "limit")) {
            long long n = parse_num(&argv[i + 1], 1, ROUTER_SCAN_LIMIT_MAX);
            if (n < 1)
                return fail(e, "INVALID", "LIMIT must be 1..%d",
                            ROUTER_SCAN_LIMIT_MAX);
            c->limit = (uint32_t)n;
        } else if (arg_is(&argv[i], "cursor")) {
            /* An empty cursor means "from the start", so a client can loop
             * on the cursor it got, starting from "". */
            if (argv[i + 1].len == 0)
                continue;
            if (router_cursor_decode(argv[i + 1].p, argv[i + 1].len,
                                     &c->cursor) != 0)
                return fail(e, "INVALID", "malformed scan cursor");
            c->has_cursor = true;
        } else {
            return fail(e, "ERR", "syntax error");
        }
    }
    return 0;
}

/* KV.SCAN table start end [LIMIT n] [CURSOR c] */
static int p_kv_scan(const router_arg *argv, size_t argc, router_cmd *c,
                     router_cmd_error *e)
{
    if (p_table_name(argv, argc, c, e) != 0)
        return -1;
    c->start = argv[2];
    c->end = argv[3];
    c->limit = ROUTER_SCAN_LIMIT_DEFAULT;
    if (check_bound(&c->start, e) != 0 || check_bound(&c->end, e) != 0)
        return -1;
    if (p_scan_options(argv, argc, c, e) != 0)
        return -1;
    if (c->has_cursor && c->start.len > 0) {
        size_t n = c->start.len < c->cursor.key_len ? c->start.len
                                                    : c->cursor.key_len;
        int cmp = memcmp(c->cursor.key, c->start.p, n);
        if (cmp < 0 || (cmp == 0 && c->cursor.key_len < c->start.len))
            return fail(e, "INVALID", "scan cursor is before start");
    }
    return 0;
}

/* AUTH password | AUTH username password */
static int p_auth(const router_arg *argv, size_t argc, router_cmd *c,
                  router_cmd_error *e)
{
    if (argc > 3)
        return fail(e, "ERR", "syntax error");
    c->has_auth = true;
    if (argc == 3)
        c->user = argv[1];
    c->pass = argv[argc - 1];
    return 0;
}

/* HELLO [protover [AUTH username password] [SETNAME clientname]] */
static int p_hello(const router_arg *argv, size_t argc, router_cmd *c,
                   router_cmd_error *e)
{
    if (argc == 1)
        return 0;
    long long v = parse_num(&argv[1], 0, 1000);
    if (v < 0)
        return fail(e, "ERR", "Protocol version is not an integer or out of "
                              "range");
    c->proto = (int)v;
    for (size_t i = 2; i < argc; i++) {
        if (arg_is(&argv[i], "auth") && i + 2 < argc) {
            c->has_auth = true;
            c->user = argv[i + 1];
            c->pass = argv[i + 2];
            i += 2;
        } else if (arg_is(&argv[i], "setname") && i + 1 < argc) {
            i++;
        } else {
            return fail(e, "ERR", "Syntax error in HELLO option '%.*s'",
                        (int)(argv[i].len < 32 ? argv[i].len : 32),
                        argv[i].p);
        }
    }
    return 0;
}

static const struct cmd_def cmd_table[] = {
    {"auth", RCMD_AUTH, -2, p_auth},
    {"hello", RCMD_HELLO, -1, p_hello},
    {"ping", RCMD_PING, -1, p_ping},
    {"echo", RCMD_ECHO, 2, p_echo},
    {"quit", RCMD_QUIT, -1, p_none},
    {"select", RCMD_SELECT, 2, p_select},
    {"command", RCMD_COMMAND, -1, p_command},
    {"config", RCMD_CONFIG_GET, -2, p_config},
    {"client", RCMD_CLIENT, -2, p_client},
    {"info", RCMD_INFO, -1, p_none},
    {"get", RCMD_GET, 2, p_get},
    {"set", RCMD_SET, -3, p_set},
    {"del", RCMD_DEL, -2, p_keys},
    {"exists", RCMD_EXISTS, -2, p_keys},
    {"mget", RCMD_MGET, -2, p_keys},
    {"mset", RCMD_MSET, -3, p_mset},
    {"table.create", RCMD_TABLE_CREATE, -2, p_table_create},
    {"table.drop", RCMD_TABLE_DROP, 2, p_table_name},
    {"table.list", RCMD_TABLE_LIST, 1, p_none},
    {"table.info", RCMD_TABLE_INFO, 2, p_table_name},
    {"table.split", RCMD_TABLE_SPLIT, 3, p_kv_del}, /* table key */
    {"table.move", RCMD_TABLE_MOVE, 4, p_table_move}, /* table key nodes */
    {"kv.put", RCMD_KV_PUT, -4, p_kv_put},
    {"kv.get", RCMD_KV_GET, -3, p_kv_get},
    {"kv.del", RCMD_KV_DEL, 3, p_kv_del},
    {"kv.scan", RCMD_KV_SCAN, -4, p_kv_scan},
};

#define CMD_COUNT (sizeof cmd_table / sizeof cmd_table[0])

size_t router_cmd_count(void)
{
    return CMD_COUNT;
}

const char *router_cmd_kind_name(router_cmd_kind kind)
{
    if (kind == RCMD_COMMAND_COUNT)
        return "command";
    for (size_t i = 0; i < CMD_COUNT; i++)
        if (cmd_table[i].kind == kind)
            return cmd_table[i].name;
    return "unknown";
}

bool router_cmd_before_auth(const router_arg *argv0)
{
    return arg_is(argv0, "auth") || arg_is(argv0, "hello") ||
           arg_is(argv0, "quit");
}

/* Printable prefix of a client-supplied word, for error messages. */
static void quote_arg(const router_arg *a, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < a->len && n + 1 < cap && i < 64; i++)
        out[n++] = (a->p[i] >= 32 && a->p[i] < 127 && a->p[i] != '\'')
                       ? (char)a->p[i]
                       : '?';
    out[n] = '\0';
}

static bool arity_ok(int arity, size_t argc)
{
    return arity > 0 ? argc == (size_t)arity : argc >= (size_t)-arity;
}

int router_cmd_parse(const router_arg *argv, size_t argc, router_cmd *out,
                     router_cmd_error *err)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < CMD_COUNT; i++) {
        const struct cmd_def *d = &cmd_table[i];
        if (!arg_is(&argv[0], d->name))
            continue;
        out->kind = d->kind;
        out->name = d->name;
        if (!arity_ok(d->arity, argc))
            return fail(err, "ERR",
                        "wrong number of arguments for '%s' command",
                        d->name);
        return d->parse(argv, argc, out, err);
    }
    char name[65];
    quote_arg(&argv[0], name, sizeof name);
    return fail(err, "ERR", "unknown command '%s'", name);
}
