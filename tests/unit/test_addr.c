/* test_addr.c: the SSRF classifier and the URL rules, by table. Opens no socket: socket() is
 * trapped below and every test checks the trap stayed untouched. */
#include "base/base.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "net/addr.h"
#include "net/fetch.h"

/* The trap: this definition interposes libc's for the whole process (libcurl included). */
static int socket_calls;

int socket(int domain, int type, int protocol)
{
    socket_calls++;
    errno = EACCES;
    return -1;
}

#define PUB IG_ADDR_PUBLIC
#define LO IG_ADDR_LOOPBACK
#define PRIV IG_ADDR_PRIVATE
#define LL IG_ADDR_LINK_LOCAL
#define CG IG_ADDR_CGNAT
#define MC IG_ADDR_MULTICAST
#define UN IG_ADDR_UNSPECIFIED
#define RES IG_ADDR_RESERVED
#define INV IG_ADDR_INVALID

struct addr_case {
    const char *lit;
    enum ig_addr_class want;
};

static const struct addr_case addr_cases[] = {
    /* 0/8 */
    {"0.0.0.0", UN},
    {"0.0.0.1", RES},
    {"0.255.255.255", RES},
    {"1.0.0.0", PUB},
    /* 10/8 */
    {"9.255.255.255", PUB},
    {"10.0.0.0", PRIV},
    {"10.0.0.1", PRIV},
    {"10.255.255.255", PRIV},
    {"11.0.0.0", PUB},
    /* 100.64/10 */
    {"100.63.255.254", PUB},
    {"100.63.255.255", PUB},
    {"100.64.0.0", CG},
    {"100.64.0.1", CG},
    {"100.100.100.200", CG},
    {"100.127.255.255", CG},
    {"100.128.0.0", PUB},
    {"100.128.0.1", PUB},
    /* 127/8 */
    {"126.255.255.255", PUB},
    {"127.0.0.0", LO},
    {"127.0.0.1", LO},
    {"127.0.1.1", LO},
    {"127.255.255.255", LO},
    {"128.0.0.0", PUB},
    /* 169.254/16 */
    {"169.253.255.255", PUB},
    {"169.254.0.0", LL},
    {"169.254.169.254", LL},
    {"169.254.255.255", LL},
    {"169.255.0.0", PUB},
    /* 172.16/12 */
    {"172.15.255.255", PUB},
    {"172.16.0.0", PRIV},
    {"172.16.0.1", PRIV},
    {"172.31.255.255", PRIV},
    {"172.32.0.0", PUB},
    /* 192.0.0/24, 192.0.2/24 */
    {"191.255.255.255", PUB},
    {"192.0.0.0", RES},
    {"192.0.0.255", RES},
    {"192.0.1.0", PUB},
    {"192.0.1.255", PUB},
    {"192.0.2.0", RES},
    {"192.0.2.255", RES},
    {"192.0.3.0", PUB},
    /* 192.88.99/24 */
    {"192.88.98.255", PUB},
    {"192.88.99.0", RES},
    {"192.88.99.255", RES},
    {"192.88.100.0", PUB},
    /* 192.168/16 */
    {"192.167.255.255", PUB},
    {"192.168.0.0", PRIV},
    {"192.168.1.1", PRIV},
    {"192.168.255.255", PRIV},
    {"192.169.0.0", PUB},
    /* 198.18/15 */
    {"198.17.255.255", PUB},
    {"198.18.0.0", RES},
    {"198.19.255.255", RES},
    {"198.20.0.0", PUB},
    /* 198.51.100/24 */
    {"198.51.99.255", PUB},
    {"198.51.100.0", RES},
    {"198.51.100.255", RES},
    {"198.51.101.0", PUB},
    /* 203.0.113/24 */
    {"203.0.112.255", PUB},
    {"203.0.113.0", RES},
    {"203.0.113.255", RES},
    {"203.0.114.0", PUB},
    /* 224/4, 240/4 */
    {"223.255.255.255", PUB},
    {"224.0.0.0", MC},
    {"224.0.0.1", MC},
    {"224.0.0.251", MC},
    {"239.255.255.255", MC},
    {"240.0.0.0", RES},
    {"255.255.255.254", RES},
    {"255.255.255.255", RES},
    /* public IPv4 */
    {"8.8.8.8", PUB},
    {"1.1.1.1", PUB},
    {"9.9.9.9", PUB},
    {"93.184.216.34", PUB},
    {"142.250.185.206", PUB},
    /* IPv6 specials */
    {"::", UN},
    {"0::0", UN},
    {"::1", LO},
    {"0:0:0:0:0:0:0:1", LO},
    {"0:00::0:1", LO},
    {"::2", RES},
    /* IPv4-mapped ::ffff:0:0/96 */
    {"::ffff:127.0.0.1", LO},
    {"::ffff:7f00:1", LO},
    {"::ffff:0.0.0.0", UN},
    {"::ffff:10.0.0.1", PRIV},
    {"::ffff:a00:1", PRIV},
    {"::ffff:100.64.0.1", CG},
    {"::ffff:169.254.169.254", LL},
    {"::ffff:172.16.0.1", PRIV},
    {"::ffff:192.168.0.1", PRIV},
    {"::ffff:192.0.2.1", RES},
    {"::ffff:198.18.0.1", RES},
    {"::ffff:224.0.0.1", MC},
    {"::ffff:255.255.255.255", RES},
    {"::ffff:8.8.8.8", PUB},
    /* IPv4-compatible ::/96 */
    {"::127.0.0.1", LO},
    {"::10.0.0.1", PRIV},
    {"::100.64.0.1", CG},
    {"::169.254.169.254", LL},
    {"::192.168.1.1", PRIV},
    {"::8.8.8.8", PUB},
    /* NAT64 64:ff9b::/96 and 64:ff9b:1::/48 */
    {"64:ff9b::127.0.0.1", LO},
    {"64:ff9b::7f00:1", LO},
    {"64:ff9b::a00:1", PRIV},
    {"64:ff9b::a9fe:a9fe", LL},
    {"64:ff9b::6440:1", CG},
    {"64:ff9b::c0a8:1", PRIV},
    {"64:ff9b::e000:1", MC},
    {"64:ff9b::", UN},
    {"64:ff9b::808:808", PUB},
    {"64:ff9b::1:a00:1", PUB},
    {"64:ff9b:1::c0a8:1", PRIV},
    {"64:ff9b:1::7f00:1", LO},
    {"64:ff9b:1:ffff:ffff:ffff:a00:1", PRIV},
    {"64:ff9b:1::808:808", PUB},
    {"64:ff9b:2::a00:1", PUB},
    /* 6to4 2002::/16 */
    {"2002:7f00:1::", LO},
    {"2002:a9fe:a9fe::", LL},
    {"2002:a00:1::", PRIV},
    {"2002:c0a8:101::1", PRIV},
    {"2002:6440:1::", CG},
    {"2002:e000:1::", MC},
    {"2002::", UN},
    {"2002:c000:201::", RES},
    {"2002:808:808::", PUB},
    {"2002:808:808::200:5efe:7f00:1", LO},
    {"2003::1", PUB},
    {"2001:ffff::1", PUB},
    /* Teredo 2001::/32: always refused */
    {"2001::", RES},
    {"2001::1", RES},
    {"2001:0:4136:e378:8000:63bf:3fff:fdd2", RES},
    {"2001:0:ffff:ffff:ffff:ffff:ffff:ffff", RES},
    /* ISATAP interface ids */
    {"2001:4860::5efe:7f00:1", LO},
    {"2001:4860::200:5efe:7f00:1", LO},
    {"2001:4860::5efe:127.0.0.1", LO},
    {"2001:4860::5efe:a00:1", PRIV},
    {"2001:4860::200:5efe:c0a8:101", PRIV},
    {"2001:4860::5efe:a9fe:a9fe", LL},
    {"2001:4860::5efe:6440:1", CG},
    {"2001:4860::5efe:808:808", PUB},
    {"2001:4860::300:5efe:7f00:1", PUB},
    {"fe80::5efe:7f00:1", LL},
    {"fe80::200:5efe:a00:1", LL},
    /* 100::/64 discard */
    {"100::", RES},
    {"100::1", RES},
    {"100::ffff:ffff:ffff:ffff", RES},
    {"100:0:0:1::", PUB},
    /* 2001:db8::/32 documentation */
    {"2001:db8::", RES},
    {"2001:db8::1", RES},
    {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", RES},
    {"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", PUB},
    {"2001:db9::", PUB},
    /* fc00::/7 */
    {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PUB},
    {"fc00::", PRIV},
    {"fc00::1", PRIV},
    {"fd00::1", PRIV},
    {"fd00:ec2::254", PRIV},
    {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PRIV},
    {"fe00::", PUB},
    /* fe80::/10 */
    {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PUB},
    {"fe80::", LL},
    {"fe80::1", LL},
    {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", LL},
    /* fec0::/10 */
    {"fec0::", RES},
    {"fec0::1", RES},
    {"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", RES},
    /* ff00::/8 */
    {"ff00::", MC},
    {"ff02::1", MC},
    {"ff05::1:3", MC},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", MC},
    /* public IPv6 */
    {"2606:4700:4700::1111", PUB},
    {"2001:4860:4860::8888", PUB},
    {"2a00:1450:4001:800::200e", PUB},
    {"2620:fe::fe", PUB},
    /* numeric spellings libc accepts */
    {"2130706433", LO},
    {"0177.0.0.1", LO},
    {"0x7f.1", LO},
    {"127.1", LO},
    {"0x7f000001", LO},
    {"017700000001", LO},
    {"0x7F.0.0.1", LO},
    {"127.0.0.1.", LO},
    {"0", UN},
    {"[::1]", LO},
    {"[::ffff:7f00:1]", LO},
    {"[::ffff:127.0.0.1]", LO},
    {"[0:0:0:0:0:0:0:1]", LO},
    {"10.1", PRIV},
    {"0x0a.0.0.1", PRIV},
    {"167772161", PRIV},
    {"3232235777", PRIV},
    {"2852039166", LL},
    {"0xa9fea9fe", LL},
    {"0251.0376.0251.0376", LL},
    {"4294967295", RES},
    {"0xffffffff", RES},
    /* not numeric: left to the resolver, then to the open-socket gate */
    {"", INV},
    {".", INV},
    {"localhost", INV},
    {"example.com", INV},
    {"1.2.3.4.5", INV},
    {"256.0.0.1", INV},
    {"4294967296", INV},
    {"08.0.0.1", INV},
    {"127.0.0.1..", INV},
    {" 127.0.0.1", INV},
    {"[::1", INV},
    {"::1]", INV},
    {"[]", INV},
    {"::ffff:1.2.3.4.5", INV},
    {"1::2::3", INV},
};

static void test_addr__table(void **state)
{
    int failures = 0;

    assert_true(IG_ARRAY_LEN(addr_cases) >= 150);
    for (size_t i = 0; i < IG_ARRAY_LEN(addr_cases); i++) {
        enum ig_addr_class got = ig_addr_classify_str(addr_cases[i].lit);

        if (got != addr_cases[i].want) {
            print_error("%s: want %s, got %s\n", addr_cases[i].lit,
                        ig_addr_class_name(addr_cases[i].want), ig_addr_class_name(got));
            failures++;
        }
    }
    assert_int_equal(failures, 0);
    assert_int_equal(socket_calls, 0);
}

static void test_addr__sockaddr(void **state)
{
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    struct sockaddr_un sun;
    struct sockaddr_storage ss;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(80);
    assert_int_equal(inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr), 1);
    assert_int_equal(ig_addr_classify((struct sockaddr *)&sin), PRIV);
    assert_int_equal(inet_pton(AF_INET, "8.8.4.4", &sin.sin_addr), 1);
    assert_int_equal(ig_addr_classify((struct sockaddr *)&sin), PUB);

    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, "::ffff:169.254.169.254", &sin6.sin6_addr), 1);
    assert_int_equal(ig_addr_classify((struct sockaddr *)&sin6), LL);
    assert_int_equal(inet_pton(AF_INET6, "2606:4700:4700::1001", &sin6.sin6_addr), 1);
    assert_int_equal(ig_addr_classify((struct sockaddr *)&sin6), PUB);

    /* Through a sockaddr_storage, as libcurl hands it over. */
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, &sin6, sizeof(sin6));
    assert_int_equal(ig_addr_classify((struct sockaddr *)&ss), PUB);

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    assert_int_equal(ig_addr_classify((struct sockaddr *)&sun), INV);
    assert_int_equal(ig_addr_classify(NULL), INV);
    assert_int_equal(ig_addr_classify_str(NULL), INV);
    assert_int_equal(socket_calls, 0);
}

