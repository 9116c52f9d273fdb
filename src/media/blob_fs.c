/* blob_fs.c: the "fs" blob store: files under <root>/ab/cd/<sha256>.<ext>.
 *
 * A put is durable when it returns: the bytes go to a temp file in the final directory,
 * which is fsync'd and renamed over the name, and the directory is fsync'd so the rename
 * survives a crash; a fan-out directory created on the way is made durable in its parent.
 * Names are built only from a hex digest and a checked extension, so no client string ever
 * becomes a path. The only state is the root path, so every call is thread-safe. Files
 * are 0600 and directories 0700: results are users' data and only this process reads them. */
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "media/blob.h"

/* root + "/ab/cd/" + 64 hex + "." + ext (7) + ".tmp.XXXXXX" + NUL, with room to spare */
#define NAME_ROOM 128

struct fs {
    char *root;
};

static const char *errstr(int e, char *buf, size_t n)
{
    return strerror_r(e, buf, n); /* the GNU variant (_GNU_SOURCE) */
}


/* <root>/ab/cd/<id>.<ext>; dir1 and dir2 (may be NULL) get <root>/ab and <root>/ab/cd. */
static void blob_path(const struct fs *fs, const char *id, const char *ext, char *path, char *dir1,
                      char *dir2)
{
    snprintf(path, PATH_MAX, "%s/%.2s/%.2s/%s.%s", fs->root, id, id + 2, id, ext);
    if (dir1)
        snprintf(dir1, PATH_MAX, "%s/%.2s", fs->root, id);
    if (dir2)
        snprintf(dir2, PATH_MAX, "%s/%.2s/%.2s", fs->root, id, id + 2);
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc, e;

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* mkdir that makes a new directory durable in its parent; an existing one is fine. */
static int make_dir(const char *dir, const char *parent)
{
    if (mkdir(dir, 0700) == 0)
        return fsync_dir(parent);
    return errno == EEXIST ? 0 : -1;
}

static int mkdir_p(const char *path)
{
    char tmp[PATH_MAX];
    struct stat st;

    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return -1;
    if (stat(tmp, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static enum ig_err fs_open(struct ig_blob *b, const char *root, struct ig_errbuf *eb)
{
    struct fs *fs;
    size_t n;
    char e[128];

    if (!root || !*root)
        return ig_fail(eb, IG_E_INVALID, "blob", "blob fs: the root directory is empty");
    n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    if (n + NAME_ROOM > PATH_MAX)
        return ig_fail(eb, IG_E_INVALID, "blob", "blob fs: the root path is too long");
    fs = ig_xcalloc(1, sizeof(*fs));
    fs->root = ig_xstrndup(root, n);
    if (mkdir_p(fs->root) != 0 || access(fs->root, W_OK | X_OK) != 0) {
        int err = errno;

        ig_fail(eb, IG_E_IO, "blob", "blob fs: cannot use \"%s\": %s", fs->root,
                errstr(err, e, sizeof(e)));
        free(fs->root);
        free(fs);
        return IG_E_IO;
    }
    b->ctx = fs;
    return IG_OK;
}

static void fs_close(struct ig_blob *b)
{
    struct fs *fs = b->ctx;

    if (!fs)
        return;
    free(fs->root);
    free(fs);
    b->ctx = NULL;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Write path durably: temp file beside it, fsync, rename, fsync of the directory. */
static enum ig_err write_blob(const struct fs *fs, const void *data, size_t len, const char *path,
                              const char *dir1, const char *dir2)
{
    char tmp[PATH_MAX], e[128];
    const char *what = NULL;
    bool have_tmp = false;
    int fd = -1, eno = 0;

    if (make_dir(dir1, fs->root) != 0 || make_dir(dir2, dir1) != 0) {
        what = "mkdir";
        goto out;
    }
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= sizeof(tmp)) {
        what = "path";
        goto out;
    }
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        what = "mkstemp";
        goto out;
    }
    have_tmp = true;
    if (write_all(fd, data, len) != 0) {
        what = "write";
        goto out;
    }
    if (fsync(fd) != 0) {
        what = "fsync";
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        what = "close";
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        what = "rename";
        goto out;
    }
    have_tmp = false;
    if (fsync_dir(dir2) != 0)
        what = "fsync of the directory";
out:
    eno = errno;
    if (fd >= 0)
        close(fd);
    if (have_tmp)
        unlink(tmp);
    if (!what)
        return IG_OK;
    ig_warn("blob fs: %s failed for \"%s\": %s", what, path, errstr(eno, e, sizeof(e)));
    return IG_E_IO;
}

static enum ig_err fs_put(struct ig_blob *b, const void *data, size_t len, const char *ext,
                          char *id)
{
    struct fs *fs = b->ctx;
    char hex[IG_SHA256_HEX_LEN + 1], path[PATH_MAX], dir1[PATH_MAX], dir2[PATH_MAX];
    struct stat st;
    enum ig_err err;

    if (!ig_blob_ext_ok(ext) || (!data && len))
        return IG_E_INVALID;
    ig_sha256_hex(data ? data : "", len, hex);
    blob_path(fs, hex, ext, path, dir1, dir2);
    /* Content-addressed: a complete file of the right size already holds these bytes. */
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != len) {
        err = write_blob(fs, data, len, path, dir1, dir2);
        if (err)
            return err;
    }
    memcpy(id, hex, sizeof(hex));
    return IG_OK;
}

static enum ig_err fs_open_fd(struct ig_blob *b, const char *id, const char *ext, int *pfd,
                              int64_t *size)
{
    struct fs *fs = b->ctx;
    char path[PATH_MAX], e[128];
    struct stat st;
    int fd;

    if (!ig_blob_id_ok(id) || !ig_blob_ext_ok(ext))
        return IG_E_INVALID;
    blob_path(fs, id, ext, path, NULL, NULL);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return IG_E_NOT_FOUND;
        ig_warn("blob fs: open \"%s\": %s", path, errstr(errno, e, sizeof(e)));
        return IG_E_IO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ig_warn("blob fs: \"%s\" is not a readable file", path);
        close(fd);
        return IG_E_IO;
    }
    *pfd = fd;
    *size = (int64_t)st.st_size;
    return IG_OK;
}

static enum ig_err fs_get(struct ig_blob *b, const char *id, const char *ext, size_t max,
                          unsigned char **data, size_t *len)
{
    unsigned char *buf = NULL;
    int64_t size = 0;
    size_t got = 0;
    int fd = -1;
    enum ig_err err;

    err = fs_open_fd(b, id, ext, &fd, &size);
    if (err)
        return err;
    if ((uint64_t)size > max) {
        err = IG_E_TOOBIG;
        goto out;
    }
    buf = ig_xmalloc(size ? (size_t)size : 1);
    while (got < (size_t)size) {
        ssize_t r = read(fd, buf + got, (size_t)size - got);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            err = IG_E_IO; /* read error, or the file shrank under us */
            goto out;
        }
        got += (size_t)r;
    }
    *data = buf;
    *len = got;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return err;
}

static enum ig_err fs_del(struct ig_blob *b, const char *id, const char *ext)
{
    struct fs *fs = b->ctx;
    char path[PATH_MAX], e[128];

    if (!ig_blob_id_ok(id) || !ig_blob_ext_ok(ext))
        return IG_E_INVALID;
    blob_path(fs, id, ext, path, NULL, NULL);
    if (unlink(path) != 0 && errno != ENOENT && errno != ENOTDIR) {
        ig_warn("blob fs: unlink \"%s\": %s", path, errstr(errno, e, sizeof(e)));
        return IG_E_IO;
    }
    return IG_OK;
}

const struct ig_blob_ops ig_blob_fs_ops = {
    .name = "fs",
    .abi_version = 1,
    .open = fs_open,
    .close = fs_close,
    .put = fs_put,
    .open_fd = fs_open_fd,
    .get = fs_get,
    .del = fs_del,
};
