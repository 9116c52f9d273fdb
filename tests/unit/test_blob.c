/* test_blob.c: the blob store contract, run on every backend: fs always, and s3 against a
 * real S3-compatible server (s3rver, started on loopback by tests/unit/with-s3rver.mjs, which
 * passes --s3 and the server's address in IG_TEST_S3_*; registered as integration_blob_s3).
 * Round trip, content addressing, names, caps, NOT_FOUND, threads, reads from an event loop;
 * for s3 also both addressing styles, credentials, presigned URLs, retries and time limits. */
#include "base/base.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "media/blob.h"
#include "support/support.h"

/* blob_s3.c, reached for tests (IG_STATIC) */
void ig_s3_presign_at(char *url, size_t n, const char *scheme, const char *authority,
                      const char *path, const char *region, const char *access, const char *secret,
                      int64_t unix_s, int ttl_s);
size_t ig_s3_uri_encode(char *out, size_t n, const char *s, bool keep_slash);

enum backend { FS, S3_PATH, S3_VHOST };

struct fixture {
    enum backend kind;
    char root[700];   /* where the objects are on disk: the fs root, or s3rver's folder */
    char prefix[64];  /* s3: this test's key prefix */
    struct ig_blob *b;
};

/* ---- the s3 server (from the environment the wrapper sets) ---- */

static const char *env(const char *name)
{
    const char *v = getenv(name);

    return v && *v ? v : NULL;
}

static bool have_s3(void)
{
    return env("IG_TEST_S3_ENDPOINT") != NULL;
}

static void s3_opts(struct ig_blob_s3_opts *o, enum backend kind, const char *prefix)
{
    memset(o, 0, sizeof(*o));
    o->endpoint = env(kind == S3_VHOST ? "IG_TEST_S3_VHOST_ENDPOINT" : "IG_TEST_S3_ENDPOINT");
    o->region = env("IG_TEST_S3_REGION");
    o->bucket = env("IG_TEST_S3_BUCKET");
    o->prefix = prefix;
    o->access_key = env("IG_TEST_S3_ACCESS_KEY");
    o->secret_key = env("IG_TEST_S3_SECRET_KEY");
    o->path_style = kind != S3_VHOST;
    o->presign_ttl_s = 0;
    o->max_bytes = 1 << 20;
    o->connect_timeout_ms = 2000;
    o->timeout_ms = 10000;
    o->io_threads = 2;
    o->probe = false;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int setup_kind(void **state, enum backend kind)
{
    struct fixture *f = ig_xcalloc(1, sizeof(*f));
    struct ig_errbuf eb;

    f->kind = kind;
    ig_errbuf_clear(&eb);
    if (kind == FS) {
        const char *tmp = getenv("IG_TEST_TMP");
        char dir[400];

        snprintf(dir, sizeof(dir), "%s", tmp && *tmp ? tmp : "/tmp");
        mkdir(dir, 0700);
        snprintf(f->root, sizeof(f->root), "%s/blob-XXXXXX", dir);
        if (!mkdtemp(f->root))
            return -1;
        /* the store makes the directory itself, nested */
        snprintf(f->root + strlen(f->root), sizeof(f->root) - strlen(f->root), "/data/blobs/");
        if (ig_blob_open_fs(&f->b, f->root, &eb) != IG_OK) {
            fprintf(stderr, "open: %s\n", eb.msg);
            return -1;
        }
    } else {
        struct ig_blob_s3_opts o;
        unsigned char rnd[6];
        char hex[13];

        /* every test has its own prefix, so the bucket's other objects never count */
        ig_random_bytes(rnd, sizeof(rnd));
        ig_hex_encode(rnd, sizeof(rnd), hex);
        snprintf(f->prefix, sizeof(f->prefix), "t-%s/", hex);
        snprintf(f->root, sizeof(f->root), "%s/%s/%s", env("IG_TEST_S3_DIR"),
                 env("IG_TEST_S3_BUCKET"), f->prefix);
        s3_opts(&o, kind, f->prefix);
        if (ig_blob_open_s3(&f->b, &o, &eb) != IG_OK) {
            fprintf(stderr, "open s3: %s\n", eb.msg);
            return -1;
        }
    }
    *state = f;
    return 0;
}

static int setup_fs(void **state)
{
    return setup_kind(state, FS);
}

static int setup_s3_path(void **state)
{
    return setup_kind(state, S3_PATH);
}

static int setup_s3_vhost(void **state)
{
    return setup_kind(state, S3_VHOST);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    ig_blob_close(f->b);
    if (f->kind == FS) {
        /* remove from the mkdtemp directory down */
        *strstr(f->root, "/data/blobs/") = '\0';
        nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    free(f);
    return 0;
}

static bool is_s3rver_object(const char *name)
{
    static const char suffix[] = "._S3rver_object";
    size_t n = strlen(name);

    return n > sizeof(suffix) - 1 && strcmp(name + n - (sizeof(suffix) - 1), suffix) == 0;
}

/* Stored objects under dir: fs files, or s3rver's "<key>._S3rver_object" files. */
static int count_objects(const struct fixture *f, const char *dir, int *tmpfiles)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (!d)
        return 0;
    while ((e = readdir(d))) {
        char path[1024];
        struct stat st;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            n += count_objects(f, path, tmpfiles);
        } else if (f->kind == FS || is_s3rver_object(e->d_name)) {
            n++;
            if (tmpfiles && strstr(e->d_name, ".tmp."))
                (*tmpfiles)++;
        }
    }
    closedir(d);
    return n;
}