static void test_addr__policy(void **state)
{
    for (int c = IG_ADDR_PUBLIC; c <= IG_ADDR_INVALID; c++) {
        bool want_default = c == IG_ADDR_PUBLIC;
        bool want_tests = c == IG_ADDR_PUBLIC || c == IG_ADDR_LOOPBACK;

        assert_int_equal(ig_addr_allowed((enum ig_addr_class)c, false), want_default);
        assert_int_equal(ig_addr_allowed((enum ig_addr_class)c, true), want_tests);
    }
}

static void test_addr__class_names(void **state)
{
    assert_string_equal(ig_addr_class_name(PUB), "public");
    assert_string_equal(ig_addr_class_name(LO), "loopback");
    assert_string_equal(ig_addr_class_name(PRIV), "private");
    assert_string_equal(ig_addr_class_name(LL), "link-local");
    assert_string_equal(ig_addr_class_name(MC), "multicast");
    assert_string_equal(ig_addr_class_name(UN), "unspecified");
    assert_string_equal(ig_addr_class_name(RES), "reserved");
    assert_string_equal(ig_addr_class_name(INV), "invalid");
    assert_non_null(strstr(ig_addr_class_name(CG), "NAT"));
    assert_string_equal(ig_addr_class_name((enum ig_addr_class)99), "invalid");
}

