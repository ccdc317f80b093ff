/*
 * resp_internal.h - helpers shared by the RESP parser, writer and reader.
 * Not part of the API (resp.h is).
 */
#ifndef CAIRN_RESP_INTERNAL_H
#define CAIRN_RESP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A "*N", "$N" or ":N" line carries at most an int64 in decimal (20 bytes);
 * anything longer is an attack or garbage, so it is refused early instead of
 * being buffered up to a larger limit. */
#define RESP_NUM_LINE_MAX 32

/* Strict decimal int64: optional '-', digits, no '+', no leading zeros
 * ("0" alone is fine, "-0" is not), no overflow, n >= 1. */
bool resp_parse_i64(const uint8_t *s, size_t n, int64_t *out);

enum resp_line_rc {
    RESP_LINE_MORE = 0,   /* no terminator yet: read more */
    RESP_LINE_OK = 1,     /* *eol is the offset of "\r\n" */
    RESP_LINE_TOOLONG = -1,
    RESP_LINE_BADEND = -2 /* '\r' followed by something other than '\n' */
};

/*
 * Find the "\r\n" ending the line that starts at `start` in data[0..len),
 * scanning from *scan (updated, so that bytes are looked at once however the
 * input is split). The line body may be at most `max` bytes.
 */
enum resp_line_rc resp_find_crlf(const uint8_t *data, size_t len,
                                 size_t start, size_t max, size_t *scan,
                                 size_t *eol);

#endif
