/*
 * exec.c - executing parsed commands and formatting their replies.
 *
 * Commands that need no node (PING, ECHO, COMMAND, CONFIG GET, INFO, ...)
 * are answered at once. Key commands become ops (op.c); the Redis fan-out
 * commands (MGET, MSET, DEL, EXISTS) become one op per key, answered when
 * the last one finishes - they are not atomic across keys (MISSION.md: no
 * multi-key transactions). Replies follow Redis where Redis has the
 * command, so redis-cli and redis-benchmark work unchanged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "common/log.h"
#include "router/router_int.h"

/* The error of a node reply (its message if it has one). */
static void reply_rep_error(struct rreq *q, int status, const rpc_reply *rep)
{
    char msg[256] = "";
    if (rep != NULL && rep->message.len > 0) {
        size_t n = rep->message.len < sizeof msg - 1 ? rep->message.len
                                                      : sizeof msg - 1;
        memcpy(msg, rep->message.p, n);
        msg[n] = '\0';
    }
    router_reply_status(q, status, msg);
}

static void finish(struct router *r, struct rreq *q)
{
    if (q->out.len > 0 && q->out.data[0] == '-')
        r->stat_errors++;
    router_req_finish(q);
}

/* The table a key command names, if it exists and is ready; otherwise the
 * reply is -NOTABLE and NULL is returned. */
static const router_table *ready_table(struct router *r, struct rreq *q)
{
    const router_table *t =
        router_cache_table(r->cache, q->cmd.table.p, q->cmd.table.len);
    if (t != NULL && t->state == ROUTER_TABLE_READY)
        return t;
    resp_write_error(&q->out, "NOTABLE", "no such table '%.*s'",
                     (int)q->cmd.table.len, (const char *)q->cmd.table.p);
    finish(r, q);
    return NULL;
}

/* ---- single-key commands ---- */

static void get_done(struct rop *op, int status, const rpc_reply *rep)
{
    struct rreq *q = op->req;
    if (q == NULL)
        return;
    if (status == CAIRN_ERR_NOT_FOUND) {
        resp_write_nil(&q->out);
    } else if (status != 0) {
        reply_rep_error(q, status, rep);
    } else if (q->cmd.withseq) {
        char hex[SEQ_HEX_LEN + 1];
        seq_to_hex(&rep->seq, hex);
        resp_write_array(&q->out, 2);
        resp_write_bulk(&q->out, rep->value.p, rep->value.len);
        resp_write_bulk_str(&q->out, hex);
    } else {
        resp_write_bulk(&q->out, rep->value.p, rep->value.len);
    }
    finish(op->r, q);
}

static void put_done(struct rop *op, int status, const rpc_reply *rep)
{
    struct rreq *q = op->req;
    if (q == NULL)
        return;
    bool redis = q->cmd.kind == RCMD_SET;
    if (status == 0 && redis) {
        resp_write_simple(&q->out, "OK");
    } else if (status == 0) {
        char hex[SEQ_HEX_LEN + 1];
        seq_to_hex(&rep->seq, hex);
        resp_write_bulk_str(&q->out, hex);
    } else if (status == CAIRN_ERR_CONDITION && redis) {
        resp_write_nil(&q->out); /* SET NX on an existing key, as Redis */
    } else {
        reply_rep_error(q, status, rep);
    }
    finish(op->r, q);
}

static void del_done(struct rop *op, int status, const rpc_reply *rep)
{
    struct rreq *q = op->req;
    if (q == NULL)
        return;
    if (status == 0 || status == CAIRN_ERR_NOT_FOUND)
        resp_write_int(&q->out, status == 0);
    else
        reply_rep_error(q, status, rep);
    finish(op->r, q);
}

/*
 * Deletes report whether a live value was deleted (KV.DEL 1/0, DEL's
 * count). A node's DEL reply says NOT_FOUND when it knows the key held no
 * live value, but a node may also just acknowledge the tombstone; so the
 * router first reads the key from the leader: absent -> 0 without writing
 * (as if the delete came first), present -> delete. Two clients deleting
 * the same key at once may then both count it.
 */
