/*
 * rpc.h - the cairn RPC: binary, length-prefixed frames between routers (or
 * admin tools) and nodes.
 *
 * A node has one TCP port for everything. Every connection opens with a
 * handshake saying what it carries (DESIGN.md, "cairn node"):
 *
 *     "CRN1" | kind (1 byte)                      kind RPC_CONN_CLIENT
 *     "CRN1" | kind | incarnation (8) | sender node id (8) | addr len (2) |
 *     addr                                        kind RPC_CONN_LINK
 *
 * Either kind may carry the cluster secret (`--cluster-secret-file`): the
 * kind byte then has RPC_HELLO_SECRET set and the handshake ends with
 *
 *     ... | secret len (2) | secret
 *
 * A node that has a secret refuses a connection whose handshake lacks it
 * or carries another: it logs it, reads nothing after the handshake (so
 * nothing sent on it is applied), answers a client connection with one
 * error reply of request id 0 and status NOAUTH, and closes. A node
 * without a secret ignores one, so a secret is rolled out by giving it to every client
 * and node first, then to the nodes' checks by restarting them with it.
 * The secret travels in clear, like Redis AUTH: it keeps stray clients
 * and misconfigured nodes out, not an attacker who can read the network
 * (MISSION.md leaves deep security out; use a private network or an
 * encrypted overlay between hosts).
 *
 * A link connection carries the Raft traffic of every range from one node
 * to another (replication/net.h frames it); the incarnation is a random
 * number per sender process, so a restart is told from a reconnect. Kind 2
 * was the per-range Raft connection of cairn before the node-wide log; a
 * node refuses it. A client connection then carries frames, all integers
 * big-endian:
 *
 *     length (4, bytes after this field) | type (1) | request id (8) | body
 *
 * Requests name (range id, epoch) first, so that a node rejects misrouted
 * requests before anything else (RANGE_NOT_FOUND, STALE_EPOCH). Replies have
 * type RPC_REPLY and echo the request id (a client may pipeline; replies of
 * different ranges may come back out of order). Their body starts with the
 * status (4, a signed cairn_err code, 0 on success) and an error message;
 * NOT_LEADER also carries the leader the node knows (id 0 if none).
 *
 * CREATE_REPLICAS carries many replica creations for one node in one
 * frame (a table of a thousand ranges is one request per node, not one
 * per replica):
 *
 *     request body: count (4) | count x creation
 *                   creation = the body of a CREATE_REPLICA request
 *     reply body:   status 0 | message "" | n (4) | n x failure
 *                   failure = range id (8) | status (4) | message
 *
 * The reply lists only the creations that did not succeed, with their own
 * status (EXISTS included: a caller that re-sends a create takes an
 * existing replica as done); every other creation of the request was
 * carried out. An error reply (status != 0) means the request failed as a
 * whole (the node ran out of memory); re-sending it is safe, since every
 * creation is idempotent (an existing replica answers EXISTS). A frame
 * holds at most
 * RPC_CREATE_BATCH_MAX creations and RPC_FRAME_MAX bytes; a sender with
 * more sends several frames (rpc_create_batch_add says when one is full).
 *
 * Strings inside a body are length (4) | bytes. Decoding never copies: the
 * decoded structs point into the frame, which must outlive them. Decoders
 * check every length against the frame and return CAIRN_ERR_PROTO on any
 * malformed input (they are fuzzed by tests/unit/proto/test_rpc.c).
 */
#ifndef CAIRN_RPC_H
#define CAIRN_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"
#include "../common/seq.h"

#define RPC_MAGIC "CRN1"
#define RPC_MAGIC_LEN 4
#define RPC_CONN_CLIENT 1
#define RPC_CONN_LINK 3
#define RPC_HELLO_SECRET 0x80 /* kind flag: the cluster secret follows */
#define RPC_SECRET_MAX 256

/* Largest frame accepted (header included): a 1 MiB value plus its key and
 * headers fits many times; scans stop adding entries before RPC_SCAN_BYTES. */
#define RPC_FRAME_MAX (16u * 1024 * 1024)
#define RPC_SCAN_BYTES (4u * 1024 * 1024)
#define RPC_HEADER_LEN 13 /* length + type + request id */
#define RPC_MAX_PEERS 7
#define RPC_ADDR_MAX 255
/* Most creations in one CREATE_REPLICAS frame. It bounds the reply (at
 * most ~270 bytes per failed creation) and the work of one request. */
#define RPC_CREATE_BATCH_MAX 4096
/* METRICS of every range for a periodic poll (the controller's, every few
 * seconds): a range's size - a scan of up to 10,000 records on RocksDB -
 * is read again only when older than RPC_METRICS_POLL_AGE_MS. */