/* URL spellings. A URL either fails ig_fetch_check_url, or its host (or, for a name, what a
 * stub resolver answers for it: no DNS here) gets a class. */
struct url_case {
    const char *url;
    bool ok;                  /* passes ig_fetch_check_url */
    const char *stub;         /* stub resolver answer for a name, NULL for a numeric host */
    enum ig_addr_class want;  /* class of the host (or stub answer) when ok */
};

static const struct url_case url_cases[] = {
    {"file:///etc/passwd", false, NULL, INV},
    {"FILE:///etc/passwd", false, NULL, INV},
    {"file://127.0.0.1/etc/passwd", false, NULL, INV},
    {"gopher://127.0.0.1:6379/_INFO", false, NULL, INV},
    {"dict://127.0.0.1:11211/stat", false, NULL, INV},
    {"ftp://127.0.0.1/", false, NULL, INV},
    {"FTP://example.com/a.png", false, NULL, INV},
    {"ldap://127.0.0.1/", false, NULL, INV},
    {"ws://127.0.0.1/", false, NULL, INV},
    {"javascript:alert(1)", false, NULL, INV},
    {"data:image/png;base64,AAAA", false, NULL, INV},
    {"//127.0.0.1/x.png", false, NULL, INV},
    {"127.0.0.1/x.png", false, NULL, INV},
    {"", false, NULL, INV},
    {"http://user@127.0.0.1/", false, NULL, INV},
    {"http://user:pass@example.com/", false, NULL, INV},
    {"https://user:pass@8.8.8.8/", false, NULL, INV},
    {"http://@example.com/", false, NULL, INV},
    {"http://:@example.com/", false, NULL, INV},
    {"http://example.com@127.0.0.1/", false, NULL, INV},
    {"http://127.0.0.1%2f@example.com/", false, NULL, INV},
    {"http://u;o@example.com/", false, NULL, INV},
    {"http://a b/", false, NULL, INV},
    {"http://127.0.0.1:99999/", false, NULL, INV},
    {"http://127.0.0.1/", true, NULL, LO},
    {"HTTP://127.0.0.1/", true, NULL, LO},
    {"HtTpS://127.0.0.1/", true, NULL, LO},
    {"http://127.0.0.1:80/", true, NULL, LO},
    {"http://127.0.0.1./", true, NULL, LO},
    {"http://2130706433/", true, NULL, LO},
    {"http://0177.0.0.1/", true, NULL, LO},
    {"http://0x7f.1/", true, NULL, LO},
    {"http://127.1/", true, NULL, LO},
    {"http://0x7f000001/", true, NULL, LO},
    {"http://017700000001/", true, NULL, LO},
    {"http:///127.0.0.1/", true, NULL, LO},
    {"http://0/", true, NULL, UN},
    {"http://0.0.0.0:8080/", true, NULL, UN},
    {"http://[::]/", true, NULL, UN},
    {"http://[::1]/", true, NULL, LO},
    {"http://[0:0:0:0:0:0:0:1]/", true, NULL, LO},
    {"http://[::ffff:127.0.0.1]/", true, NULL, LO},
    {"http://[::ffff:7f00:1]/", true, NULL, LO},
    {"http://[::127.0.0.1]/", true, NULL, LO},
    {"http://[2002:7f00:1::]/", true, NULL, LO},
    {"http://[64:ff9b::a9fe:a9fe]/", true, NULL, LL},
    {"http://[fe80::1%25eth0]/", true, NULL, LL},
    {"http://169.254.169.254/latest/meta-data/", true, NULL, LL},
    {"http://0xa9fea9fe/", true, NULL, LL},
    {"http://[fd00:ec2::254]/", true, NULL, PRIV},
    {"http://100.100.100.200/", true, NULL, CG},
    {"http://10.0.0.1/", true, NULL, PRIV},
    {"http://localhost/", true, "127.0.0.1", LO},
    {"http://localhost./", true, "::1", LO},
    {"http://127.0.0.1.nip.io/", true, "127.0.0.1", LO},
    {"http://ex\u00e4mple.com/", true, "93.184.215.14", PUB},
    {"https://example.com/a.png?x=1", true, "93.184.215.14", PUB},
    {"http://8.8.8.8/", true, NULL, PUB},
    {"https://[2606:4700:4700::1111]/logo.png", true, NULL, PUB},
};

