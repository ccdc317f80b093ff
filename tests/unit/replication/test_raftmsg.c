/* Tests for src/replication/raftmsg.h: every message type round-trips
 * field for field; every truncation and a flipped length are refused with
 * PROTO and leave nothing allocated (ASan/LSan); a configuration
 * round-trips. The decoder is also fuzzed (tests/fuzz/fuzz_raftmsg.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "replication/raftmsg.h"

static void roundtrip(const struct raft_message *in, struct raft_message *out)
{
    buf b = BUF_INIT;
    assert_int_equal(raftmsg_encode(in, &b), 0);
    assert_int_equal(raftmsg_decode(b.data, b.len, out), 0);
    assert_int_equal(out->type, in->type);
    /* every proper prefix is refused, with nothing leaked */
    for (size_t n = 0; n < b.len; n++) {
        struct raft_message m;
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b.data, n);
        assert_int_equal(raftmsg_decode(copy, n, &m), CAIRN_ERR_PROTO);
        free(copy);
    }
    /* and a trailing byte too */
    assert_int_equal(buf_append_u8(&b, 0), 0);
    struct raft_message m;
    assert_int_equal(raftmsg_decode(b.data, b.len, &m), CAIRN_ERR_PROTO);
    buf_free(&b);
}

static void test_votes_and_results(void **state)
{
    (void)state;
    struct raft_message in = {.type = RAFT_IO_REQUEST_VOTE}, out;
    in.request_vote = (struct raft_request_vote){
        .term = 7, .candidate_id = 3, .last_log_index = 1ull << 40,
        .last_log_term = 6, .disrupt_leader = true, .pre_vote = true};
    roundtrip(&in, &out);
    assert_int_equal(out.request_vote.term, 7);
    assert_int_equal(out.request_vote.candidate_id, 3);
    assert_int_equal(out.request_vote.last_log_index, 1ull << 40);
    assert_int_equal(out.request_vote.last_log_term, 6);
    assert_true(out.request_vote.disrupt_leader && out.request_vote.pre_vote);
    in.request_vote.disrupt_leader = false;
    roundtrip(&in, &out);
    assert_false(out.request_vote.disrupt_leader);
    assert_true(out.request_vote.pre_vote);

    in.type = RAFT_IO_REQUEST_VOTE_RESULT;
    in.request_vote_result = (struct raft_request_vote_result){
        .term = 9, .vote_granted = true, .pre_vote = raft_tribool_false};
    roundtrip(&in, &out);
    assert_int_equal(out.request_vote_result.term, 9);
    assert_true(out.request_vote_result.vote_granted);
    assert_int_equal(out.request_vote_result.pre_vote, raft_tribool_false);

    in.type = RAFT_IO_APPEND_ENTRIES_RESULT;
    in.append_entries_result = (struct raft_append_entries_result){
        .term = 4, .rejected = 12, .last_log_index = 11};
    roundtrip(&in, &out);
    assert_memory_equal(&out.append_entries_result, &in.append_entries_result,
                        sizeof in.append_entries_result);

    in.type = RAFT_IO_TIMEOUT_NOW;
    in.timeout_now = (struct raft_timeout_now){
        .term = 5, .last_log_index = 100, .last_log_term = 5};
    roundtrip(&in, &out);
    assert_memory_equal(&out.timeout_now, &in.timeout_now,
                        sizeof in.timeout_now);
}

