/* conf.c - flags from a file (conf.h). */
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define CONF_FILE_MAX (1u << 20) /* a config file is small; refuse junk */

static int push(conf_args *a, const char *s, size_t n)
{
    char **v = realloc(a->argv, (size_t)(a->argc + 2) * sizeof *v);
    if (v == NULL)
        return CAIRN_ERR_NOMEM;
    a->argv = v;
    if ((v[a->argc] = strndup(s, n)) == NULL)
        return CAIRN_ERR_NOMEM;
    v[++a->argc] = NULL;
    return 0;
}

int conf_parse_text(const char *text, const char *what, conf_args *out,
                    char *err, size_t errcap)
{
    int lineno = 0;
    const char *p = text;
    while (*p) {
        lineno++;
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        const char *s = p, *e = p + len;
        p = eol ? eol + 1 : p + len;
        while (s < e && isspace((unsigned char)*s))
            s++;
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        if (s == e || *s == '#')
            continue;
        if (e - s >= 2 && s[0] == '-' && s[1] == '-')
            s += 2;
        const char *name_end = s;
        while (name_end < e && !isspace((unsigned char)*name_end) &&
               *name_end != '=')
            name_end++;
        if (name_end == s) {
            snprintf(err, errcap, "%s:%d: no flag name", what, lineno);
            return CAIRN_ERR_INVALID;
        }
        const char *v = name_end;
        if (v < e && *v == '=')
            v++;
        while (v < e && isspace((unsigned char)*v))
            v++;
        size_t nlen = (size_t)(name_end - s);
        if (nlen == 6 && memcmp(s, "config", 6) == 0) {
            snprintf(err, errcap, "%s:%d: a config file cannot name another",
                     what, lineno);
            return CAIRN_ERR_INVALID;
        }
        char flag[128];
        if (nlen + 3 > sizeof flag) {
            snprintf(err, errcap, "%s:%d: flag name too long", what, lineno);
            return CAIRN_ERR_INVALID;
        }
        snprintf(flag, sizeof flag, "--%.*s", (int)nlen, s);
        int rc = push(out, flag, strlen(flag));
        if (rc == 0 && v < e)
            rc = push(out, v, (size_t)(e - v));
        if (rc != 0) {
            snprintf(err, errcap, "out of memory");
            return rc;
        }
    }
    return 0;
}

static int read_file(const char *path, char **out, char *err, size_t errcap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errcap, "cannot open %s: %s", path, strerror(errno));
        return CAIRN_ERR_IO;
    }
    char *text = malloc(CONF_FILE_MAX + 1);
    size_t n = text ? fread(text, 1, CONF_FILE_MAX + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (text == NULL) {
        snprintf(err, errcap, "out of memory");
        return CAIRN_ERR_NOMEM;
    }
    if (bad || n > CONF_FILE_MAX || memchr(text, '\0', n) != NULL) {
        snprintf(err, errcap, "%s: %s", path,
                 bad ? "read error" : "not a config file (too big or binary)");
        free(text);
        return CAIRN_ERR_INVALID;
    }
    text[n] = '\0';
    *out = text;
    return 0;
}

int conf_expand(int argc, char **argv, conf_args *out, char *err,
                size_t errcap)
{
    memset(out, 0, sizeof *out);
    int rc = 0;
    for (int i = 0; rc == 0 && i < argc; i++) {
        const char *path = NULL;
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                snprintf(err, errcap, "--config needs a file");
                rc = CAIRN_ERR_INVALID;
                break;
            }
            path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            path = argv[i] + 9;
        }
        if (path == NULL) {
            rc = push(out, argv[i], strlen(argv[i]));
            if (rc != 0)
                snprintf(err, errcap, "out of memory");
            continue;
        }
        char *text = NULL;
        rc = read_file(path, &text, err, errcap);
        if (rc == 0)
            rc = conf_parse_text(text, path, out, err, errcap);
        free(text);
    }
    if (rc == 0 && out->argv == NULL &&
        (out->argv = calloc(1, sizeof *out->argv)) == NULL)
        rc = CAIRN_ERR_NOMEM;
    if (rc != 0)
        conf_args_free(out);
    return rc;
}

void conf_args_free(conf_args *a)
{
    for (int i = 0; i < a->argc; i++)
        free(a->argv[i]);
    free(a->argv);
    a->argv = NULL;
    a->argc = 0;
}
