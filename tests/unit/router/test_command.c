/* Tests for src/router/command.h: the command table, arity, limits and the
 * options of the table commands - no network, no metadata. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/limits.h"
#include "router/command.h"

#define MAXARGS 16

/* Build argv from NUL-terminated words. */
static size_t mkargs(router_arg *argv, const char *const *words)
{
    size_t n = 0;
    while (words[n] != NULL) {
        argv[n].p = (const uint8_t *)words[n];
        argv[n].len = strlen(words[n]);
        n++;
    }
    return n;
}

static int parse(router_cmd *c, router_cmd_error *e, const char *const *w)
{
    router_arg argv[MAXARGS];
    size_t argc = mkargs(argv, w);
    static router_arg keep[MAXARGS]; /* parsed args point here */
    memcpy(keep, argv, sizeof argv);
    return router_cmd_parse(keep, argc, c, e);
}

#define W(...) ((const char *const[]){__VA_ARGS__, NULL})

static void expect_error(const char *const *w, const char *word,
                         const char *msg)
{
    router_cmd c;
    router_cmd_error e;
    assert_int_equal(parse(&c, &e, w), -1);
    assert_string_equal(e.word, word);
    if (msg != NULL)
        assert_string_equal(e.msg, msg);
}

static void test_unknown_and_arity(void **state)
{
    (void)state;
    expect_error(W("nosuch", "a"), "ERR", "unknown command 'nosuch'");
    expect_error(W("get"), "ERR",
                 "wrong number of arguments for 'get' command");
    expect_error(W("GET", "a", "b"), "ERR",
                 "wrong number of arguments for 'get' command");
    expect_error(W("kv.put", "t", "k"), "ERR",
                 "wrong number of arguments for 'kv.put' command");
    expect_error(W("mset", "a", "1", "b"), "ERR",
                 "wrong number of arguments for 'mset' command");
    expect_error(W("ping", "a", "b"), "ERR",
                 "wrong number of arguments for 'ping' command");
    expect_error(W("table.list", "x"), "ERR",
                 "wrong number of arguments for 'table.list' command");
}

static void test_redis_commands_use_default_table(void **state)
{
    (void)state;
    router_cmd c;
    router_cmd_error e;
    assert_int_equal(parse(&c, &e, W("Get", "k1")), 0);
    assert_int_equal(c.kind, RCMD_GET);
    assert_int_equal(c.table.len, 7);
    assert_memory_equal(c.table.p, "default", 7);
    assert_memory_equal(c.key.p, "k1", 2);

    assert_int_equal(parse(&c, &e, W("set", "k", "v", "NX")), 0);
    assert_int_equal(c.kind, RCMD_SET);
    assert_int_equal(c.cond, ROUTER_COND_IFABSENT);
    expect_error(W("set", "k", "v", "EX", "10"), "UNSUPPORTED", NULL);
    expect_error(W("set", "k", "v", "bogus"), "ERR", "syntax error");

    assert_int_equal(parse(&c, &e, W("mset", "a", "1", "b", "2")), 0);
    assert_int_equal(c.nargs, 2);
    assert_int_equal(c.stride, 2);
    assert_memory_equal(c.args[2].p, "b", 1);

    assert_int_equal(parse(&c, &e, W("del", "a", "b", "c")), 0);
    assert_int_equal(c.kind, RCMD_DEL);
    assert_int_equal(c.nargs, 3);
    assert_int_equal(parse(&c, &e, W("exists", "a")), 0);
    assert_int_equal(c.kind, RCMD_EXISTS);
}

