/*
 * log.h - one line per event on stderr, for every cairn process.
 *
 * A line is
 *
 *     2025-05-01T10:00:00.123Z INFO  node node=3 range=17: message
 *
 * time (UTC, milliseconds), level, the process's component ("node",
 * "router", "controller", "dev", ...), the process's own identity fields
 * (`node=3` for a node, `id=NAME` for a controller; set once with
 * log_init), the range the event concerns when there is one, then the
 * message. The fixed prefix up to ": " is what a log pipeline splits on;
 * the message is for people.
 *
 * Levels: error (the process or a range stops working), warn (something
 * is wrong and handled: a peer unreachable, a connection refused), info
 * (lifecycle: started, stopping, leadership recorded, a table created),
 * debug (details an operator asks for with --log-level debug). Nothing is
 * logged per request at info: a busy router or node writes a line per
 * event, not per command.
 *
 * Each line is formatted into one buffer and written with one write(2),
 * so lines of concurrent threads never interleave. Messages longer than
 * LOG_LINE_MAX are cut. Thread-safe; log_init and log_set_level are meant
 * for startup, before threads (they are plain stores).
 */
#ifndef CAIRN_LOG_H
#define CAIRN_LOG_H

#include <stdbool.h>
#include <stdint.h>

typedef enum log_level {
    LOG_ERROR = 0,
    LOG_WARN = 1,
    LOG_INFO = 2,
    LOG_DEBUG = 3,
} log_level;

#define LOG_LINE_MAX 2048

/* Name this process in every line: `component` ("node") and `ident`, the
 * identity fields that follow it ("node=3"; NULL or "" for none). Both are
 * copied (at most 31 and 127 bytes). */
void log_init(const char *component, const char *ident);

/* Lines below `level` are dropped. Default LOG_INFO. */
void log_set_level(log_level level);
log_level log_get_level(void);

/* "error" | "warn" | "info" | "debug" -> level. 0 or CAIRN_ERR_INVALID. */
int log_level_parse(const char *name, log_level *out);

/* Whether a line at `level` would be written (to skip costly arguments). */
bool log_enabled(log_level level);

/* Write one line at `level` about range `range` (0: no range). */
void log_range(log_level level, uint64_t range, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Format one line into `out` (cap bytes, NUL-terminated, ending in '\n')
 * with time `unix_ms`; returns its length. What log_range writes; exposed
 * for the tests. */
int log_format(char *out, int cap, int64_t unix_ms, log_level level,
               uint64_t range, const char *msg);

/* Shorthands without a range. */
#define log_error(...) log_range(LOG_ERROR, 0, __VA_ARGS__)
#define log_warn(...) log_range(LOG_WARN, 0, __VA_ARGS__)
#define log_info(...) log_range(LOG_INFO, 0, __VA_ARGS__)
#define log_debug(...) log_range(LOG_DEBUG, 0, __VA_ARGS__)

#endif
