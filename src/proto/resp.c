/*
 * resp.c - limits and the line/number scanning shared by the RESP request
 * parser (resp_parse.c) and reply reader (resp_read.c).
 */
#include "proto/resp.h"

#include <string.h>

#include "proto/resp_internal.h"

resp_limits resp_limits_default(void)
{
    resp_limits lim = {
        .bulk_max = RESP_BULK_MAX,
        .args_max = RESP_ARGS_MAX,
        .inline_max = RESP_INLINE_MAX,
        .message_max = RESP_MESSAGE_MAX,
        .depth_max = RESP_DEPTH_MAX,
    };
    return lim;
}

bool resp_parse_i64(const uint8_t *s, size_t n, int64_t *out)
{
    bool neg = false;
    if (n > 0 && s[0] == '-') {
        neg = true;
        s++;
        n--;
    }
    if (n == 0 || s[0] < '0' || s[0] > '9')
        return false;
    if (s[0] == '0') {
        if (n != 1 || neg)
            return false; /* leading zero or "-0" */
        *out = 0;
        return true;
    }
    /* Accumulate as a negative number: its range includes INT64_MIN. */
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        int d = s[i] - '0';
        if (v < (INT64_MIN + d) / 10)
            return false;
        v = v * 10 - d;
    }
    if (!neg) {
        if (v == INT64_MIN)
            return false;
        v = -v;
    }
    *out = v;
    return true;
}

enum resp_line_rc resp_find_crlf(const uint8_t *data, size_t len,
                                 size_t start, size_t max, size_t *scan,
                                 size_t *eol)
{
    /* The terminator's '\r' may sit at most at start + max. */
    size_t limit = start + max + 1;
    size_t end = len < limit ? len : limit;
    size_t from = *scan;
    if (from < end) {
        const uint8_t *cr = memchr(data + from, '\r', end - from);
        if (cr != NULL) {
            size_t at = (size_t)(cr - data);
            *scan = at;
            if (at + 1 >= len)
                return RESP_LINE_MORE;
            if (data[at + 1] != '\n')
                return RESP_LINE_BADEND;
            *eol = at;
            return RESP_LINE_OK;
        }
        *scan = end;
    }
    return len >= limit ? RESP_LINE_TOOLONG : RESP_LINE_MORE;
}