static void test_admin_commands(void **state)
{
    (void)state;
    router_cmd c;
    router_cmd_error e;
    assert_int_equal(parse(&c, &e, W("PING")), 0);
    assert_false(c.has_value);
    assert_int_equal(parse(&c, &e, W("ping", "hi")), 0);
    assert_true(c.has_value);
    assert_int_equal(parse(&c, &e, W("select", "0")), 0);
    expect_error(W("select", "1"), "ERR", "DB index is out of range");
    expect_error(W("select", "x"), "ERR",
                 "value is not an integer or out of range");
    assert_int_equal(parse(&c, &e, W("command")), 0);
    assert_int_equal(c.kind, RCMD_COMMAND);
    assert_int_equal(parse(&c, &e, W("command", "docs")), 0);
    assert_int_equal(c.kind, RCMD_COMMAND);
    assert_int_equal(parse(&c, &e, W("COMMAND", "COUNT")), 0);
    assert_int_equal(c.kind, RCMD_COMMAND_COUNT);
    assert_int_equal(parse(&c, &e, W("config", "get", "save")), 0);
    assert_int_equal(c.kind, RCMD_CONFIG_GET);
    expect_error(W("config", "set", "a", "b"), "ERR", NULL);
    assert_true(router_cmd_count() >= 20);
}

static void test_key_and_value_limits(void **state)
{
    (void)state;
    router_cmd c;
    router_cmd_error e;
    char *key = malloc(CAIRN_KEY_MAX + 2);
    memset(key, 'k', CAIRN_KEY_MAX + 1);
    key[CAIRN_KEY_MAX + 1] = '\0';
    expect_error(W("get", key), "KEYTOOBIG", "key is 1025 bytes, limit 1024");
    key[CAIRN_KEY_MAX] = '\0';
    assert_int_equal(parse(&c, &e, W("get", key)), 0);
    expect_error(W("get", ""), "KEYEMPTY", NULL);
    expect_error(W("kv.del", "t", ""), "KEYEMPTY", NULL);
    expect_error(W("mget", "a", ""), "KEYEMPTY", NULL);

    char *val = malloc(CAIRN_VALUE_MAX + 2);
    memset(val, 'v', CAIRN_VALUE_MAX + 1);
    val[CAIRN_VALUE_MAX + 1] = '\0';
    expect_error(W("set", "k", val), "TOOBIG",
                 "value is 1048577 bytes, limit 1048576");
    expect_error(W("kv.put", "t", "k", val), "TOOBIG", NULL);
    expect_error(W("mset", "a", "1", "b", val), "TOOBIG", NULL);
    val[CAIRN_VALUE_MAX] = '\0';
    assert_int_equal(parse(&c, &e, W("kv.put", "t", "k", val)), 0);
    assert_int_equal(c.value.len, CAIRN_VALUE_MAX);
    assert_int_equal(parse(&c, &e, W("set", "k", "")), 0);
    free(key);
    free(val);
}

static void test_table_create(void **state)
{
    (void)state;
    router_cmd c;
    router_cmd_error e;
    assert_int_equal(parse(&c, &e, W("table.create", "t1")), 0);
    assert_int_equal(c.kind, RCMD_TABLE_CREATE);
    assert_int_equal(c.engine, ROUTER_ENGINE_BTREE);
    assert_int_equal(c.replicas, 0);
    assert_int_equal(c.nsplits, 0);
    assert_int_equal(parse(&c, &e, W("TABLE.CREATE", "t.2-x_", "engine",
                                     "LSM", "replicas", "5", "splits", "g",
                                     "p")),
                     0);
    assert_int_equal(c.engine, ROUTER_ENGINE_LSM);
    assert_int_equal(c.replicas, 5);
    assert_int_equal(c.nsplits, 2);
    assert_memory_equal(c.splits[1].p, "p", 1);
    expect_error(W("table.create", "t", "replicas", "2"), "INVALID",
                 "REPLICAS must be 1, 3 or 5");
    expect_error(W("table.create", "t", "engine", "hash"), "INVALID", NULL);
    expect_error(W("table.create", "t", "splits", "p", "g"), "INVALID",
                 NULL);
    expect_error(W("table.create", "t", "splits", "g", "g"), "INVALID",
                 NULL);
    expect_error(W("table.create", "t", "engine"), "ERR", "syntax error");
    expect_error(W("table.create", "bad name"), "INVALID", NULL);
    expect_error(W("table.create", ""), "INVALID", NULL);
    expect_error(W("table.drop", "a/b"), "INVALID", NULL);
    assert_true(router_table_name_ok((const uint8_t *)"A-z_0.9", 7));
}

