/*
 * command.h - the router's command table: parsing and validation.
 *
 * Turns one RESP request (an array of bulk strings) into a router_cmd, or
 * into the exact error reply a client must see. Nothing here touches the
 * network or the metadata, so every rule is unit-tested on its own:
 *  - unknown command -> "ERR unknown command 'x'" (Redis wording);
 *  - wrong arity -> "ERR wrong number of arguments for 'get' command";
 *  - key limits -> KEYEMPTY / KEYTOOBIG, value limit -> TOOBIG
 *    (common/limits.h; DESIGN.md "Client API");
 *  - options of the table commands (ENGINE, REPLICAS, SPLITS, IFSEQ,
 *    IFABSENT, WITHSEQ, LIMIT, CURSOR) -> ERR syntax error / INVALID.
 * Whether a table exists is decided later, against the routing cache.
 *
 * A parsed command points into the request's argument memory: it is valid
 * as long as the request is.
 */
#ifndef CAIRN_ROUTER_COMMAND_H
#define CAIRN_ROUTER_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/seq.h"
#include "proto/resp.h"
#include "router/cursor.h"

/* One argument of a request: bytes, not NUL-terminated (proto/resp.h). */
typedef resp_arg router_arg;

typedef enum router_cmd_kind {
    RCMD_PING,
    RCMD_ECHO,
    RCMD_QUIT,
    RCMD_SELECT,
    RCMD_COMMAND,       /* COMMAND, COMMAND DOCS, COMMAND INFO: empty list */
    RCMD_COMMAND_COUNT,
    RCMD_CONFIG_GET,
    RCMD_CLIENT,        /* CLIENT SETNAME/SETINFO: accepted, ignored */
    RCMD_INFO,
    RCMD_GET,
    RCMD_SET,
    RCMD_DEL,
    RCMD_EXISTS,
    RCMD_MGET,
    RCMD_MSET,
    RCMD_TABLE_CREATE,
    RCMD_TABLE_DROP,
    RCMD_TABLE_LIST,
    RCMD_TABLE_INFO,
    RCMD_TABLE_SPLIT,
    RCMD_TABLE_MOVE,    /* TABLE.MOVE table key node,node,... */
    RCMD_KV_PUT,
    RCMD_KV_GET,
    RCMD_KV_DEL,
    RCMD_KV_SCAN,
    RCMD_AUTH,          /* AUTH [user] password */
    RCMD_HELLO,         /* HELLO [protover [AUTH user pass] [SETNAME n]] */
    RCMD_COUNT_         /* number of kinds (metrics) */
} router_cmd_kind;

/* Conditions of a write (KV.PUT IFSEQ/IFABSENT, SET NX). */
typedef enum router_cond {
    ROUTER_COND_NONE,
    ROUTER_COND_IFSEQ,
    ROUTER_COND_IFABSENT,
} router_cond;

typedef enum router_engine {
    ROUTER_ENGINE_BTREE,
    ROUTER_ENGINE_LSM,
} router_engine;

/* The table Redis commands act on (DESIGN.md "Client API"). */
#define ROUTER_DEFAULT_TABLE "default"

/* KV.SCAN page size: default and the largest a client may ask for. */
#define ROUTER_SCAN_LIMIT_DEFAULT 100
#define ROUTER_SCAN_LIMIT_MAX 10000

/* Most nodes TABLE.MOVE names (a group of 5 replicas, plus room). */
#define ROUTER_MOVE_NODES_MAX 7

/* Most pre-split points TABLE.CREATE accepts. */
#define ROUTER_SPLITS_MAX 1024

typedef struct router_cmd {
    router_cmd_kind kind;
    const char *name;     /* canonical lower-case name ("get", "kv.put") */
    router_arg table;     /* table name; "default" for Redis commands */
    router_arg key;
    router_arg value;     /* also PING/ECHO message, CONFIG GET pattern */
    bool has_value;       /* PING with a message */
    router_cond cond;
    seq ifseq;
    bool withseq;
    /* GET-like fan-out: keys are args[i * stride], i < nargs (MGET, MSET,
     * DEL, EXISTS); MSET has stride 2 (key, value). */
    const router_arg *args;
    size_t nargs;
    size_t stride;
    /* KV.SCAN: [start, end), empty = unbounded. */
    router_arg start, end;
    uint32_t limit;
    bool has_cursor;
    router_cursor cursor;
    /* AUTH, HELLO AUTH: user (len 0 = "default") and password */
    bool has_auth;
    router_arg user, pass;
    /* HELLO: protocol version asked for (0 = not given) */
    int proto;
    /* TABLE.MOVE: the destination's nodes, distinct */
    uint64_t nodes[ROUTER_MOVE_NODES_MAX];
    int nnodes;
    /* TABLE.CREATE */
    router_engine engine;
    int replicas;         /* 0 = not given: the router picks */
    const router_arg *splits;
    size_t nsplits;
} router_cmd;

/* The error of a request that does not parse: `word` is the RESP code word
 * ("ERR", "KEYTOOBIG", ...), `msg` the human text after it. */
typedef struct router_cmd_error {
    const char *word;
    char msg[192];
} router_cmd_error;

/* Parse and validate request `argv[0..argc)` (argc >= 1). 0 and `out`
 * filled, or -1 and `err` filled with the reply to send; the connection
 * survives either way (issue 4, "the connection survives"). */
int router_cmd_parse(const router_arg *argv, size_t argc, router_cmd *out,
                     router_cmd_error *err);

/* Validate a user key against common/limits.h: 0, CAIRN_ERR_KEY_EMPTY or
 * CAIRN_ERR_KEY_TOOBIG. */
int router_check_key(size_t len);

/* Table names: 1..CAIRN_TABLE_NAME_MAX bytes of [A-Za-z0-9_.-]. */
bool router_table_name_ok(const uint8_t *p, size_t len);

/* How many commands the table knows (COMMAND COUNT). */
size_t router_cmd_count(void);

/* The canonical name of a kind ("get", "kv.put"), for metrics labels. */
const char *router_cmd_kind_name(router_cmd_kind kind);

/* Whether argv0 (a command name, any case) may run before AUTH: AUTH,
 * HELLO and QUIT, as in Redis. */
bool router_cmd_before_auth(const router_arg *argv0);

#endif
