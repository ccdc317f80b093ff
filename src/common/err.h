/*
 * err.h - the one error enum of cairn.
 *
 * Every fallible function in cairn returns an `int`: 0 (CAIRN_OK) on success
 * or a negative `cairn_err` code. Each code has a stable code word (what a
 * client sees first in a RESP error, e.g. "-TOOBIG ...") and a default
 * human message. Code words are part of the public interface: never rename
 * one, only add new ones (docs/API.md lists them).
 */
#ifndef CAIRN_ERR_H
#define CAIRN_ERR_H

/* X(name, code word, default message) */
#define CAIRN_ERR_LIST(X)                                                     \
    X(CAIRN_OK, "OK", "success")                                              \
    X(CAIRN_ERR_NOMEM, "NOMEM", "out of memory")                              \
    X(CAIRN_ERR_IO, "IO", "input/output error")                               \
    X(CAIRN_ERR_INVALID, "INVALID", "invalid argument")                       \
    X(CAIRN_ERR_NOT_FOUND, "NOTFOUND", "not found")                           \
    X(CAIRN_ERR_EXISTS, "EXISTS", "already exists")                           \
    X(CAIRN_ERR_KEY_EMPTY, "KEYEMPTY", "key must be at least 1 byte")         \
    X(CAIRN_ERR_KEY_TOOBIG, "KEYTOOBIG", "key is longer than 1024 bytes")     \
    X(CAIRN_ERR_TOOBIG, "TOOBIG", "value is larger than 1048576 bytes")       \
    X(CAIRN_ERR_CORRUPT, "CORRUPT", "stored data is corrupt")                 \
    X(CAIRN_ERR_ENGINE, "ENGINE", "index store error")                        \
    X(CAIRN_ERR_PROTO, "PROTO", "protocol error")                             \
    X(CAIRN_ERR_NOT_LEADER, "NOT_LEADER", "this replica is not the leader")   \
    X(CAIRN_ERR_STALE_EPOCH, "STALE_EPOCH", "range epoch is stale")           \
    X(CAIRN_ERR_KEY_OUT_OF_RANGE, "KEY_OUT_OF_RANGE",                         \
      "key is outside the range")                                             \
    X(CAIRN_ERR_RANGE_NOT_FOUND, "RANGE_NOT_FOUND",                           \
      "range is not hosted here")                                             \
    X(CAIRN_ERR_NO_QUORUM, "NOQUORUM", "no majority of replicas reachable")   \
    X(CAIRN_ERR_TIMEOUT, "TIMEOUT", "timed out, outcome unknown")             \
    X(CAIRN_ERR_TRYAGAIN, "TRYAGAIN", "temporarily unavailable, try again")   \
    X(CAIRN_ERR_CONDITION, "CONDITION", "condition not met")                  \
    X(CAIRN_ERR_SHUTDOWN, "SHUTDOWN", "shutting down")                        \
    X(CAIRN_ERR_BUSY, "BUSY", "too many requests in flight")                  \
    X(CAIRN_ERR_UNSUPPORTED, "UNSUPPORTED", "not supported")                  \
    X(CAIRN_ERR_META, "META", "metadata store error")                         \
    X(CAIRN_ERR_NO_TABLE, "NOTABLE", "no such table")                         \
    X(CAIRN_ERR_SNAPSHOT_TOOBIG, "SNAPTOOBIG",                                \
      "range is larger than the snapshot cap")                                \
    X(CAIRN_ERR_NOAUTH, "NOAUTH", "authentication required or refused")      \
    X(CAIRN_ERR_NOSPACE, "NOSPACE",                                           \
      "the node's disk is full; nothing was written")

typedef enum cairn_err {
#define CAIRN_ERR_ENUM_(name, word, msg) name##_POS_,
    CAIRN_ERR_LIST(CAIRN_ERR_ENUM_)
#undef CAIRN_ERR_ENUM_
    CAIRN_ERR_COUNT_
} cairn_err_pos_;

/* The codes themselves are negative: -(position in the list). */
#define CAIRN_ERR_CODE_(name) (-(int)name##_POS_)
enum {
#define CAIRN_ERR_DEF_(name, word, msg) name = CAIRN_ERR_CODE_(name),
    CAIRN_ERR_LIST(CAIRN_ERR_DEF_)
#undef CAIRN_ERR_DEF_
};

/* Stable code word for `code` ("TOOBIG"); "ERR" for an unknown code. */
const char *cairn_err_word(int code);

/* Default human message for `code`; "unknown error" for an unknown code. */
const char *cairn_err_message(int code);

#endif