static struct rop *start_del_after_probe(struct rop *probe, rop_done_fn done)
{
    struct rop *op = router_op_new(probe->r, probe->req, RPC_DEL,
                                   probe->table_id, done);
    if (op == NULL)
        return NULL;
    op->idx = probe->idx;
    op->key = probe->key;
    op->key_len = probe->key_len;
    router_op_take_place(op, probe);
    router_op_start(op);
    return op;
}

static void del_probe_done(struct rop *op, int status, const rpc_reply *rep)
{
    struct rreq *q = op->req;
    if (q == NULL)
        return;
    if (status == 0) {
        if (start_del_after_probe(op, del_done) != NULL)
            return;
        status = CAIRN_ERR_NOMEM;
    }
    del_done(op, status, rep);
}

static void start_key_op(struct router *r, struct rreq *q, rpc_type type,
                         rop_done_fn done)
{
    const router_table *t = ready_table(r, q);
    if (t == NULL)
        return;
    struct rop *op = router_op_new(r, q, type, t->id, done);
    if (op == NULL) {
        router_reply_status(q, CAIRN_ERR_NOMEM, NULL);
        finish(r, q);
        return;
    }
    op->key = q->cmd.key.p;
    op->key_len = q->cmd.key.len;
    if (type == RPC_PUT) {
        op->value = q->cmd.value.p;
        op->value_len = q->cmd.value.len;
        op->cond = q->cmd.cond == ROUTER_COND_IFSEQ      ? RPC_COND_IFSEQ
                   : q->cmd.cond == ROUTER_COND_IFABSENT ? RPC_COND_IFABSENT
                                                         : RPC_COND_NONE;
        op->cond_seq = q->cmd.ifseq;
    }
    router_op_start(op);
}

/* ---- fan-out commands: MGET, MSET, DEL, EXISTS ---- */

static void fan_note_error(struct rreq *q, int status, const rpc_reply *rep)
{
    if (q->first_err != 0)
        return;
    q->first_err = status;
    size_t n = 0;
    if (rep != NULL) {
        n = rep->message.len < sizeof q->first_msg - 1
                ? rep->message.len
                : sizeof q->first_msg - 1;
        memcpy(q->first_msg, rep->message.p, n);
    }
    q->first_msg[n] = '\0';
}

static void fan_reply(struct rreq *q)
{
    if (q->first_err != 0) {
        router_reply_status(q, q->first_err, q->first_msg);
        return;
    }
    switch (q->cmd.kind) {
    case RCMD_MSET:
        resp_write_simple(&q->out, "OK");
        break;
    case RCMD_MGET:
        resp_write_array(&q->out, q->cmd.nargs);
        for (size_t i = 0; i < q->cmd.nargs; i++) {
            if (q->parts[i].status == 0)
                resp_write_bulk(&q->out, q->parts[i].value, q->parts[i].len);
            else
                resp_write_nil(&q->out);
        }
        break;
    default:
        resp_write_int(&q->out, q->count);
    }
}

static bool fan_pump(struct router *r, struct rreq *q);

static void fan_done(struct rop *op, int status, const rpc_reply *rep)
{
    struct rreq *q = op->req;
    if (q == NULL)
        return;
    if (status != 0 && status != CAIRN_ERR_NOT_FOUND) {
        fan_note_error(q, status, rep);
    } else if (q->cmd.kind == RCMD_MGET) {
        struct rpart *p = &q->parts[op->idx];
        p->status = status;
        if (status == 0 && rep->value.len > 0) {
            p->value = malloc(rep->value.len);
            if (p->value == NULL)
                fan_note_error(q, CAIRN_ERR_NOMEM, NULL);
            else
                memcpy(p->value, rep->value.p, rep->value.len);
        }
        p->len = rep->value.len;
    } else if (status == 0 && q->cmd.kind != RCMD_MSET) {
        q->count++; /* DEL: deleted a live value; EXISTS: found */
    }
    fan_pump(op->r, q);
}