static void test_addr__url_spellings(void **state)
{
    int failures = 0;

    assert_true(IG_ARRAY_LEN(url_cases) >= 40);
    for (size_t i = 0; i < IG_ARRAY_LEN(url_cases); i++) {
        const struct url_case *c = &url_cases[i];
        struct ig_errbuf eb;
        enum ig_err err;
        CURLU *u;
        char *host = NULL;
        enum ig_addr_class got;

        ig_errbuf_clear(&eb);
        err = ig_fetch_check_url(c->url, &eb);
        if (!c->ok) {
            if (err != IG_E_INVALID || strcmp(eb.field, "url") != 0 || !eb.msg[0]) {
                print_error("%s: want refusal, got %s\n", c->url, ig_strerror(err));
                failures++;
            }
            continue;
        }
        if (err != IG_OK) {
            print_error("%s: want pass, got %s: %s\n", c->url, ig_strerror(err), eb.msg);
            failures++;
            continue;
        }
        u = curl_url();
        assert_non_null(u);
        assert_int_equal(curl_url_set(u, CURLUPART_URL, c->url, 0), CURLUE_OK);
        assert_int_equal(curl_url_get(u, CURLUPART_HOST, &host, 0), CURLUE_OK);
        got = ig_addr_classify_str(c->stub ? c->stub : host);
        if (got != c->want) {
            print_error("%s: host %s: want %s, got %s\n", c->url, host,
                        ig_addr_class_name(c->want), ig_addr_class_name(got));
            failures++;
        }
        /* Only public answers would ever be connected to. */
        if (ig_addr_allowed(got, false) != (c->want == PUB)) {
            print_error("%s: policy disagrees\n", c->url);
            failures++;
        }
        curl_free(host);
        curl_url_cleanup(u);
    }
    assert_int_equal(failures, 0);
    assert_int_equal(socket_calls, 0);
}