static void test_table_move(void **state)
{
    (void)state;
    router_cmd c;
    router_cmd_error e;
    assert_int_equal(parse(&c, &e, W("TABLE.MOVE", "t", "k", "4,5,16")), 0);
    assert_int_equal(c.kind, RCMD_TABLE_MOVE);
    assert_memory_equal(c.table.p, "t", 1);
    assert_memory_equal(c.key.p, "k", 1);
    assert_int_equal(c.nnodes, 3);
    assert_int_equal(c.nodes[2], 16);
    assert_int_equal(parse(&c, &e, W("table.move", "t", "k", "7")), 0);
    assert_int_equal(c.nnodes, 1);
    const char *bad[] = {"", ",", "4,", ",4", "4,,5", "4;5", "0", "4,x",
                         "4,4", "1,2,3,4,5,6,7,8", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error(W("table.move", "t", "k", bad[i]), "INVALID", NULL);
    expect_error(W("table.move", "t", "", "4"), "KEYEMPTY", NULL);
    expect_error(W("table.move", "t", "k"), "ERR", NULL);
}

static void test_kv_options(void **state)
{
    (void)state;
    router_cmd c;
    router_cmd_error e;
    const char *sq = "0123456789abcdef0123456789ABCDEF";
    assert_int_equal(parse(&c, &e, W("kv.put", "t", "k", "v", "ifseq", sq)),
                     0);
    assert_int_equal(c.cond, ROUTER_COND_IFSEQ);
    assert_int_equal(c.ifseq.bytes[0], 0x01);
    assert_int_equal(c.ifseq.bytes[15], 0xef);
    expect_error(W("kv.put", "t", "k", "v", "ifseq", "12"), "INVALID", NULL);
    assert_int_equal(parse(&c, &e, W("kv.put", "t", "k", "v", "IFABSENT")),
                     0);
    assert_int_equal(c.cond, ROUTER_COND_IFABSENT);
    expect_error(W("kv.put", "t", "k", "v", "ifabsent", "x"), "ERR", NULL);
    assert_int_equal(parse(&c, &e, W("kv.get", "t", "k", "withseq")), 0);
    assert_true(c.withseq);
    expect_error(W("kv.get", "t", "k", "other"), "ERR", "syntax error");
}

static void test_kv_scan(void **state)
{
    (void)state;
    router_cmd c;
    router_cmd_error e;
    assert_int_equal(parse(&c, &e, W("kv.scan", "t", "", "")), 0);
    assert_int_equal(c.limit, ROUTER_SCAN_LIMIT_DEFAULT);
    assert_false(c.has_cursor);
    assert_int_equal(parse(&c, &e, W("kv.scan", "t", "a", "z", "LIMIT",
                                     "10", "CURSOR", "")),
                     0);
    assert_int_equal(c.limit, 10);
    assert_false(c.has_cursor);
    expect_error(W("kv.scan", "t", "a", "z", "limit", "0"), "INVALID", NULL);
    expect_error(W("kv.scan", "t", "a", "z", "limit", "100001"), "INVALID",
                 NULL);
    expect_error(W("kv.scan", "t", "a", "z", "limit"), "ERR", NULL);
    expect_error(W("kv.scan", "t", "a", "z", "cursor", "zz"), "INVALID",
                 "malformed scan cursor");

    buf cur = BUF_INIT;
    assert_int_equal(router_cursor_encode(7, (const uint8_t *)"m", 1, &cur),
                     0);
    assert_int_equal(buf_append_u8(&cur, 0), 0);
    assert_int_equal(parse(&c, &e, W("kv.scan", "t", "a", "z", "cursor",
                                     (const char *)cur.data)),
                     0);
    assert_true(c.has_cursor);
    assert_int_equal(c.cursor.table_id, 7);
    assert_int_equal(c.cursor.key_len, 1);
    expect_error(W("kv.scan", "t", "n", "z", "cursor",
                   (const char *)cur.data),
                 "INVALID", "scan cursor is before start");
    buf_free(&cur);
}

static void test_cursor_codec(void **state)
{
    (void)state;
    buf b = BUF_INIT;
    uint8_t key[CAIRN_KEY_MAX];
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (uint8_t)(i * 7);
    assert_int_equal(router_cursor_encode(0x0102030405060708ull, key,
                                          sizeof key, &b),
                     0);
    assert_int_equal(b.len, ROUTER_CURSOR_MAX);
    router_cursor c;
    assert_int_equal(router_cursor_decode(b.data, b.len, &c), 0);
    assert_int_equal(c.table_id, 0x0102030405060708ull);
    assert_int_equal(c.key_len, sizeof key);
    assert_memory_equal(c.key, key, sizeof key);

    /* Every single-character edit is detected. */
    for (size_t i = 0; i < 40; i++) {
        uint8_t saved = b.data[i];
        b.data[i] = saved == '0' ? '1' : '0';
        assert_int_not_equal(router_cursor_decode(b.data, b.len, &c), 0);
        b.data[i] = saved;
    }
    assert_int_not_equal(router_cursor_decode(b.data, b.len - 2, &c), 0);
    assert_int_not_equal(router_cursor_decode(b.data, 2, &c), 0);
    assert_int_not_equal(router_cursor_decode((const uint8_t *)"x", 1, &c),
                         0);
    buf_reset(&b);
    assert_int_not_equal(router_cursor_encode(1, key, 0, &b), 0);
    assert_int_not_equal(router_cursor_encode(1, key, CAIRN_KEY_MAX + 1, &b),
                         0);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static bool same(const router_arg *a, const char *s)
{
    return a->len == strlen(s) && memcmp(a->p, s, a->len) == 0;
}

static void test_auth_and_hello(void **state)
{
    (void)state;
    router_cmd c;
    router_cmd_error e;
    assert_int_equal(parse(&c, &e, W("AUTH", "pw")), 0);
    assert_int_equal(c.kind, RCMD_AUTH);
    assert_int_equal(c.user.len, 0);
    assert_true(same(&c.pass, "pw"));
    assert_int_equal(parse(&c, &e, W("auth", "default", "pw")), 0);
    assert_true(same(&c.user, "default") && same(&c.pass, "pw"));
    expect_error(W("auth"), "ERR",
                 "wrong number of arguments for 'auth' command");
    expect_error(W("auth", "a", "b", "c"), "ERR", "syntax error");

    assert_int_equal(parse(&c, &e, W("HELLO")), 0);
    assert_int_equal(c.kind, RCMD_HELLO);
    assert_int_equal(c.proto, 0);
    assert_false(c.has_auth);
    assert_int_equal(parse(&c, &e, W("hello", "3", "AUTH", "default", "pw",
                                     "SETNAME", "me")), 0);
    assert_int_equal(c.proto, 3);
    assert_true(c.has_auth && same(&c.user, "default") &&
                same(&c.pass, "pw"));
    expect_error(W("hello", "x"), "ERR",
                 "Protocol version is not an integer or out of range");
    expect_error(W("hello", "2", "AUTH", "only-user"), "ERR", NULL);

    router_arg a = {(const uint8_t *)"Hello", 5};
    assert_true(router_cmd_before_auth(&a));
    a = (router_arg){(const uint8_t *)"QUIT", 4};
    assert_true(router_cmd_before_auth(&a));
    a = (router_arg){(const uint8_t *)"ping", 4};
    assert_false(router_cmd_before_auth(&a));
    assert_string_equal(router_cmd_kind_name(RCMD_KV_PUT), "kv.put");
    assert_string_equal(router_cmd_kind_name(RCMD_COMMAND_COUNT), "command");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_and_arity),
        cmocka_unit_test(test_redis_commands_use_default_table),
        cmocka_unit_test(test_admin_commands),
        cmocka_unit_test(test_key_and_value_limits),
        cmocka_unit_test(test_table_create),
        cmocka_unit_test(test_table_move),
        cmocka_unit_test(test_kv_options),
        cmocka_unit_test(test_kv_scan),
        cmocka_unit_test(test_cursor_codec),
        cmocka_unit_test(test_auth_and_hello),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
