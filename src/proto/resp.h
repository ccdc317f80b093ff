/*
 * resp.h - the RESP2 codec (Redis serialization protocol, version 2).
 *
 * Clients speak RESP to the router (DESIGN.md, "Client API (RESP)"): any
 * Redis client or tool works unchanged. This module has the three pieces
 * both ends need, all free of I/O and of global state:
 *
 *   resp_parser  server side: turns received bytes into commands, either
 *                multibulk (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`, what clients
 *                send) or inline (`PING\r\n`, what telnet and redis-cli in
 *                some cases send).
 *   resp_write_* both sides: append a reply (server) or a command (client)
 *                to a `buf`.
 *   resp_reader  client side: turns received bytes into replies.
 *
 * Incremental parsing. The caller owns the input bytes, typically one buf per
 * connection that it appends to as bytes arrive (split anywhere, possibly one
 * byte at a time). It presents the unconsumed bytes to the parser; the parser
 * remembers how far it got (offsets, not pointers, so the buffer may be
 * reallocated between calls) and never re-scans them, so a large bulk string
 * arriving in many pieces costs linear time in total. Rules for the caller:
 *
 *   1. Until a call returns a complete message, every call presents the same
 *      bytes as before from the same first byte, plus possibly more.
 *   2. After a complete message of `consumed` bytes, the next call starts at
 *      the byte right after it (advance a pointer, or buf_consume()).
 *   3. The pointers in a returned message point into the caller's bytes
 *      (zero copy; inline commands point into parser-owned memory, one copy)
 *      and stay valid until the caller moves, frees or overwrites those bytes,
 *      or calls the parser again, whichever comes first.
 *
 * Limits (resp_limits, defaults below) bound every allocation by the number
 * of bytes actually received and stop a peer from making us buffer without
 * end. Malformed input or a limit exceeded yields CAIRN_ERR_PROTO and a
 * Redis-style message ("Protocol error: invalid bulk length"); it never
 * crashes, reads past the presented bytes, or allocates without bound. A
 * protocol error is final: like Redis, the server writes the error reply
 * (resp_write_proto_error) and closes the connection, since the stream can no
 * longer be framed. resp_parser_reset() exists for tests and reuse.
 *
 * Strictness, where RESP2 as Redis implements it is looser: every line must
 * end in "\r\n" (a bulk string's payload too), and numbers are decimal
 * without '+', without leading zeros and without overflow. Inline commands
 * are as Redis parses them: split on spaces and tabs, a line may end in "\n"
 * or "\r\n", empty lines are skipped, and "double quoted" arguments take the
 * escapes \n \r \t \b \a \\ \" \xHH while 'single quoted' ones take only \'.
 * An empty multibulk (`*0\r\n`) is skipped as Redis does; a negative count
 * is an error (Redis also skips "*-1", which no client sends).
 */
#ifndef CAIRN_RESP_H
#define CAIRN_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Default limits. A bulk string carries at most a 1 MiB value (limits.h)
 * plus room for a command around it. */
#define RESP_BULK_MAX (1024 * 1024 + 64 * 1024)
#define RESP_ARGS_MAX (1024 * 1024)
#define RESP_INLINE_MAX (64 * 1024)
#define RESP_MESSAGE_MAX (128u * 1024 * 1024)
#define RESP_DEPTH_MAX 16

typedef struct resp_limits {
    size_t bulk_max;    /* bytes in one bulk string ($len), inclusive */
    size_t args_max;    /* arguments of a command; elements of a reply array
                         * summed over all nesting levels */
    size_t inline_max;  /* bytes in an inline command line or a simple
                         * string / error reply line, terminator excluded */
    size_t message_max; /* bytes of one whole command or reply, framing
                         * included */
    size_t depth_max;   /* nesting of reply arrays (a flat array is depth 1);
                         * commands are always depth 1 */
} resp_limits;

/* The defaults above, for callers that want to change one field. */
resp_limits resp_limits_default(void);

/* ---------------------------------------------------------------------
 * Request parser (server side)
 * --------------------------------------------------------------------- */

typedef struct resp_parser resp_parser;

/* One argument: `len` bytes at `p` (not NUL-terminated; may contain NULs). */
typedef struct resp_arg {
    const uint8_t *p;
    size_t len;
} resp_arg;

/* One complete command. `argv` is parser-owned (rule 3 above); argc >= 1. */
typedef struct resp_cmd {
    size_t argc;
    const resp_arg *argv;
    size_t consumed; /* bytes of input this command took, framing included */
    bool is_inline;  /* it came as an inline command */
} resp_cmd;

/* Create a parser with `lim` (NULL = defaults); 0 or CAIRN_ERR_NOMEM. */
int resp_parser_new(resp_parser **out, const resp_limits *lim);

void resp_parser_free(resp_parser *p);

/* Forget any partial command and error; keep the memory. */
void resp_parser_reset(resp_parser *p);