static void test_addr__url_messages(void **state)
{
    struct ig_errbuf eb;

    ig_errbuf_clear(&eb);
    assert_int_equal(ig_fetch_check_url("gopher://h/", &eb), IG_E_INVALID);
    assert_string_equal(eb.field, "url");
    assert_non_null(strstr(eb.msg, "http or https"));
    ig_errbuf_clear(&eb);
    assert_int_equal(ig_fetch_check_url("http://u:secret@h/", &eb), IG_E_INVALID);
    assert_non_null(strstr(eb.msg, "user"));
    assert_null(strstr(eb.msg, "secret"));
    ig_errbuf_clear(&eb);
    assert_int_equal(ig_fetch_check_url(NULL, &eb), IG_E_INVALID);
    ig_errbuf_clear(&eb);
    assert_int_equal(ig_fetch_check_url("https://example.com/x.png", &eb), IG_OK);
    assert_int_equal(socket_calls, 0);
}

static int group_setup(void **state)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    curl_global_cleanup();
    return socket_calls == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr__table),
        cmocka_unit_test(test_addr__sockaddr),
        cmocka_unit_test(test_addr__policy),
        cmocka_unit_test(test_addr__class_names),
        cmocka_unit_test(test_addr__url_spellings),
        cmocka_unit_test(test_addr__url_messages),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