#define RPC_METRICS_POLL UINT64_MAX
#define RPC_METRICS_POLL_AGE_MS 30000

/* Most bytes of a failure's message in a CREATE_REPLICAS reply. */
#define RPC_CREATE_MSG_MAX 255

typedef enum rpc_type {
    RPC_REPLY = 0,
    RPC_PING = 1,
    RPC_PUT = 2,
    RPC_DEL = 3,
    RPC_GET = 4,
    RPC_SCAN = 5,
    RPC_CREATE_REPLICA = 16,
    RPC_ADD_REPLICA = 17,
    RPC_REMOVE_REPLICA = 18,
    RPC_TRANSFER_LEADER = 19,
    RPC_METRICS = 20,
    RPC_DROP_REPLICA = 21,
    RPC_CREATE_REPLICAS = 22,
    RPC_SPLIT_RANGE = 23,
    RPC_CATCH_UP = 24,
    RPC_BUMP_EPOCH = 25,
    RPC_FENCE = 26,
    RPC_SCAN_RECORDS = 27,
    RPC_COPY = 28,
    RPC_FLOOR = 29,
    RPC_TYPE_MAX_ = 30
} rpc_type;

/* Condition of a put, checked when the write is applied (atomically). */
typedef enum rpc_cond {
    RPC_COND_NONE = 0,
    RPC_COND_IFSEQ = 1,    /* only if the key's current sequencer is `seq` */
    RPC_COND_IFABSENT = 2, /* only if the key is absent or a tombstone */
} rpc_cond;

typedef struct rpc_bytes {
    const uint8_t *p;
    size_t len;
} rpc_bytes;

typedef struct rpc_peer {
    uint64_t id;
    rpc_bytes addr; /* "host:port" */
} rpc_peer;

/* A decoded request. Which fields are meaningful depends on `type`:
 *   PUT      range_id epoch key value cond cond_seq
 *   DEL      range_id epoch key
 *   GET      range_id epoch key
 *   SCAN     range_id epoch key (start) end limit
 *   CREATE_REPLICA range_id epoch table_id engine key (start) end
 *            bootstrap peers
 *   ADD_REPLICA    range_id node_id addr epoch
 *   REMOVE_REPLICA range_id node_id epoch
 *            (epoch: the metadata's; the change's new epoch is above it)
 *   TRANSFER_LEADER range_id node_id (0 = any voter)
 *   METRICS  range_id (0 = every range; RPC_METRICS_POLL = every range,
 *            with range sizes up to RPC_METRICS_POLL_AGE_MS old)
 *   DROP_REPLICA range_id (delete this node's replica: data and log)
 *   CREATE_REPLICAS count items (read with rpc_create_next; build with
 *            rpc_create_batch_add)
 *   SPLIT_RANGE range_id epoch new_range key (empty: the leader picks the
 *            median by bytes); answered once applied on the leader with
 *            "split at <key hex> into range N: done, epoch E"
 *   CATCH_UP range_id node_id: on the leader, give that follower a
 *            snapshot now instead of the log it lacks (replica_catch_up)
 *   BUMP_EPOCH range_id epoch: on the leader, an epoch entry above both
 *            the range's epoch and `epoch` (the metadata's, when it is
 *            ahead); answered "epoch: done, epoch E" once applied there
 *   FENCE    range_id epoch: on the leader, fence the range for a move
 *            (replica_fence): as BUMP_EPOCH, and from then on the range
 *            takes no writes; answered "fence: done, epoch E, seq S"
 *   SCAN_RECORDS as SCAN, tombstones included: the reply's entries are
 *            records (rpc_record_next), what a move copies
 *   COPY     range_id epoch count items: records (rpc_record_put) to land
 *            on the leader, each only if newer than what the key holds
 *            (ENTRY_COND_IFNEWER); answered "copied N of M" once applied
 *            there (N landed, M - N already held as new or newer)
 *   FLOOR    range_id epoch seq: on the leader, every replica's clock past
 *            `seq` for good (replica_set_floor), with an epoch above both
 *            the range's and `epoch`; answered "floor: done, epoch E"
 *   PING     nothing */
typedef struct rpc_request {
    rpc_type type;
    uint64_t id;
    uint64_t range_id;
    uint64_t epoch;
    rpc_bytes key;
    rpc_bytes value;
    rpc_bytes end;
    rpc_cond cond;
    seq cond_seq;  /* PUT: the condition's; FLOOR: the floor */
    uint32_t limit;
    uint64_t table_id;
    uint8_t engine;
    bool bootstrap;
    uint64_t node_id;
    rpc_bytes addr;
    unsigned n_peers;
    rpc_peer peers[RPC_MAX_PEERS];
    uint64_t new_range; /* SPLIT_RANGE: the upper half's range id */
    uint32_t count;  /* CREATE_REPLICAS, COPY: items in `items` */
    rpc_bytes items; /* CREATE_REPLICAS: the encoded creations; COPY: the
                      * encoded records */
} rpc_request;