/* Where the object of id.ext is on disk. */
static void object_file(const struct fixture *f, const char *id, const char *ext, char *out,
                        size_t n)
{
    if (f->kind == FS)
        snprintf(out, n, "%s/%.2s/%.2s/%s.%s", f->root, id, id + 2, id, ext);
    else
        snprintf(out, n, "%s%s.%s._S3rver_object", f->root, id, ext);
}

/* ---- the contract: every backend ---- */

static void test_blob__round_trip(void **state)
{
    struct fixture *f = *state;
    static const char data[] = "\x89PNG not really, but bytes";
    char id[IG_SHA256_HEX_LEN + 1], want[IG_SHA256_HEX_LEN + 1], path[1024];
    unsigned char *got = NULL, buf[64];
    size_t len = 0;
    int64_t size = 0;
    int fd = -1;
    struct stat st;

    assert_string_equal(f->b->ops->name, f->kind == FS ? "fs" : "s3");
    assert_int_equal(ig_blob_put(f->b, data, sizeof(data), "png", id), IG_OK);
    ig_sha256_hex(data, sizeof(data), want);
    assert_string_equal(id, want);
    /* stored where the backend says: <root>/ab/cd/<id>.png, or <bucket>/<prefix><id>.png */
    object_file(f, id, "png", path, sizeof(path));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, sizeof(data));

    assert_int_equal(ig_blob_get(f->b, id, "png", 1 << 20, &got, &len), IG_OK);
    assert_int_equal(len, sizeof(data));
    assert_memory_equal(got, data, len);
    free(got);

    assert_int_equal(ig_blob_open_fd(f->b, id, "png", &fd, &size), IG_OK);
    assert_int_equal(size, sizeof(data));
    assert_int_equal(read(fd, buf, sizeof(buf)), sizeof(data));
    assert_memory_equal(buf, data, sizeof(data));
    close(fd);

    size = 0;
    assert_int_equal(ig_blob_stat(f->b, id, "png", &size), IG_OK);
    assert_int_equal(size, sizeof(data));

    /* another extension is another blob */
    assert_int_equal(ig_blob_open_fd(f->b, id, "webp", &fd, &size), IG_E_NOT_FOUND);
    assert_int_equal(ig_blob_stat(f->b, id, "webp", &size), IG_E_NOT_FOUND);

    assert_int_equal(ig_blob_del(f->b, id, "png"), IG_OK);
    assert_int_not_equal(stat(path, &st), 0);
    assert_int_equal(ig_blob_open_fd(f->b, id, "png", &fd, &size), IG_E_NOT_FOUND);
    assert_int_equal(ig_blob_get(f->b, id, "png", 1 << 20, &got, &len), IG_E_NOT_FOUND);
    assert_int_equal(ig_blob_stat(f->b, id, "png", &size), IG_E_NOT_FOUND);
}

