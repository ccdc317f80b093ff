/* Tests for the controller's pure parts: placement (place.c) and the
 * parsing of a node's METRICS into an observation (observe.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "controller/controller_int.h"

static void test_place_never_on_a_member_or_unusable(void **state)
{
    (void)state;
    ctl_place_node n[] = {
        {.id = 1, .zone = "", .usable = true, .replicas = 0},
        {.id = 2, .zone = "", .usable = true, .replicas = 0},
        {.id = 3, .zone = "", .usable = false, .replicas = 0}, /* dead */
        {.id = 4, .zone = "", .usable = true, .replicas = 9},
    };
    uint64_t members[] = {1, 2, 5};
    /* 1 and 2 hold it, 3 is not usable: 4 although it is the fullest */
    assert_int_equal(ctl_place(n, 4, members, 3, 5), 4);
    n[3].usable = false;
    assert_int_equal(ctl_place(n, 4, members, 3, 5), 0); /* nowhere */
}

static void test_place_fewest_replicas_then_bytes_then_id(void **state)
{
    (void)state;
    ctl_place_node n[] = {
        {.id = 1, .zone = "", .usable = true, .replicas = 5, .bytes = 1},
        {.id = 2, .zone = "", .usable = true, .replicas = 3, .bytes = 900},
        {.id = 3, .zone = "", .usable = true, .replicas = 3, .bytes = 100},
        {.id = 4, .zone = "", .usable = true, .replicas = 3, .bytes = 100},
    };
    uint64_t members[] = {9};
    assert_int_equal(ctl_place(n, 4, members, 1, 0), 3);
    n[2].replicas = 4;
    assert_int_equal(ctl_place(n, 4, members, 1, 0), 4);
}

static void test_place_spreads_zones(void **state)
{
    (void)state;
    /* Members 1 (zone a) and 3 (zone b) stay, 5 (zone c) leaves: the new
     * replica goes to zone c (node 6) although node 2 (zone a) is
     * emptier; without a free zone, the emptiest node. */
    ctl_place_node n[] = {
        {.id = 1, .zone = "a", .usable = true, .replicas = 5},
        {.id = 2, .zone = "a", .usable = true, .replicas = 0},
        {.id = 3, .zone = "b", .usable = true, .replicas = 5},
        {.id = 4, .zone = "b", .usable = true, .replicas = 1},
        {.id = 5, .zone = "c", .usable = false, .replicas = 5},
        {.id = 6, .zone = "c", .usable = true, .replicas = 7},
    };
    uint64_t members[] = {1, 3, 5};
    assert_int_equal(ctl_place(n, 6, members, 3, 5), 6);
    n[5].usable = false;
    assert_int_equal(ctl_place(n, 6, members, 3, 5), 2);
    /* Nodes without a zone never conflict. */
    ctl_place_node plain[] = {
        {.id = 1, .zone = "", .usable = true, .replicas = 2},
        {.id = 2, .zone = "", .usable = true, .replicas = 1},
    };
    uint64_t m2[] = {1};
    assert_int_equal(ctl_place(plain, 2, m2, 1, 0), 2);
}

static const char *metrics =
    "{\"node\":2,\"address\":\"h:2\",\"replication\":{},\"logged_ranges\":[],"
    "\"ranges\":["
    "{\"range\":9,\"table\":1,\"epoch\":3,\"role\":\"follower\",\"term\":4,"
    "\"leader\":1,\"commit_index\":10,\"applied_index\":10,\"last_index\":10,"
    "\"range_bytes\":100,\"followers\":[]},"
    "{\"range\":7,\"table\":1,\"epoch\":5,\"role\":\"leader\",\"term\":6,"
    "\"leader\":2,\"commit_index\":50,\"applied_index\":50,\"last_index\":52,"
    "\"range_bytes\":2000,\"followers\":["
    "{\"id\":1,\"address\":\"h:1\",\"role\":\"voter\",\"match_index\":52,"
    "\"lag_entries\":0,\"lag_seconds\":0.000},"
    "{\"id\":3,\"address\":\"h:3\",\"role\":\"standby\",\"match_index\":2,"
    "\"lag_entries\":50,\"lag_seconds\":4.250}]}]}";