/* A decoded reply. `leader_*` only for NOT_LEADER; `seq` for PUT, DEL and a
 * found GET; `value` for GET, and the JSON text of admin replies; scan
 * entries are read with rpc_scan_next() from `scan`. */
typedef struct rpc_reply {
    uint64_t id;
    int status;
    rpc_bytes message;
    uint64_t leader_id;
    rpc_bytes leader_addr;
    seq seq;
    rpc_bytes value;
    uint32_t scan_count;
    bool scan_more; /* the scan stopped at its byte budget, not its end */
    rpc_bytes scan;  /* the encoded entries */
    uint32_t n_failed;  /* CREATE_REPLICAS: creations that did not succeed */
    rpc_bytes failed;   /* ... encoded (rpc_create_failure_next) */
} rpc_reply;

typedef struct rpc_scan_entry {
    rpc_bytes key;
    seq seq;
    rpc_bytes value;
} rpc_scan_entry;

/* A record as a move copies it (SCAN_RECORDS' entries, COPY's items):
 * key str | seq (16) | flags (1, bit 0 = tombstone) | value str. */
typedef struct rpc_record {
    rpc_bytes key;
    seq seq;
    bool tombstone;
    rpc_bytes value; /* empty for a tombstone */
} rpc_record;

/* Append one record to `out` (a COPY's items, or a SCAN_RECORDS reply
 * between rpc_reply_scan_begin and _end). */
int rpc_record_put(buf *out, const void *key, size_t key_len, const seq *s,
                   bool tombstone, const void *value, size_t value_len);

/* The record at *pos of `items` (a COPY's items, or a SCAN_RECORDS
 * reply's `scan`): 1 and *pos moved past it, 0 at the end, or
 * CAIRN_ERR_PROTO if malformed. */
int rpc_record_next(rpc_bytes items, size_t *pos, rpc_record *out);

/* ---- handshake -------------------------------------------------------- */

/* Append the handshake of a client connection (with the process's
 * cluster secret, if it has one: rpc_secret_set). */
int rpc_hello_client(buf *out);

/* Append the handshake of a link from node `from_id` at `addr`, in its
 * process `incarnation` (with the process's cluster secret, if any). */
int rpc_hello_link(buf *out, uint64_t incarnation, uint64_t from_id,
                   const char *addr);

/* Parse a handshake at the start of `p`. Returns the bytes it used, 0 if
 * more bytes are needed, or CAIRN_ERR_PROTO. `addr` is NUL-terminated and
 * empty for a client connection; `kind` is without RPC_HELLO_SECRET. */
typedef struct rpc_hello {
    int kind;
    uint64_t incarnation;
    uint64_t from_id;
    char addr[RPC_ADDR_MAX + 1];
    bool has_secret;
    size_t secret_len;
    uint8_t secret[RPC_SECRET_MAX];
} rpc_hello;
int rpc_hello_parse(const uint8_t *p, size_t len, rpc_hello *out);

/* ---- cluster secret (secret.c) ------------------------------------------
 * One secret per process, set at startup before any thread or connection
 * exists, read-only afterwards: every handshake the process sends carries
 * it, and a node checks every handshake it receives against it. */

/* Set the secret (1..RPC_SECRET_MAX bytes; len 0 clears it). 0 or
 * CAIRN_ERR_INVALID. */
int rpc_secret_set(const void *secret, size_t len);

/* Read the secret from a file: its content less trailing whitespace
 * (a final newline). 0, CAIRN_ERR_IO (unreadable), CAIRN_ERR_INVALID
 * (empty or longer than RPC_SECRET_MAX) with the reason in `err`. A file
 * that others may read is accepted with a warning in `warn` ("" if none):
 * the caller logs it. */
int rpc_secret_load(const char *path, char *err, size_t errcap, char *warn,
                    size_t warncap);

/* Whether this process has a secret. */
bool rpc_secret_required(void);

/* Check a received handshake: 0 if this process has no secret or the
 * handshake carries the same one (compared in constant time);
 * CAIRN_ERR_PROTO if it has none; CAIRN_ERR_INVALID if it differs. */
int rpc_secret_check(const rpc_hello *h);

/* ---- frames ----------------------------------------------------------- */

/* Length of the complete frame at the start of `p`: 0 if more bytes are
 * needed, CAIRN_ERR_PROTO if the length is below the header or above
 * RPC_FRAME_MAX (the connection must then be closed). */
long rpc_frame_len(const uint8_t *p, size_t len);

/* Type of the complete frame `p` (no validation beyond the header). */
rpc_type rpc_frame_type(const uint8_t *p);

