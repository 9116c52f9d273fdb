/* addr.h: the SSRF address classifier. Pure functions: no socket is ever opened here.
 *
 * ig_addr_classify() decides whether imagegate may connect to an address on a client's
 * behalf. Refused: loopback, private (RFC 1918, fc00::/7), link-local, CGNAT, multicast,
 * broadcast, reserved and documentation ranges, and every IPv6 form that embeds an IPv4
 * address (mapped, compatible, NAT64 incl. local-use, 6to4, Teredo, ISATAP), judged by the
 * embedded address (reliability.md §1 deny table). */
#ifndef IG_ADDR_H
#define IG_ADDR_H

#include <stdbool.h>
#include <sys/socket.h>

enum ig_addr_class {
    IG_ADDR_PUBLIC = 0,
    IG_ADDR_LOOPBACK,
    IG_ADDR_PRIVATE,
    IG_ADDR_LINK_LOCAL,
    IG_ADDR_CGNAT,
    IG_ADDR_MULTICAST,
    IG_ADDR_UNSPECIFIED,
    IG_ADDR_RESERVED,   /* documentation, benchmarking, 240/4, broadcast, 6to4 relay, ... */
    IG_ADDR_INVALID,    /* not AF_INET/AF_INET6, or malformed */
};

const char *ig_addr_class_name(enum ig_addr_class c);

enum ig_addr_class ig_addr_classify(const struct sockaddr *sa);
/* Classify a numeric host as libc's getaddrinfo(AI_NUMERICHOST) reads it, which accepts the
 * decimal, octal, hexadecimal and shortened IPv4 forms ("2130706433", "0177.0.0.1",
 * "0x7f.1", "127.1") and any IPv6 text. IG_ADDR_INVALID when not numeric. No socket. */
enum ig_addr_class ig_addr_classify_str(const char *host);

/* The policy: public always allowed; loopback only when allow_loopback (tests). */
bool ig_addr_allowed(enum ig_addr_class c, bool allow_loopback);

#endif