/*
 * Parse the next command from `data[0..len)` (rules 1-3 above).
 * Returns 1 and fills *cmd when a whole command is there; 0 when more bytes
 * are needed (nothing to do: read more and call again); CAIRN_ERR_PROTO on
 * malformed input or an exceeded limit (resp_parser_errmsg says which; every
 * later call returns the same error until resp_parser_reset); CAIRN_ERR_NOMEM
 * (nothing is lost: the same call may be repeated later).
 * Empty commands (`*0\r\n`, blank inline lines) are skipped, as Redis does:
 * their bytes count in the next command's `consumed`.
 */
int resp_parse_command(resp_parser *p, const uint8_t *data, size_t len,
                       resp_cmd *cmd);

/* After CAIRN_ERR_PROTO: the Redis-style message, e.g. "Protocol error:
 * invalid bulk length"; "" when there was no error. Owned by the parser. */
const char *resp_parser_errmsg(const resp_parser *p);

/* ---------------------------------------------------------------------
 * Writers (both sides). Each returns 0 or CAIRN_ERR_NOMEM; on failure the
 * buf is left as it was. Simple strings and error messages cannot carry CR or
 * LF: they are replaced by spaces, as Redis does.
 * --------------------------------------------------------------------- */

/* "+s\r\n" */
int resp_write_simple(buf *b, const char *s);

/* "-WORD message\r\n": the stable code word first (DESIGN.md: "-TOOBIG
 * value is 2000000 bytes, limit 1048576"). `fmt` NULL writes just "-WORD". */
int resp_write_error(buf *b, const char *word, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The same for a cairn_err code: its code word (err.h), then the formatted
 * message or, with `fmt` NULL, the code's default message. */
int resp_write_err(buf *b, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The reply to a protocol error, as Redis words it:
 * "-ERR Protocol error: invalid bulk length\r\n". */
int resp_write_proto_error(buf *b, const resp_parser *p);

/* ":v\r\n" */
int resp_write_int(buf *b, int64_t v);

/* "$n\r\n<n bytes>\r\n" */
int resp_write_bulk(buf *b, const void *p, size_t n);

/* resp_write_bulk of a NUL-terminated string. */
int resp_write_bulk_str(buf *b, const char *s);

/* "$-1\r\n": the nil bulk string (GET of a missing key). */
int resp_write_nil(buf *b);

/* "*n\r\n": an array header; the caller writes the n elements after it. */
int resp_write_array(buf *b, size_t n);

/* "*-1\r\n": the nil array. */
int resp_write_nil_array(buf *b);

/* A command as clients send it: an array of `argc` bulk strings. `argvlen`
 * gives each length; NULL means every argv[i] is NUL-terminated. */
int resp_write_command(buf *b, size_t argc, const char *const *argv,
                       const size_t *argvlen);

/* The same from parsed arguments (a router or proxy re-sending a command). */
int resp_write_command_args(buf *b, size_t argc, const resp_arg *argv);

/* ---------------------------------------------------------------------
 * Reply reader (client side)
 *
 * One complete reply comes back as a flat array of nodes in pre-order: an
 * array node is followed by its `count` elements (each with its own
 * children). A load generator looks at node[0].type only ("was it an
 * error?"); a client that wants values walks the nodes. Nodes are
 * reader-owned and reused: no allocation per reply once warmed up.
 * --------------------------------------------------------------------- */

typedef enum resp_type {
    RESP_SIMPLE = '+',  /* str/len: the line without "+" and "\r\n" */
    RESP_ERROR = '-',   /* str/len: the line without "-" and "\r\n" */
    RESP_INTEGER = ':', /* integer */
    RESP_BULK = '$',    /* str/len: the payload */
    RESP_ARRAY = '*',   /* count: the number of elements that follow */
    RESP_NIL = 'n',     /* "$-1" */
    RESP_NIL_ARRAY = 'N' /* "*-1" */
} resp_type;

typedef struct resp_node {
    resp_type type;
    const uint8_t *str; /* SIMPLE, ERROR, BULK; else NULL */
    size_t len;
    int64_t integer; /* INTEGER */
    size_t count;    /* ARRAY */
} resp_node;

typedef struct resp_reply {
    size_t nnodes; /* >= 1 */
    const resp_node *nodes;
    size_t consumed; /* bytes of input this reply took */
} resp_reply;

typedef struct resp_reader resp_reader;

/* Create a reader with `lim` (NULL = defaults); 0 or CAIRN_ERR_NOMEM. */
int resp_reader_new(resp_reader **out, const resp_limits *lim);

void resp_reader_free(resp_reader *r);

/* Forget any partial reply and error; keep the memory. */
void resp_reader_reset(resp_reader *r);

/*
 * Read the next reply from `data[0..len)`, under the same caller rules 1-3
 * as resp_parse_command. Returns 1 and fills *reply, 0 when more bytes are
 * needed, CAIRN_ERR_PROTO (see resp_reader_errmsg; final until reset) or
 * CAIRN_ERR_NOMEM (the same call may be repeated later).
 */
int resp_read_reply(resp_reader *r, const uint8_t *data, size_t len,
                    resp_reply *reply);

/* After CAIRN_ERR_PROTO: what was wrong; "" when there was no error. */
const char *resp_reader_errmsg(const resp_reader *r);

#endif