static void test_append_entries(void **state)
{
    (void)state;
    char a[] = "first", c[] = "third entry, longer than eight";
    struct raft_entry es[3] = {
        {.term = 2, .type = RAFT_COMMAND, .buf = {a, 5}},
        {.term = 2, .type = RAFT_BARRIER, .buf = {NULL, 0}},
        {.term = 3, .type = RAFT_CHANGE, .buf = {c, strlen(c)}},
    };
    struct raft_message in = {.type = RAFT_IO_APPEND_ENTRIES}, out;
    in.append_entries = (struct raft_append_entries){
        .term = 3, .prev_log_index = 10, .prev_log_term = 2,
        .leader_commit = 9, .entries = es, .n_entries = 3};
    roundtrip(&in, &out);
    struct raft_append_entries *o = &out.append_entries;
    assert_int_equal(o->term, 3);
    assert_int_equal(o->prev_log_index, 10);
    assert_int_equal(o->leader_commit, 9);
    assert_int_equal(o->n_entries, 3);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(o->entries[i].term, es[i].term);
        assert_int_equal(o->entries[i].type, es[i].type);
        assert_int_equal(o->entries[i].buf.len, es[i].buf.len);
        if (es[i].buf.len)
            assert_memory_equal(o->entries[i].buf.base, es[i].buf.base,
                                es[i].buf.len);
        assert_ptr_equal(o->entries[i].batch, o->entries[0].batch);
        assert_int_equal((uintptr_t)o->entries[i].buf.base % 8, 0);
    }
    raftmsg_free(&out);

    /* a heartbeat: no entries, nothing allocated */
    in.append_entries.n_entries = 0;
    in.append_entries.entries = NULL;
    roundtrip(&in, &out);
    assert_null(out.append_entries.entries);
}

static void test_install_snapshot_and_conf(void **state)
{
    (void)state;
    struct raft_message in = {.type = RAFT_IO_INSTALL_SNAPSHOT}, out;
    struct raft_install_snapshot *s = &in.install_snapshot;
    *s = (struct raft_install_snapshot){.term = 8, .last_index = 500,
                                        .last_term = 7, .conf_index = 3};
    raft_configuration_init(&s->conf);
    assert_int_equal(raft_configuration_add(&s->conf, 1, "127.0.0.1:1",
                                            RAFT_VOTER), 0);
    assert_int_equal(raft_configuration_add(&s->conf, 2, "10.0.0.2:7000",
                                            RAFT_STANDBY), 0);
    char data[] = "snapshot bytes";
    s->data = (struct raft_buffer){data, sizeof data};
    roundtrip(&in, &out);
    struct raft_install_snapshot *o = &out.install_snapshot;
    assert_int_equal(o->last_index, 500);
    assert_int_equal(o->conf_index, 3);
    assert_int_equal(o->conf.n, 2);
    assert_int_equal(o->conf.servers[1].id, 2);
    assert_int_equal(o->conf.servers[1].role, RAFT_STANDBY);
    assert_string_equal(o->conf.servers[1].address, "10.0.0.2:7000");
    assert_int_equal(o->data.len, sizeof data);
    assert_memory_equal(o->data.base, data, sizeof data);
    raftmsg_free(&out);

    buf b = BUF_INIT;
    struct raft_configuration c;
    assert_int_equal(raftmsg_conf_encode(&s->conf, &b), 0);
    assert_int_equal(raftmsg_conf_decode(b.data, b.len, &c), 0);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.servers[0].address, "127.0.0.1:1");
    raft_configuration_close(&c);
    assert_int_equal(raftmsg_conf_decode(b.data, b.len - 1, &c),
                     CAIRN_ERR_PROTO);
    buf_free(&b);
    raft_configuration_close(&s->conf);
}

static void test_hostile_lengths(void **state)
{
    (void)state;
    /* an AppendEntries announcing 2^32-1 entries in a few bytes */
    uint8_t m[1 + 32 + 4] = {RAFT_IO_APPEND_ENTRIES};
    memset(m + 33, 0xff, 4);
    struct raft_message out;
    assert_int_equal(raftmsg_decode(m, sizeof m, &out), CAIRN_ERR_PROTO);
    /* a snapshot whose data length runs past the frame */
    buf b = BUF_INIT;
    buf_append_u8(&b, RAFT_IO_INSTALL_SNAPSHOT);
    for (int i = 0; i < 4; i++)
        buf_append_u64(&b, 1);
    buf_append_u32(&b, 0);          /* empty configuration */
    buf_append_u64(&b, 1ull << 62); /* data length */
    assert_int_equal(raftmsg_decode(b.data, b.len, &out), CAIRN_ERR_PROTO);
    buf_free(&b);
    uint8_t unknown[1] = {99};
    assert_int_equal(raftmsg_decode(unknown, 1, &out), CAIRN_ERR_PROTO);
    assert_int_equal(raftmsg_decode(unknown, 0, &out), CAIRN_ERR_PROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_votes_and_results),
        cmocka_unit_test(test_append_entries),
        cmocka_unit_test(test_install_snapshot_and_conf),
        cmocka_unit_test(test_hostile_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
