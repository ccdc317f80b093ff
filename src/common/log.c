/* log.c - one line per event (log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

static char component[32] = "cairn";
static char ident[128];
static log_level current = LOG_INFO;

static const char *const names[] = {"error", "warn", "info", "debug"};
/* Upper case, padded to one width so that messages line up. */
static const char *const tags[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};

void log_init(const char *comp, const char *id)
{
    snprintf(component, sizeof component, "%s", comp ? comp : "cairn");
    snprintf(ident, sizeof ident, "%s", id ? id : "");
}

void log_set_level(log_level level) { current = level; }

log_level log_get_level(void) { return current; }

int log_level_parse(const char *name, log_level *out)
{
    for (int i = 0; i < 4; i++)
        if (name && strcasecmp(name, names[i]) == 0) {
            *out = (log_level)i;
            return 0;
        }
    if (name && strcasecmp(name, "warning") == 0) {
        *out = LOG_WARN;
        return 0;
    }
    return CAIRN_ERR_INVALID;
}

bool log_enabled(log_level level) { return level <= current; }

int log_format(char *out, int cap, int64_t unix_ms, log_level level,
               uint64_t range, const char *msg)
{
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    int n = snprintf(out, (size_t)cap,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s%s%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, (int)(unix_ms % 1000),
                     tags[level > LOG_DEBUG ? LOG_DEBUG : level], component,
                     ident[0] ? " " : "", ident);
    if (n >= 0 && n < cap && range != 0)
        n += snprintf(out + n, (size_t)(cap - n), " range=%llu",
                      (unsigned long long)range);
    if (n >= 0 && n < cap)
        n += snprintf(out + n, (size_t)(cap - n), ": %s", msg);
    if (n < 0)
        n = 0;
    if (n > cap - 2)
        n = cap - 2; /* cut, but keep the line a line */
    /* One event, one line: a message that carries a newline (an error text
     * from elsewhere) must not start a line that parses as another event. */
    for (int i = 0; i < n; i++)
        if (out[i] == '\n' || out[i] == '\r')
            out[i] = ' ';
    out[n++] = '\n';
    out[n] = '\0';
    return n;
}

void log_range(log_level level, uint64_t range, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char msg[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char line[LOG_LINE_MAX + 256];
    int n = log_format(line, (int)sizeof line,
                       (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, level,
                       range, msg);
    /* One write per line: atomic with respect to other threads' lines
     * (stderr is unbuffered, but fprintf may still split a line). */
    ssize_t off = 0;
    while (off < n) {
        ssize_t w = write(2, line + off, (size_t)(n - off));
        if (w <= 0)
            break;
        off += w;
    }
}
