/*
 * A sealed in-memory copy of a snapshot's RAM file, for VMs that share it
 * copy-on-write (src/snapshot/shared-ram.ts): Node has no memfd_create.
 *
 * sealedCopy(path, name) copies the file's data (holes stay holes:
 * SEEK_DATA/SEEK_HOLE) into a new memfd of the same size and seals it
 * against every change (F_SEAL_WRITE, F_SEAL_SHRINK, F_SEAL_GROW, then
 * F_SEAL_SEAL). A jailed QEMU maps it privately: QEMU 7.2 opens its RAM
 * file read-write even for a private mapping, and the seals are what make
 * that harmless: no write(2), no fallocate(2) hole, no shared writable
 * mapping, no size change, by anyone, for as long as the memfd exists.
 * Returns the descriptor (close-on-exec), or -errno.
 *
 * Built by scripts/postbuild.mjs with gcc against Node-API, like flock.c.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <node_api.h>

#define CHUNK (1 << 20)
#define SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

/* Copy [from, to) of in into out at the same offsets. 0, or -errno. */
static int copy_range(int in, int out, off_t from, off_t to, char *buf) {
    while (from < to) {
        size_t want = (size_t)(to - from) < CHUNK ? (size_t)(to - from) : CHUNK;
        ssize_t n = pread(in, buf, want, from);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        if (n == 0) return -EIO; /* the file shrank under us */
        for (ssize_t done = 0; done < n;) {
            ssize_t w = pwrite(out, buf + done, (size_t)(n - done), from + done);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) return -errno;
            done += w;
        }
        from += n;
    }
    return 0;
}

/* The sealed copy's descriptor, or -errno. */
static int sealed_copy(const char *path, const char *name) {
    int in = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0) return -errno;
    int out = -1, rc = 0;
    char *buf = NULL;
    struct stat st;
    if (fstat(in, &st) < 0) {
        rc = -errno;
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        goto done;
    }
    out = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (out < 0 || ftruncate(out, st.st_size) < 0) {
        rc = -errno;
        goto done;
    }
    buf = malloc(CHUNK);
    if (buf == NULL) {
        rc = -ENOMEM;
        goto done;
    }
    for (off_t at = 0; at < st.st_size;) {
        off_t data = lseek(in, at, SEEK_DATA);
        if (data < 0 && errno == ENXIO) break; /* only a hole is left */
        if (data < 0) {
            rc = -errno;
            goto done;
        }
        off_t hole = lseek(in, data, SEEK_HOLE);
        if (hole < 0) {
            rc = -errno;
            goto done;
        }
        rc = copy_range(in, out, data, hole, buf);
        if (rc != 0) goto done;
        at = hole;
    }
    if (fcntl(out, F_ADD_SEALS, SEALS) < 0) rc = -errno;
done:
    free(buf);
    close(in);
    if (rc != 0) {
        if (out >= 0) close(out);
        return rc;
    }
    return out;
}

static napi_value call_sealed_copy(napi_env env, napi_callback_info info) {
    size_t argc = 2;
    napi_value argv[2];
    char path[4096], name[200];
    size_t len;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
        napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok || len >= sizeof path - 1 ||
        napi_get_value_string_utf8(env, argv[1], name, sizeof name, &len) != napi_ok) {
        napi_throw_type_error(env, NULL, "sealedCopy(path, name) takes two strings (a path under 4 KiB)");
        return NULL;
    }
    napi_value result;
    napi_create_int32(env, sealed_copy(path, name), &result);
    return result;
}

NAPI_MODULE_INIT() {
    napi_value fn;
    if (napi_create_function(env, "sealedCopy", NAPI_AUTO_LENGTH, call_sealed_copy, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "sealedCopy", fn) != napi_ok) {
        return NULL;
    }
    return exports;
}
