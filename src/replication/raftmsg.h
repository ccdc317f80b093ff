/*
 * raftmsg.h - the wire format of Raft messages between nodes.
 *
 * libraft hands its I/O layer a `struct raft_message` to send and expects
 * one back on receipt (raftio.h); this is their byte encoding on a node
 * link (link.h), which adds the range id and the sender. Every integer is
 * big-endian:
 *
 *     type (1), then by type:
 *     REQUEST_VOTE          term | candidate id | last log index |
 *                           last log term (8 each) | flags (1: bit 0
 *                           disrupt leader, bit 1 pre-vote)
 *     REQUEST_VOTE_RESULT   term (8) | granted (1) | pre-vote (1: raft_tribool)
 *     APPEND_ENTRIES        term | prev log index | prev log term |
 *                           leader commit (8 each) | n (4) |
 *                           n x (term (8) | type (1) | len (4) | bytes)
 *     APPEND_ENTRIES_RESULT term | rejected | last log index (8 each)
 *     INSTALL_SNAPSHOT      term | last index | last term | conf index
 *                           (8 each) | conf | data len (8) | data
 *     TIMEOUT_NOW           term | last log index | last log term (8 each)
 *
 * conf = n (4) | n x (id (8) | role (1) | address len (2) | address).
 *
 * The decoder checks every length against the bytes it was given before
 * it allocates or copies, so a malformed or hostile frame is refused with
 * CAIRN_ERR_PROTO and never read past (tests/fuzz/fuzz_raftmsg.c).
 */
#ifndef CAIRN_REP_RAFTMSG_H
#define CAIRN_REP_RAFTMSG_H

#include <stddef.h>
#include <stdint.h>

#include <raft.h>

#include "../common/buf.h"

/* Largest address a configuration may carry. */
#define RAFTMSG_ADDR_MAX 255

/* Append the encoding of `m` (server_id and server_address are not
 * encoded: the link carries the sender) to `out`. 0 or CAIRN_ERR_NOMEM,
 * CAIRN_ERR_INVALID (unknown type, address too long). */
int raftmsg_encode(const struct raft_message *m, buf *out);

/* Decode `len` bytes into `m`, whose server_id and server_address the
 * caller fills. Everything the message points to is allocated as libraft
 * expects to own it: an AppendEntries' entries array and one data batch
 * (raft_malloc), an InstallSnapshot's configuration and data. On error
 * nothing is left allocated. 0, CAIRN_ERR_PROTO or CAIRN_ERR_NOMEM. */
int raftmsg_decode(const void *p, size_t len, struct raft_message *m);

/* Free what raftmsg_decode allocated for a message nobody took. */
void raftmsg_free(struct raft_message *m);

/* A configuration, in the `conf` format above. */
int raftmsg_conf_encode(const struct raft_configuration *c, buf *out);

/* Decode into `c` (initialised here). 0, CAIRN_ERR_PROTO, NOMEM. */
int raftmsg_conf_decode(const void *p, size_t len,
                        struct raft_configuration *c);

#endif