/* DEL key...: each key is probed first (see start_del_after_probe). */
static void fan_del_probe_done(struct rop *op, int status,
                               const rpc_reply *rep)
{
    if (op->req != NULL && status == 0 &&
        start_del_after_probe(op, fan_done) != NULL)
        return;
    fan_done(op, status == 0 ? CAIRN_ERR_NOMEM : status, rep);
}

/* The op for key number q->fan_next, started. false when out of memory. */
static bool fan_start_next(struct router *r, struct rreq *q)
{
    size_t i = q->fan_next++;
    const router_arg *a = &q->cmd.args[i * q->cmd.stride];
    bool put = q->cmd.kind == RCMD_MSET;
    struct rop *op = router_op_new(
        r, q, put ? RPC_PUT : RPC_GET, q->table_id,
        q->cmd.kind == RCMD_DEL ? fan_del_probe_done : fan_done);
    if (op == NULL)
        return false;
    op->idx = i;
    op->key = a->p;
    op->key_len = a->len;
    if (put) {
        op->value = a[1].p;
        op->value_len = a[1].len;
    }
    router_op_start(op);
    return true;
}

/* Keep at most ROUTER_FAN_WINDOW ops of a fan-out in flight (a command
 * with a million keys must not become a million ops at once); stop issuing
 * after an error. Replies once nothing is left. An op that finishes while
 * the loop below runs only records its result: the loop goes on. */
static bool fan_pump(struct router *r, struct rreq *q)
{
    if (q->fan_busy)
        return false;
    q->fan_busy = true;
    while (q->first_err == 0 && q->fan_next < q->cmd.nargs &&
           q->pending < ROUTER_FAN_WINDOW)
        if (!fan_start_next(r, q))
            fan_note_error(q, CAIRN_ERR_NOMEM, NULL);
    q->fan_busy = false;
    if (q->pending > 0 ||
        (q->first_err == 0 && q->fan_next < q->cmd.nargs))
        return false;
    fan_reply(q);
    if (q->parts != NULL) /* copied into the reply: let them go now */
        for (size_t i = 0; i < q->cmd.nargs; i++) {
            free(q->parts[i].value);
            q->parts[i].value = NULL;
        }
    finish(r, q);
    return true;
}

static void start_fan_out(struct router *r, struct rreq *q)
{
    const router_table *t = ready_table(r, q);
    if (t == NULL)
        return;
    if (q->cmd.kind == RCMD_MGET &&
        (q->parts = calloc(q->cmd.nargs, sizeof *q->parts)) == NULL) {
        router_reply_status(q, CAIRN_ERR_NOMEM, NULL);
        finish(r, q);
        return;
    }
    q->table_id = t->id;
    fan_pump(r, q);
}

/* ---- commands answered by the router itself ---- */

static void reply_config_get(struct rreq *q)
{
    /* redis-benchmark asks for these two; nothing else is configurable
     * through RESP. */
    static const char *const cfg[][2] = {{"save", ""}, {"appendonly", "no"}};
    const router_arg *pat = &q->cmd.value;
    bool all = pat->len == 1 && pat->p[0] == '*';
    size_t n = 0;
    buf items = BUF_INIT;
    for (size_t i = 0; i < 2; i++) {
        if (!all && (pat->len != strlen(cfg[i][0]) ||
                     strncasecmp((const char *)pat->p, cfg[i][0],
                                 pat->len) != 0))
            continue;
        resp_write_bulk_str(&items, cfg[i][0]);
        resp_write_bulk_str(&items, cfg[i][1]);
        n += 2;
    }
    resp_write_array(&q->out, n);
    buf_append(&q->out, items.data, items.len);
    buf_free(&items);
}

