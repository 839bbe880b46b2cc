/* b64.c - strict base64 encode/decode (see b64.h for the accepted form). */
#include "b64.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "err.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t gc_b64_encoded_len(size_t len)
{
    return (len / 3 + (len % 3 != 0)) * 4;
}

int gc_b64_encode(const void *data, size_t len, char **ret_text, size_t *ret_len)
{
    const unsigned char *in = data;
    size_t out_len, o = 0, i = 0;
    char *out;

    if ((data == NULL && len > 0) || ret_text == NULL)
        return GC_EINVAL;
    if (len > GC_B64_ENCODE_MAX)
        return GC_ETOOBIG;
    out_len = gc_b64_encoded_len(len);
    out = malloc(out_len + 1);
    if (out == NULL)
        return GC_ENOMEM;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    *ret_text = out;
    if (ret_len != NULL)
        *ret_len = o;
    return 0;
}

/* The 6-bit value of c, or -1 when c is not in the alphabet. */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int gc_b64_decode(const char *text, size_t len, size_t max_out, void **ret_data, size_t *ret_len)
{
    size_t pad = 0, groups, out_len, o = 0;
    unsigned char *out;

    if ((text == NULL && len > 0) || ret_data == NULL || ret_len == NULL)
        return GC_EINVAL;
    /* One optional trailing newline, as `base64` and many clients leave it. */
    if (len > 0 && text[len - 1] == '\n') {
        len--;
        if (len > 0 && text[len - 1] == '\r')
            len--;
    }
    if (len % 4 != 0)
        return GC_EINVAL;
    if (len > 0 && text[len - 1] == '=')
        pad = (text[len - 2] == '=') ? 2 : 1;
    groups = len / 4;
    out_len = groups * 3 - pad;
    if (out_len > max_out)
        return GC_ETOOBIG;
    out = malloc(out_len + 1);
    if (out == NULL)
        return GC_ENOMEM;
    for (size_t g = 0; g < groups; g++) {
        const unsigned char *q = (const unsigned char *)text + g * 4;
        bool last = g + 1 == groups;
        int v[4];
        for (int k = 0; k < 4; k++) {
            /* '=' only in the last group's padded positions. */
            if (q[k] == '=' && last && k >= 4 - (int)pad) {
                v[k] = 0;
                continue;
            }
            v[k] = b64_value(q[k]);
            if (v[k] < 0)
                goto out_free;
        }
        uint32_t bits =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        if (last && pad == 2 && (bits & 0xffff) != 0)
            goto out_free;
        if (last && pad == 1 && (bits & 0xff) != 0)
            goto out_free;
        out[o++] = (unsigned char)(bits >> 16);
        if (!last || pad < 2)
            out[o++] = (unsigned char)(bits >> 8);
        if (!last || pad < 1)
            out[o++] = (unsigned char)bits;
    }
    out[o] = '\0';
    *ret_data = out;
    *ret_len = o;
    return 0;

out_free:
    free(out);
    return GC_EINVAL;
}