static void test_blob__empty_blob(void **state)
{
    struct fixture *f = *state;
    char id[IG_SHA256_HEX_LEN + 1];
    unsigned char *got = NULL;
    size_t len = 99;
    int64_t size = 99;
    int fd = -1;

    assert_int_equal(ig_blob_put(f->b, "", 0, "bin", id), IG_OK);
    assert_string_equal(id, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_int_equal(ig_blob_get(f->b, id, "bin", 0, &got, &len), IG_OK);
    assert_int_equal(len, 0);
    free(got);
    assert_int_equal(ig_blob_open_fd(f->b, id, "bin", &fd, &size), IG_OK);
    assert_int_equal(size, 0);
    close(fd);
}

static void test_blob__idempotent(void **state)
{
    struct fixture *f = *state;
    static const char data[] = "same bytes twice";
    char id1[IG_SHA256_HEX_LEN + 1], id2[IG_SHA256_HEX_LEN + 1];
    int tmpfiles = 0;

    assert_int_equal(ig_blob_put(f->b, data, sizeof(data), "png", id1), IG_OK);
    assert_int_equal(ig_blob_put(f->b, data, sizeof(data), "png", id2), IG_OK);
    assert_string_equal(id1, id2);
    assert_int_equal(count_objects(f, f->root, &tmpfiles), 1);
    assert_int_equal(tmpfiles, 0);
    /* other bytes, another object */
    assert_int_equal(ig_blob_put(f->b, data, sizeof(data) - 1, "png", id2), IG_OK);
    assert_string_not_equal(id1, id2);
    assert_int_equal(count_objects(f, f->root, NULL), 2);
}

static void test_blob__bad_names(void **state)
{
    struct fixture *f = *state;
    static const char *const bad_ext[] = {"../x", "", "PNG", "png/", "toolongx", "p.g", "p g"};
    static const char *const bad_id[] = {
        "",
        "abc",
        "../../../../etc/passwd",
        "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g",
        "../b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    };
    static const char good[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    char id[IG_SHA256_HEX_LEN + 1], url[512];
    unsigned char *got;
    size_t len;
    int64_t size;
    int fd;

    for (size_t i = 0; i < IG_ARRAY_LEN(bad_ext); i++) {
        assert_int_equal(ig_blob_put(f->b, "x", 1, bad_ext[i], id), IG_E_INVALID);
        assert_int_equal(ig_blob_open_fd(f->b, good, bad_ext[i], &fd, &size), IG_E_INVALID);
        assert_int_equal(ig_blob_get(f->b, good, bad_ext[i], 10, &got, &len), IG_E_INVALID);
        assert_int_equal(ig_blob_del(f->b, good, bad_ext[i]), IG_E_INVALID);
        assert_int_equal(ig_blob_stat(f->b, good, bad_ext[i], &size), IG_E_INVALID);
        assert_false(ig_blob_presign(f->b, good, bad_ext[i], url, sizeof(url)));
    }
    assert_int_equal(ig_blob_put(f->b, "x", 1, NULL, id), IG_E_INVALID);
    for (size_t i = 0; i < IG_ARRAY_LEN(bad_id); i++) {
        assert_int_equal(ig_blob_open_fd(f->b, bad_id[i], "png", &fd, &size), IG_E_INVALID);
        assert_int_equal(ig_blob_get(f->b, bad_id[i], "png", 10, &got, &len), IG_E_INVALID);
        assert_int_equal(ig_blob_del(f->b, bad_id[i], "png"), IG_E_INVALID);
        assert_int_equal(ig_blob_stat(f->b, bad_id[i], "png", &size), IG_E_INVALID);
        assert_false(ig_blob_presign(f->b, bad_id[i], "png", url, sizeof(url)));
    }
    assert_int_equal(count_objects(f, f->root, NULL), 0);
    /* longest and digit extensions are fine */
    assert_int_equal(ig_blob_put(f->b, "x", 1, "abcdef7", id), IG_OK);
    assert_int_equal(ig_blob_put(f->b, "x", 1, "mp4", id), IG_OK);
    assert_int_equal(count_objects(f, f->root, NULL), 2);
}

static void test_blob__get_too_big(void **state)
{
    struct fixture *f = *state;
    char data[100], id[IG_SHA256_HEX_LEN + 1];
    unsigned char *got = NULL;
    size_t len = 0;

    memset(data, 'a', sizeof(data));
    assert_int_equal(ig_blob_put(f->b, data, sizeof(data), "png", id), IG_OK);
    assert_int_equal(ig_blob_get(f->b, id, "png", 99, &got, &len), IG_E_TOOBIG);
    assert_null(got);
    assert_int_equal(ig_blob_get(f->b, id, "png", 100, &got, &len), IG_OK);
    assert_int_equal(len, 100);
    free(got);
}

static void test_blob__del_missing(void **state)
{
    struct fixture *f = *state;
    static const char id[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    unsigned char *got = NULL;
    size_t len = 0;
    int64_t size = 0;
    int fd = -1;

    assert_int_equal(ig_blob_del(f->b, id, "png"), IG_OK);
    assert_int_equal(ig_blob_del(f->b, id, "png"), IG_OK);
    assert_int_equal(ig_blob_get(f->b, id, "png", 100, &got, &len), IG_E_NOT_FOUND);
    assert_int_equal(ig_blob_open_fd(f->b, id, "png", &fd, &size), IG_E_NOT_FOUND);
    assert_int_equal(fd, -1);
}

/* ---- reads from an event loop ---- */

struct reads {
    int count;
    enum ig_err err[8];
    int fd[8];
    int64_t size[8];
    pthread_t thread[8];
};

static void on_read(void *arg, enum ig_err err, int fd, int64_t size)
{
    struct reads *r = arg;
    int i = r->count;

    r->err[i] = err;
    r->fd[i] = fd;
    r->size[i] = size;
    r->thread[i] = pthread_self();
    r->count++;
}

static void test_blob__async_read(void **state)
{
    struct fixture *f = *state;
    static const char data[] = "read from an event loop";
    static const char missing[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char id[IG_SHA256_HEX_LEN + 1], buf[64];
    struct event_base *base = event_base_new();
    struct ig_mailbox *mb = ig_mailbox_new(base);
    struct reads r = {0};

    assert_int_equal(ig_blob_put(f->b, data, sizeof(data), "png", id), IG_OK);
    ig_blob_open_fd_async(f->b, id, "png", true, mb, on_read, &r);
    ig_blob_open_fd_async(f->b, id, "png", false, mb, on_read, &r);
    ig_blob_open_fd_async(f->b, missing, "png", true, mb, on_read, &r);
    /* fs opens in place; s3 must not block the loop: nothing has been delivered yet */
    assert_int_equal(r.count, f->kind == FS ? 3 : 0);
    ig_test_run_until(base, &r.count, 3, 20);
    assert_int_equal(r.count, 3);
    for (int i = 0; i < 3; i++)
        assert_true(pthread_equal(r.thread[i], pthread_self())); /* on the loop's thread */
    /* s3 delivers in completion order: sort by what each read asked for */
    for (int i = 0; i < 3; i++) {
        if (r.err[i] == IG_E_NOT_FOUND) {
            assert_int_equal(r.fd[i], -1);
        } else if (r.fd[i] >= 0) {
            assert_int_equal(r.err[i], IG_OK);
            assert_int_equal(r.size[i], sizeof(data));
            assert_int_equal(pread(r.fd[i], buf, sizeof(buf), 0), sizeof(data));
            assert_memory_equal(buf, data, sizeof(data));
            close(r.fd[i]);
        } else {
            assert_int_equal(r.err[i], IG_OK); /* the size-only read */
            assert_int_equal(r.size[i], sizeof(data));
        }
    }
    assert_int_equal((r.err[0] == IG_E_NOT_FOUND) + (r.err[1] == IG_E_NOT_FOUND) +
                         (r.err[2] == IG_E_NOT_FOUND),
                     1);

    /* quiesce: what is under way is posted; later reads complete before the call returns */
    memset(&r, 0, sizeof(r));
    for (int i = 0; i < 4; i++)
        ig_blob_open_fd_async(f->b, id, "png", false, mb, on_read, &r);
    ig_blob_quiesce(f->b);
    ig_blob_open_fd_async(f->b, id, "png", false, mb, on_read, &r);
    if (f->kind != FS) {
        assert_int_equal(r.count, 1); /* the late one, in place */
        assert_int_equal(r.err[0], IG_OK);
    }
    ig_test_run_until(base, &r.count, 5, 20);
    assert_int_equal(r.count, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(r.err[i], IG_OK);

    ig_mailbox_free(mb);
    event_base_free(base);
}

#define NTHREADS 8
#define ROUNDS   40

struct worker {
    struct ig_blob *b;
    int index, rounds;
    int failures;
};

static void blob_bytes(int k, char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)('a' + (k * 7 + (int)i) % 26);
}

static void *put_many(void *arg)
{
    struct worker *w = arg;
    char buf[4096], id[IG_SHA256_HEX_LEN + 1], want[IG_SHA256_HEX_LEN + 1];

    for (int r = 0; r < w->rounds; r++) {
        /* three blobs every thread writes, and one of its own */
        int k = r % 4 == 3 ? 100 + w->index * ROUNDS + r : r % 3;
        size_t n = 1000 + (size_t)k % 3000;
        unsigned char *got = NULL;
        size_t len = 0;

        blob_bytes(k, buf, n);
        ig_sha256_hex(buf, n, want);
        if (ig_blob_put(w->b, buf, n, "png", id) != IG_OK || strcmp(id, want) != 0) {
            w->failures++;
            continue;
        }
        if (ig_blob_get(w->b, id, "png", sizeof(buf), &got, &len) != IG_OK || len != n ||
            memcmp(got, buf, n) != 0)
            w->failures++;
        free(got);
    }
    return NULL;
}

static void test_blob__concurrent_puts(void **state)
{
    struct fixture *f = *state;
    pthread_t th[NTHREADS];
    struct worker w[NTHREADS];
    int tmpfiles = 0, own = 0, rounds = f->kind == FS ? ROUNDS : ROUNDS / 4;

    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (struct worker){.b = f->b, .index = i, .rounds = rounds};
        assert_int_equal(pthread_create(&th[i], NULL, put_many, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    for (int r = 0; r < rounds; r++)
        own += r % 4 == 3;
    assert_int_equal(count_objects(f, f->root, &tmpfiles), 3 + NTHREADS * own);
    assert_int_equal(tmpfiles, 0);
}

/* ---- fs only ---- */

static void test_blob__fs_replaces_a_damaged_copy(void **state)
{
    struct fixture *f = *state;
    static const char data[] = "same bytes twice";
    char id[IG_SHA256_HEX_LEN + 1], path[1024], url[256];
    struct stat st;

    assert_int_equal(ig_blob_put(f->b, data, sizeof(data), "png", id), IG_OK);
    object_file(f, id, "png", path, sizeof(path));
    /* a damaged copy (wrong size) is replaced by the next put */
    assert_int_equal(truncate(path, 3), 0);
    assert_int_equal(ig_blob_put(f->b, data, sizeof(data), "png", id), IG_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, sizeof(data));
    assert_int_equal(count_objects(f, f->root, NULL), 1);
    /* fs serves through imagegate: no URLs of its own */
    assert_false(ig_blob_presign(f->b, id, "png", url, sizeof(url)));
}

static void test_blob__fs_open_refuses_a_file_root(void **state)
{
    struct fixture *f = *state;
    struct ig_blob *b = NULL;
    struct ig_errbuf eb;
    char path[800];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/plainfile", f->root);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    ig_errbuf_clear(&eb);
    assert_int_equal(ig_blob_open_fs(&b, path, &eb), IG_E_IO);
    assert_null(b);
    assert_non_null(strstr(eb.msg, "plainfile"));
    assert_int_equal(ig_blob_open_fs(&b, "", &eb), IG_E_INVALID);
    unlink(path);
}

/* ---- s3: pure functions (no server) ---- */

/* AWS's published example of a presigned URL (S3 API reference, "Authenticating Requests:
 * Using Query Parameters"): the same inputs must give the same signature. */
static void test_blob__s3_presign_known_answer(void **state)
{
    char url[1024];

    ig_s3_presign_at(url, sizeof(url), "https", "examplebucket.s3.amazonaws.com", "/test.txt",
                     "us-east-1", "AKIAIOSFODNN7EXAMPLE",
                     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", 1369353600 /* 2013-05-24 */,
                     86400);
    assert_string_equal(url, "https://examplebucket.s3.amazonaws.com/test.txt"
                             "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                             "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3"
                             "%2Faws4_request"
                             "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400"
                             "&X-Amz-SignedHeaders=host"
                             "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d1"
                             "57751f604d404");
}

static void test_blob__s3_uri_encode(void **state)
{
    char out[64];

    assert_int_equal(ig_s3_uri_encode(out, sizeof(out), "aZ09-._~/ +=é", false), 26);
    assert_string_equal(out, "aZ09-._~%2F%20%2B%3D%C3%A9");
    ig_s3_uri_encode(out, sizeof(out), "a/b c", true);
    assert_string_equal(out, "a/b%20c");
    /* cut, never overrun */
    assert_int_equal(ig_s3_uri_encode(out, 5, "abc/def", false), 9);
    assert_string_equal(out, "abc");
}

static void test_blob__s3_refuses_bad_settings(void **state)
{
    struct {
        const char *endpoint, *bucket, *region, *prefix, *access, *secret;
        bool path_style;
        int ttl;
        const char *field;
    } bad[] = {
        {"", "b-1", "us-east-1", "", "a", "s", true, 0, "s3-endpoint"},
        {"ftp://127.0.0.1:1", "b-1", "us-east-1", "", "a", "s", true, 0, "s3-endpoint"},
        {"http://u:p@127.0.0.1:1", "b-1", "us-east-1", "", "a", "s", true, 0, "s3-endpoint"},
        {"http://127.0.0.1:1?x=1", "b-1", "us-east-1", "", "a", "s", true, 0, "s3-endpoint"},
        {"http://127.0.0.1:99999", "b-1", "us-east-1", "", "a", "s", true, 0, "s3-endpoint"},
        {"http://127.0.0.1:1", "b-1", "us-east-1", "", "a", "s", false, 0, "s3-path-style"},
        {"http://127.0.0.1:1", "B_1", "us-east-1", "", "a", "s", true, 0, "s3-bucket"},
        {"http://127.0.0.1:1", "ab", "us-east-1", "", "a", "s", true, 0, "s3-bucket"},
        {"http://127.0.0.1:1", "b-1", "US EAST", "", "a", "s", true, 0, "s3-region"},
        {"http://127.0.0.1:1", "b-1", "us-east-1", "/abs", "a", "s", true, 0, "s3-prefix"},
        {"http://127.0.0.1:1", "b-1", "us-east-1", "a/../b", "a", "s", true, 0, "s3-prefix"},
        {"http://127.0.0.1:1", "b-1", "us-east-1", "a//b", "a", "s", true, 0, "s3-prefix"},
        {"http://127.0.0.1:1", "b-1", "us-east-1", "a?b", "a", "s", true, 0, "s3-prefix"},
        {"http://127.0.0.1:1", "b-1", "us-east-1", "", "", "s", true, 0, "s3-access-key"},
        {"http://127.0.0.1:1", "b-1", "us-east-1", "", "a", "", true, 0, "s3-secret-key"},
        {"http://127.0.0.1:1", "b-1", "us-east-1", "", "a", "s", true, 604801, "s3-presign-ttl"},
    };

    for (size_t i = 0; i < IG_ARRAY_LEN(bad); i++) {
        struct ig_blob_s3_opts o;
        struct ig_blob *b = NULL;
        struct ig_errbuf eb;

        s3_opts(&o, S3_PATH, bad[i].prefix);
        o.endpoint = bad[i].endpoint;
        o.bucket = bad[i].bucket;
        o.region = bad[i].region;
        o.access_key = bad[i].access;
        o.secret_key = bad[i].secret;
        o.path_style = bad[i].path_style;
        o.presign_ttl_s = bad[i].ttl;
        ig_errbuf_clear(&eb);
        assert_int_equal(ig_blob_open_s3(&b, &o, &eb), IG_E_INVALID);
        assert_null(b);
        if (strcmp(eb.field, bad[i].field) != 0)
            fail_msg("case %zu (%s): field '%s', message '%s'", i, bad[i].endpoint, eb.field,
                     eb.msg);
        assert_true(strlen(eb.msg) > 20);
    }
}

/* ---- s3: against the fake HTTP server, for what a real server does not do on demand ---- */

struct flaky {
    int mode; /* 0: 503 then 200; 1: 403; 2: never answer */
};

static void flaky_handler(struct ig_fake_req *r, void *arg)
{
    struct flaky *fl = arg;

    if (fl->mode == 2)
        return; /* stalled until the server stops */
    if (fl->mode == 1 || r->index == 0)
        ig_fake_reply_str(r, fl->mode == 1 ? 403 : 503, "application/xml",
                          fl->mode == 1 ? "<Error><Code>AccessDenied</Code><Message>no</Message>"
                                          "</Error>"
                                        : "<Error><Code>SlowDown</Code></Error>");
    else
        ig_fake_reply(r, 200, NULL, NULL, 0);
}

static void test_blob__s3_retries_only_transient_failures_within_the_budget(void **state)
{
    struct ig_fake_http srv;
    struct flaky fl = {0};
    struct ig_blob_s3_opts o;
    struct ig_blob *b = NULL;
    struct ig_errbuf eb;
    char endpoint[64], id[IG_SHA256_HEX_LEN + 1];
    int64_t t0;

    assert_int_equal(ig_fake_http_start(&srv, flaky_handler, &fl), 0);
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", srv.port);
    s3_opts(&o, S3_PATH, "");
    o.endpoint = endpoint;
    o.bucket = "flaky";
    o.region = "us-east-1";
    o.access_key = "AK";
    o.secret_key = "SK";
    o.timeout_ms = 1000;
    ig_errbuf_clear(&eb);
    assert_int_equal(ig_blob_open_s3(&b, &o, &eb), IG_OK);

    /* 503 is retried: the second attempt stores it */
    assert_int_equal(ig_blob_put(b, "abc", 3, "png", id), IG_OK);
    assert_int_equal(ig_fake_http_requests(&srv), 2);
    /* 403 is not */
    fl.mode = 1;
    ig_fake_http_reset(&srv);
    assert_int_equal(ig_blob_put(b, "abc", 3, "png", id), IG_E_IO);
    assert_int_equal(ig_fake_http_requests(&srv), 1);
    /* a server that never answers costs the operation's budget, not more */
    fl.mode = 2;
    t0 = ig_mono_ms();
    assert_int_equal(ig_blob_put(b, "abc", 3, "png", id), IG_E_IO);
    assert_true(ig_mono_ms() - t0 < 2500);
    assert_true(ig_mono_ms() - t0 >= 900);
    ig_blob_close(b);
    ig_fake_http_stop(&srv);
}

/* ---- s3: against the real server ---- */

/* GET url with a plain client (no credentials): the status, the body into out. */
static long http_get(const char *url, char *out, size_t n)
{
    CURL *h = curl_easy_init();
    FILE *mem = fmemopen(out, n, "w");
    long status = 0;

    assert_non_null(h);
    assert_non_null(mem);
    memset(out, 0, n);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, mem);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    fclose(mem);
    out[n - 1] = '\0';
    return status;
}

static void test_blob__s3_cap_on_reads(void **state)
{
    struct fixture *f = *state;
    struct ig_blob_s3_opts o;
    struct ig_blob *small = NULL;
    struct ig_errbuf eb;
    char data[2000], id[IG_SHA256_HEX_LEN + 1];
    unsigned char *got = NULL;
    size_t len = 0;
    int64_t size = 0;
    int fd = -1;

    memset(data, 'z', sizeof(data));
    assert_int_equal(ig_blob_put(f->b, data, sizeof(data), "png", id), IG_OK);
    s3_opts(&o, f->kind, f->prefix);
    o.max_bytes = 1999;
    assert_int_equal(ig_blob_open_s3(&small, &o, &eb), IG_OK);
    assert_int_equal(ig_blob_open_fd(small, id, "png", &fd, &size), IG_E_TOOBIG);
    assert_int_equal(fd, -1);
    assert_int_equal(ig_blob_get(small, id, "png", 1 << 20, &got, &len), IG_E_TOOBIG);
    assert_null(got);
    ig_blob_close(small);
    /* the cap itself is allowed */
    o.max_bytes = 2000;
    assert_int_equal(ig_blob_open_s3(&small, &o, &eb), IG_OK);
    assert_int_equal(ig_blob_open_fd(small, id, "png", &fd, &size), IG_OK);
    assert_int_equal(size, 2000);
    close(fd);
    ig_blob_close(small);
}

static void test_blob__s3_presigned_urls(void **state)
{
    struct fixture *f = *state;
    static const char data[] = "presigned bytes";
    struct ig_blob_s3_opts o;
    struct ig_blob *b = NULL;
    struct ig_errbuf eb;
    char id[IG_SHA256_HEX_LEN + 1], id2[IG_SHA256_HEX_LEN + 1], url[2048], bad[2048], body[512];
    char authority[256], path[512];
    const char *p, *q;

    /* presign off: no URL */
    assert_int_equal(ig_blob_put(f->b, data, sizeof(data) - 1, "png", id), IG_OK);
    assert_int_equal(ig_blob_put(f->b, "other", 5, "png", id2), IG_OK);
    assert_false(ig_blob_presign(f->b, id, "png", url, sizeof(url)));

    s3_opts(&o, f->kind, f->prefix);
    o.presign_ttl_s = 300;
    ig_errbuf_clear(&eb);
    assert_int_equal(ig_blob_open_s3(&b, &o, &eb), IG_OK);
    assert_true(ig_blob_presign(b, id, "png", url, sizeof(url)));
    assert_non_null(strstr(url, "X-Amz-Expires=300&"));
    assert_non_null(strstr(url, f->kind == S3_VHOST ? "://igtest.s3.localhost:" : "/igtest/"));
    assert_null(strstr(url, env("IG_TEST_S3_SECRET_KEY")));
    /* the server accepts it, with no other credentials */
    assert_int_equal(http_get(url, body, sizeof(body)), 200);
    assert_string_equal(body, data);

    /* a tampered signature */
    snprintf(bad, sizeof(bad), "%s", url);
    bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == '0' ? '1' : '0';
    assert_int_equal(http_get(bad, body, sizeof(body)), 403);
    assert_non_null(strstr(body, "SignatureDoesNotMatch"));
    /* the signature of one object used for another */
    snprintf(bad, sizeof(bad), "%s", url);
    memcpy(strstr(bad, id), id2, IG_SHA256_HEX_LEN);
    assert_int_equal(http_get(bad, body, sizeof(body)), 403);
    assert_non_null(strstr(body, "SignatureDoesNotMatch"));
    /* a longer validity than was signed */
    snprintf(bad, sizeof(bad), "%s", url);
    memcpy(strstr(bad, "X-Amz-Expires=300"), "X-Amz-Expires=900", 17);
    assert_int_equal(http_get(bad, body, sizeof(body)), 403);
    assert_non_null(strstr(body, "SignatureDoesNotMatch"));

    /* expired: signed 10 minutes ago for 5 minutes, correctly otherwise */
    p = strstr(url, "://") + 3;
    q = strchr(p, '/');
    snprintf(authority, sizeof(authority), "%.*s", (int)(q - p), p);
    snprintf(path, sizeof(path), "%.*s", (int)(strchr(q, '?') - q), q);
    ig_s3_presign_at(bad, sizeof(bad), "http", authority, path, env("IG_TEST_S3_REGION"),
                     env("IG_TEST_S3_ACCESS_KEY"), env("IG_TEST_S3_SECRET_KEY"),
                     (int64_t)time(NULL) - 600, 300);
    assert_int_equal(http_get(bad, body, sizeof(body)), 403);
    assert_non_null(strstr(body, "Request has expired"));
    /* the same, signed now: accepted (so the refusal above was the time) */
    ig_s3_presign_at(bad, sizeof(bad), "http", authority, path, env("IG_TEST_S3_REGION"),
                     env("IG_TEST_S3_ACCESS_KEY"), env("IG_TEST_S3_SECRET_KEY"),
                     (int64_t)time(NULL), 300);
    assert_int_equal(http_get(bad, body, sizeof(body)), 200);
    /* signed with another secret */
    ig_s3_presign_at(bad, sizeof(bad), "http", authority, path, env("IG_TEST_S3_REGION"),
                     env("IG_TEST_S3_ACCESS_KEY"), "not-the-secret", (int64_t)time(NULL), 300);
    assert_int_equal(http_get(bad, body, sizeof(body)), 403);
    assert_non_null(strstr(body, "SignatureDoesNotMatch"));
    /* without the signature the request is anonymous, and refused */
    snprintf(bad, sizeof(bad), "%.*s", (int)(strchr(url, '?') - url), url);
    assert_int_equal(http_get(bad, body, sizeof(body)), 403);
    ig_blob_close(b);
}

/* Run fn with stderr (the log) going to a file; returns what was logged (heap). */
static char *capture_log(void (*fn)(void *), void *arg)
{
    char path[] = "/tmp/imagegate-test-log-XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    char *text = ig_xcalloc(1, 65536);
    ssize_t n;

    assert_true(fd >= 0 && saved >= 0);
    fflush(stderr);
    dup2(fd, 2);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    n = pread(fd, text, 65535, 0);
    assert_true(n >= 0);
    close(fd);
    unlink(path);
    return text;
}

struct cred_case {
    enum backend kind;
    const char *access, *secret, *bucket;
    enum ig_err err;
    struct ig_errbuf eb;
    enum ig_err put_err;
};

static void open_with(void *arg)
{
    struct cred_case *c = arg;
    struct ig_blob_s3_opts o;
    struct ig_blob *b = NULL;

    s3_opts(&o, c->kind, "creds/");
    o.access_key = c->access;
    o.secret_key = c->secret;
    if (c->bucket)
        o.bucket = c->bucket;
    o.probe = true;
    ig_errbuf_clear(&c->eb);
    c->err = ig_blob_open_s3(&b, &o, &c->eb);
    if (b) {
        ig_blob_close(b);
        return;
    }
    /* the same credentials without the probe: each operation fails, and logs why */
    o.probe = false;
    if (ig_blob_open_s3(&b, &o, &c->eb) == IG_OK) {
        char id[IG_SHA256_HEX_LEN + 1];

        c->put_err = ig_blob_put(b, "x", 1, "png", id);
        ig_blob_close(b);
    }
}

static void test_blob__s3_credentials(void **state)
{
    struct fixture *f = *state;
    const char *secret = env("IG_TEST_S3_SECRET_KEY");
    struct cred_case good = {.kind = f->kind, .access = env("IG_TEST_S3_ACCESS_KEY"),
                             .secret = secret};
    struct cred_case wrong_secret = {.kind = f->kind, .access = env("IG_TEST_S3_ACCESS_KEY"),
                                     .secret = "wrong-secret-0123456789"};
    struct cred_case wrong_access = {.kind = f->kind, .access = "NOSUCHACCESSKEY",
                                     .secret = secret};
    struct cred_case no_bucket = {.kind = f->kind, .access = env("IG_TEST_S3_ACCESS_KEY"),
                                  .secret = secret, .bucket = "no-such-bucket"};
    char *log, creds[800];

    /* the right ones pass the probe (PUT, GET, DELETE), which leaves nothing behind */
    snprintf(creds, sizeof(creds), "%s/%s/creds", env("IG_TEST_S3_DIR"), env("IG_TEST_S3_BUCKET"));
    log = capture_log(open_with, &good);
    assert_int_equal(good.err, IG_OK);
    free(log);
    assert_int_equal(count_objects(f, creds, NULL), 0);

    log = capture_log(open_with, &wrong_secret);
    assert_int_equal(wrong_secret.err, IG_E_IO);
    assert_non_null(strstr(wrong_secret.eb.msg, "PUT: HTTP 403 SignatureDoesNotMatch"));
    assert_non_null(strstr(wrong_secret.eb.msg, "check --s3-access-key, --s3-secret-key"));
    assert_int_equal(wrong_secret.put_err, IG_E_IO);
    assert_non_null(strstr(log, "blob s3: PUT")); /* the log was captured... */
    assert_non_null(strstr(log, "SignatureDoesNotMatch"));
    assert_null(strstr(log, "wrong-secret-0123456789")); /* ...and holds no secret */
    assert_null(strstr(wrong_secret.eb.msg, "wrong-secret-0123456789"));
    free(log);

    log = capture_log(open_with, &wrong_access);
    assert_int_equal(wrong_access.err, IG_E_IO);
    assert_non_null(strstr(wrong_access.eb.msg, "HTTP 403 InvalidAccessKeyId"));
    assert_null(strstr(log, secret));
    free(log);

    log = capture_log(open_with, &no_bucket);
    assert_int_equal(no_bucket.err, IG_E_IO);
    assert_non_null(strstr(no_bucket.eb.msg, "NoSuchBucket"));
    assert_non_null(strstr(no_bucket.eb.msg, "does the bucket exist?"));
    free(log);
}

static void test_blob__s3_unreachable_endpoint_fails_fast(void **state)
{
    struct ig_blob_s3_opts o;
    struct ig_blob *b = NULL;
    struct ig_errbuf eb;
    int64_t t0 = ig_mono_ms();

    /* port 1 on loopback: nothing listens there */
    s3_opts(&o, S3_PATH, "");
    o.endpoint = "http://127.0.0.1:1";
    o.probe = true;
    ig_errbuf_clear(&eb);
    assert_int_equal(ig_blob_open_s3(&b, &o, &eb), IG_E_IO);
    assert_non_null(strstr(eb.msg, "cannot write to bucket 'igtest' at http://127.0.0.1:1/igtest"));
    assert_non_null(strstr(eb.msg, "onnect")); /* curl's "Couldn't connect to server" */
    assert_true(ig_mono_ms() - t0 < 5000);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest fs_tests[] = {
        cmocka_unit_test_setup_teardown(test_blob__round_trip, setup_fs, teardown),
        cmocka_unit_test_setup_teardown(test_blob__empty_blob, setup_fs, teardown),
        cmocka_unit_test_setup_teardown(test_blob__idempotent, setup_fs, teardown),
        cmocka_unit_test_setup_teardown(test_blob__bad_names, setup_fs, teardown),
        cmocka_unit_test_setup_teardown(test_blob__get_too_big, setup_fs, teardown),
        cmocka_unit_test_setup_teardown(test_blob__del_missing, setup_fs, teardown),
        cmocka_unit_test_setup_teardown(test_blob__async_read, setup_fs, teardown),
        cmocka_unit_test_setup_teardown(test_blob__concurrent_puts, setup_fs, teardown),
        cmocka_unit_test_setup_teardown(test_blob__fs_replaces_a_damaged_copy, setup_fs, teardown),
        cmocka_unit_test_setup_teardown(test_blob__fs_open_refuses_a_file_root, setup_fs,
                                        teardown),
        cmocka_unit_test(test_blob__s3_presign_known_answer),
        cmocka_unit_test(test_blob__s3_uri_encode),
        cmocka_unit_test(test_blob__s3_refuses_bad_settings),
        cmocka_unit_test(test_blob__s3_retries_only_transient_failures_within_the_budget),
    };
    const struct CMUnitTest s3_tests[] = {
        cmocka_unit_test_setup_teardown(test_blob__round_trip, setup_s3_path, teardown),
        cmocka_unit_test_setup_teardown(test_blob__empty_blob, setup_s3_path, teardown),
        cmocka_unit_test_setup_teardown(test_blob__idempotent, setup_s3_path, teardown),
        cmocka_unit_test_setup_teardown(test_blob__bad_names, setup_s3_path, teardown),
        cmocka_unit_test_setup_teardown(test_blob__get_too_big, setup_s3_path, teardown),
        cmocka_unit_test_setup_teardown(test_blob__del_missing, setup_s3_path, teardown),
        cmocka_unit_test_setup_teardown(test_blob__async_read, setup_s3_path, teardown),
        cmocka_unit_test_setup_teardown(test_blob__concurrent_puts, setup_s3_path, teardown),
        cmocka_unit_test_setup_teardown(test_blob__s3_cap_on_reads, setup_s3_path, teardown),
        cmocka_unit_test_setup_teardown(test_blob__s3_presigned_urls, setup_s3_path, teardown),
        cmocka_unit_test_setup_teardown(test_blob__s3_credentials, setup_s3_path, teardown),
        cmocka_unit_test(test_blob__s3_unreachable_endpoint_fails_fast),
        /* virtual-host style: <bucket>.s3.localhost, which libcurl resolves to loopback
         * itself (RFC 6761), never through DNS */
        cmocka_unit_test_setup_teardown(test_blob__round_trip, setup_s3_vhost, teardown),
        cmocka_unit_test_setup_teardown(test_blob__idempotent, setup_s3_vhost, teardown),
        cmocka_unit_test_setup_teardown(test_blob__del_missing, setup_s3_vhost, teardown),
        cmocka_unit_test_setup_teardown(test_blob__async_read, setup_s3_vhost, teardown),
        cmocka_unit_test_setup_teardown(test_blob__s3_cap_on_reads, setup_s3_vhost, teardown),
        cmocka_unit_test_setup_teardown(test_blob__s3_presigned_urls, setup_s3_vhost, teardown),
        cmocka_unit_test_setup_teardown(test_blob__s3_credentials, setup_s3_vhost, teardown),
    };
    bool s3 = argc > 1 && strcmp(argv[1], "--s3") == 0;
    int rc;

    /* mailboxes are posted to from other threads; the fake server is stopped from this one */
    if (evthread_use_pthreads() != 0)
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (s3) {
        /* run by tests/unit/with-s3rver.mjs: a server must be there, never a silent skip */
        if (!have_s3() || !env("IG_TEST_S3_DIR") || !env("IG_TEST_S3_VHOST_ENDPOINT")) {
            fprintf(stderr, "test_blob --s3: IG_TEST_S3_* is not set: run it through "
                            "tests/unit/with-s3rver.mjs\n");
            return 1;
        }
        rc = cmocka_run_group_tests_name("blob_s3", s3_tests, NULL, NULL);
    } else {
        rc = cmocka_run_group_tests_name("blob_fs", fs_tests, NULL, NULL);
        if (!have_s3())
            fprintf(stderr, "test_blob: the s3 contract runs as integration_blob_s3 (ctest), or "
                            "by hand: node tests/unit/with-s3rver.mjs build/test_blob\n");
    }
    curl_global_cleanup();
    return rc;
}
