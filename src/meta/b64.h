/*
 * b64.h - standard base64 (RFC 4648, with padding), as the etcd v3 JSON
 * gateway encodes every key and value.
 */
#ifndef CAIRN_META_B64_H
#define CAIRN_META_B64_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Length of the encoding of n bytes (without a NUL). */
size_t meta_b64_encoded_len(size_t n);

/* Append the encoding of p[0..n) to `out`, NUL-terminated (the NUL is not
 * counted in out->len). 0 or CAIRN_ERR_NOMEM. */
int meta_b64_encode(buf *out, const void *p, size_t n);

/* Decode s[0..len) into a new NUL-terminated allocation *out of *out_len
 * bytes. Accepts missing padding; rejects any other character, and bits
 * left over in the last character. 0, CAIRN_ERR_CORRUPT or
 * CAIRN_ERR_NOMEM. */
int meta_b64_decode(const char *s, size_t len, uint8_t **out,
                    size_t *out_len);

#endif