/* Append one encoded request frame (the fields of `req` its type uses). */
int rpc_encode_request(buf *out, const rpc_request *req);

/* Decode one complete request frame of `len` bytes. */
int rpc_decode_request(const uint8_t *p, size_t len, rpc_request *out);

/* Replies. Each appends one complete frame to `out`. */
int rpc_reply_error(buf *out, uint64_t id, int status, const char *message);
int rpc_reply_not_leader(buf *out, uint64_t id, uint64_t leader_id,
                         const char *leader_addr);
int rpc_reply_ok(buf *out, uint64_t id);
int rpc_reply_seq(buf *out, uint64_t id, const seq *s);
int rpc_reply_value(buf *out, uint64_t id, const seq *s, const void *value,
                    size_t value_len);
int rpc_reply_text(buf *out, uint64_t id, const char *text, size_t len);

/* A scan reply is built in three steps: begin, one add per entry, end.
 * `mark` remembers where the frame starts; no other frame may be appended
 * to `out` in between. */
int rpc_reply_scan_begin(buf *out, uint64_t id, size_t *mark);
int rpc_reply_scan_add(buf *out, const void *key, size_t key_len,
                       const seq *s, const void *value, size_t value_len);
void rpc_reply_scan_end(buf *out, size_t mark, uint32_t count, bool more);

/* Decode one complete reply frame. The kind of body (seq, value, text,
 * scan) is not self-describing: `for_type` is the type of the request it
 * answers. */
int rpc_decode_reply(const uint8_t *p, size_t len, rpc_type for_type,
                     rpc_reply *out);

/* Next entry of a decoded scan reply: 1 and *out filled, 0 at the end,
 * CAIRN_ERR_PROTO if malformed. `*pos` starts at 0. */
int rpc_scan_next(const rpc_reply *r, size_t *pos, rpc_scan_entry *out);

/* ---- CREATE_REPLICAS ---------------------------------------------------- */

/* A CREATE_REPLICAS request being built: its encoded creations. */
typedef struct rpc_create_batch {
    buf items;
    uint32_t count;
} rpc_create_batch;

#define RPC_CREATE_BATCH_INIT {BUF_INIT, 0}

/* Add one creation - the fields of `item` that a CREATE_REPLICA request
 * uses (range_id epoch table_id engine key end bootstrap peers) - to `b`.
 * CAIRN_ERR_TOOBIG (b unchanged) when it does not fit in the frame
 * (RPC_CREATE_BATCH_MAX creations, RPC_FRAME_MAX bytes): send the batch,
 * reset it and add again; CAIRN_ERR_INVALID for more than RPC_MAX_PEERS
 * peers or a creation that could never fit a frame. */
int rpc_create_batch_add(rpc_create_batch *b, const rpc_request *item);

/* The CREATE_REPLICAS request with id `id` carrying `b` (it points into
 * `b`, which must outlive it); encode it with rpc_encode_request. */
void rpc_create_batch_request(const rpc_create_batch *b, uint64_t id,
                              rpc_request *req);

/* Empty the batch (keeps its memory) / free it. */
void rpc_create_batch_reset(rpc_create_batch *b);
void rpc_create_batch_free(rpc_create_batch *b);

/* Next creation of a decoded CREATE_REPLICAS request: 1 and *item filled
 * as a CREATE_REPLICA request (with the batch's id; pointing into the
 * frame), 0 after the last, CAIRN_ERR_PROTO if malformed (never for a
 * request rpc_decode_request accepted: it checks every creation). `*pos`
 * starts at 0. */
int rpc_create_next(const rpc_request *batch, size_t *pos, rpc_request *item);

/* The reply to a CREATE_REPLICAS request, built as a scan reply is: begin,
 * one add per creation that did not succeed (status != 0; the message is
 * cut at RPC_CREATE_MSG_MAX bytes; NULL = the status's default message),
 * end with their number. No other frame may be appended in between. */
int rpc_reply_create_begin(buf *out, uint64_t id, size_t *mark);
int rpc_reply_create_add(buf *out, uint64_t range_id, int status,
                         const char *message);
void rpc_reply_create_end(buf *out, size_t mark, uint32_t n_failed);

/* One failed creation of a decoded CREATE_REPLICAS reply. */
typedef struct rpc_create_failure {
    uint64_t range_id;
    int status;
    rpc_bytes message;
} rpc_create_failure;

/* Next failure of a decoded CREATE_REPLICAS reply (r->failed): 1 and *out
 * filled, 0 after the last, CAIRN_ERR_PROTO if malformed (never for a
 * reply rpc_decode_reply accepted). `*pos` starts at 0. */
int rpc_create_failure_next(const rpc_reply *r, size_t *pos,
                            rpc_create_failure *out);

#endif
