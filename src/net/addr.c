/* addr.c: the SSRF address classifier (reliability.md §1 deny table). No socket here. */
#include "base/base.h"

#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "net/addr.h"

/* One IPv4 deny range: addr/prefix in host byte order. */
struct v4_range {
    uint32_t net;
    int prefix;
    enum ig_addr_class cls;
};

#define V4(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (d))

/* Smallest ranges first where they overlap (none do today; 0.0.0.0 is handled apart). */
static const struct v4_range v4_deny[] = {
    {V4(0, 0, 0, 0), 8, IG_ADDR_RESERVED},        /* "this network" (0.0.0.0 is unspecified) */
    {V4(10, 0, 0, 0), 8, IG_ADDR_PRIVATE},        /* RFC 1918 */
    {V4(100, 64, 0, 0), 10, IG_ADDR_CGNAT},       /* RFC 6598 shared address space */
    {V4(127, 0, 0, 0), 8, IG_ADDR_LOOPBACK},
    {V4(169, 254, 0, 0), 16, IG_ADDR_LINK_LOCAL}, /* incl. 169.254.169.254 metadata */
    {V4(172, 16, 0, 0), 12, IG_ADDR_PRIVATE},     /* RFC 1918 */
    {V4(192, 0, 0, 0), 24, IG_ADDR_RESERVED},     /* IETF protocol assignments */
    {V4(192, 0, 2, 0), 24, IG_ADDR_RESERVED},     /* TEST-NET-1 */
    {V4(192, 88, 99, 0), 24, IG_ADDR_RESERVED},   /* 6to4 relay anycast */
    {V4(192, 168, 0, 0), 16, IG_ADDR_PRIVATE},    /* RFC 1918 */
    {V4(198, 18, 0, 0), 15, IG_ADDR_RESERVED},    /* benchmarking */
    {V4(198, 51, 100, 0), 24, IG_ADDR_RESERVED},  /* TEST-NET-2 */
    {V4(203, 0, 113, 0), 24, IG_ADDR_RESERVED},   /* TEST-NET-3 */
    {V4(224, 0, 0, 0), 4, IG_ADDR_MULTICAST},
    {V4(240, 0, 0, 0), 4, IG_ADDR_RESERVED},      /* future use, incl. 255.255.255.255 */
};

static const char *const class_names[] = {
    [IG_ADDR_PUBLIC] = "public",
    [IG_ADDR_LOOPBACK] = "loopback",
    [IG_ADDR_PRIVATE] = "private",
    [IG_ADDR_LINK_LOCAL] = "link-local",
    [IG_ADDR_CGNAT] = "carrier-grade NAT",
    [IG_ADDR_MULTICAST] = "multicast",
    [IG_ADDR_UNSPECIFIED] = "unspecified",
    [IG_ADDR_RESERVED] = "reserved",
    [IG_ADDR_INVALID] = "invalid",
};

const char *ig_addr_class_name(enum ig_addr_class c)
{
    if ((unsigned)c >= IG_ARRAY_LEN(class_names) || !class_names[c])
        return "invalid";
    return class_names[c];
}

static enum ig_addr_class classify_v4(uint32_t a)
{
    if (a == 0)
        return IG_ADDR_UNSPECIFIED;
    for (size_t i = 0; i < IG_ARRAY_LEN(v4_deny); i++) {
        uint32_t mask = 0xffffffffu << (32 - v4_deny[i].prefix);

        if ((a & mask) == v4_deny[i].net)
            return v4_deny[i].cls;
    }
    return IG_ADDR_PUBLIC;
}

