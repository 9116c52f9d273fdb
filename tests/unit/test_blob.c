/* test_blob.c: the fs blob store: round trip, content addressing, names, caps, threads. */
#include "base/base.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "media/blob.h"

struct fixture {
    char root[512];
    struct ig_blob *b;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *f = ig_xcalloc(1, sizeof(*f));
    const char *tmp = getenv("IG_TEST_TMP");
    struct ig_errbuf eb;
    char dir[400];

    snprintf(dir, sizeof(dir), "%s", tmp && *tmp ? tmp : "/tmp");
    mkdir(dir, 0700);
    snprintf(f->root, sizeof(f->root), "%s/blob-XXXXXX", dir);
    if (!mkdtemp(f->root))
        return -1;
    /* the store makes the directory itself, nested */
    snprintf(f->root + strlen(f->root), sizeof(f->root) - strlen(f->root), "/data/blobs/");
    ig_errbuf_clear(&eb);
    if (ig_blob_open_fs(&f->b, f->root, &eb) != IG_OK) {
        fprintf(stderr, "open: %s\n", eb.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char *slash;

    ig_blob_close(f->b);
    /* remove from the mkdtemp directory down */
    slash = strstr(f->root, "/data/blobs/");
    *slash = '\0';
    nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static int count_files(const char *dir, int *tmpfiles)
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
            n += count_files(path, tmpfiles);
        } else {
            n++;
            if (tmpfiles && strstr(e->d_name, ".tmp."))
                (*tmpfiles)++;
        }
    }
    closedir(d);
    return n;
}

static void test_blob__round_trip(void **state)
{
    struct fixture *f = *state;
    static const char data[] = "\x89PNG not really, but bytes";
    char id[IG_SHA256_HEX_LEN + 1], want[IG_SHA256_HEX_LEN + 1];
    unsigned char *got = NULL, buf[64];
    size_t len = 0;
    int64_t size = 0;
    int fd = -1;

    assert_string_equal(f->b->ops->name, "fs");
    assert_int_equal(ig_blob_put(f->b, data, sizeof(data), "png", id), IG_OK);
    ig_sha256_hex(data, sizeof(data), want);
    assert_string_equal(id, want);

    assert_int_equal(ig_blob_get(f->b, id, "png", 1 << 20, &got, &len), IG_OK);
    assert_int_equal(len, sizeof(data));
    assert_memory_equal(got, data, len);
    free(got);

    assert_int_equal(ig_blob_open_fd(f->b, id, "png", &fd, &size), IG_OK);
    assert_int_equal(size, sizeof(data));
    assert_int_equal(read(fd, buf, sizeof(buf)), sizeof(data));
    assert_memory_equal(buf, data, sizeof(data));
    close(fd);

    /* another extension is another blob */
    assert_int_equal(ig_blob_open_fd(f->b, id, "webp", &fd, &size), IG_E_NOT_FOUND);

    assert_int_equal(ig_blob_del(f->b, id, "png"), IG_OK);
    assert_int_equal(ig_blob_open_fd(f->b, id, "png", &fd, &size), IG_E_NOT_FOUND);
    assert_int_equal(ig_blob_get(f->b, id, "png", 1 << 20, &got, &len), IG_E_NOT_FOUND);
}

static void test_blob__empty_blob(void **state)
{
    struct fixture *f = *state;
    char id[IG_SHA256_HEX_LEN + 1];
    unsigned char *got = NULL;
    size_t len = 99;

    assert_int_equal(ig_blob_put(f->b, "", 0, "bin", id), IG_OK);
    assert_string_equal(id, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_int_equal(ig_blob_get(f->b, id, "bin", 0, &got, &len), IG_OK);
    assert_int_equal(len, 0);
    free(got);
}

static void test_blob__idempotent_and_path(void **state)
{
    struct fixture *f = *state;
    static const char data[] = "same bytes twice";
    char id1[IG_SHA256_HEX_LEN + 1], id2[IG_SHA256_HEX_LEN + 1], path[1024];
    struct stat st;
    int tmpfiles = 0;

    assert_int_equal(ig_blob_put(f->b, data, sizeof(data), "png", id1), IG_OK);
    assert_int_equal(ig_blob_put(f->b, data, sizeof(data), "png", id2), IG_OK);
    assert_string_equal(id1, id2);
    assert_int_equal(count_files(f->root, &tmpfiles), 1);
    assert_int_equal(tmpfiles, 0);

    snprintf(path, sizeof(path), "%s/%.2s/%.2s/%s.png", f->root, id1, id1 + 2, id1);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, sizeof(data));

    /* a damaged copy (wrong size) is replaced by the next put */
    assert_int_equal(truncate(path, 3), 0);
    assert_int_equal(ig_blob_put(f->b, data, sizeof(data), "png", id2), IG_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, sizeof(data));
    assert_int_equal(count_files(f->root, NULL), 1);
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
    char id[IG_SHA256_HEX_LEN + 1];
    unsigned char *got;
    size_t len;
    int64_t size;
    int fd;

    for (size_t i = 0; i < IG_ARRAY_LEN(bad_ext); i++) {
        assert_int_equal(ig_blob_put(f->b, "x", 1, bad_ext[i], id), IG_E_INVALID);
        assert_int_equal(ig_blob_open_fd(f->b, good, bad_ext[i], &fd, &size), IG_E_INVALID);
        assert_int_equal(ig_blob_get(f->b, good, bad_ext[i], 10, &got, &len), IG_E_INVALID);
        assert_int_equal(ig_blob_del(f->b, good, bad_ext[i]), IG_E_INVALID);
    }
    assert_int_equal(ig_blob_put(f->b, "x", 1, NULL, id), IG_E_INVALID);
    for (size_t i = 0; i < IG_ARRAY_LEN(bad_id); i++) {
        assert_int_equal(ig_blob_open_fd(f->b, bad_id[i], "png", &fd, &size), IG_E_INVALID);
        assert_int_equal(ig_blob_get(f->b, bad_id[i], "png", 10, &got, &len), IG_E_INVALID);
        assert_int_equal(ig_blob_del(f->b, bad_id[i], "png"), IG_E_INVALID);
    }
    assert_int_equal(count_files(f->root, NULL), 0);
    /* longest and digit extensions are fine */
    assert_int_equal(ig_blob_put(f->b, "x", 1, "abcdef7", id), IG_OK);
    assert_int_equal(ig_blob_put(f->b, "x", 1, "mp4", id), IG_OK);
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

    assert_int_equal(ig_blob_del(f->b, id, "png"), IG_OK);
    assert_int_equal(ig_blob_del(f->b, id, "png"), IG_OK);
}

static void test_blob__open_refuses_a_file_root(void **state)
{
    struct fixture *f = *state;
    struct ig_blob *b = NULL;
    struct ig_errbuf eb;
    char path[600];
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

#define NTHREADS 8
#define ROUNDS   40

struct worker {
    struct ig_blob *b;
    int index;
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

    for (int r = 0; r < ROUNDS; r++) {
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
    int tmpfiles = 0, own = 0;

    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (struct worker){.b = f->b, .index = i};
        assert_int_equal(pthread_create(&th[i], NULL, put_many, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    for (int r = 0; r < ROUNDS; r++)
        own += r % 4 == 3;
    assert_int_equal(count_files(f->root, &tmpfiles), 3 + NTHREADS * own);
    assert_int_equal(tmpfiles, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_blob__round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob__empty_blob, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob__idempotent_and_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob__bad_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob__get_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob__del_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob__open_refuses_a_file_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob__concurrent_puts, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