static void test_parse_metrics(void **state)
{
    (void)state;
    ctl_node_obs n;
    assert_int_equal(ctl_obs_parse_node(metrics, strlen(metrics), 2, &n), 0);
    assert_true(n.answered);
    assert_int_equal(n.n, 2);
    assert_int_equal(n.bytes, 2100);
    /* sorted by range */
    assert_int_equal(n.replicas[0].range, 7);
    const ctl_replica *r = ctl_obs_replica(&n, 7);
    assert_non_null(r);
    assert_int_equal(r->role, CTL_LEADER);
    assert_int_equal(r->epoch, 5);
    assert_int_equal(r->node, 2);
    assert_int_equal(r->n_followers, 2);
    assert_int_equal(r->followers[1].id, 3);
    assert_int_equal(r->followers[1].role, CTL_STANDBY);
    assert_int_equal(r->followers[1].lag_entries, 50);
    assert_true(r->followers[1].lag_seconds > 4.2);
    assert_int_equal(ctl_obs_replica(&n, 9)->role, CTL_FOLLOWER);
    assert_null(ctl_obs_replica(&n, 8));
    ctl_obs_node_free(&n);
    assert_int_equal(ctl_obs_parse_node("{}", 2, 2, &n), CAIRN_ERR_CORRUPT);
    assert_int_equal(ctl_obs_parse_node("nope", 4, 2, &n), CAIRN_ERR_CORRUPT);
}

/* A leader is confirmed by a majority of its voters naming it in its
 * term; a deposed one in a minority is not. */
static void test_leader_confirmed_by_a_majority(void **state)
{
    (void)state;
    ctl_replica rs[3];
    memset(rs, 0, sizeof rs);
    for (int i = 0; i < 3; i++) {
        rs[i].node = (uint64_t)i + 1;
        rs[i].range = 7;
        rs[i].term = 5;
        rs[i].leader = 1;
    }
    rs[0].role = CTL_LEADER;
    rs[0].n_followers = 2;
    rs[0].followers[0] = (ctl_follower){.id = 2, .role = CTL_VOTER};
    rs[0].followers[1] = (ctl_follower){.id = 3, .role = CTL_VOTER};
    ctl_node_obs nodes[3];
    memset(nodes, 0, sizeof nodes);
    for (int i = 0; i < 3; i++) {
        nodes[i].id = (uint64_t)i + 1;
        nodes[i].answered = true;
        nodes[i].replicas = &rs[i];
        nodes[i].n = 1;
    }
    ctl_obs o;
    memset(&o, 0, sizeof o);
    o.nodes = nodes;
    o.n = 3;
    assert_true(ctl_obs_confirmed(&o, &rs[0]));
    rs[1].term = 6; /* node 2 follows a newer term: 1 is alone */
    rs[1].leader = 3;
    assert_true(ctl_obs_confirmed(&o, &rs[0])); /* 1 and 3: a majority */
    rs[2].term = 6;
    rs[2].leader = 3;
    assert_false(ctl_obs_confirmed(&o, &rs[0]));
    nodes[1].n = 0; /* not answering is not agreeing */
    rs[2].term = 5;
    rs[2].leader = 1;
    assert_true(ctl_obs_confirmed(&o, &rs[0]));
    nodes[2].n = 0;
    assert_false(ctl_obs_confirmed(&o, &rs[0]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_place_never_on_a_member_or_unusable),
        cmocka_unit_test(test_place_fewest_replicas_then_bytes_then_id),
        cmocka_unit_test(test_place_spreads_zones),
        cmocka_unit_test(test_parse_metrics),
        cmocka_unit_test(test_leader_confirmed_by_a_majority),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