static void reply_info(struct router *r, struct rreq *q)
{
    buf t = BUF_INIT;
    buf_appendf(&t,
                "# Server\r\nredis_version:7.0.0\r\ncairn_role:router\r\n"
                "tcp_port:%d\r\n"
                "# Clients\r\nconnected_clients:%zu\r\n"
                "# Stats\r\ntotal_connections_received:%llu\r\n"
                "total_commands_processed:%llu\r\n"
                "total_error_replies:%llu\r\n"
                "# Router\r\nauth_required:%d\r\n"
                "meta_revision:%lld\r\nmeta_refreshes:%llu\r\n"
                "tables:%zu\r\nretries:%llu\r\n"
                "timeouts:%llu\r\n",
                r->port, r->nclients,
                (unsigned long long)r->stat_connections,
                (unsigned long long)r->stat_commands,
                (unsigned long long)r->stat_errors,
                r->cfg.password != NULL,
                (long long)router_cache_revision(r->cache),
                (unsigned long long)r->stat_refreshes,
                router_cache_table_count(r->cache),
                (unsigned long long)r->stat_retries,
                (unsigned long long)r->stat_timeouts);
    resp_write_bulk(&q->out, t.data, t.len);
    buf_free(&t);
}

/* ---- AUTH and HELLO ---- */

/* Whether `user`/`pass` open the router: the user must be "default" (or
 * not given), the password the configured one. Compared in constant time
 * over the longer length, so a guess learns nothing from the time. */
static bool password_ok(struct router *r, const router_arg *user,
                        const router_arg *pass)
{
    const char *want = r->cfg.password;
    if (user->len != 0 &&
        (user->len != 7 || memcmp(user->p, "default", 7) != 0))
        return false;
    size_t wl = strlen(want), n = wl > pass->len ? wl : pass->len;
    uint8_t diff = (uint8_t)(wl != pass->len);
    for (size_t i = 0; i < n; i++)
        diff |= (uint8_t)((i < wl ? (uint8_t)want[i] : 0) ^
                          (i < pass->len ? pass->p[i] : 0));
    return diff == 0;
}

/* A wrong password: counted, and logged at most once a second (a client
 * guessing in a loop must not flood the log). */
static void auth_failed(struct router *r, struct rreq *q)
{
    r->stat_auth_failures++;
    uint64_t now = router_now(r);
    if (r->auth_log_ms == 0 || now - r->auth_log_ms >= 1000) {
        r->auth_log_ms = now;
        log_warn("AUTH with a wrong password (client %llu; %llu failures so "
                 "far)", (unsigned long long)(q->c ? q->c->id : 0),
                 (unsigned long long)r->stat_auth_failures);
    }
    resp_write_error(&q->out, "WRONGPASS", "invalid username-password pair "
                     "or user is disabled.");
}

/* AUTH [user] password, as Redis answers it. */
static void reply_auth(struct router *r, struct rreq *q)
{
    if (r->cfg.password == NULL) {
        /* Redis's default user without a password takes any password in
         * the two-argument form, and calls the one-argument form a
         * mistake. */
        if (q->cmd.user.len == 0)
            resp_write_error(&q->out, "ERR", "AUTH <password> called without "
                             "any password configured for the default user. "
                             "Are you sure your configuration is correct?");
        else if (q->cmd.user.len == 7 &&
                 memcmp(q->cmd.user.p, "default", 7) == 0)
            resp_write_simple(&q->out, "OK");
        else
            auth_failed(r, q);
        return;
    }
    if (!password_ok(r, &q->cmd.user, &q->cmd.pass)) {
        auth_failed(r, q);
        return;
    }
    if (q->c)
        q->c->authed = true;
    resp_write_simple(&q->out, "OK");
}

/* HELLO [2 [AUTH user pass] [SETNAME name]]: cairn speaks RESP2 only, so
 * HELLO 3 is NOPROTO (clients then stay on RESP2); the reply is Redis's
 * map as a flat array. */