static uint32_t be32_at(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static bool all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static enum ig_addr_class classify_v6(const unsigned char a[16])
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    static const unsigned char nat64_local[6] = {0, 0x64, 0xff, 0x9b, 0, 0x01};
    static const unsigned char discard[8] = {0x01, 0, 0, 0, 0, 0, 0, 0};
    static const unsigned char teredo[4] = {0x20, 0x01, 0, 0};
    static const unsigned char doc[4] = {0x20, 0x01, 0x0d, 0xb8};

    if (all_zero(a, 16))
        return IG_ADDR_UNSPECIFIED;
    if (all_zero(a, 15) && a[15] == 1)
        return IG_ADDR_LOOPBACK;
    /* IPv4-compatible ::/96 and IPv4-mapped ::ffff:0:0/96: judged by the embedded v4. */
    if (all_zero(a, 12) || memcmp(a, mapped, 12) == 0)
        return classify_v4(be32_at(a + 12));
    /* NAT64 well-known 64:ff9b::/96 and local-use 64:ff9b:1::/48: the last 32 bits. */
    if (memcmp(a, nat64, 12) == 0 || memcmp(a, nat64_local, 6) == 0)
        return classify_v4(be32_at(a + 12));
    if (memcmp(a, discard, 8) == 0)
        return IG_ADDR_RESERVED;
    /* Teredo 2001::/32 tunnels to an address nobody vetted (client v4 = low 32 bits ^ ~0). */
    if (memcmp(a, teredo, 4) == 0)
        return IG_ADDR_RESERVED;
    if (memcmp(a, doc, 4) == 0)
        return IG_ADDR_RESERVED;
    /* 6to4 2002::/16: the v4 in bits 16..48 (and, if that is public, the interface id). */
    if (a[0] == 0x20 && a[1] == 0x02) {
        enum ig_addr_class cls = classify_v4(be32_at(a + 2));

        if (cls != IG_ADDR_PUBLIC)
            return cls;
    }
    if ((a[0] & 0xfe) == 0xfc)
        return IG_ADDR_PRIVATE;
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
        return IG_ADDR_LINK_LOCAL;
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
        return IG_ADDR_RESERVED; /* deprecated site-local */
    if (a[0] == 0xff)
        return IG_ADDR_MULTICAST;
    /* ISATAP interface id (::0:5efe:a.b.c.d or ::200:5efe:a.b.c.d in the low 64 bits) under
     * an otherwise public prefix: the embedded v4 decides. */
    if ((a[8] == 0x00 || a[8] == 0x02) && a[9] == 0 && a[10] == 0x5e && a[11] == 0xfe)
        return classify_v4(be32_at(a + 12));
    return IG_ADDR_PUBLIC;
}

enum ig_addr_class ig_addr_classify(const struct sockaddr *sa)
{
    if (!sa)
        return IG_ADDR_INVALID;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in sin;

        memcpy(&sin, sa, sizeof(sin));
        return classify_v4(ntohl(sin.sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 sin6;

        memcpy(&sin6, sa, sizeof(sin6));
        return classify_v6(sin6.sin6_addr.s6_addr);
    }
    return IG_ADDR_INVALID;
}

enum ig_addr_class ig_addr_classify_str(const char *host)
{
    char buf[256];
    size_t n;
    struct addrinfo hints, *res = NULL;
    enum ig_addr_class cls;

    if (!host)
        return IG_ADDR_INVALID;
    n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    /* A trailing dot names the same address ("127.0.0.1." is absolute): judge it as such. */
    if (n >= 2 && host[n - 1] == '.')
        n--;
    if (n == 0 || n >= sizeof(buf))
        return IG_ADDR_INVALID;
    memcpy(buf, host, n);
    buf[n] = '\0';

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_flags = AI_NUMERICHOST;
    if (getaddrinfo(buf, NULL, &hints, &res) != 0 || !res)
        return IG_ADDR_INVALID;
    cls = ig_addr_classify(res->ai_addr);
    freeaddrinfo(res);
    return cls;
}

bool ig_addr_allowed(enum ig_addr_class c, bool allow_loopback)
{
    if (c == IG_ADDR_PUBLIC)
        return true;
    if (c == IG_ADDR_LOOPBACK)
        return allow_loopback;
    return false;
}
