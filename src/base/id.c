/* id.c: UUIDv7 and hex/UUID forms. */
#include "base/base.h"

#include <openssl/rand.h>
#include <string.h>

void ig_random_bytes(void *p, size_t n)
{
    if (RAND_bytes(p, (int)n) != 1)
        IG_BUG("RAND_bytes failed");
}

void ig_id_new(struct ig_id *id)
{
    uint64_t ms = (uint64_t)ig_now_ms();

    ig_random_bytes(id->b, sizeof(id->b));
    for (int i = 0; i < 6; i++)
        id->b[i] = (unsigned char)(ms >> (40 - 8 * i));
    id->b[6] = (unsigned char)(0x70 | (id->b[6] & 0x0f));
    id->b[8] = (unsigned char)(0x80 | (id->b[8] & 0x3f));
}

int64_t ig_id_time_ms(const struct ig_id *id)
{
    uint64_t ms = 0;

    for (int i = 0; i < 6; i++)
        ms = (ms << 8) | id->b[i];
    return (int64_t)ms;
}

static const char hexd[] = "0123456789abcdef";

void ig_id_hex(const struct ig_id *id, char *out)
{
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hexd[id->b[i] >> 4];
        out[2 * i + 1] = hexd[id->b[i] & 15];
    }
    out[32] = '\0';
}

void ig_id_uuid(const struct ig_id *id, char *out)
{
    char *o = out;

    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hexd[id->b[i] >> 4];
        *o++ = hexd[id->b[i] & 15];
    }
    *o = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool ig_id_parse(const char *s, struct ig_id *id)
{
    const char *us = strrchr(s, '_');
    size_t len;
    int nib = 0;

    if (us)
        s = us + 1;
    len = strlen(s);
    if (len != IG_ID_HEX_LEN && len != IG_ID_UUID_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        int v;
        if (len == IG_ID_UUID_LEN && (i == 8 || i == 13 || i == 18 || i == 23)) {
            if (s[i] != '-')
                return false;
            continue;
        }
        v = hexval(s[i]);
        if (v < 0)
            return false;
        if (nib % 2 == 0)
            id->b[nib / 2] = (unsigned char)(v << 4);
        else
            id->b[nib / 2] |= (unsigned char)v;
        nib++;
    }
    return nib == 32;
}

bool ig_id_equal(const struct ig_id *a, const struct ig_id *b)
{
    return memcmp(a->b, b->b, 16) == 0;
}

bool ig_id_is_zero(const struct ig_id *id)
{
    static const unsigned char zero[16];
    return memcmp(id->b, zero, 16) == 0;
}