static void reply_hello(struct router *r, struct rreq *q)
{
    if (q->cmd.proto != 0 && q->cmd.proto != 2) {
        resp_write_error(&q->out, "NOPROTO", "unsupported protocol version");
        return;
    }
    if (q->cmd.has_auth) {
        if (r->cfg.password != NULL &&
            !password_ok(r, &q->cmd.user, &q->cmd.pass)) {
            auth_failed(r, q);
            return;
        }
        if (q->c)
            q->c->authed = true;
    } else if (q->c && !q->c->authed) {
        resp_write_error(&q->out, "NOAUTH", "HELLO must be called with the "
                         "client already authenticated, otherwise the HELLO "
                         "<proto> AUTH <user> <pass> option can be used to "
                         "authenticate the client and select the RESP "
                         "protocol version at the same time");
        return;
    }
    resp_write_array(&q->out, 14);
    resp_write_bulk_str(&q->out, "server");
    resp_write_bulk_str(&q->out, "cairn");
    resp_write_bulk_str(&q->out, "version");
    resp_write_bulk_str(&q->out, "7.0.0");
    resp_write_bulk_str(&q->out, "proto");
    resp_write_int(&q->out, 2);
    resp_write_bulk_str(&q->out, "id");
    resp_write_int(&q->out, (int64_t)(q->c ? q->c->id : 0));
    resp_write_bulk_str(&q->out, "mode");
    resp_write_bulk_str(&q->out, "standalone");
    resp_write_bulk_str(&q->out, "role");
    resp_write_bulk_str(&q->out, "master");
    resp_write_bulk_str(&q->out, "modules");
    resp_write_array(&q->out, 0);
}

static bool exec_local(struct router *r, struct rreq *q)
{
    switch (q->cmd.kind) {
    case RCMD_AUTH:
        reply_auth(r, q);
        return true;
    case RCMD_HELLO:
        reply_hello(r, q);
        return true;
    case RCMD_PING:
        if (q->cmd.has_value)
            resp_write_bulk(&q->out, q->cmd.value.p, q->cmd.value.len);
        else
            resp_write_simple(&q->out, "PONG");
        return true;
    case RCMD_ECHO:
        resp_write_bulk(&q->out, q->cmd.value.p, q->cmd.value.len);
        return true;
    case RCMD_QUIT:
        resp_write_simple(&q->out, "OK");
        q->close_after = true;
        if (q->c)
            q->c->stop_input = true;
        return true;
    case RCMD_SELECT:
    case RCMD_CLIENT:
        resp_write_simple(&q->out, "OK");
        return true;
    case RCMD_COMMAND:
        resp_write_array(&q->out, 0); /* no command docs: clients cope */
        return true;
    case RCMD_COMMAND_COUNT:
        resp_write_int(&q->out, (int64_t)router_cmd_count());
        return true;
    case RCMD_CONFIG_GET:
        reply_config_get(q);
        return true;
    case RCMD_INFO:
        reply_info(r, q);
        return true;
    default:
        return false;
    }
}

void router_exec(struct router *r, struct rreq *q)
{
    router_cmd_error err;
    int prc = router_cmd_parse(q->argv, q->argc, &q->cmd, &err);
    /* Metrics by command: a name the table knows, else "unknown". */
    q->mkind = (q->cmd.name != NULL ? (int)q->cmd.kind : RCMD_COUNT_) + 1;
    /* Until a client authenticates, only AUTH, HELLO and QUIT run (Redis's
     * rule); parsing above is pure, nothing else happened. */
    if (q->c && !q->c->authed && !router_cmd_before_auth(&q->argv[0])) {
        resp_write_error(&q->out, "NOAUTH", "Authentication required.");
        finish(r, q);
        return;
    }
    if (prc != 0) {
        resp_write_error(&q->out, err.word, "%s", err.msg);
        finish(r, q);
        return;
    }
    if (exec_local(r, q)) {
        finish(r, q);
        return;
    }
    switch (q->cmd.kind) {
    case RCMD_GET:
    case RCMD_KV_GET:
        start_key_op(r, q, RPC_GET, get_done);
        break;
    case RCMD_SET:
    case RCMD_KV_PUT:
        start_key_op(r, q, RPC_PUT, put_done);
        break;
    case RCMD_KV_DEL:
        start_key_op(r, q, RPC_GET, del_probe_done);
        break;
    case RCMD_DEL:
    case RCMD_EXISTS:
    case RCMD_MGET:
    case RCMD_MSET:
        start_fan_out(r, q);
        break;
    case RCMD_KV_SCAN: {
        const router_table *t = ready_table(r, q);
        if (t != NULL)
            router_scan_start(r, q, t);
        break;
    }
    default:
        router_table_cmd(r, q);
    }
}
