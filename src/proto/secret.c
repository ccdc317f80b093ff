/*
 * secret.c - the process's cluster secret: what every handshake it sends
 * carries and every handshake a node receives is checked against (rpc.h,
 * "cluster secret").
 */
#include "rpc.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/err.h"

/* Set once at startup, before threads; read-only afterwards. */
static uint8_t secret[RPC_SECRET_MAX];
static size_t secret_len;

int rpc_secret_set(const void *s, size_t len)
{
    if (len > RPC_SECRET_MAX)
        return CAIRN_ERR_INVALID;
    /* The check compares all RPC_SECRET_MAX bytes: no stale tail. */
    memset(secret, 0, sizeof secret);
    if (len)
        memcpy(secret, s, len);
    secret_len = len;
    return 0;
}

bool rpc_secret_required(void) { return secret_len > 0; }

/* Used by rpc.c's handshake writers. */
int rpc_secret_append_(buf *out);
int rpc_secret_append_(buf *out)
{
    if (secret_len == 0)
        return 0;
    int rc = buf_append_u16(out, (uint16_t)secret_len);
    return rc ? rc : buf_append(out, secret, secret_len);
}

int rpc_secret_check(const rpc_hello *h)
{
    if (secret_len == 0)
        return 0;
    if (!h->has_secret)
        return CAIRN_ERR_PROTO;
    /* Constant time over the longest possible secret: how long a
     * refusal takes says nothing of how much of a guess was right. */
    uint8_t diff = (uint8_t)(h->secret_len != secret_len);
    for (size_t i = 0; i < RPC_SECRET_MAX; i++)
        diff |= (uint8_t)(secret[i] ^ h->secret[i]);
    return diff ? CAIRN_ERR_INVALID : 0;
}

int rpc_secret_load(const char *path, char *err, size_t errcap, char *warn,
                    size_t warncap)
{
    warn[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errcap, "cannot read %s: %s", path, strerror(errno));
        return CAIRN_ERR_IO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0)
        snprintf(warn, warncap,
                 "%s can be read by other users (mode %03o); chmod 600 it",
                 path, (unsigned)(st.st_mode & 0777));
    uint8_t b[RPC_SECRET_MAX + 2];
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    while (n > 0 && isspace(b[n - 1]))
        n--;
    if (n == 0 || n > RPC_SECRET_MAX) {
        snprintf(err, errcap, "%s: the secret must be 1 to %d bytes", path,
                 RPC_SECRET_MAX);
        return CAIRN_ERR_INVALID;
    }
    return rpc_secret_set(b, n);
}
